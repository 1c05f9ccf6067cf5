#include "waypoint/regex.h"

#include <re2/re2.h>

namespace waypoint {

common::Result<Regex> Regex::compile(std::string_view pattern) {
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_shared<const re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok()) return common::make_error("invalid regex '" + std::string(pattern) + "': " + re->error());
  Regex r;
  r.re_ = std::move(re);
  r.pattern_ = std::string(pattern);
  return r;
}

bool Regex::full_match(std::string_view input) const {
  if (!re_) return false;
  return re2::RE2::FullMatch(re2::StringPiece(input.data(), input.size()), *re_);
}

std::string Regex::replace_all(std::string_view input, std::string_view substitution) const {
  std::string out(input);
  if (!re_) return out;
  re2::RE2::GlobalReplace(&out, *re_, re2::StringPiece(substitution.data(), substitution.size()));
  return out;
}

common::Status Regex::check_substitution(std::string_view substitution) const {
  if (!re_) return common::make_error("no compiled regex");
  std::string error;
  if (!re_->CheckRewriteString(re2::StringPiece(substitution.data(), substitution.size()), &error)) {
    return common::make_error("invalid substitution '" + std::string(substitution) + "': " + error);
  }
  return common::ok_status();
}

}  // namespace waypoint
