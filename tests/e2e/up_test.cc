// `synod up` as a user runs it (`make run`): a local cluster in the foreground, Ctrl-C to stop,
// run again on the same directory to get the same data back.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "cluster_harness.h"

namespace synod::e2e {
namespace {

bool PortFree(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// A base port whose client, peer and admin ports (base+0..2, +100..102, +200..202) are free.
int PickBase() {
  for (int base = 30100 - static_cast<int>(getpid() % 20) * 300; base > 20000; base -= 300) {
    bool free = true;
    for (int off : {0, 1, 2, 100, 101, 102, 200, 201, 202}) free = free && PortFree(base + off);
    if (free) return base;
  }
  return 0;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `synod up` in its own process group, stdout and stderr to `out`.
pid_t StartUp(const std::string& dir, int base, const std::string& out) {
  const std::string bin = std::getenv("SYNOD_BIN") ? std::getenv("SYNOD_BIN") : "synod";
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    const int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    const std::string port = std::to_string(base);
    execl(bin.c_str(), bin.c_str(), "up", "--dir", dir.c_str(), "--base-port", port.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);
  return pid;
}

// SIGTERM to `synod up` alone (it stops its nodes); its exit code, or -1 after 30 s (then the
// whole group is killed).
int StopUp(pid_t pid) {
  kill(pid, SIGTERM);
  int status = 0;
  const bool exited = WaitUntil(30000, [&] { return waitpid(pid, &status, WNOHANG) == pid; });
  // Whatever happened, nothing of this group outlives the test.
  kill(-pid, SIGKILL);
  if (!exited) {
    waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Up, StartsAClusterStopsItAndRestartsItWithItsData) {
  const int base = PickBase();
  ASSERT_NE(base, 0) << "no free port block";
  char tmpl[] = "/tmp/synod-e2e-up.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = std::string(tmpl) + "/data";
  std::string out = std::string(tmpl) + "/up1.out";

  pid_t up = StartUp(dir, base, out);
  ASSERT_TRUE(WaitUntil(30000, [&] {
    return ReadFile(out).find("leader is node") != std::string::npos;
  })) << ReadFile(out);
  const std::string table = ReadFile(out);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(table.find("127.0.0.1:" + std::to_string(base + i)), std::string::npos) << table;
  }
  EXPECT_NE(table.find("redis-cli -p " + std::to_string(base)), std::string::npos) << table;
  {
    Redis first(static_cast<uint16_t>(base));
    EXPECT_TRUE(first.Command({"SET", "greeting", "hello"}).IsOk());
    Redis third(static_cast<uint16_t>(base + 2));
    EXPECT_EQ(third.Command({"GET", "greeting"}).str, "hello");
  }
  EXPECT_EQ(StopUp(up), 0) << ReadFile(out);
  EXPECT_NE(ReadFile(out).find("synod up: stopped"), std::string::npos) << ReadFile(out);

  // The same directory: the same cluster, with its data.
  out = std::string(tmpl) + "/up2.out";
  up = StartUp(dir, base, out);
  ASSERT_TRUE(WaitUntil(30000, [&] {
    return ReadFile(out).find("leader is node") != std::string::npos;
  })) << ReadFile(out);
  {
    Redis second(static_cast<uint16_t>(base + 1));
    EXPECT_EQ(second.Command({"GET", "greeting"}).str, "hello");
  }
  EXPECT_EQ(StopUp(up), 0) << ReadFile(out);
  std::filesystem::remove_all(tmpl);
}

TEST(Up, ANodeThatCannotStartIsReportedAndUpExits) {
  const int base = PickBase();
  ASSERT_NE(base, 0);
  // Hold node 2's client port so that node 2 fails at start-up.
  const int blocker = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(base + 1));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(blocker, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(blocker, 1), 0);
  char tmpl[] = "/tmp/synod-e2e-up.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string out = std::string(tmpl) + "/up.out";
  const pid_t up = StartUp(std::string(tmpl) + "/data", base, out);
  int status = 0;
  const bool exited = WaitUntil(30000, [&] { return waitpid(up, &status, WNOHANG) == up; });
  if (!exited) {
    kill(-up, SIGKILL);
    waitpid(up, &status, 0);
  }
  close(blocker);
  EXPECT_TRUE(exited) << ReadFile(out);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << ReadFile(out);
  EXPECT_NE(ReadFile(out).find("node 2 exited at start-up"), std::string::npos) << ReadFile(out);
  const std::string log = ReadFile(std::string(tmpl) + "/data/node-2.log");
  EXPECT_NE(log.find("Address already in use"), std::string::npos) << log;
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace synod::e2e
