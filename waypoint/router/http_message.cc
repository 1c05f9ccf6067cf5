#include "waypoint/router/http_message.h"

#include <algorithm>

namespace waypoint::router {

std::optional<std::string_view> HeaderList::get(std::string_view name) const {
  for (const auto& f : fields_) {
    if (f.name == name) return std::string_view(f.value);
  }
  return std::nullopt;
}

std::optional<std::string> HeaderList::get_joined(std::string_view name) const {
  std::optional<std::string> out;
  for (const auto& f : fields_) {
    if (f.name != name) continue;
    if (out) {
      out->push_back(',');
      out->append(f.value);
    } else {
      out = f.value;
    }
  }
  return out;
}

void HeaderList::set(std::string_view name, std::string value) {
  auto first = std::find_if(fields_.begin(), fields_.end(), [&](const HeaderField& f) { return f.name == name; });
  if (first == fields_.end()) {
    fields_.push_back({std::string(name), std::move(value)});
    return;
  }
  first->value = std::move(value);
  // Later duplicates go; the first keeps its position so the serialised order stays stable.
  fields_.erase(std::remove_if(first + 1, fields_.end(), [&](const HeaderField& f) { return f.name == name; }),
                fields_.end());
}

size_t HeaderList::remove(std::string_view name) {
  auto it = std::remove_if(fields_.begin(), fields_.end(), [&](const HeaderField& f) { return f.name == name; });
  size_t n = static_cast<size_t>(fields_.end() - it);
  fields_.erase(it, fields_.end());
  return n;
}

std::optional<std::string> HttpRequest::header_joined(std::string_view name) const {
  if (!name.empty() && name[0] == ':') {
    if (name == ":method") return method;
    if (name == ":authority") return authority;
    if (name == ":path") return path;
    if (name == ":scheme") return scheme;
    return std::nullopt;
  }
  // HTTP/1.1 Host is :authority; codecs keep it out of `headers`.
  if (name == "host") return authority;
  return headers.get_joined(name);
}

std::string_view HttpRequest::path_only() const {
  std::string_view p(path);
  return p.substr(0, p.find_first_of("?#"));
}

std::string_view HttpRequest::query() const {
  std::string_view p(path);
  size_t q = p.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = p.substr(q + 1);
  return rest.substr(0, rest.find('#'));
}

}  // namespace waypoint::router
