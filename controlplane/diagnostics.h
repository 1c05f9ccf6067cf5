// Diagnostics: what the control plane has to say about its input, as values. The loader and
// the compiler never log or print; they return every finding in a list so a caller decides
// where it goes (the `compile` command prints to stderr, a future xDS server would log and
// expose them, tests assert on them).
//
// Each finding names where it comes from: the file, the object ("Pod demo/web-1"; "document 3"
// when the object has no usable name) and the field path inside it ("spec.ports[0].targetPort"),
// so a user can fix the input without guessing.
//
// Threading: plain values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace controlplane {

enum class Severity {
  Info,     // something was deliberately ignored (unknown kind, AUDIT policy, ...)
  Warning,  // the input was compiled, but not exactly as written (L7 rule dropped, ...)
  Error,    // the input is invalid; the object (or the part named) was left out
};

std::string_view to_string(Severity s);  // "info" | "warning" | "error"

struct Diagnostic {
  Severity severity = Severity::Error;
  std::string file;    // path as it was read; may be empty for compiler-level findings
  std::string object;  // "Kind ns/name" or "document N"
  std::string field;   // dotted path inside the object; empty when about the whole object
  std::string message;

  // "error: dir/pods.yaml: Pod demo/web-1: status.podIP: invalid IP address 'x'"
  std::string to_string() const;
};

using Diagnostics = std::vector<Diagnostic>;

// Number of diagnostics with exactly this severity.
size_t count(const Diagnostics& diags, Severity s);

}  // namespace controlplane
