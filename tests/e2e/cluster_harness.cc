#include "cluster_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

namespace synod::e2e {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool WaitUntil(int64_t timeout_ms, const std::function<bool()>& done, int64_t poll_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  while (true) {
    if (done()) return true;
    if (NowMs() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
}

// ---- Reply ----

namespace {

Reply Convert(const redisReply* r) {
  Reply out;
  out.type = r->type;
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      break;
  }
  return out;
}

std::string Printable(const std::string& s, size_t max_bytes = 200) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max_bytes; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > max_bytes) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

}  // namespace

bool Reply::ErrorStartsWith(const std::string& prefix) const {
  return IsError() && str.rfind(prefix, 0) == 0;
}

std::string Reply::ToString() const {
  switch (type) {
    case kIoError:
      return "(io error) " + str;
    case REDIS_REPLY_STRING:
      return "\"" + Printable(str) + "\"";
    case REDIS_REPLY_STATUS:
      return str;
    case REDIS_REPLY_ERROR:
      return "(error) " + str;
    case REDIS_REPLY_INTEGER:
      return "(integer) " + std::to_string(integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string out = "[";
      for (size_t i = 0; i < elements.size(); ++i) {
        out += (i ? ", " : "") + elements[i].ToString();
      }
      return out + "]";
    }
    default:
      return "(type " + std::to_string(type) + ")";
  }
}

// ---- Redis ----

Redis::Redis(uint16_t port, int64_t timeout_ms) : port_(port), timeout_ms_(timeout_ms) {
  Connect();
}

Redis::~Redis() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

void Redis::Connect() {
  if (ctx_ != nullptr) redisFree(ctx_);
  const timeval tv{timeout_ms_ / 1000, static_cast<suseconds_t>((timeout_ms_ % 1000) * 1000)};
  ctx_ = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (ctx_ != nullptr && ctx_->err == 0) redisSetTimeout(ctx_, tv);
}

bool Redis::Reconnect() {
  Connect();
  return connected();
}

void Redis::SetTimeout(int64_t timeout_ms) {
  timeout_ms_ = timeout_ms;
  const timeval tv{timeout_ms_ / 1000, static_cast<suseconds_t>((timeout_ms_ % 1000) * 1000)};
  if (connected()) redisSetTimeout(ctx_, tv);
}

std::string Redis::error() const {
  if (ctx_ == nullptr) return "cannot allocate a hiredis context";
  return ctx_->err == 0 ? "" : std::string(ctx_->errstr);
}

bool Redis::Send(const std::vector<std::string>& argv) {
  if (!connected()) return false;
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()) !=
      REDIS_OK) {
    return false;
  }
  // Push the bytes into the kernel now: a caller that sends to a paused node relies on it.
  int done = 0;
  while (!done) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return false;
  }
  return true;
}

Reply Redis::Receive() {
  Reply out;
  if (!connected()) {
    out.str = "not connected: " + error();
    return out;
  }
  void* raw = nullptr;
  if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
    out.str = error();
    return out;
  }
  out = Convert(static_cast<redisReply*>(raw));
  freeReplyObject(raw);
  return out;
}

Reply Redis::Command(const std::vector<std::string>& argv) {
  if (!Send(argv)) {
    Reply out;
    out.str = "send failed: " + error();
    return out;
  }
  return Receive();
}

std::vector<Reply> Redis::Pipeline(const std::vector<std::vector<std::string>>& commands) {
  std::vector<Reply> out;
  size_t sent = 0;
  for (const auto& argv : commands) {
    if (!Send(argv)) break;
    ++sent;
  }
  for (size_t i = 0; i < sent; ++i) out.push_back(Receive());
  while (out.size() < commands.size()) out.push_back(Reply{Reply::kIoError, "not sent", 0, {}});
  return out;
}

// ---- raw TCP ----

int Dial(uint16_t port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::string ReadUntilClosed(int fd, int64_t timeout_ms, bool* closed) {
  if (closed != nullptr) *closed = false;
  std::string out;
  const int64_t deadline = NowMs() + timeout_ms;
  char buf[4096];
  while (NowMs() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(deadline - NowMs())) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      if (closed != nullptr) *closed = true;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// ---- child processes ----

namespace {

// Reads whatever the fds have until both reach EOF or the deadline passes.
bool DrainUntil(int out_fd, int err_fd, int64_t deadline_ms, std::string* out, std::string* err) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {out, err};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    const int64_t left = deadline_ms - NowMs();
    if (left <= 0) return false;
    const int n = poll(fds, 2, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      const ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  return true;
}

}  // namespace

ProgramResult RunProgram(const std::vector<std::string>& argv, int64_t timeout_ms) {
  ProgramResult result;
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) return result;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec (the parent may have threads).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    close(out_pipe[0]);
    close(err_pipe[0]);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  const bool finished =
      DrainUntil(out_pipe[0], err_pipe[0], NowMs() + timeout_ms, &result.out, &result.err);
  close(out_pipe[0]);
  close(err_pipe[0]);
  if (!finished) {
    result.timed_out = true;
    kill(pid, SIGKILL);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!result.timed_out && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  return result;
}

std::string RedisCli(uint16_t port, const std::vector<std::string>& args, int64_t timeout_ms) {
  std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  ProgramResult r = RunProgram(argv, timeout_ms);
  return r.out;
}

// ---- ports ----

std::vector<uint16_t> PickPorts(size_t count) {
  // Each test process starts in its own block of 50 ports, derived from its pid, so that two
  // tests running at once rarely even try the same ports; the bind check settles the rest. The
  // range stays below the kernel's ephemeral ports (32768+), which outgoing connections take,
  // and above the developer cluster's 7001-7300.
  static int calls = 0;
  const int base = 10000 + static_cast<int>(getpid() % 400) * 50;
  int candidate = base + (calls++ * 17) % 50;
  std::vector<int> held;
  std::vector<uint16_t> ports;
  for (int tries = 0; ports.size() < count && tries < 20000; ++tries, ++candidate) {
    if (candidate >= 30000) candidate = 10000;
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) continue;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(candidate));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      held.push_back(fd);
      ports.push_back(static_cast<uint16_t>(candidate));
    } else {
      close(fd);
    }
  }
  for (int fd : held) close(fd);
  return ports;
}

// ---- TestCluster ----

std::map<uint64_t, std::unique_ptr<Redis>> ConnectAll(const TestCluster& c) {
  std::map<uint64_t, std::unique_ptr<Redis>> out;
  for (uint64_t id : c.ids()) {
    out[id] = std::make_unique<Redis>(c.client_port(id));
    EXPECT_TRUE(out[id]->connected()) << "node " << id << ": " << out[id]->error();
  }
  return out;
}

namespace {

std::string FindSynod() {
  const char* env = std::getenv("SYNOD_BIN");
  if (env != nullptr && *env != '\0') return env;
  return "synod";
}

std::string Addr(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// Nodes log at info unless SYNOD_E2E_LOG_LEVEL says otherwise (debug when chasing a failure).
std::string LogLevel() {
  const char* env = std::getenv("SYNOD_E2E_LOG_LEVEL");
  return env != nullptr && *env != '\0' ? env : "info";
}

}  // namespace

TestCluster::TestCluster(ClusterOptions options) : options_(std::move(options)) {
  bin_ = FindSynod();
  char tmpl[] = "/tmp/synod-e2e.XXXXXX";
  const char* made = mkdtemp(tmpl);
  if (made == nullptr) {
    ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    return;
  }
  dir_ = made;
  StartAnchor();
  const std::vector<uint16_t> ports = PickPorts(static_cast<size_t>(options_.nodes) * 3);
  if (ports.size() != static_cast<size_t>(options_.nodes) * 3) {
    ADD_FAILURE() << "cannot find free ports";
    return;
  }
  for (int i = 0; i < options_.nodes; ++i) {
    const uint64_t id = static_cast<uint64_t>(i + 1);
    nodes_[id] = MakeNode(id, {ports[i * 3], ports[i * 3 + 1], ports[i * 3 + 2]});
  }
  const std::string initial = InitialCluster();
  for (auto& [id, n] : nodes_) {
    n.args.push_back("--initial-cluster");
    n.args.push_back(initial);
  }
  if (!options_.start) return;
  for (auto& [id, n] : nodes_) Start(id);
  if (options_.wait_leader && WaitForLeader(options_.leader_wait_ms) == 0) {
    ADD_FAILURE() << "no leader within " << options_.leader_wait_ms << " ms";
  }
  // The nodes hand each shard to its preferred leader (the layout's first voter: node 1 for a
  // single data shard) about a second after the first election; a test that picks "the
  // leader" must not race that move. Bounded; a cluster that never settles fails elsewhere.
  if (options_.wait_leader && options_.shards == 1) {
    WaitUntil(
        5000, [&] { return WaitForLeader(1000) == 1; }, 50);
  }
}

TestCluster::~TestCluster() {
  if (::testing::Test::HasFailure()) DumpLogs();
  if (pgid_ > 0) kill(-pgid_, SIGKILL);
  for (auto& [id, n] : nodes_) {
    if (n.pid > 0) waitpid(n.pid, nullptr, 0);
    n.pid = 0;
  }
  if (pgid_ > 0) waitpid(pgid_, nullptr, 0);
  if (!dir_.empty() && std::getenv("SYNOD_E2E_KEEP") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  } else if (!dir_.empty()) {
    std::cerr << "e2e: kept " << dir_ << "\n";
  }
}

// The anchor leads the process group of the test's nodes and does nothing else, so the group
// exists (and `kill(-pgid)` reaches every node) whatever happened to the nodes themselves.
void TestCluster::StartAnchor() {
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(0);
    while (true) pause();
  }
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return;
  }
  setpgid(pid, pid);  // also in the parent, so that the group exists before any node joins it
  pgid_ = pid;
}

TestCluster::Node TestCluster::MakeNode(uint64_t id, const std::vector<uint16_t>& ports) const {
  Node n;
  n.id = id;
  n.client_port = ports[0];
  n.peer_port = ports[1];
  n.admin_port = ports[2];
  n.data = dir_ + "/node-" + std::to_string(id);
  n.log = dir_ + "/node-" + std::to_string(id) + ".log";
  n.args = {bin_,          "start",
            "--id",        std::to_string(id),
            "--data",      n.data,
            "--client",    Addr(n.client_port),
            "--peer",      Addr(n.peer_port),
            "--admin",     Addr(n.admin_port),
            "--log-level", LogLevel()};
  if (options_.fault_hooks) n.args.push_back("--fault-hooks");
  n.args.push_back("--shards=" + std::to_string(options_.shards));
  n.args.insert(n.args.end(), options_.flags.begin(), options_.flags.end());
  return n;
}

std::string TestCluster::InitialCluster() const {
  std::string out;
  for (const auto& [id, n] : nodes_) {
    if (!out.empty()) out += ",";
    out += std::to_string(id) + "=" + Addr(n.peer_port) + "/" + Addr(n.client_port) + "/" +
           Addr(n.admin_port);
  }
  return out;
}

std::vector<uint64_t> TestCluster::ids() const {
  std::vector<uint64_t> out;
  for (const auto& [id, n] : nodes_) out.push_back(id);
  return out;
}

std::string TestCluster::client_address(uint64_t id) const { return Addr(node(id).client_port); }
std::string TestCluster::admin_address(uint64_t id) const { return Addr(node(id).admin_port); }

TestCluster::Node& TestCluster::node(uint64_t id) {
  auto it = nodes_.find(id);
  if (it == nodes_.end()) {
    std::cerr << "e2e: no node " << id << "\n";
    std::abort();
  }
  return it->second;
}

const TestCluster::Node& TestCluster::node(uint64_t id) const {
  return const_cast<TestCluster*>(this)->node(id);
}

void TestCluster::Start(uint64_t id) {
  Node& n = node(id);
  if (n.pid > 0) return;
  std::vector<char*> argv;
  for (const std::string& a : n.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pgid = pgid_;
  const char* log = n.log.c_str();
  const pid_t pid = fork();
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec (the test may run threads).
    setpgid(0, pgid);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    const int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return;
  }
  setpgid(pid, pgid);  // races the child's own call harmlessly; one of them wins
  n.pid = pid;
  n.sigstopped = false;
}

void TestCluster::Reap(Node& n) {
  if (n.pid > 0) waitpid(n.pid, nullptr, 0);
  n.pid = 0;
  n.sigstopped = false;
}

bool TestCluster::Exited(uint64_t id) {
  Node& n = node(id);
  if (n.pid <= 0) return true;
  if (waitpid(n.pid, nullptr, WNOHANG) == n.pid) {
    n.pid = 0;
    return true;
  }
  return false;
}

void TestCluster::Kill9(uint64_t id) {
  Node& n = node(id);
  if (n.pid <= 0) return;
  kill(n.pid, SIGKILL);
  Reap(n);
}

void TestCluster::Stop(uint64_t id) {
  Node& n = node(id);
  if (n.pid <= 0) return;
  kill(n.pid, SIGSTOP);
  // SIGSTOP is asynchronous; wait until the kernel reports the process stopped (or gone).
  int status = 0;
  if (waitpid(n.pid, &status, WUNTRACED) == n.pid && !WIFSTOPPED(status)) {
    ADD_FAILURE() << "node " << id << " had exited before SIGSTOP";
    n.pid = 0;
    return;
  }
  n.sigstopped = true;
}

void TestCluster::Cont(uint64_t id) {
  Node& n = node(id);
  if (n.pid <= 0) return;
  kill(n.pid, SIGCONT);
  n.sigstopped = false;
}

int TestCluster::Term(uint64_t id, int64_t timeout_ms) {
  Node& n = node(id);
  if (n.pid <= 0) return -1;
  kill(n.pid, SIGTERM);
  int status = 0;
  const bool exited = WaitUntil(timeout_ms, [&] { return waitpid(n.pid, &status, WNOHANG) > 0; });
  if (!exited) {
    kill(n.pid, SIGKILL);
    Reap(n);
    return -1;
  }
  n.pid = 0;
  n.sigstopped = false;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void TestCluster::Restart(uint64_t id) {
  Kill9(id);
  Start(id);
}

void TestCluster::RestartOnNewClientPort(uint64_t id) {
  Kill9(id);
  Node& n = node(id);
  const uint16_t port = PickPorts(1)[0];
  for (size_t i = 0; i + 1 < n.args.size(); ++i) {
    if (n.args[i] == "--client") n.args[i + 1] = Addr(port);
  }
  n.client_port = port;
  Start(id);
}

uint64_t TestCluster::AddNode(uint64_t join_via, const std::vector<std::string>& extra_flags) {
  const uint64_t id = nodes_.rbegin()->first + 1;
  const std::vector<uint16_t> ports = PickPorts(3);
  Node n = MakeNode(id, ports);
  n.args.push_back("--join");
  n.args.push_back(admin_address(join_via));
  n.args.insert(n.args.end(), extra_flags.begin(), extra_flags.end());
  nodes_[id] = n;
  Start(id);
  return id;
}

HttpResult TestCluster::Admin(uint64_t id, const std::string& method, const std::string& path,
                              int64_t timeout_ms) const {
  HttpResult out;
  if (nodes_.count(id) == 0) return out;
  httplib::Client cli("127.0.0.1", node(id).admin_port);
  cli.set_connection_timeout(std::chrono::milliseconds(timeout_ms));
  cli.set_read_timeout(std::chrono::milliseconds(timeout_ms));
  cli.set_write_timeout(std::chrono::milliseconds(timeout_ms));
  httplib::Result r =
      method == "GET" ? cli.Get(path.c_str()) : cli.Post(path.c_str(), std::string(), "text/plain");
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.json = Json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (out.json.is_discarded()) out.json = nullptr;
  return out;
}

Json TestCluster::Status(uint64_t id, int64_t timeout_ms) const {
  HttpResult r = Admin(id, "GET", "/status", timeout_ms);
  if (r.status != 200 || !r.json.is_object()) return nullptr;
  return r.json;
}

uint64_t TestCluster::StatusNumber(uint64_t id, const char* field) const {
  const Json st = Status(id);
  if (!st.is_object() || !st.contains(field) || !st[field].is_number_unsigned()) return 0;
  return st[field].get<uint64_t>();
}

std::vector<uint64_t> TestCluster::LiveIds(uint64_t except) const {
  std::vector<uint64_t> out;
  for (const auto& [id, n] : nodes_) {
    if (id != except && n.pid > 0 && !n.sigstopped) out.push_back(id);
  }
  return out;
}

uint64_t TestCluster::WaitForLeader(int64_t timeout_ms, const std::vector<uint64_t>& among) const {
  uint64_t leader = 0;
  WaitUntil(
      timeout_ms,
      [&] {
        uint64_t best_term = 0;
        for (uint64_t id : among.empty() ? LiveIds() : among) {
          Json st = Status(id, 500);
          if (st.is_null() || st.value("role", "") != "leader") continue;
          const uint64_t term = st.value("term", uint64_t{0});
          if (term >= best_term) {
            best_term = term;
            leader = id;
          }
        }
        return leader != 0;
      },
      50);
  if (leader == 0) return 0;
  // A follower learns of a new leader from its first heartbeat; until then it refuses writes
  // at once (CLUSTERDOWN "no leader known"). Give the others a moment to hear of it, so that a
  // test's first command through a follower does not race the election; a node that cannot
  // hear (partitioned, stopped) only costs this wait.
  WaitUntil(
      2000,
      [&] {
        for (uint64_t id : among.empty() ? LiveIds() : among) {
          Json st = Status(id, 500);
          if (st.is_null() || st.value("leader", uint64_t{0}) != leader) return false;
        }
        return true;
      },
      25);
  return leader;
}

bool TestCluster::WaitForApplied(uint64_t id, uint64_t index, int64_t timeout_ms) const {
  return WaitUntil(timeout_ms, [&] {
    Json st = Status(id, 500);
    return !st.is_null() && st.value("applied", uint64_t{0}) >= index;
  });
}

std::string TestCluster::LogTail(uint64_t id, size_t lines) const {
  std::ifstream in(node(id).log);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (tail.size() > lines) tail.pop_front();
  }
  std::string out;
  for (const std::string& l : tail) out += l + "\n";
  return out;
}

void TestCluster::DumpLogs() const {
  for (const auto& [id, n] : nodes_) {
    std::cerr << "---- node " << id << " (" << n.log << "), last lines ----\n" << LogTail(id, 60);
  }
}

bool WaitForPreferredLeaders(const TestCluster& c, size_t shards) {
  auto port_of = [](const Reply& node) {
    return static_cast<uint16_t>(node.elements.at(1).integer);
  };
  const ProgramResult listed = RunProgram(
      {c.synod_bin(), "shards", "--json", "--host", c.admin_address(c.ids().front())}, 20000);
  const Json j = Json::parse(listed.out, nullptr, /*allow_exceptions=*/false);
  std::map<int64_t, uint16_t> want;  // a range's first slot -> its preferred leader's port
  for (const Json& shard : j.is_array() ? j : Json::array()) {
    if (shard.contains("voters") && !shard["voters"].empty()) {
      want[shard.value("first_slot", int64_t{-1})] =
          c.client_port(shard["voters"][0].get<uint64_t>());
    }
  }
  if (want.size() != shards) {
    std::cerr << "e2e: synod shards --json: " << listed.out << listed.err;
    return false;
  }
  return WaitUntil(15000, [&] {
    for (uint64_t via : c.LiveIds()) {
      std::map<int64_t, uint16_t> masters;
      Redis r(c.client_port(via), 2000);
      for (const Reply& range : r.Command({"CLUSTER", "SLOTS"}).elements) {
        if (range.elements.size() >= 3)
          masters[range.elements[0].integer] = port_of(range.elements[2]);
      }
      if (masters != want) return false;
    }
    return true;
  });
}

}  // namespace synod::e2e
