#include "loadgen/workload.h"

#include <gtest/gtest.h>

#include "server/resp/resp.h"

namespace synod::loadgen {
namespace {

Workload Make(WorkloadOptions o) {
  auto w = Workload::Make(o);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  return std::move(w).value();
}

// Parses the requests in `bytes` as a server would.
std::vector<std::vector<std::string>> Parse(const std::string& bytes) {
  resp::RequestParser p;
  p.Feed(bytes);
  std::vector<std::vector<std::string>> out;
  std::vector<std::string> argv;
  while (p.Next(&argv) == resp::RequestParser::State::kCommand) out.push_back(argv);
  return out;
}

TEST(WorkloadTest, KeysFillTheirSize) {
  WorkloadOptions o;
  o.keys = 100000;
  o.key_size = 8;
  Workload w = Make(o);
  EXPECT_EQ(w.Key(0), "00000000");  // 5 digits leave no room for "key:"
  EXPECT_EQ(w.Key(99999), "00099999");
  o.key_size = 16;
  EXPECT_EQ(Make(o).Key(42), "key:000000000042");
  o.keys = 1000;
  o.key_size = 8;
  EXPECT_EQ(Make(o).Key(7), "key:0007");
}

TEST(WorkloadTest, RejectsKeySpaceLargerThanTheKeySize) {
  WorkloadOptions o;
  o.keys = 1'000'000'000;  // 9 digits
  o.key_size = 8;
  EXPECT_FALSE(Workload::Make(o).ok());
  o.read_fraction = 1.5;
  o.keys = 10;
  EXPECT_FALSE(Workload::Make(o).ok());
}

TEST(WorkloadTest, WritesAreSetsWithTheValueSize) {
  WorkloadOptions o;
  o.read_fraction = 0;
  o.value_size = 256;
  Workload w = Make(o);
  Rng rng(1);
  std::string out;
  for (int i = 0; i < 100; ++i) EXPECT_EQ(w.AppendRequest(rng, &out), OpKind::kWrite);
  auto reqs = Parse(out);
  ASSERT_EQ(reqs.size(), 100u);
  for (const auto& argv : reqs) {
    ASSERT_EQ(argv.size(), 3u);
    EXPECT_EQ(argv[0], "SET");
    EXPECT_EQ(argv[1].size(), 8u);
    EXPECT_LT(std::stoull(argv[1]), 100000u);
    EXPECT_EQ(argv[2], std::string(256, 'x'));
  }
}

TEST(WorkloadTest, ReadFractionIsRespected) {
  WorkloadOptions o;
  o.read_fraction = 0.9;
  Workload w = Make(o);
  Rng rng(5);
  std::string out;
  int reads = 0;
  for (int i = 0; i < 10000; ++i) reads += w.AppendRequest(rng, &out) == OpKind::kRead;
  EXPECT_NEAR(reads, 9000, 200);
  o.read_fraction = 1;
  Workload all = Make(o);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(all.AppendRequest(rng, &out), OpKind::kRead);
}

TEST(WorkloadTest, CustomCommandGetsTheKey) {
  WorkloadOptions o;
  o.keys = 10;
  o.key_size = 4;
  o.command = {"INCR"};
  Rng rng(2);
  std::string out;
  Make(o).AppendRequest(rng, &out);
  o.command = {"HSET", "h", "__key__", "__value__"};
  o.value_size = 3;
  Make(o).AppendRequest(rng, &out);
  auto reqs = Parse(out);
  ASSERT_EQ(reqs.size(), 2u);
  ASSERT_EQ(reqs[0].size(), 2u);
  EXPECT_EQ(reqs[0][0], "INCR");
  EXPECT_EQ(reqs[0][1].substr(0, 3), "000");
  ASSERT_EQ(reqs[1].size(), 4u);
  EXPECT_EQ(reqs[1][1], "h");
  EXPECT_EQ(reqs[1][3], "xxx");
}

TEST(WorkloadTest, SameSeedSameRequests) {
  Workload w = Make({});
  Rng a(9);
  Rng b(9);
  std::string out_a;
  std::string out_b;
  for (int i = 0; i < 50; ++i) {
    w.AppendRequest(a, &out_a);
    w.AppendRequest(b, &out_b);
  }
  EXPECT_EQ(out_a, out_b);
}

TEST(WorkloadTest, ParseDuration) {
  EXPECT_EQ(*ParseDuration("10s"), 10'000'000'000);
  EXPECT_EQ(*ParseDuration("500ms"), 500'000'000);
  EXPECT_EQ(*ParseDuration("2m"), 120'000'000'000);
  EXPECT_EQ(*ParseDuration("1.5"), 1'500'000'000);
  EXPECT_EQ(*ParseDuration("250us"), 250'000);
  EXPECT_EQ(*ParseDuration("0"), 0);
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("s").ok());
  EXPECT_FALSE(ParseDuration("-1s").ok());
  EXPECT_FALSE(ParseDuration("10x").ok());
}

TEST(WorkloadTest, ParseRatio) {
  EXPECT_DOUBLE_EQ(*ParseRatio("9:1"), 0.9);
  EXPECT_DOUBLE_EQ(*ParseRatio("0:1"), 0.0);
  EXPECT_DOUBLE_EQ(*ParseRatio("1:0"), 1.0);
  EXPECT_FALSE(ParseRatio("0:0").ok());
  EXPECT_FALSE(ParseRatio("9").ok());
  EXPECT_FALSE(ParseRatio("a:b").ok());
}

TEST(WorkloadTest, SplitCommand) {
  EXPECT_EQ(SplitCommand("  INCR  "), std::vector<std::string>{"INCR"});
  EXPECT_EQ(SplitCommand("SET \"a b\" __value__"),
            (std::vector<std::string>{"SET", "a b", "__value__"}));
  EXPECT_TRUE(SplitCommand("   ").empty());
}

}  // namespace
}  // namespace synod::loadgen
