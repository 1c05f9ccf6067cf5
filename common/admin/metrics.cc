#include "common/admin/metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <unordered_map>

namespace common::metrics {
namespace {

std::atomic<uint64_t> g_next_family_id{1};

// ---- per-thread lookup cache --------------------------------------------------------------
// Key: 8 bytes of family id, then for each label value a 4-byte length and the bytes. The
// length prefix makes the encoding unambiguous whatever bytes the values contain.
struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using Cache = std::unordered_map<std::string, void*, KeyHash, std::equal_to<>>;

Cache& thread_cache() {
  thread_local Cache cache;
  return cache;
}

// Builds the key into a reused thread-local buffer: no allocation once it has grown.
std::string_view make_key(uint64_t id, std::span<const std::string_view> values) {
  thread_local std::string buf;
  buf.clear();
  buf.append(reinterpret_cast<const char*>(&id), sizeof(id));
  for (auto v : values) {
    auto n = static_cast<uint32_t>(v.size());
    buf.append(reinterpret_cast<const char*>(&n), sizeof(n));
    buf.append(v);
  }
  return buf;
}

bool valid_name(std::string_view n, bool allow_colon) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

void append_double(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out.append(buf, r.ptr);
  }
}

void append_sample_line(std::string& out, std::string_view name, std::string_view suffix, std::string_view labels,
                        std::string_view value) {
  out.append(name).append(suffix);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  out.append(" ").append(value).append("\n");
}

}  // namespace

// ---- Histogram ----------------------------------------------------------------------------

Histogram::Histogram(const Options& o) : bounds_(&o.bounds), buckets_(new std::atomic<uint64_t>[o.bounds.size() + 1]) {
  for (size_t i = 0; i <= o.bounds.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) noexcept {
  const auto& b = *bounds_;
  size_t i = 0;
  while (i < b.size() && v > b[i]) ++i;  // few buckets: a linear scan beats a binary search
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::bucket_counts() const {
  std::vector<uint64_t> out(bounds_->size() + 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

// ---- FamilyBase ---------------------------------------------------------------------------

namespace detail {

FamilyBase::FamilyBase(std::string name, std::string help, std::vector<std::string> label_names, const char* type)
    : id_(g_next_family_id.fetch_add(1, std::memory_order_relaxed)),
      name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      type_(type) {
  if (!valid_name(name_, true)) throw std::logic_error("invalid metric name: " + name_);
  for (const auto& l : label_names_) {
    if (!valid_name(l, false) || l.rfind("__", 0) == 0) {
      throw std::logic_error("invalid label name " + l + " in metric " + name_);
    }
  }
}

void* FamilyBase::cached(std::span<const std::string_view> values) const {
  Cache& c = thread_cache();
  auto it = c.find(make_key(id_, values));
  return it == c.end() ? nullptr : it->second;
}

void FamilyBase::remember(std::span<const std::string_view> values, void* series) const {
  thread_cache().emplace(std::string(make_key(id_, values)), series);
}

void FamilyBase::render(std::string& out) const {
  out.append("# HELP ").append(name_).append(" ").append(escape_help(help_)).append("\n");
  out.append("# TYPE ").append(name_).append(" ").append(type_).append("\n");
  render_samples(out);
}

std::string render_labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                          bool omit_empty) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (omit_empty && values[i].empty()) continue;
    if (!out.empty()) out += ',';
    out.append(names[i]).append("=\"").append(escape_label_value(values[i])).append("\"");
  }
  return out;
}

void append_counter(std::string& out, const std::string& name, const std::string& labels, const Counter& c) {
  append_sample_line(out, name, "", labels, std::to_string(c.value()));
}

void append_gauge(std::string& out, const std::string& name, const std::string& labels, const Gauge& g) {
  append_sample_line(out, name, "", labels, std::to_string(g.value()));
}

void append_histogram(std::string& out, const std::string& name, const std::string& labels, const Histogram& h) {
  auto counts = h.bucket_counts();
  const auto& bounds = h.bounds();
  uint64_t cumulative = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cumulative += counts[i];
    std::string l = labels;
    if (!l.empty()) l += ',';
    l += "le=\"";
    if (i < bounds.size()) {
      append_double(l, bounds[i]);
    } else {
      l += "+Inf";
    }
    l += '"';
    append_sample_line(out, name, "_bucket", l, std::to_string(cumulative));
  }
  std::string sum;
  append_double(sum, h.sum());
  append_sample_line(out, name, "_sum", labels, sum);
  // _count equals the +Inf bucket so the two can never disagree within one scrape.
  append_sample_line(out, name, "_count", labels, std::to_string(cumulative));
}

}  // namespace detail

// ---- Registry -----------------------------------------------------------------------------

template <typename S>
Family<S>& Registry::add(std::string name, std::string help, std::vector<std::string> labels,
                         typename S::Options opts) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& f : families_) {
    if (f->name() != name) continue;
    auto* same = dynamic_cast<Family<S>*>(f.get());
    if (same == nullptr || same->label_names() != labels) {
      throw std::logic_error("metric " + name + " registered twice with different type or labels");
    }
    return *same;
  }
  auto fam = std::make_unique<Family<S>>(std::move(name), std::move(help), std::move(labels), std::move(opts));
  Family<S>& ref = *fam;
  families_.push_back(std::move(fam));
  return ref;
}

CounterFamily& Registry::counter(std::string name, std::string help, std::vector<std::string> label_names) {
  return add<Counter>(std::move(name), std::move(help), std::move(label_names), {});
}

GaugeFamily& Registry::gauge(std::string name, std::string help, std::vector<std::string> label_names) {
  return add<Gauge>(std::move(name), std::move(help), std::move(label_names), {});
}

HistogramFamily& Registry::histogram(std::string name, std::string help, std::vector<std::string> label_names,
                                     std::vector<double> bounds) {
  for (size_t i = 1; i < bounds.size(); ++i) {
    if (!(bounds[i - 1] < bounds[i])) {
      throw std::logic_error("histogram " + name + " bounds must be strictly increasing");
    }
  }
  return add<Histogram>(std::move(name), std::move(help), std::move(label_names),
                        Histogram::Options{std::move(bounds)});
}

void Registry::add_collector(std::function<void(std::string&)> fn) {
  std::lock_guard<std::mutex> l(mu_);
  collectors_.push_back(std::move(fn));
}

std::string Registry::render() const {
  std::string out;
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& f : families_) f->render(out);
  for (const auto& c : collectors_) c(out);
  return out;
}

namespace {

// Exposition-format escaping: backslash and newline always; the double quote only inside
// label values (HELP text is not quoted).
std::string escape_exposition(std::string_view v, bool quote) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string escape_label_value(std::string_view v) {
  return escape_exposition(v, true);
}

std::string escape_help(std::string_view v) {
  return escape_exposition(v, false);
}

// ---- process and build metrics --------------------------------------------------------------

namespace {

int64_t count_open_fds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int64_t n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the descriptor opendir() itself holds
}

int64_t resident_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long size = 0, resident = 0;
  int got = std::fscanf(f, "%ld %ld", &size, &resident);
  std::fclose(f);
  if (got != 2) return -1;
  return static_cast<int64_t>(resident) * sysconf(_SC_PAGESIZE);
}

void append_gauge_text(std::string& out, std::string_view name, std::string_view help, int64_t v) {
  if (v < 0) return;  // unavailable: omit rather than report a bogus value
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" gauge\n");
  out.append(name).append(" ").append(std::to_string(v)).append("\n");
}

}  // namespace

void register_process_metrics(Registry& r) {
  r.add_collector([](std::string& out) {
    append_gauge_text(out, "process_open_fds", "Number of open file descriptors.", count_open_fds());
    rlimit rl{};
    int64_t max_fds = -1;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
      max_fds = rl.rlim_cur == RLIM_INFINITY ? INT64_MAX : static_cast<int64_t>(rl.rlim_cur);
    }
    append_gauge_text(out, "process_max_fds", "Maximum number of open file descriptors.", max_fds);
    append_gauge_text(out, "process_resident_memory_bytes", "Resident memory size in bytes.", resident_bytes());
  });
}

void register_build_info(Registry& r, std::string_view component, std::string_view tag) {
  auto& fam = r.gauge("istio_build", "Istio component build info", {"component", "tag"});
  fam.get({component, tag})->set(1);
}

}  // namespace common::metrics
