// `synod up`: a local cluster of N node processes in the foreground (docs/operations.md).
//
// Node i listens for clients on BASE+i-1, for peers on BASE+100+i-1 and for admin HTTP on
// BASE+200+i-1, keeps its data in DIR/node-i and logs to DIR/node-i.log. Ctrl-C or SIGTERM
// stops every node gracefully (SIGTERM, then SIGKILL after a bound). Run again on the same
// directory, it restarts the same cluster with its data; --fresh wipes it first.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <iostream>
#include <thread>

#include "cli/admin_client.h"
#include "cli/commands.h"
#include "cluster/group_host.h"

namespace synod::cli {
namespace {

struct UpFlags {
  int nodes = 3;
  std::string dir = "./data";
  int base_port = 7001;
  std::string host = "127.0.0.1";
  bool fresh = false;
  bool fault_hooks = false;
  bool cluster_redirects = false;
  int shards = 0;
  int replicas = 3;
  bool verbose = false;
  int64_t wait_ms = 30000;
  std::vector<std::string> extra;  // passed to every `synod start`
};

volatile std::sig_atomic_t g_stop_signal = 0;
void OnSignal(int sig) { g_stop_signal = sig; }

std::string SelfExe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("synod") : p.string();
}

pid_t Spawn(const std::vector<std::string>& args, const std::string& log_path, bool verbose) {
  pid_t pid = fork();
  if (pid != 0) return pid;
  // Child: same process group as `synod up` (a test kills the whole group at once).
  if (!verbose) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 2);
      dup2(fd, 1);
      close(fd);
    }
  }
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  _exit(127);
}

// Polls the nodes' /status until one reports a leader. Returns its id, or 0 on timeout or when
// a node exited (it is then reaped and its slot in *exited set).
uint64_t WaitForLeader(const std::vector<std::string>& admins, const std::vector<pid_t>& pids,
                       int64_t wait_ms, std::vector<bool>* exited) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (std::chrono::steady_clock::now() < deadline && g_stop_signal == 0) {
    bool any_exited = false;
    for (size_t i = 0; i < pids.size(); ++i) {
      int status = 0;
      if (!(*exited)[i] && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        (*exited)[i] = true;
        any_exited = true;
        std::cerr << fmt::format("synod up: node {} exited at start-up; see its log\n", i + 1);
      }
    }
    if (any_exited) return 0;
    for (const std::string& a : admins) {
      auto r = AdminCall("GET", a, "/status", 500);
      if (r.ok() && r->status == 200 && r->json.is_object() &&
          r->json.value("role", "") == "leader") {
        return r->json.value("id", uint64_t{0});
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return 0;
}

int RunUp(const UpFlags& f) {
  if (f.nodes < 1 || f.nodes > 99) {
    std::cerr << "synod up: --nodes must be 1..99\n";
    return kExitUsage;
  }
  std::error_code ec;
  if (f.fresh) std::filesystem::remove_all(f.dir, ec);
  std::filesystem::create_directories(f.dir, ec);
  if (ec) {
    std::cerr << "synod up: cannot create " << f.dir << ": " << ec.message() << "\n";
    return 1;
  }
  cluster::AddressBook book;
  for (int i = 1; i <= f.nodes; ++i) {
    book[NodeId(static_cast<uint64_t>(i))] = {
        fmt::format("{}:{}", f.host, f.base_port + 100 + i - 1),
        fmt::format("{}:{}", f.host, f.base_port + i - 1),
        fmt::format("{}:{}", f.host, f.base_port + 200 + i - 1)};
  }
  const std::string members = cluster::FormatMemberList(book);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  std::vector<pid_t> pids;
  std::vector<std::string> admins;
  const std::string exe = SelfExe();
  for (const auto& [id, a] : book) {
    const std::string data = fmt::format("{}/node-{}", f.dir, id.value());
    std::vector<std::string> args = {exe,
                                     "start",
                                     "--id",
                                     std::to_string(id.value()),
                                     "--data",
                                     data,
                                     "--client",
                                     a.client,
                                     "--peer",
                                     a.peer,
                                     "--admin",
                                     a.admin,
                                     "--initial-cluster",
                                     members};
    if (f.fault_hooks) args.push_back("--fault-hooks");
    if (f.cluster_redirects) args.push_back("--cluster-redirects");
    args.push_back("--shards=" + std::to_string(f.shards));
    args.push_back("--replicas=" + std::to_string(f.replicas));
    for (const std::string& e : f.extra) args.push_back(e);
    pids.push_back(Spawn(args, fmt::format("{}/node-{}.log", f.dir, id.value()), f.verbose));
    admins.push_back(a.admin);
  }
  std::vector<bool> done(pids.size(), false);
  const uint64_t leader = WaitForLeader(admins, pids, f.wait_ms, &done);
  if (leader == 0) {
    std::cerr << "synod up: no leader; see " << f.dir << "/node-*.log\n";
    if (std::find(done.begin(), done.end(), true) != done.end()) g_stop_signal = SIGTERM;
  } else {
    std::cout << fmt::format("synod up: {} nodes, leader is node {}\n\n", f.nodes, leader);
    std::cout << fmt::format("{:>4}  {:<8} {:<20} {:<20} {:<20} {}\n", "NODE", "PID", "CLIENT",
                             "PEER", "ADMIN", "DATA");
    int i = 0;
    for (const auto& [id, a] : book) {
      std::cout << fmt::format("{:>4}  {:<8} {:<20} {:<20} {:<20} {}/node-{}\n", id.value(),
                               pids[static_cast<size_t>(i++)], a.client, a.peer, a.admin, f.dir,
                               id.value());
    }
    std::cout << fmt::format(
        "\nConnect:  redis-cli -p {}\nStatus:   synod status --host {}\nLogs:     {}/node-*.log\n"
        "Stop:     Ctrl-C\n",
        f.base_port, admins[0], f.dir);
    // A node more (its own ports and directory; it gets its share of replicas by itself), and
    // the removal of one (drained first).
    const int next = f.nodes + 1;
    std::cout << fmt::format(
        "Add:      {} start --id {} --data {}/node-{} --client {}:{} --peer {}:{} --admin {}:{} "
        "--replicas={} --join {}\nRemove:   {} node remove ID --host {}\n",
        exe, next, f.dir, next, f.host, f.base_port + next - 1, f.host,
        f.base_port + 100 + next - 1, f.host, f.base_port + 200 + next - 1, f.replicas, admins[0],
        exe, admins[0]);
    std::cout.flush();
  }
  // Wait for a signal or for every node to exit.
  size_t alive = static_cast<size_t>(std::count(done.begin(), done.end(), false));
  while (alive > 0 && g_stop_signal == 0) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int status = 0;
      if (waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        done[i] = true;
        --alive;
        std::cerr << fmt::format("synod up: node {} exited ({}); see {}/node-{}.log\n", i + 1,
                                 WIFEXITED(status) ? fmt::format("code {}", WEXITSTATUS(status))
                                                   : fmt::format("signal {}", WTERMSIG(status)),
                                 f.dir, i + 1);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (alive == 0) return 1;
  const bool failed_start = leader == 0;
  std::cout << "\nsynod up: stopping " << alive << " nodes\n";
  for (size_t i = 0; i < pids.size(); ++i) {
    if (!done[i]) kill(pids[i], SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (alive > 0 && std::chrono::steady_clock::now() < deadline) {
    for (size_t i = 0; i < pids.size(); ++i) {
      int status = 0;
      if (!done[i] && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        done[i] = true;
        --alive;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (size_t i = 0; i < pids.size(); ++i) {
    if (!done[i]) {
      std::cerr << fmt::format("synod up: node {} did not stop in 15 s; killing it\n", i + 1);
      kill(pids[i], SIGKILL);
      waitpid(pids[i], nullptr, 0);
    }
  }
  std::cout << "synod up: stopped\n";
  return failed_start ? 1 : 0;
}

}  // namespace

void AddUpCommand(CLI::App& app) {
  auto f = std::make_shared<UpFlags>();
  CLI::App* cmd = app.add_subcommand("up", "Run a local cluster of N nodes in the foreground.");
  cmd->add_option("--nodes", f->nodes, "Number of nodes")->capture_default_str();
  cmd->add_option("--dir", f->dir, "Data directory (node i uses DIR/node-i)")
      ->capture_default_str();
  cmd->add_option("--base-port", f->base_port,
                  "Node i: client BASE+i-1, peer BASE+100+i-1, admin BASE+200+i-1")
      ->capture_default_str();
  cmd->add_option("--host", f->host, "Address to listen on")->capture_default_str();
  cmd->add_flag("--fresh", f->fresh, "Wipe DIR first (a new cluster)");
  cmd->add_flag("--fault-hooks", f->fault_hooks, "Enable the nodes' fault-injection endpoints");
  cmd->add_flag("--cluster-redirects", f->cluster_redirects,
                "Nodes answer keys another node leads with -MOVED (Redis Cluster clients)");
  cmd->add_option("--shards", f->shards, "Data shards (0: two per node)")
      ->capture_default_str()
      ->check(CLI::Range(0, 16384));
  cmd->add_option("--replicas", f->replicas, "Replicas of each shard (capped at --nodes)")
      ->capture_default_str()
      ->check(CLI::Range(1, 99));
  cmd->add_flag("--verbose", f->verbose, "Nodes log to this terminal instead of DIR/node-i.log");
  cmd->add_option("--wait-ms", f->wait_ms, "How long to wait for a leader")->capture_default_str();
  cmd->add_option("--node-flag", f->extra, "A flag passed to every `synod start` (repeatable)");
  cmd->callback([f] {
    const int code = RunUp(*f);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace synod::cli
