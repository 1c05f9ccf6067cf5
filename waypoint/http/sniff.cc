#include "waypoint/http/sniff.h"

namespace waypoint::http {

namespace {

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// Matches `line` (without its line end) against METHOD SP TARGET SP HTTP/1.d. With
// `complete` false the line may stop anywhere: true means "still a possible prefix".
bool request_line(std::string_view line, bool complete) {
  size_t i = 0;
  while (i < line.size() && is_tchar(line[i])) ++i;
  if (i == line.size()) return !complete && i > 0;
  if (i == 0 || line[i] != ' ') return false;
  size_t t = ++i;
  while (i < line.size() && line[i] != ' ') {
    auto c = static_cast<unsigned char>(line[i]);
    if (c < 0x21 || c == 0x7f) return false;
    ++i;
  }
  if (i == line.size()) return !complete;
  if (i == t) return false;
  std::string_view version = line.substr(i + 1);
  constexpr std::string_view kPrefix = "HTTP/1.";
  if (!complete) {
    if (version.size() <= kPrefix.size()) return kPrefix.starts_with(version);
    return version.starts_with(kPrefix) && version.size() == kPrefix.size() + 1 &&
           (version.back() == '0' || version.back() == '1');
  }
  return version.size() == kPrefix.size() + 1 && version.starts_with(kPrefix) &&
         (version.back() == '0' || version.back() == '1');
}

}  // namespace

Sniffed sniff(std::string_view bytes) {
  if (bytes.empty()) return Sniffed::NeedMore;
  if (bytes.size() >= kH2Preface.size()) {
    if (bytes.starts_with(kH2Preface)) return Sniffed::Http2;
  } else if (kH2Preface.starts_with(bytes)) {
    // "PRI * HTTP/2.0" could still turn out to be neither; wait for the whole preface.
    return Sniffed::NeedMore;
  }
  const size_t nl = bytes.find('\n');
  if (nl == std::string_view::npos) {
    if (bytes.size() > kSniffMaxLine) return Sniffed::Other;
    std::string_view partial = bytes;
    if (partial.back() == '\r') partial.remove_suffix(1);
    return request_line(partial, false) ? Sniffed::NeedMore : Sniffed::Other;
  }
  std::string_view line = bytes.substr(0, nl);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return request_line(line, true) ? Sniffed::Http1 : Sniffed::Other;
}

}  // namespace waypoint::http
