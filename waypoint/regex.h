// Regex: one RE2 pattern compiled once, when configuration is converted, and shared by every
// snapshot and worker that uses it. RE2 is the engine Envoy uses for `safe_regex`, so the
// accepted syntax and linear-time matching are the same as upstream's.
//
// Threading: immutable after compile(); RE2 objects are safe for concurrent use, so one Regex
// may be matched from any number of workers at once. Copies share the compiled program.
// Invariants: a Regex obtained from compile() always holds a valid program; a default-constructed
// Regex holds none and matches nothing (it exists only so aggregates can be default-built).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace re2 {
class RE2;
}

namespace waypoint {

class Regex {
 public:
  Regex() = default;

  // Compiles `pattern` with RE2 defaults (UTF-8, no implicit anchoring). The error names the
  // RE2 diagnostic; callers prefix the config field it came from.
  static common::Result<Regex> compile(std::string_view pattern);

  // True when the pattern matches the WHOLE input (Envoy's safe_regex semantics: `/a.*` does not
  // match `x/a` and `/a` does not match `/ab`).
  bool full_match(std::string_view input) const;

  // Envoy's RegexMatchAndSubstitute: replaces every non-overlapping match in `input` with
  // `substitution`, where \0..\9 refer to capture groups. Returns the input unchanged when
  // nothing matches.
  std::string replace_all(std::string_view input, std::string_view substitution) const;

  // Checks that `substitution` only references groups the pattern has (\N with N <= groups).
  common::Status check_substitution(std::string_view substitution) const;

  bool valid() const { return re_ != nullptr; }
  const std::string& pattern() const { return pattern_; }

 private:
  std::shared_ptr<const re2::RE2> re_;
  std::string pattern_;
};

}  // namespace waypoint
