#include "server/admin/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/assert.h"

namespace synod::admin {
namespace {

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Metric names may contain ':' (reserved for recording rules, but legal); label names not.
bool ValidMetricName(std::string_view name) {
  if (name.empty() || !(IsNameStart(name[0]) || name[0] == ':')) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return IsNameStart(c) || IsDigit(c) || c == ':'; });
}

bool ValidLabelName(std::string_view name) {
  if (name.empty() || !IsNameStart(name[0])) return false;
  // Names starting with "__" are reserved for Prometheus' internal use.
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_') return false;
  return std::all_of(name.begin(), name.end(), [](char c) { return IsNameStart(c) || IsDigit(c); });
}

// HELP text escapes only backslash and newline; label values also escape the double quote.
void AppendEscaped(std::string_view s, bool escape_quote, std::string& out) {
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && escape_quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// The shortest text that parses back to `v`, laid out as Go's strconv 'g' format does (fixed
// for decimal exponents -4..5, scientific otherwise), which is what the Prometheus Go client
// writes. Matching it matters for `le` labels: Prometheus compares them as strings, so
// "0.0005" and "5e-04" would be two different buckets across clients.
void AppendDouble(double v, std::string& out) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  SYNOD_ASSERT(ec == std::errc());
  const char* e = std::find(buf, end, 'e');
  SYNOD_ASSERT(e != end);
  int exponent = 0;
  std::from_chars(e + (e[1] == '+' ? 2 : 1), end, exponent);
  if (v != 0 && (exponent < -4 || exponent >= 6)) {
    out.append(buf, end);
    return;
  }
  auto fixed = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  SYNOD_ASSERT(fixed.ec == std::errc());
  out.append(buf, fixed.ptr);
}

// Appends `{a="x",b="y"}` with an optional trailing `le` label; nothing when there are none.
void AppendLabels(const Labels& labels, const char* le, std::string& out) {
  if (labels.empty() && le == nullptr) return;
  out += '{';
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += name;
    out += "=\"";
    AppendEscaped(value, /*escape_quote=*/true, out);
    out += '"';
  }
  if (le != nullptr) {
    if (!first) out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

void AppendSample(std::string_view name, std::string_view suffix, const Labels& labels,
                  const char* le, std::string_view value, std::string& out) {
  out += name;
  out += suffix;
  AppendLabels(labels, le, out);
  out += ' ';
  out += value;
  out += '\n';
}

std::string DoubleText(double v) {
  std::string s;
  AppendDouble(v, s);
  return s;
}

void CheckBounds(const std::vector<double>& bounds) {
  SYNOD_ASSERT_MSG(!bounds.empty(), "a histogram needs at least one finite bound");
  for (size_t i = 0; i < bounds.size(); ++i) {
    SYNOD_ASSERT_MSG(std::isfinite(bounds[i]), "histogram bounds must be finite");
    if (i > 0) SYNOD_ASSERT_MSG(bounds[i - 1] < bounds[i], "bounds must strictly increase");
  }
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_((CheckBounds(bounds), std::move(bounds))),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // lower_bound finds the first bound >= v, which is the `le` bucket. NaN compares false with
  // everything, so it would land in the first bucket; Prometheus counts it in +Inf only.
  size_t i = bounds_.size();
  if (!std::isnan(v)) {
    i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  }
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

uint64_t Histogram::count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
  }
  return total;
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot snap;
  snap.bounds = bounds_;
  snap.cumulative.resize(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    snap.cumulative[i] = running;
  }
  snap.count = running;
  snap.sum = sum_.load(std::memory_order_relaxed);
  return snap;
}

std::vector<double> LatencyBucketsSeconds() {
  return {0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
          0.05,    0.1,    0.2,    0.5,    1.0,   2.0,   5.0,   10.0};
}

Registry::Series& Registry::NewSeries(std::string name, std::string help, Type type,
                                      Labels labels) {
  SYNOD_ASSERT_MSG(ValidMetricName(name), "metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*");
  for (const auto& [label, value] : labels) {
    SYNOD_ASSERT_MSG(ValidLabelName(label), "label name must match [a-zA-Z_][a-zA-Z0-9_]*");
    SYNOD_ASSERT_MSG(type != Type::kHistogram || label != "le", "\"le\" names the bucket");
  }
  auto it = std::find_if(families_.begin(), families_.end(),
                         [&](const Family& f) { return f.name == name; });
  if (it == families_.end()) {
    families_.push_back(Family{std::move(name), std::move(help), type, {}});
    it = families_.end() - 1;
  } else {
    SYNOD_ASSERT_MSG(it->type == type, "metric name registered with another type");
    SYNOD_ASSERT_MSG(it->help == help, "metric name registered with other help text");
    for (const Series& s : it->series) {
      SYNOD_ASSERT_MSG(s.labels != labels, "metric name and labels registered twice");
    }
  }
  it->series.push_back(Series{std::move(labels), nullptr, nullptr, nullptr, nullptr});
  return it->series.back();
}

Counter* Registry::AddCounter(std::string name, std::string help, Labels labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = NewSeries(std::move(name), std::move(help), Type::kCounter, std::move(labels));
  s.counter = std::make_unique<Counter>();
  return s.counter.get();
}

Gauge* Registry::AddGauge(std::string name, std::string help, Labels labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = NewSeries(std::move(name), std::move(help), Type::kGauge, std::move(labels));
  s.gauge = std::make_unique<Gauge>();
  return s.gauge.get();
}

Histogram* Registry::AddHistogram(std::string name, std::string help, std::vector<double> bounds,
                                  Labels labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = NewSeries(std::move(name), std::move(help), Type::kHistogram, std::move(labels));
  s.histogram = std::make_unique<Histogram>(std::move(bounds));
  return s.histogram.get();
}

void Registry::AddCallbackGauge(std::string name, std::string help, std::function<double()> fn,
                                Labels labels) {
  SYNOD_ASSERT_MSG(fn != nullptr, "a callback gauge needs a callback");
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = NewSeries(std::move(name), std::move(help), Type::kGauge, std::move(labels));
  s.fn = std::move(fn);
}

void Registry::AddCallbackCounter(std::string name, std::string help, std::function<double()> fn,
                                  Labels labels) {
  SYNOD_ASSERT_MSG(fn != nullptr, "a callback counter needs a callback");
  std::lock_guard<std::mutex> lock(mu_);
  Series& s = NewSeries(std::move(name), std::move(help), Type::kCounter, std::move(labels));
  s.fn = std::move(fn);
}

void Registry::RenderFamily(const Family& family, std::string& out) {
  static constexpr const char* kTypeNames[] = {"counter", "gauge", "histogram"};
  out += "# HELP ";
  out += family.name;
  out += ' ';
  AppendEscaped(family.help, /*escape_quote=*/false, out);
  out += "\n# TYPE ";
  out += family.name;
  out += ' ';
  out += kTypeNames[static_cast<int>(family.type)];
  out += '\n';
  for (const Series& s : family.series) {
    if (s.counter != nullptr) {
      AppendSample(family.name, "", s.labels, nullptr, std::to_string(s.counter->value()), out);
    } else if (s.gauge != nullptr) {
      AppendSample(family.name, "", s.labels, nullptr, DoubleText(s.gauge->value()), out);
    } else if (s.fn != nullptr) {
      AppendSample(family.name, "", s.labels, nullptr, DoubleText(s.fn()), out);
    } else {
      SYNOD_ASSERT(s.histogram != nullptr);
      HistogramSnapshot snap = s.histogram->Snapshot();
      for (size_t i = 0; i < snap.bounds.size(); ++i) {
        AppendSample(family.name, "_bucket", s.labels, DoubleText(snap.bounds[i]).c_str(),
                     std::to_string(snap.cumulative[i]), out);
      }
      AppendSample(family.name, "_bucket", s.labels, "+Inf", std::to_string(snap.count), out);
      AppendSample(family.name, "_sum", s.labels, nullptr, DoubleText(snap.sum), out);
      AppendSample(family.name, "_count", s.labels, nullptr, std::to_string(snap.count), out);
    }
  }
}

std::string Registry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const Family& family : families_) RenderFamily(family, out);
  return out;
}

}  // namespace synod::admin
