#include "controlplane/tokens.h"

#include <openssl/crypto.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace controlplane {

namespace {

using common::make_error;

common::Result<Caller> parse_entry(const YAML::Node& e, const std::string& where, std::string& token) {
  if (!e.IsMap()) return make_error(where + ": expected a map");
  Caller c;
  for (const auto& kv : e) {
    auto key = kv.first.as<std::string>();
    const YAML::Node& v = kv.second;
    if (!v.IsScalar()) return make_error(where + "." + key + ": expected a string");
    auto s = v.as<std::string>();
    if (key == "token") {
      token = s;
    } else if (key == "serviceAccount") {
      auto slash = s.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == s.size() ||
          s.find('/', slash + 1) != std::string::npos) {
        return make_error(where + ".serviceAccount: expected <namespace>/<name>, got '" + s + "'");
      }
      c.ns = s.substr(0, slash);
      c.service_account = s.substr(slash + 1);
    } else if (key == "node") {
      c.node = s;
    } else {
      return make_error(where + "." + key + ": unknown field");
    }
  }
  if (token.empty()) return make_error(where + ".token: required");
  if (token.find_first_of(" \t\r\n") != std::string::npos) return make_error(where + ".token: must not contain spaces");
  if (c.service_account.empty()) return make_error(where + ".serviceAccount: required");
  return c;
}

}  // namespace

common::Result<TokenAuthenticator> TokenAuthenticator::parse(std::string_view yaml) {
  TokenAuthenticator out;
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsMap()) return make_error("tokens: top level must be a map with a `tokens` list");
    for (const auto& kv : root) {
      if (kv.first.as<std::string>() != "tokens") return make_error(kv.first.as<std::string>() + ": unknown field");
    }
    YAML::Node list = root["tokens"];
    if (!list || !list.IsSequence()) return make_error("tokens: expected a list");
    for (size_t i = 0; i < list.size(); ++i) {
      std::string where = "tokens[" + std::to_string(i) + "]";
      std::string token;
      auto c = parse_entry(list[i], where, token);
      if (!c) return make_error(c.error());
      for (const auto& e : out.entries_) {
        if (e.token == token) return make_error(where + ".token: repeats an earlier entry");
      }
      out.entries_.push_back(Entry{std::move(token), std::move(c.value())});
    }
  } catch (const YAML::Exception& e) {
    return make_error(std::string("tokens: invalid YAML: ") + e.what());
  }
  return out;
}

common::Result<TokenAuthenticator> TokenAuthenticator::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("tokens file " + path + ": cannot read");
  std::ostringstream ss;
  ss << in.rdbuf();
  auto r = parse(ss.str());
  if (!r) return make_error("tokens file " + path + ": " + r.error());
  return r;
}

std::optional<Caller> TokenAuthenticator::authenticate(std::string_view authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() || authorization.substr(0, kBearer.size()) != kBearer) {
    return std::nullopt;
  }
  std::string_view token = authorization.substr(kBearer.size());
  const Caller* found = nullptr;
  // Every entry is compared (no early exit) so timing says nothing about which prefix matched.
  for (const auto& e : entries_) {
    if (e.token.size() == token.size() && CRYPTO_memcmp(e.token.data(), token.data(), token.size()) == 0) {
      found = &e.caller;
    }
  }
  if (!found) return reviewer_ ? reviewer_(token) : std::nullopt;
  return *found;
}

bool TrustedNodeAccounts::contains(const Caller& c) const {
  std::string key = c.ns + "/" + c.service_account;
  return std::find(accounts.begin(), accounts.end(), key) != accounts.end();
}

}  // namespace controlplane
