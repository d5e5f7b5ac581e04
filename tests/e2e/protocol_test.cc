// Test 7 of the e2e suite (README.md): malformed RESP over raw TCP gets Redis's protocol error
// and a closed connection, and never hurts the node or its other clients.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>

#include "cluster_harness.h"

namespace synod::e2e {
namespace {

constexpr uint64_t kBulkMax = 1 << 20;  // the node's --proto-max-bulk-len in these tests

struct Exchange {
  std::string reply;    // every byte the server sent
  bool closed = false;  // the server closed the connection (EOF or reset) within the timeout
};

// Sends `bytes` on a new connection (a reset while sending is fine: the server may close
// early), optionally half-closes, then reads until the server closes or `timeout_ms` passes.
Exchange Send(uint16_t port, const std::string& bytes, bool shutdown_write = false,
              int64_t timeout_ms = 5000) {
  Exchange out;
  const int fd = Dial(port);
  if (fd < 0) return out;
  SendAll(fd, bytes);
  if (shutdown_write) shutdown(fd, SHUT_WR);
  out.reply = ReadUntilClosed(fd, timeout_ms, &out.closed);
  close(fd);
  return out;
}

// The node still serves a well-behaved client.
void ExpectServing(TestCluster& c) {
  EXPECT_FALSE(c.Exited(1)) << "the node died";
  Redis r(c.client_port(1), 5000);
  EXPECT_EQ(r.Command({"PING"}).ToString(), "PONG");
}

ClusterOptions OneNode() {
  return {.nodes = 1, .flags = {"--proto-max-bulk-len", std::to_string(kBulkMax)}};
}

TEST(Protocol, MalformedRequestsGetRedisProtocolErrorsAndACloseWhileOthersAreServed) {
  TestCluster c(OneNode());
  const uint16_t port = c.client_port(1);
  // A client that stays connected throughout, and is served after every bad one.
  Redis bystander(port, 5000);
  ASSERT_EQ(bystander.Command({"SET", "k", "v"}).ToString(), "OK");
  struct Case {
    std::string name, input, reply;
  };
  const std::vector<Case> cases = {
      {"bad bulk length", "*1\r\n$x\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"2 GB bulk claim", "*1\r\n$2147483648\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
      {"bad multibulk length", "*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
      {"huge multibulk length", "*99999999999\r\n",
       "-ERR Protocol error: invalid multibulk length\r\n"},
      {"not a bulk", "*1\r\nfoo\r\n", "-ERR Protocol error: expected '$', got 'f'\r\n"},
      {"unbalanced quotes", "SET \"abc\r\n",
       "-ERR Protocol error: unbalanced quotes in request\r\n"},
      {"300 KB inline line", std::string(300 * 1024, 'a'),
       "-ERR Protocol error: too big inline request\r\n"},
      {"bulk above --proto-max-bulk-len",
       "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$" + std::to_string(kBulkMax + 1) + "\r\n",
       "-ERR Protocol error: invalid bulk length\r\n"},
      {"good commands, then garbage", "PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n",
       "+PONG\r\n+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    const Exchange e = Send(port, k.input);
    EXPECT_EQ(e.reply, k.reply);
    EXPECT_TRUE(e.closed) << "the connection stayed open after a protocol error";
    EXPECT_EQ(bystander.Command({"GET", "k"}).ToString(), "\"v\"");
  }
  ExpectServing(c);
  // A bulk of exactly --proto-max-bulk-len is accepted.
  EXPECT_EQ(bystander.Command({"SET", "max", std::string(kBulkMax, 'm')}).ToString(), "OK");
  const Reply max = bystander.Command({"GET", "max"});
  EXPECT_EQ(max.str.size(), kBulkMax);
}

TEST(Protocol, ClientsThatVanishMidRequestDoNotHurtTheNode) {
  TestCluster c(OneNode());
  const uint16_t port = c.client_port(1);
  // Half a command, then EOF: nothing to answer; the server closes too.
  Exchange e = Send(port, "*2\r\n$3\r\nGET\r\n", /*shutdown_write=*/true);
  EXPECT_EQ(e.reply, "");
  EXPECT_TRUE(e.closed);
  e = Send(port, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc", /*shutdown_write=*/true);
  EXPECT_EQ(e.reply, "");
  EXPECT_TRUE(e.closed);
  ExpectServing(c);
  // A complete write whose client leaves before the reply is still carried out.
  {
    const int fd = Dial(port);
    ASSERT_GE(fd, 0);
    const std::string set = "*3\r\n$3\r\nSET\r\n$8\r\norphaned\r\n$3\r\nyes\r\n";
    ASSERT_EQ(send(fd, set.data(), set.size(), MSG_NOSIGNAL), static_cast<ssize_t>(set.size()));
    close(fd);
  }
  Redis r(port, 5000);
  EXPECT_TRUE(WaitUntil(5000, [&] {
    return r.Command({"GET", "orphaned"}).str == "yes";
  })) << r.Command({"GET", "orphaned"}).ToString();
  // Clients that reset their connection with many writes in flight.
  std::string pipeline;
  for (int i = 0; i < 200; ++i) pipeline += "*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n";
  for (int i = 0; i < 30; ++i) {
    const int fd = Dial(port);
    ASSERT_GE(fd, 0);
    send(fd, pipeline.data(), pipeline.size(), MSG_NOSIGNAL);
    linger hard{1, 0};  // close with RST
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    close(fd);
  }
  ExpectServing(c);
  const Reply n = r.Command({"INCR", "n"});
  EXPECT_EQ(n.type, REDIS_REPLY_INTEGER) << n.ToString();
}

TEST(Protocol, RandomGarbageNeverCrashesTheNode) {
  TestCluster c(OneNode());
  const uint16_t port = c.client_port(1);
  std::mt19937 rng(20261126);
  for (int round = 0; round < 40; ++round) {
    std::string garbage(1 + rng() % 8192, '\0');
    for (char& ch : garbage) ch = static_cast<char>(rng());
    // Half the rounds look like RESP for a while, so that the bulk parser sees garbage too.
    if (round % 2 == 0)
      garbage = "*3\r\n$3\r\nSET\r\n$" + std::to_string(rng() % 64) + "\r\n" + garbage;
    const Exchange e = Send(port, garbage, /*shutdown_write=*/true, 3000);
    SCOPED_TRACE("round " + std::to_string(round));
    EXPECT_TRUE(e.closed) << "the server kept a half-closed connection open";
    // Whatever came back is well-formed RESP replies; an error is the last thing said.
    if (!e.reply.empty()) {
      EXPECT_TRUE(e.reply[0] == '-' || e.reply[0] == '+' || e.reply[0] == '$' ||
                  e.reply[0] == ':' || e.reply[0] == '*')
          << e.reply.substr(0, 80);
      EXPECT_EQ(e.reply.substr(e.reply.size() - 2), "\r\n");
    }
  }
  ExpectServing(c);
}

}  // namespace
}  // namespace synod::e2e
