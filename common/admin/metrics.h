// Prometheus metrics: a registry of counter, gauge and histogram families rendered in the
// text exposition format 0.0.4 (HELP/TYPE lines, escaped label values).
//
// Model: a family has a name, help text and label names fixed at registration. A series is
// one set of label values; Family::get(values) returns a pointer to it that stays valid for the
// family's lifetime (series are never removed; like upstream, cardinality only grows).
//
// Threading and the data path:
//  * Counter/Gauge/Histogram updates are relaxed atomics: any thread, no lock.
//  * Family::get() on a series this thread has seen before is lock-free: a thread_local cache
//    maps (family id, label values) to the series pointer. Only the first lookup of a series
//    on a given thread takes the family's mutex (insert-only store). Hot code should still keep
//    the returned pointer (e.g. per connection) instead of looking up per byte.
//  * Registration (Registry::counter/gauge/histogram) and render() take mutexes; they belong to
//    startup and to the stats endpoint.
//  * Families and their registry must outlive every pointer handed out.
// Registration mistakes (invalid names, re-registering a name with another type or labels)
// are programming errors found at startup and throw std::logic_error; nothing else throws.
// Counter names are used exactly as given: pass them with their "_total" suffix.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace common::metrics {

class Counter {
 public:
  struct Options {};
  explicit Counter(const Options&) {}
  void inc(uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  struct Options {};
  explicit Gauge(const Options&) {}
  void set(int64_t v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(int64_t d) noexcept { v_.fetch_add(d, std::memory_order_relaxed); }
  void inc() noexcept { add(1); }
  void dec() noexcept { add(-1); }
  int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

class Histogram {
 public:
  struct Options {
    std::vector<double> bounds;  // upper bounds, strictly increasing; +Inf is implicit
  };
  explicit Histogram(const Options& o);
  void observe(double v) noexcept;
  // Non-cumulative count per bucket (bounds().size() + 1 entries, the last is +Inf).
  std::vector<uint64_t> bucket_counts() const;
  const std::vector<double>& bounds() const { return *bounds_; }
  uint64_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double>* bounds_;  // owned by the family's Options
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

namespace detail {

// Type-independent part of a family; the per-thread lookup cache lives in metrics.cc.
class FamilyBase {
 public:
  virtual ~FamilyBase() = default;
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  const char* type() const { return type_; }
  // Appends HELP, TYPE and all samples.
  void render(std::string& out) const;
  // From now on a label whose value is "" is left out of this family's samples. Prometheus
  // reads an empty value as an absent label, so this changes no query; it lets one family hold
  // series with and without optional labels, as upstream's optional label sets render. Call
  // right after registration, before the stats endpoint serves.
  void omit_empty_labels() { omit_empty_ = true; }

 protected:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names, const char* type);
  // Fast path: this thread's cache. nullptr if this thread has not seen the series.
  void* cached(std::span<const std::string_view> values) const;
  void remember(std::span<const std::string_view> values, void* series) const;
  virtual void render_samples(std::string& out) const = 0;

  const uint64_t id_;  // process-unique, never reused, so stale cache entries never match
  std::string name_, help_;
  std::vector<std::string> label_names_;
  const char* type_;
  bool omit_empty_ = false;
};

// Appends one sample line: name{labels} value. `labels` is pre-rendered "k=\"v\",...".
void append_counter(std::string& out, const std::string& name, const std::string& labels, const Counter& c);
void append_gauge(std::string& out, const std::string& name, const std::string& labels, const Gauge& g);
void append_histogram(std::string& out, const std::string& name, const std::string& labels, const Histogram& h);
std::string render_labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                          bool omit_empty = false);

inline void append_series(std::string& out, const std::string& n, const std::string& l, const Counter& c) {
  append_counter(out, n, l, c);
}
inline void append_series(std::string& out, const std::string& n, const std::string& l, const Gauge& g) {
  append_gauge(out, n, l, g);
}
inline void append_series(std::string& out, const std::string& n, const std::string& l, const Histogram& h) {
  append_histogram(out, n, l, h);
}

template <typename S>
constexpr const char* type_name();
template <>
constexpr const char* type_name<Counter>() {
  return "counter";
}
template <>
constexpr const char* type_name<Gauge>() {
  return "gauge";
}
template <>
constexpr const char* type_name<Histogram>() {
  return "histogram";
}

}  // namespace detail

template <typename S>
class Family final : public detail::FamilyBase {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names, typename S::Options opts = {})
      : FamilyBase(std::move(name), std::move(help), std::move(label_names), detail::type_name<S>()),
        opts_(std::move(opts)) {
    // A label-less family always has its single series, so it renders as 0 from the start.
    if (label_names_.empty()) get(std::span<const std::string_view>{});
  }

  // Values in label-name order. A wrong count is a programming error: debug builds assert;
  // release builds pad with "unknown" or drop extras rather than crash on the data path.
  S* get(std::span<const std::string_view> values) {
    if (values.size() != label_names_.size()) return get_mismatched(values);
    if (void* p = cached(values)) return static_cast<S*>(p);
    S* s = find_or_create(values);
    remember(values, s);
    return s;
  }
  S* get(std::initializer_list<std::string_view> values) {
    return get(std::span<const std::string_view>(values.begin(), values.size()));
  }
  S* get(const std::vector<std::string>& values) {
    std::vector<std::string_view> views(values.begin(), values.end());
    return get(std::span<const std::string_view>(views));
  }
  size_t size() const {
    std::lock_guard<std::mutex> l(mu_);
    return series_.size();
  }
  const typename S::Options& options() const { return opts_; }

 private:
  S* find_or_create(std::span<const std::string_view> values) {
    std::vector<std::string> key(values.begin(), values.end());
    std::lock_guard<std::mutex> l(mu_);
    auto it = series_.find(key);
    if (it == series_.end()) it = series_.emplace(std::move(key), std::make_unique<S>(opts_)).first;
    return it->second.get();
  }
  S* get_mismatched(std::span<const std::string_view> values);

  void render_samples(std::string& out) const override {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [values, s] : series_) {
      detail::append_series(out, name_, detail::render_labels(label_names_, values, omit_empty_), *s);
    }
  }

  const typename S::Options opts_;
  mutable std::mutex mu_;  // guards series_ (insert-only; pointers are stable)
  std::map<std::vector<std::string>, std::unique_ptr<S>> series_;
};

template <typename S>
S* Family<S>::get_mismatched(std::span<const std::string_view> values) {
#ifndef NDEBUG
  // Loud in tests and debug builds.
  std::abort();
#else
  std::vector<std::string_view> fixed(values.begin(), values.end());
  fixed.resize(label_names_.size(), "unknown");
  return get(std::span<const std::string_view>(fixed));
#endif
}

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registering an existing name with the same type and labels returns the existing family.
  CounterFamily& counter(std::string name, std::string help, std::vector<std::string> label_names = {});
  GaugeFamily& gauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  HistogramFamily& histogram(std::string name, std::string help, std::vector<std::string> label_names,
                             std::vector<double> bounds);

  // A collector appends complete exposition text (HELP/TYPE and samples) at render time;
  // used for values read on demand (process stats, queue depths). Runs on the render thread.
  void add_collector(std::function<void(std::string& out)> fn);

  // Text exposition format 0.0.4, families in registration order, then collectors.
  std::string render() const;

 private:
  template <typename S>
  Family<S>& add(std::string name, std::string help, std::vector<std::string> labels, typename S::Options opts);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<detail::FamilyBase>> families_;
  std::vector<std::function<void(std::string&)>> collectors_;
};

// Content-Type for render() output.
inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

// Escaping helpers (exposed for collectors and tests).
std::string escape_label_value(std::string_view v);  // \\, \", \n
std::string escape_help(std::string_view v);         // \\, \n

// process_open_fds, process_max_fds, process_resident_memory_bytes (read at render time).
void register_process_metrics(Registry& r);
// istio_build{component="<component>",tag="<tag>"} 1
void register_build_info(Registry& r, std::string_view component, std::string_view tag);

}  // namespace common::metrics
