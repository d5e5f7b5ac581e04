#include "kv/command.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kv/kv.pb.h"

namespace synod::kv {
namespace {

Command MakeCas(std::optional<std::string> expected) {
  Command c;
  c.op = Op::kCas;
  c.key = "k";
  c.value = "new";
  c.expected = std::move(expected);
  return c;
}

std::vector<Command> SampleCommands() {
  std::vector<Command> out;
  Command get;
  get.op = Op::kGet;
  get.key = "";  // the empty key is a key like any other
  out.push_back(get);
  Command put;
  put.op = Op::kPut;
  put.key = std::string("bin\0ary\xff", 8);
  put.value = std::string("\x00\x01\x80\xfe", 4);  // not UTF-8: keys and values are bytes
  put.client_id = std::numeric_limits<uint64_t>::max();
  put.seq = 42;
  out.push_back(put);
  Command del;
  del.op = Op::kDel;
  del.key = "gone";
  out.push_back(del);
  out.push_back(MakeCas(std::nullopt));
  out.push_back(MakeCas(""));
  out.push_back(MakeCas("old"));
  Command incr;
  incr.op = Op::kIncr;
  incr.key = "n";
  incr.delta = std::numeric_limits<int64_t>::min();
  incr.client_id = 7;
  incr.seq = 1;
  out.push_back(incr);
  Command append;
  append.op = Op::kAppend;
  append.key = "log";
  append.value = std::string(100000, 'x');
  out.push_back(append);
  Command batch;
  batch.op = Op::kBatch;
  batch.client_id = 3;
  batch.seq = 9;
  batch.batch = {put, del, incr, append};
  for (Command& sub : batch.batch) sub.client_id = sub.seq = 0;  // sessions cover the whole
  out.push_back(batch);
  Command redis;
  redis.op = Op::kRedis;
  redis.args = {"SET", std::string("k\0\xff", 3), "", "PX", "100"};
  redis.now_ms = 1'700'000'000'000;
  redis.client_id = 4;
  redis.seq = 2;
  out.push_back(redis);
  Command expire;
  expire.op = Op::kExpire;
  expire.args = {"a", "b", ""};
  expire.now_ms = -5;  // a clock before 1970 still encodes (sint64)
  out.push_back(expire);
  Command exec;  // EXEC after WATCH
  exec.op = Op::kBatch;
  exec.client_id = 8;
  exec.seq = 1;
  exec.now_ms = 1234;
  redis.client_id = redis.seq = 0;
  exec.batch = {redis, redis};
  exec.watches = {{"w1", LogIndex(0)}, {"w2", LogIndex(99)}};
  exec.watch_index = LogIndex(120);
  out.push_back(exec);
  return out;
}

TEST(CommandTest, EncodeDecodeRoundTrip) {
  for (const Command& c : SampleCommands()) {
    std::string bytes = EncodeCommand(c);
    EXPECT_FALSE(bytes.empty()) << OpName(c.op);
    Result<Command> back = DecodeCommand(bytes);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, c) << OpName(c.op);
  }
}

TEST(CommandTest, ExpectedAbsentAndExpectedEmptyStayDistinct) {
  Result<Command> absent = DecodeCommand(EncodeCommand(MakeCas(std::nullopt)));
  Result<Command> empty = DecodeCommand(EncodeCommand(MakeCas("")));
  ASSERT_TRUE(absent.ok());
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(absent->expected.has_value());
  ASSERT_TRUE(empty->expected.has_value());
  EXPECT_EQ(*empty->expected, "");
}

TEST(CommandTest, EncodingIsDeterministic) {
  for (const Command& c : SampleCommands()) EXPECT_EQ(EncodeCommand(c), EncodeCommand(c));
}

TEST(CommandTest, DecodeRejectsEmptyAndUnknownOps) {
  EXPECT_EQ(DecodeCommand("").status().code(), Code::kInvalidArgument);
  for (int op : {0, 10, 99, -1}) {
    pb::Command m;
    m.set_op(static_cast<pb::Op>(op));
    m.set_key("k");
    Result<Command> r = DecodeCommand(m.SerializeAsString());
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << op;
  }
}

TEST(CommandTest, DecodeRejectsMalformedBatches) {
  auto decode = [](const pb::Command& m) { return DecodeCommand(m.SerializeAsString()); };
  pb::Command nested;
  nested.set_op(pb::OP_BATCH);
  nested.add_batch()->set_op(pb::OP_BATCH);
  EXPECT_EQ(decode(nested).status().code(), Code::kInvalidArgument);

  pb::Command with_session;
  with_session.set_op(pb::OP_BATCH);
  pb::Command* sub = with_session.add_batch();
  sub->set_op(pb::OP_PUT);
  sub->set_client_id(5);
  sub->set_seq(1);
  EXPECT_EQ(decode(with_session).status().code(), Code::kInvalidArgument);

  pb::Command unknown_sub;
  unknown_sub.set_op(pb::OP_BATCH);
  unknown_sub.add_batch()->set_op(static_cast<pb::Op>(42));
  EXPECT_EQ(decode(unknown_sub).status().code(), Code::kInvalidArgument);

  pb::Command subs_outside;
  subs_outside.set_op(pb::OP_PUT);
  subs_outside.add_batch()->set_op(pb::OP_PUT);
  EXPECT_EQ(decode(subs_outside).status().code(), Code::kInvalidArgument);

  pb::Command empty_batch;  // an empty batch is valid: MULTI then EXEC
  empty_batch.set_op(pb::OP_BATCH);
  ASSERT_TRUE(decode(empty_batch).ok());
  EXPECT_TRUE(decode(empty_batch)->batch.empty());
}

TEST(CommandTest, DecodeRejectsMalformedRedisCommandsAndWatches) {
  auto decode = [](const pb::Command& m) { return DecodeCommand(m.SerializeAsString()); };
  pb::Command no_name;  // a Redis command needs at least its name
  no_name.set_op(pb::OP_REDIS);
  EXPECT_EQ(decode(no_name).status().code(), Code::kInvalidArgument);
  no_name.add_args("get");
  EXPECT_TRUE(decode(no_name).ok());

  pb::Command sub_no_name;
  sub_no_name.set_op(pb::OP_BATCH);
  sub_no_name.add_batch()->set_op(pb::OP_REDIS);
  EXPECT_EQ(decode(sub_no_name).status().code(), Code::kInvalidArgument);

  pb::Command watches_outside;  // only EXEC (a batch) watches
  watches_outside.set_op(pb::OP_REDIS);
  watches_outside.add_args("set");
  watches_outside.add_watches()->set_key("k");
  EXPECT_EQ(decode(watches_outside).status().code(), Code::kInvalidArgument);

  pb::Command sub_watches;
  sub_watches.set_op(pb::OP_BATCH);
  pb::Command* sub = sub_watches.add_batch();
  sub->set_op(pb::OP_REDIS);
  sub->add_args("get");
  sub->add_watches()->set_key("k");
  EXPECT_EQ(decode(sub_watches).status().code(), Code::kInvalidArgument);

  pb::Command watched;  // the valid form: watches on the batch itself
  watched.set_op(pb::OP_BATCH);
  pb::Command* get = watched.add_batch();
  get->set_op(pb::OP_REDIS);
  get->add_args("get");
  get->add_args("k");
  pb::Watch* w = watched.add_watches();
  w->set_key("k");
  w->set_version(7);
  watched.set_watch_index(9);
  Result<Command> ok = decode(watched);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->watches, (std::vector<std::pair<std::string, LogIndex>>{{"k", LogIndex(7)}}));
  EXPECT_EQ(ok->watch_index, LogIndex(9));
  EXPECT_EQ(ok->batch.at(0).args, (std::vector<std::string>{"get", "k"}));

  pb::Command expire;  // an EXPIRE with no keys is valid and does nothing
  expire.set_op(pb::OP_EXPIRE);
  EXPECT_TRUE(decode(expire).ok());
}

TEST(CommandTest, DecodeEnforcesSeqRule) {
  pb::Command m;
  m.set_op(pb::OP_PUT);
  m.set_client_id(5);  // a client id without a seq
  EXPECT_EQ(DecodeCommand(m.SerializeAsString()).status().code(), Code::kInvalidArgument);
  m.set_client_id(0);
  m.set_seq(3);  // a seq without a client id
  EXPECT_EQ(DecodeCommand(m.SerializeAsString()).status().code(), Code::kInvalidArgument);
  m.set_client_id(5);
  EXPECT_TRUE(DecodeCommand(m.SerializeAsString()).ok());
}

TEST(CommandTest, DecodeRejectsTruncatedEncodings) {
  Command c;
  c.op = Op::kPut;
  c.key = "some-key";
  c.value = "some-value";
  c.client_id = 300;
  c.seq = 1000;
  std::string bytes = EncodeCommand(c);
  int rejected = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    Result<Command> r = DecodeCommand(std::string_view(bytes).substr(0, n));
    // A prefix cut between fields may still parse; it must then be a different command.
    if (r.ok()) {
      EXPECT_NE(*r, c);
    } else {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
}

// Random bytes must never crash the decoder, and whatever it accepts must satisfy the
// Command rules and re-encode to something that decodes to the same command.
TEST(CommandTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(20240601);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(rng() % 64, '\0');
    for (char& b : bytes) b = static_cast<char>(rng());
    if (i % 4 == 0 && !bytes.empty()) bytes[0] = 0x08;  // a valid op tag makes parses likelier
    Result<Command> r = DecodeCommand(bytes);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
      continue;
    }
    ++accepted;
    EXPECT_GE(static_cast<int>(r->op), static_cast<int>(Op::kGet));
    EXPECT_LE(static_cast<int>(r->op), static_cast<int>(Op::kExpire));  // the highest op
    EXPECT_EQ(r->client_id == 0, r->seq == 0);
    if (r->op != Op::kBatch) {
      EXPECT_TRUE(r->batch.empty());
      EXPECT_TRUE(r->watches.empty());
    }
    if (r->op == Op::kRedis) {
      EXPECT_FALSE(r->args.empty());
    }
    Result<Command> again = DecodeCommand(EncodeCommand(*r));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *r);
  }
  EXPECT_GT(accepted, 0);  // the loop did reach the validation, not only the parser
}

TEST(CommandTest, RandomMutationsOfValidEncodingsNeverCrash) {
  std::mt19937_64 rng(7);
  const std::vector<Command> samples = SampleCommands();
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = EncodeCommand(samples[i % samples.size()]);
    if (bytes.size() > 64) bytes.resize(64);
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    Result<Command> r = DecodeCommand(bytes);
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    }
  }
}

TEST(CommandTest, ReplyCodeMessages) {
  EXPECT_EQ(ReplyCodeMessage(ReplyCode::kOk), "");
  EXPECT_EQ(ReplyCodeMessage(ReplyCode::kNotInteger), "value is not an integer or out of range");
  for (int c = 1; c <= kReplyCodeMax; ++c) {
    EXPECT_FALSE(ReplyCodeMessage(static_cast<ReplyCode>(c)).empty()) << c;
  }
  EXPECT_EQ(Reply::Error(ReplyCode::kStaleRequest).message(),
            ReplyCodeMessage(ReplyCode::kStaleRequest));
  EXPECT_FALSE(Reply::Error(ReplyCode::kStaleRequest).ok());
  EXPECT_TRUE(Reply().ok());
}

TEST(CommandTest, ReplyEncodeDecodeRoundTrip) {
  Reply nested = Reply::Array({Reply::Bulk("a"), Reply::Nil(), Reply::Int(-7),
                               Reply::Array({Reply::Status("QUEUED"), Reply::Err("ERR x")})});
  nested.code = ReplyCode::kOk;
  for (const Reply& r : {Reply::Ok(), Reply::Error(ReplyCode::kNotInteger), Reply::Bulk(""),
                         Reply::NullArray(), nested}) {
    auto back = DecodeReply(EncodeReply(r));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, r);
  }
}

TEST(CommandTest, DecodeReplyRejectsGarbageAndDeepNesting) {
  EXPECT_FALSE(DecodeReply("\xff\xff\xff").ok());
  Reply deep = Reply::Int(1);
  for (int i = 0; i < 20; ++i) deep = Reply::Array({deep});
  EXPECT_FALSE(DecodeReply(EncodeReply(deep)).ok());
}

}  // namespace
}  // namespace synod::kv
