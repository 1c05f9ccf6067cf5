// DNS wire format (RFC 1035, RFC 6891 EDNS0) for the ztunnel DNS proxy: parsing the queries
// a pod sends to 15053, and building the responses the proxy answers itself.
//
// Scope: only what a stub-resolver proxy needs. A query is a header plus exactly one question;
// the additional section is scanned only for an OPT record (EDNS: advertised UDP payload size).
// Responses are built from scratch (header, echoed question, A/AAAA/CNAME answers, optional
// OPT). Forwarded traffic is never re-encoded: the proxy relays upstream bytes as they came,
// only rewriting the 16-bit id (see dns_proxy.h), so nothing here needs to understand every
// record type.
//
// Untrusted input: parse_query() is bounds-checked everywhere, follows compression pointers only
// backwards (no loops) and at most kMaxPointerJumps times, and enforces the 63-octet label and
// 255-octet name limits. It never throws and never reads outside the given span; every failure
// is an error value.
//
// Threading: plain functions and value types; no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/model/model.h"

namespace ztunnel::dns {

inline constexpr size_t kHeaderSize = 12;
inline constexpr size_t kMaxLabelLength = 63;
inline constexpr size_t kMaxNameLength = 255;  // wire octets, including the root label
inline constexpr size_t kMaxPointerJumps = 32;
// Classic UDP payload limit without EDNS (RFC 1035 §4.2.1).
inline constexpr size_t kClassicUdpPayload = 512;
// What we advertise in our own OPT records; also the cap on the client's advertisement.
inline constexpr uint16_t kMaxUdpPayload = 4096;
// Largest DNS message over TCP (2-byte length prefix).
inline constexpr size_t kMaxTcpMessage = 65535;
// TTL of records the proxy answers itself (upstream ztunnel uses 30 s).
inline constexpr uint32_t kDefaultTtl = 30;

// Record types we name. Anything else is carried as its raw number.
namespace type {
inline constexpr uint16_t kA = 1;
inline constexpr uint16_t kNs = 2;
inline constexpr uint16_t kCname = 5;
inline constexpr uint16_t kSoa = 6;
inline constexpr uint16_t kPtr = 12;
inline constexpr uint16_t kMx = 15;
inline constexpr uint16_t kTxt = 16;
inline constexpr uint16_t kAaaa = 28;
inline constexpr uint16_t kSrv = 33;
inline constexpr uint16_t kOpt = 41;
inline constexpr uint16_t kHttps = 65;
inline constexpr uint16_t kAny = 255;
}  // namespace type
inline constexpr uint16_t kClassIn = 1;

// Lower-case mnemonic for the metrics label request_query_type ("a", "aaaa", "srv", ...).
// Unknown types map to "unknown" so a client cannot grow label cardinality without bound.
std::string_view query_type_label(uint16_t qtype);

enum class Rcode : uint8_t {
  NoError = 0,
  FormErr = 1,   // we could not parse the query
  ServFail = 2,  // we (or every upstream) failed
  NxDomain = 3,
  NotImp = 4,   // opcode other than QUERY
  Refused = 5,  // e.g. too many queries in flight
};

// Header flag bits (second 16-bit word).
namespace flag {
inline constexpr uint16_t kQr = 0x8000;
inline constexpr uint16_t kAa = 0x0400;
inline constexpr uint16_t kTc = 0x0200;
inline constexpr uint16_t kRd = 0x0100;
inline constexpr uint16_t kRa = 0x0080;
inline constexpr uint16_t kCd = 0x0010;
}  // namespace flag

struct Header {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint16_t qdcount = 0, ancount = 0, nscount = 0, arcount = 0;

  bool qr() const { return (flags & flag::kQr) != 0; }
  uint8_t opcode() const { return static_cast<uint8_t>((flags >> 11) & 0xF); }
  bool tc() const { return (flags & flag::kTc) != 0; }
  bool rd() const { return (flags & flag::kRd) != 0; }
  Rcode rcode() const { return static_cast<Rcode>(flags & 0xF); }
};

// Reads the fixed 12-byte header; nullopt if the packet is shorter.
std::optional<Header> parse_header(std::span<const uint8_t> packet);

struct Question {
  // Presentation form for lookups: lower-case ASCII, labels joined by '.', no trailing dot,
  // "" for the root. Octets that cannot appear in a hostname ('.', '\\', non-printable) are
  // written as "\DDD" so such a name can never collide with a real hostname.
  std::string name;
  // The name as it appeared on the wire (original case, uncompressed), echoed in responses:
  // some resolvers check the case they sent (DNS 0x20).
  std::vector<uint8_t> wire_name;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
};

struct Query {
  Header header;
  Question question;
  // EDNS0: payload size the client advertised (clamped to [512, kMaxUdpPayload]); nullopt
  // when the query had no OPT record.
  std::optional<uint16_t> edns_udp_size;
};

// Parses a query: QR must be 0, exactly one question. Any opcode is accepted (the caller
// answers NotImp for non-QUERY). Trailing bytes after the last section are tolerated.
common::Result<Query> parse_query(std::span<const uint8_t> packet);

// Reads a possibly-compressed name starting at `offset` within `packet`. On success returns
// the presentation form (as Question::name) and sets `end` to the offset just past the name in
// the original position (after the first pointer if compressed). Exposed for tests.
common::Result<std::string> read_name(std::span<const uint8_t> packet, size_t offset, size_t& end,
                                      std::vector<uint8_t>* wire_out = nullptr);

// Encodes a presentation-form name ("a.b.c", trailing dot optional, "" or "." = root) into
// uncompressed wire format. Fails on empty labels, labels over 63 octets or names over 255.
common::Result<std::vector<uint8_t>> encode_name(std::string_view name);

// One record of an answer we build. Only A, AAAA and CNAME are produced by the proxy.
struct Answer {
  std::vector<uint8_t> wire_name;  // owner name, uncompressed wire form
  uint16_t type = 0;
  uint32_t ttl = kDefaultTtl;
  std::vector<uint8_t> rdata;
};

Answer make_address_answer(std::vector<uint8_t> wire_name, const IpAddr& ip, uint32_t ttl = kDefaultTtl);
Answer make_cname_answer(std::vector<uint8_t> wire_name, std::vector<uint8_t> target_wire_name,
                         uint32_t ttl = kDefaultTtl);

struct ResponseOptions {
  Rcode rcode = Rcode::NoError;
  bool authoritative = false;
  // Largest message the transport can carry: 512 (classic UDP), the EDNS size, or 65535 (TCP).
  // When the full answer is larger, answers are dropped and TC is set (RFC 2181 §9).
  size_t max_size = kClassicUdpPayload;
  // Include an OPT record (when the query had one; RFC 6891 §6.1.1).
  bool include_opt = false;
};

// Builds the response to `query`: same id, opcode, RD and CD bits; QR and RA set; the question
// echoed; `answers` in the answer section. Never fails (all inputs are already valid wire
// pieces); the result is at most max(options.max_size, header+question+OPT) bytes.
std::vector<uint8_t> build_response(const Query& query, const std::vector<Answer>& answers,
                                    const ResponseOptions& options);

// Minimal error response for a packet we could not fully parse: the first 12 bytes' id and
// opcode/RD echoed, no sections, the given rcode. nullopt when the input is not even a header
// or is itself a response (never answer responses: reflection loops).
std::optional<std::vector<uint8_t>> build_error_from_raw(std::span<const uint8_t> packet, Rcode rcode);

// Decoded view of a response, for tests and for checking upstream replies. Records in the
// answer section only; names decompressed to presentation form.
struct ParsedRecord {
  std::string name;
  uint16_t type = 0;
  uint16_t rclass = 0;
  uint32_t ttl = 0;
  std::vector<uint8_t> rdata;     // raw; for CNAME see `target`
  std::string target;             // CNAME target (presentation), empty otherwise
  std::optional<IpAddr> address;  // A / AAAA
};
struct ParsedResponse {
  Header header;
  std::optional<Question> question;  // nullopt when qdcount == 0
  std::vector<ParsedRecord> answers;
};
common::Result<ParsedResponse> parse_response(std::span<const uint8_t> packet);

// Builds a simple query (tests, health checks). `id` is the caller's choice.
common::Result<std::vector<uint8_t>> build_query(uint16_t id, std::string_view name, uint16_t qtype,
                                                 bool recursion_desired = true,
                                                 std::optional<uint16_t> edns_udp_size = std::nullopt);

}  // namespace ztunnel::dns
