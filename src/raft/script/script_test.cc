#include "raft/script/script.h"

#include <gtest/gtest.h>

namespace synod::raft::script {
namespace {

TEST(ParseArgs, KeysGroupsAndQuotes) {
  auto args = ParseArgs(R"(add-nodes 3 voters=(1,2 3) index=5 (4 5) "a b" k="x y")");
  ASSERT_TRUE(args.ok());
  ASSERT_EQ(args->size(), 7u);
  EXPECT_EQ((*args)[0].vals, std::vector<std::string>{"add-nodes"});
  EXPECT_EQ((*args)[2].key, "voters");
  EXPECT_EQ((*args)[2].vals, (std::vector<std::string>{"1", "2", "3"}));
  EXPECT_TRUE((*args)[2].grouped);
  EXPECT_EQ((*args)[3].key, "index");
  EXPECT_EQ((*args)[3].vals, std::vector<std::string>{"5"});
  EXPECT_EQ((*args)[4].key, "");
  EXPECT_EQ((*args)[4].vals, (std::vector<std::string>{"4", "5"}));
  EXPECT_EQ((*args)[5].vals, std::vector<std::string>{"a b"});
  EXPECT_EQ((*args)[6].key, "k");
  EXPECT_EQ((*args)[6].vals, std::vector<std::string>{"x y"});
}

TEST(ParseArgs, Errors) {
  EXPECT_FALSE(ParseArgs("x (1 2").ok());
  EXPECT_FALSE(ParseArgs("x \"open").ok());
}

TEST(Args, TypedAccessors) {
  auto parsed = ParseArgs("n=7 b=true bad=x");
  ASSERT_TRUE(parsed.ok());
  Args args(std::move(parsed).value());
  EXPECT_EQ(args.Uint("n", 0).value(), 7u);
  EXPECT_EQ(args.Uint("missing", 3).value(), 3u);
  EXPECT_FALSE(args.Uint("bad", 0).ok());
  EXPECT_TRUE(args.Bool("b", false).value());
  EXPECT_FALSE(args.Bool("bad", false).ok());
  EXPECT_FALSE(args.CheckKeys({"n", "b"}).ok());
  EXPECT_TRUE(args.CheckKeys({"n", "b", "bad"}).ok());
}

constexpr const char* kScript =
    "# a comment\n"
    "\n"
    "log-level none\n"
    "----\n"
    "ok\n"
    "\n"
    "status 1\n"
    "----\n"
    "----\n"
    "line one\n"
    "\n"
    "line three\n"
    "----\n"
    "----\n"
    "\n"
    "# trailing comment\n";

TEST(ParseScript, SingleAndDoubleSeparators) {
  auto s = ParseScript(kScript);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->commands.size(), 2u);
  EXPECT_EQ(s->commands[0].name, "log-level");
  EXPECT_EQ(s->commands[0].line, 3);
  EXPECT_EQ(s->commands[0].expected, "ok");
  EXPECT_EQ(s->commands[1].expected, "line one\n\nline three");
  EXPECT_EQ(s->prefix[0], "# a comment\n\n");
  EXPECT_EQ(s->suffix, "\n# trailing comment\n");
}

TEST(ParseScript, RenderRoundTripsExactly) {
  auto s = ParseScript(kScript);
  ASSERT_TRUE(s.ok());
  std::vector<std::string> outputs;
  for (const Command& c : s->commands) outputs.push_back(c.expected);
  EXPECT_EQ(RenderScript(*s, outputs), kScript);
}

TEST(ParseScript, Errors) {
  EXPECT_FALSE(ParseScript("cmd\nnot a separator\n").ok());
  EXPECT_FALSE(ParseScript("cmd\n----\n----\nunclosed\n").ok());
}

TEST(FormatOutputBlock, ChoosesTheFence) {
  EXPECT_EQ(FormatOutputBlock(""), "----\nok\n");
  EXPECT_EQ(FormatOutputBlock("a\nb\n"), "----\na\nb\n");
  EXPECT_EQ(FormatOutputBlock("a\n\nb"), "----\n----\na\n\nb\n----\n----\n");
  EXPECT_EQ(FormatOutputBlock("----"), "----\n----\n----\n----\n----\n");
  auto s = ParseScript("x\n" + FormatOutputBlock("----"));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->commands[0].expected, "----");
}

TEST(DiffLines, MarksChangedLines) {
  EXPECT_EQ(DiffLines("a\nb\nc", "a\nx\nc"), " a\n+x\n-b\n c\n");
  EXPECT_EQ(DiffLines("a", "a"), " a\n");
}

TEST(RunScript, ReportsMismatchesAndUnknownCommands) {
  auto s = ParseScript("nonsense 1\n----\nok\n\nlog-level none\n----\nok\n");
  ASSERT_TRUE(s.ok());
  RunResult r = RunScript(*s);
  ASSERT_EQ(r.mismatches, std::vector<size_t>{0});
  EXPECT_EQ(r.outputs[0], "error: unknown command 'nonsense'");
  EXPECT_EQ(r.outputs[1], "ok");
  EXPECT_NE(DescribeMismatches("t", *s, r).find("t:1: output differs"), std::string::npos);
}

TEST(RunScript, ElectsALeaderDeterministically) {
  const char* text =
      "log-level none\n----\nok\n\n"
      "add-nodes 3 voters=(1,2,3) index=2 prevote=false\n----\nok\n\n"
      "campaign 1\n----\nok\n\n"
      "stabilize\n----\nok\n\n"
      "raft-state\n----\nok\n";
  auto s = ParseScript(text);
  ASSERT_TRUE(s.ok());
  RunResult a = RunScript(*s);
  RunResult b = RunScript(*s);
  EXPECT_EQ(a.outputs, b.outputs);
  EXPECT_EQ(a.outputs[4],
            "1: StateLeader (Voter) Term:1 Lead:1\n"
            "2: StateFollower (Voter) Term:1 Lead:1\n"
            "3: StateFollower (Voter) Term:1 Lead:1");
}

}  // namespace
}  // namespace synod::raft::script
