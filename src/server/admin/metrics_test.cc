#include "server/admin/metrics.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>
#include <thread>

namespace synod::admin {
namespace {

TEST(MetricsTest, CounterAndGaugeValues) {
  Counter c;
  EXPECT_EQ(c.value(), 0u);
  c.Inc();
  c.Inc(41);
  EXPECT_EQ(c.value(), 42u);

  Gauge g;
  EXPECT_EQ(g.value(), 0.0);
  g.Set(3.5);
  g.Add(-1.25);
  EXPECT_EQ(g.value(), 2.25);
}

TEST(MetricsTest, HistogramBucketsAreUpperInclusiveAndCumulative) {
  Histogram h({0.25, 1, 4});
  for (double v : {0.125, 0.25, 1.0, 2.0, 8.0}) h.Observe(v);
  HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.bounds, (std::vector<double>{0.25, 1, 4}));
  // 0.25 lands in le=0.25 (bounds are inclusive), 8 only in +Inf.
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(s.count, 5u);
  EXPECT_EQ(h.count(), 5u);
  EXPECT_EQ(s.sum, 11.375);
}

TEST(MetricsTest, HistogramCountsNaNInInfOnly) {
  Histogram h({1, 2});
  h.Observe(std::numeric_limits<double>::quiet_NaN());
  HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{0, 0, 1}));
  EXPECT_TRUE(std::isnan(s.sum));
}

TEST(MetricsTest, RenderSmallRegistryExactly) {
  Registry r;
  Counter* get = r.AddCounter("synod_requests_total", "Requests served.", {{"cmd", "get"}});
  Counter* set = r.AddCounter("synod_requests_total", "Requests served.", {{"cmd", "set"}});
  Gauge* term = r.AddGauge("synod_term", "Current term.\nWith a \\ backslash and \"quotes\".");
  r.AddCallbackGauge("synod_applied_index", "Applied index.", [] { return 42.0; },
                     {{"path", "a\"b\\c\nd"}, {"group", "7"}});
  Histogram* lat =
      r.AddHistogram("synod_latency_seconds", "Latency.", {0.25, 1, 4}, {{"op", "put"}});
  get->Inc();
  get->Inc(2);
  set->Inc(5);
  term->Set(7);
  term->Add(-2.5);
  for (double v : {0.125, 1.0, 2.0, 8.0}) lat->Observe(v);

  EXPECT_EQ(r.Render(),
            "# HELP synod_requests_total Requests served.\n"
            "# TYPE synod_requests_total counter\n"
            "synod_requests_total{cmd=\"get\"} 3\n"
            "synod_requests_total{cmd=\"set\"} 5\n"
            "# HELP synod_term Current term.\\nWith a \\\\ backslash and \"quotes\".\n"
            "# TYPE synod_term gauge\n"
            "synod_term 4.5\n"
            "# HELP synod_applied_index Applied index.\n"
            "# TYPE synod_applied_index gauge\n"
            "synod_applied_index{path=\"a\\\"b\\\\c\\nd\",group=\"7\"} 42\n"
            "# HELP synod_latency_seconds Latency.\n"
            "# TYPE synod_latency_seconds histogram\n"
            "synod_latency_seconds_bucket{op=\"put\",le=\"0.25\"} 1\n"
            "synod_latency_seconds_bucket{op=\"put\",le=\"1\"} 2\n"
            "synod_latency_seconds_bucket{op=\"put\",le=\"4\"} 3\n"
            "synod_latency_seconds_bucket{op=\"put\",le=\"+Inf\"} 4\n"
            "synod_latency_seconds_sum{op=\"put\"} 11.125\n"
            "synod_latency_seconds_count{op=\"put\"} 4\n");
}

TEST(MetricsTest, RenderUnlabelledHistogramAndSpecialValues) {
  Registry r;
  r.AddHistogram("empty_seconds", "Nothing yet.", {0.0005, 2});
  Gauge* nan = r.AddGauge("odd", "Odd values.", {{"v", "nan"}});
  Gauge* inf = r.AddGauge("odd", "Odd values.", {{"v", "inf"}});
  Gauge* ninf = r.AddGauge("odd", "Odd values.", {{"v", "-inf"}});
  nan->Set(std::numeric_limits<double>::quiet_NaN());
  inf->Set(std::numeric_limits<double>::infinity());
  ninf->Set(-std::numeric_limits<double>::infinity());
  EXPECT_EQ(r.Render(),
            "# HELP empty_seconds Nothing yet.\n"
            "# TYPE empty_seconds histogram\n"
            "empty_seconds_bucket{le=\"0.0005\"} 0\n"
            "empty_seconds_bucket{le=\"2\"} 0\n"
            "empty_seconds_bucket{le=\"+Inf\"} 0\n"
            "empty_seconds_sum 0\n"
            "empty_seconds_count 0\n"
            "# HELP odd Odd values.\n"
            "# TYPE odd gauge\n"
            "odd{v=\"nan\"} NaN\n"
            "odd{v=\"inf\"} +Inf\n"
            "odd{v=\"-inf\"} -Inf\n");
}

TEST(MetricsTest, NumbersAreFormattedLikeThePrometheusGoClient) {
  Registry r;
  const std::vector<std::pair<double, std::string>> cases = {{0, "0"},
                                                             {-2, "-2"},
                                                             {0.5, "0.5"},
                                                             {0.0001, "0.0001"},
                                                             {0.00005, "5e-05"},
                                                             {123456, "123456"},
                                                             {1e6, "1e+06"},
                                                             {1234567, "1.234567e+06"},
                                                             {-1.5e-7, "-1.5e-07"},
                                                             {0.1, "0.1"},
                                                             {1e21, "1e+21"},
                                                             {2.5e-300, "2.5e-300"}};
  for (size_t i = 0; i < cases.size(); ++i) {
    r.AddGauge("v", "Values.", {{"i", std::to_string(i)}})->Set(cases[i].first);
  }
  std::string text = r.Render();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string line = "v{i=\"" + std::to_string(i) + "\"} " + cases[i].second + "\n";
    EXPECT_NE(text.find(line), std::string::npos) << line << " in\n" << text;
  }
}

TEST(MetricsTest, CallbackGaugeIsReadAtRenderTime) {
  Registry r;
  std::atomic<int> calls{0};
  r.AddCallbackGauge("calls", "Render count.", [&] { return static_cast<double>(++calls); });
  EXPECT_NE(r.Render().find("calls 1\n"), std::string::npos);
  EXPECT_NE(r.Render().find("calls 2\n"), std::string::npos);
}

TEST(MetricsTest, LatencyBucketsSpan50usTo10sInRoughlyDoublingSteps) {
  std::vector<double> b = LatencyBucketsSeconds();
  ASSERT_GE(b.size(), 10u);
  EXPECT_EQ(b.front(), 0.00005);
  EXPECT_EQ(b.back(), 10.0);
  for (size_t i = 1; i < b.size(); ++i) {
    double ratio = b[i] / b[i - 1];
    EXPECT_GE(ratio, 1.9) << i;
    EXPECT_LE(ratio, 2.6) << i;
  }
  Histogram h(b);  // must be acceptable bounds
  EXPECT_EQ(h.bounds().size(), b.size());
}

TEST(MetricsDeathTest, BadRegistrationsCrash) {
  Registry r;
  r.AddCounter("ok_total", "Fine.", {{"a", "1"}});
  EXPECT_DEATH(r.AddCounter("1bad", "Bad name."), "metric name");
  EXPECT_DEATH(r.AddCounter("bad-name", "Bad name."), "metric name");
  EXPECT_DEATH(r.AddCounter("x", "Bad label.", {{"0a", "v"}}), "label name");
  EXPECT_DEATH(r.AddCounter("x", "Reserved label.", {{"__a", "v"}}), "label name");
  EXPECT_DEATH(r.AddCounter("ok_total", "Fine.", {{"a", "1"}}), "registered twice");
  EXPECT_DEATH(r.AddGauge("ok_total", "Fine.", {{"a", "2"}}), "another type");
  EXPECT_DEATH(r.AddCounter("ok_total", "Other help.", {{"a", "2"}}), "other help");
  EXPECT_DEATH(r.AddHistogram("h", "Le label.", {1}, {{"le", "1"}}), "le");
  EXPECT_DEATH(r.AddHistogram("h", "Unsorted.", {2, 1}), "increase");
  EXPECT_DEATH(r.AddHistogram("h", "Empty.", {}), "bound");
}

TEST(MetricsTest, ValidNamesAreAccepted) {
  Registry r;
  r.AddCounter("a:b_c9", "Colon and digits.");
  r.AddGauge(":leading_colon", "Leading colon.");
  r.AddGauge("_x", "Underscore.", {{"_l", "v"}, {"L9", "w"}});
  EXPECT_NE(r.Render().find("_x{_l=\"v\",L9=\"w\"} 0\n"), std::string::npos);
}

// Parses "name{labels} value" lines into a map from the part before the value to the value.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

TEST(MetricsTest, ConcurrentUpdatesWhileRenderingAddUp) {
  constexpr int kPerThread = 200000;
  Registry r;
  Counter* c = r.AddCounter("ops_total", "Ops.");
  Gauge* g = r.AddGauge("level", "Level.");
  Histogram* h = r.AddHistogram("size", "Sizes.", {1, 2});
  std::atomic<int> running{2};
  auto work = [&](double v) {
    for (int i = 0; i < kPerThread; ++i) {
      c->Inc();
      g->Add(1);
      h->Observe(i % 2 == 0 ? v : 5);
    }
    running.fetch_sub(1);
  };
  std::thread t1(work, 0.5);
  std::thread t2(work, 1.5);
  int renders = 0;
  while (running.load() > 0 || renders == 0) {
    auto s = Samples(r.Render());
    ++renders;
    // A render may land between updates but must never be internally inconsistent.
    uint64_t b1 = std::stoull(s["size_bucket{le=\"1\"}"]);
    uint64_t b2 = std::stoull(s["size_bucket{le=\"2\"}"]);
    uint64_t inf = std::stoull(s["size_bucket{le=\"+Inf\"}"]);
    ASSERT_LE(b1, b2);
    ASSERT_LE(b2, inf);
    ASSERT_EQ(inf, std::stoull(s["size_count"]));
    ASSERT_LE(std::stoull(s["ops_total"]), 2u * kPerThread);
  }
  t1.join();
  t2.join();
  EXPECT_GT(renders, 0);
  EXPECT_EQ(c->value(), 2u * kPerThread);
  EXPECT_EQ(g->value(), 2.0 * kPerThread);
  HistogramSnapshot s = h->Snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{kPerThread / 2, kPerThread, 2u * kPerThread}));
  // Every value is a multiple of 0.5 and the total is far below 2^53, so the sum is exact.
  EXPECT_EQ(s.sum, kPerThread / 2 * (0.5 + 1.5) + kPerThread * 5.0);
  auto final_samples = Samples(r.Render());
  EXPECT_EQ(final_samples["ops_total"], std::to_string(2 * kPerThread));
  EXPECT_EQ(final_samples["size_count"], std::to_string(2 * kPerThread));
}

}  // namespace
}  // namespace synod::admin

namespace synod::admin {
namespace {

TEST(MetricsTest, CallbackCounterRendersAsACounter) {
  Registry r;
  std::atomic<uint64_t> n{0};
  r.AddCallbackCounter("synod_fsyncs_total", "Durable writes.",
                       [&n] { return static_cast<double>(n.load()); });
  n = 12;
  EXPECT_EQ(r.Render(),
            "# HELP synod_fsyncs_total Durable writes.\n"
            "# TYPE synod_fsyncs_total counter\n"
            "synod_fsyncs_total 12\n");
}

}  // namespace
}  // namespace synod::admin
