// DNS message codec; see dns_message.h for scope and the untrusted-input rules.
#include "ztunnel/dns/message.h"

#include <array>

namespace ztunnel::dns {

namespace {

uint16_t read_u16(std::span<const uint8_t> p, size_t at) {
  return static_cast<uint16_t>((p[at] << 8) | p[at + 1]);
}

uint32_t read_u32(std::span<const uint8_t> p, size_t at) {
  return (static_cast<uint32_t>(p[at]) << 24) | (static_cast<uint32_t>(p[at + 1]) << 16) |
         (static_cast<uint32_t>(p[at + 2]) << 8) | p[at + 3];
}

void put_u16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v & 0xFF));
}

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  put_u16(out, static_cast<uint16_t>(v >> 16));
  put_u16(out, static_cast<uint16_t>(v & 0xFFFF));
}

// Appends one label octet in presentation form (see Question::name).
void append_presentation(std::string& out, uint8_t c) {
  if (c >= 'A' && c <= 'Z') {
    out.push_back(static_cast<char>(c - 'A' + 'a'));
  } else if (c > 0x20 && c < 0x7F && c != '.' && c != '\\') {
    out.push_back(static_cast<char>(c));
  } else {
    // \DDD keeps unusual octets distinguishable without ever matching a service hostname.
    out.push_back('\\');
    out.push_back(static_cast<char>('0' + c / 100));
    out.push_back(static_cast<char>('0' + (c / 10) % 10));
    out.push_back(static_cast<char>('0' + c % 10));
  }
}

// Skips one resource record starting at `pos`; returns its type and the rdata location.
struct RecordSpan {
  uint16_t type = 0;
  uint16_t rclass = 0;
  uint32_t ttl = 0;
  size_t name_offset = 0;
  size_t rdata_offset = 0;
  uint16_t rdlength = 0;
  std::string name;
};

common::Result<RecordSpan> read_record(std::span<const uint8_t> p, size_t& pos) {
  RecordSpan r;
  r.name_offset = pos;
  size_t end = 0;
  auto name = read_name(p, pos, end);
  if (!name) return common::make_error("record name: " + name.error());
  r.name = std::move(*name);
  if (end + 10 > p.size()) return common::make_error("record header truncated");
  r.type = read_u16(p, end);
  r.rclass = read_u16(p, end + 2);
  r.ttl = read_u32(p, end + 4);
  r.rdlength = read_u16(p, end + 8);
  r.rdata_offset = end + 10;
  if (r.rdata_offset + r.rdlength > p.size()) return common::make_error("rdata truncated");
  pos = r.rdata_offset + r.rdlength;
  return r;
}

// Appends the header of a message: id, flags and the four counts.
void put_header(std::vector<uint8_t>& out, const Header& h) {
  put_u16(out, h.id);
  put_u16(out, h.flags);
  put_u16(out, h.qdcount);
  put_u16(out, h.ancount);
  put_u16(out, h.nscount);
  put_u16(out, h.arcount);
}

// An OPT pseudo-record advertising our payload size, no options, DO clear.
constexpr size_t kOptSize = 11;
void put_opt(std::vector<uint8_t>& out) {
  out.push_back(0);  // root owner name
  put_u16(out, type::kOpt);
  put_u16(out, kMaxUdpPayload);  // CLASS = requestor's payload size
  put_u32(out, 0);               // extended rcode 0, version 0, flags 0
  put_u16(out, 0);               // no options
}

}  // namespace

std::string_view query_type_label(uint16_t qtype) {
  switch (qtype) {
    case type::kA:
      return "a";
    case type::kNs:
      return "ns";
    case type::kCname:
      return "cname";
    case type::kSoa:
      return "soa";
    case type::kPtr:
      return "ptr";
    case type::kMx:
      return "mx";
    case type::kTxt:
      return "txt";
    case type::kAaaa:
      return "aaaa";
    case type::kSrv:
      return "srv";
    case type::kOpt:
      return "opt";
    case type::kHttps:
      return "https";
    case 64:
      return "svcb";
    case 35:
      return "naptr";
    case 257:
      return "caa";
    case type::kAny:
      return "any";
    default:
      return "unknown";
  }
}

std::optional<Header> parse_header(std::span<const uint8_t> p) {
  if (p.size() < kHeaderSize) return std::nullopt;
  Header h;
  h.id = read_u16(p, 0);
  h.flags = read_u16(p, 2);
  h.qdcount = read_u16(p, 4);
  h.ancount = read_u16(p, 6);
  h.nscount = read_u16(p, 8);
  h.arcount = read_u16(p, 10);
  return h;
}

common::Result<std::string> read_name(std::span<const uint8_t> p, size_t offset, size_t& end,
                                      std::vector<uint8_t>* wire_out) {
  std::string out;
  size_t pos = offset;
  size_t wire_len = 0;  // uncompressed length so far, limited to 255 (RFC 1035 §3.1)
  size_t jumps = 0;
  bool jumped = false;
  if (wire_out != nullptr) wire_out->clear();
  for (;;) {
    if (pos >= p.size()) return common::make_error("name runs past the end of the message");
    const uint8_t len = p[pos];
    const uint8_t kind = len & 0xC0;
    if (kind == 0xC0) {
      if (pos + 1 >= p.size()) return common::make_error("truncated compression pointer");
      const size_t target = (static_cast<size_t>(len & 0x3F) << 8) | p[pos + 1];
      // Only backwards: with the jump cap this bounds work even for crafted pointer chains.
      if (target >= pos) return common::make_error("compression pointer does not point backwards");
      if (++jumps > kMaxPointerJumps) return common::make_error("too many compression pointers");
      if (!jumped) end = pos + 2;
      jumped = true;
      pos = target;
      continue;
    }
    if (kind != 0) return common::make_error("unsupported label type");
    if (len == 0) {
      wire_len += 1;
      if (wire_len > kMaxNameLength) return common::make_error("name longer than 255 octets");
      if (wire_out != nullptr) wire_out->push_back(0);
      if (!jumped) end = pos + 1;
      return out;
    }
    // len <= 63 by construction (top two bits clear).
    if (pos + 1 + len > p.size()) return common::make_error("label runs past the end of the message");
    wire_len += 1 + len;
    if (wire_len + 1 > kMaxNameLength) return common::make_error("name longer than 255 octets");
    if (!out.empty()) out.push_back('.');
    if (wire_out != nullptr) wire_out->push_back(len);
    for (size_t i = 0; i < len; ++i) {
      const uint8_t c = p[pos + 1 + i];
      append_presentation(out, c);
      if (wire_out != nullptr) wire_out->push_back(c);
    }
    pos += 1 + len;
  }
}

common::Result<std::vector<uint8_t>> encode_name(std::string_view name) {
  std::vector<uint8_t> out;
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return std::vector<uint8_t>{0};
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    const size_t len = dot - start;
    if (len == 0) return common::make_error("empty label in name");
    if (len > kMaxLabelLength) return common::make_error("label longer than 63 octets");
    out.push_back(static_cast<uint8_t>(len));
    out.insert(out.end(), name.begin() + static_cast<ptrdiff_t>(start), name.begin() + static_cast<ptrdiff_t>(dot));
    start = dot + 1;
  }
  out.push_back(0);
  if (out.size() > kMaxNameLength) return common::make_error("name longer than 255 octets");
  return out;
}

common::Result<Query> parse_query(std::span<const uint8_t> p) {
  auto header = parse_header(p);
  if (!header) return common::make_error("message shorter than a DNS header");
  if (header->qr()) return common::make_error("message is a response, not a query");
  if (header->qdcount != 1) return common::make_error("query must carry exactly one question");
  Query q;
  q.header = *header;
  size_t pos = 0;
  auto name = read_name(p, kHeaderSize, pos, &q.question.wire_name);
  if (!name) return common::make_error("question name: " + name.error());
  q.question.name = std::move(*name);
  if (pos + 4 > p.size()) return common::make_error("question truncated");
  q.question.qtype = read_u16(p, pos);
  q.question.qclass = read_u16(p, pos + 2);
  pos += 4;
  // Queries should not carry answers or authority records, but they are legal wire-wise;
  // skip them (bounds-checked) to reach the additional section.
  const size_t skip = static_cast<size_t>(header->ancount) + header->nscount;
  for (size_t i = 0; i < skip; ++i) {
    auto r = read_record(p, pos);
    if (!r) return common::make_error(r.error());
  }
  for (size_t i = 0; i < header->arcount; ++i) {
    auto r = read_record(p, pos);
    if (!r) return common::make_error(r.error());
    if (r->type != type::kOpt) continue;
    if (q.edns_udp_size) return common::make_error("more than one OPT record");  // RFC 6891 §6.1.1
    if (!r->name.empty()) return common::make_error("OPT record with a non-root name");
    uint16_t size = r->rclass;
    if (size < kClassicUdpPayload) size = kClassicUdpPayload;  // RFC 6891 §6.2.3
    if (size > kMaxUdpPayload) size = kMaxUdpPayload;
    q.edns_udp_size = size;
  }
  return q;
}

Answer make_address_answer(std::vector<uint8_t> wire_name, const IpAddr& ip, uint32_t ttl) {
  Answer a;
  a.wire_name = std::move(wire_name);
  a.ttl = ttl;
  if (ip.is_v4()) {
    a.type = type::kA;
    const auto b = ip.to_v4().to_bytes();
    a.rdata.assign(b.begin(), b.end());
  } else {
    a.type = type::kAaaa;
    const auto b = ip.to_v6().to_bytes();
    a.rdata.assign(b.begin(), b.end());
  }
  return a;
}

Answer make_cname_answer(std::vector<uint8_t> wire_name, std::vector<uint8_t> target_wire_name, uint32_t ttl) {
  Answer a;
  a.wire_name = std::move(wire_name);
  a.type = type::kCname;
  a.ttl = ttl;
  a.rdata = std::move(target_wire_name);
  return a;
}

std::vector<uint8_t> build_response(const Query& query, const std::vector<Answer>& answers,
                                    const ResponseOptions& options) {
  Header h;
  h.id = query.header.id;
  // Echo opcode, RD and CD; we always offer recursion (we forward what we do not know).
  h.flags = static_cast<uint16_t>(flag::kQr | (query.header.flags & (0x7800 | flag::kRd | flag::kCd)) | flag::kRa |
                                  static_cast<uint16_t>(options.rcode));
  if (options.authoritative) h.flags |= flag::kAa;
  h.qdcount = 1;
  h.arcount = options.include_opt ? 1 : 0;

  std::vector<uint8_t> body;
  // Question at offset 12, so an owner name equal to it compresses to pointer 0xC00C.
  body.insert(body.end(), query.question.wire_name.begin(), query.question.wire_name.end());
  put_u16(body, query.question.qtype);
  put_u16(body, query.question.qclass);

  std::vector<uint8_t> records;
  for (const Answer& a : answers) {
    if (a.wire_name == query.question.wire_name) {
      put_u16(records, 0xC00C);
    } else {
      records.insert(records.end(), a.wire_name.begin(), a.wire_name.end());
    }
    put_u16(records, a.type);
    put_u16(records, kClassIn);
    put_u32(records, a.ttl);
    put_u16(records, static_cast<uint16_t>(a.rdata.size()));
    records.insert(records.end(), a.rdata.begin(), a.rdata.end());
  }

  const size_t opt = options.include_opt ? kOptSize : 0;
  const bool fits = kHeaderSize + body.size() + records.size() + opt <= options.max_size;
  if (fits) {
    h.ancount = static_cast<uint16_t>(answers.size());
  } else {
    // RFC 2181 §9: when the answer RRset does not fit, send none of it and set TC so the
    // client retries over TCP.
    h.flags |= flag::kTc;
    records.clear();
  }
  std::vector<uint8_t> out;
  out.reserve(kHeaderSize + body.size() + records.size() + opt);
  put_header(out, h);
  out.insert(out.end(), body.begin(), body.end());
  out.insert(out.end(), records.begin(), records.end());
  if (options.include_opt) put_opt(out);
  return out;
}

std::optional<std::vector<uint8_t>> build_error_from_raw(std::span<const uint8_t> packet, Rcode rcode) {
  auto in = parse_header(packet);
  if (!in || in->qr()) return std::nullopt;
  Header h;
  h.id = in->id;
  h.flags =
      static_cast<uint16_t>(flag::kQr | (in->flags & (0x7800 | flag::kRd)) | flag::kRa | static_cast<uint16_t>(rcode));
  std::vector<uint8_t> out;
  put_header(out, h);
  return out;
}

common::Result<ParsedResponse> parse_response(std::span<const uint8_t> p) {
  auto header = parse_header(p);
  if (!header) return common::make_error("message shorter than a DNS header");
  ParsedResponse r;
  r.header = *header;
  if (header->qdcount > 1) return common::make_error("more than one question");
  size_t pos = kHeaderSize;
  if (header->qdcount == 1) {
    Question q;
    size_t end = 0;
    auto name = read_name(p, pos, end, &q.wire_name);
    if (!name) return common::make_error("question name: " + name.error());
    q.name = std::move(*name);
    if (end + 4 > p.size()) return common::make_error("question truncated");
    q.qtype = read_u16(p, end);
    q.qclass = read_u16(p, end + 2);
    pos = end + 4;
    r.question = std::move(q);
  }
  for (size_t i = 0; i < header->ancount; ++i) {
    auto rec = read_record(p, pos);
    if (!rec) return common::make_error(rec.error());
    ParsedRecord out;
    out.name = std::move(rec->name);
    out.type = rec->type;
    out.rclass = rec->rclass;
    out.ttl = rec->ttl;
    out.rdata.assign(p.begin() + static_cast<ptrdiff_t>(rec->rdata_offset),
                     p.begin() + static_cast<ptrdiff_t>(rec->rdata_offset + rec->rdlength));
    if (rec->type == type::kA && rec->rdlength == 4) {
      std::array<uint8_t, 4> b{};
      std::copy(out.rdata.begin(), out.rdata.end(), b.begin());
      out.address = IpAddr(boost::asio::ip::address_v4(b));
    } else if (rec->type == type::kAaaa && rec->rdlength == 16) {
      std::array<uint8_t, 16> b{};
      std::copy(out.rdata.begin(), out.rdata.end(), b.begin());
      out.address = IpAddr(boost::asio::ip::address_v6(b));
    } else if (rec->type == type::kCname) {
      // The target may itself be compressed against earlier parts of the message.
      const std::span<const uint8_t> upto = p.first(rec->rdata_offset + rec->rdlength);
      size_t end = 0;
      auto target = read_name(upto, rec->rdata_offset, end);
      if (!target) return common::make_error("CNAME target: " + target.error());
      out.target = std::move(*target);
    }
    r.answers.push_back(std::move(out));
  }
  return r;
}

common::Result<std::vector<uint8_t>> build_query(uint16_t id, std::string_view name, uint16_t qtype,
                                                 bool recursion_desired, std::optional<uint16_t> edns_udp_size) {
  auto wire = encode_name(name);
  if (!wire) return common::make_error(wire.error());
  Header h;
  h.id = id;
  h.flags = recursion_desired ? flag::kRd : 0;
  h.qdcount = 1;
  h.arcount = edns_udp_size ? 1 : 0;
  std::vector<uint8_t> out;
  put_header(out, h);
  out.insert(out.end(), wire->begin(), wire->end());
  put_u16(out, qtype);
  put_u16(out, kClassIn);
  if (edns_udp_size) {
    out.push_back(0);
    put_u16(out, type::kOpt);
    put_u16(out, *edns_udp_size);
    put_u32(out, 0);
    put_u16(out, 0);
  }
  return out;
}

}  // namespace ztunnel::dns
