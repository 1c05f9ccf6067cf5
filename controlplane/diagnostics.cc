#include "controlplane/diagnostics.h"

#include <algorithm>

namespace controlplane {

std::string_view to_string(Severity s) {
  switch (s) {
    case Severity::Info:
      return "info";
    case Severity::Warning:
      return "warning";
    case Severity::Error:
      return "error";
  }
  return "error";
}

std::string Diagnostic::to_string() const {
  std::string out(controlplane::to_string(severity));
  out += ": ";
  for (const std::string* part : {&file, &object, &field}) {
    if (part->empty()) continue;
    out += *part;
    out += ": ";
  }
  out += message;
  return out;
}

size_t count(const Diagnostics& diags, Severity s) {
  return static_cast<size_t>(
      std::count_if(diags.begin(), diags.end(), [s](const Diagnostic& d) { return d.severity == s; }));
}

}  // namespace controlplane
