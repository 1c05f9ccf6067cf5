// libFuzzer target: DNS query parsing (what any pod can send to 15053). Whatever parses must
// survive building a response (with and without truncation) that parses back with the same id
// and question; and the FORMERR path must never answer a response packet.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "ztunnel/dns/message.h"

using namespace ztunnel::dns;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  auto err = build_error_from_raw(input, Rcode::FormErr);
  auto header = parse_header(input);
  if (err && (!header || header->qr())) std::abort();

  // Also exercise the response parser (upstream replies are checked with the same reader).
  (void)parse_response(input);

  auto q = parse_query(input);
  if (!q) return 0;
  if (q->question.wire_name.empty() || q->question.wire_name.size() > kMaxNameLength) std::abort();
  std::vector<Answer> answers;
  answers.push_back(
      make_address_answer(q->question.wire_name, ztunnel::IpAddr(boost::asio::ip::address_v4(0x0A000001))));
  answers.push_back(make_cname_answer(q->question.wire_name, q->question.wire_name));
  for (size_t max : {kClassicUdpPayload, kMaxTcpMessage}) {
    ResponseOptions o;
    o.max_size = max;
    o.include_opt = q->edns_udp_size.has_value();
    auto resp = build_response(*q, answers, o);
    auto back = parse_response(resp);
    if (!back) std::abort();
    if (back->header.id != q->header.id || !back->question) std::abort();
    if (back->question->name != q->question.name || back->question->qtype != q->question.qtype) std::abort();
    if (!back->header.tc() && back->answers.size() != answers.size()) std::abort();
  }
  return 0;
}
