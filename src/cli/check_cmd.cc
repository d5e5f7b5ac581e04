// `synod check HISTORY.jsonl`: reads a history, checks it, prints the verdict and, when it is
// not linearizable, the smallest failing window of each bad key (docs/check.md).
#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "check/checker.h"
#include "check/history_json.h"
#include "cli/commands.h"

namespace synod::cli {
namespace {

// Exit codes, as documented in docs/check.md.
constexpr int kExitLinearizable = 0;
constexpr int kExitNotLinearizable = 1;
constexpr int kExitUnknown = 2;
constexpr int kExitBadInput = 3;

struct CheckOptions {
  std::string path;
  double timeout_seconds = 60;
  uint64_t steps_max = 0;  // 0: no limit
  bool quiet = false;
};

// Reads the whole file ("-" is stdin) into *text, or explains why not.
bool ReadInput(const std::string& path, std::string* text, std::string* error) {
  if (path == "-") {
    std::ostringstream s;
    s << std::cin.rdbuf();
    *text = s.str();
    return true;
  }
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    *error = "is a directory";
    return false;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::strerror(errno);
    return false;
  }
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) {
    *error = "read failed";
    return false;
  }
  *text = s.str();
  return true;
}

int ExitCode(check::Verdict verdict) {
  switch (verdict) {
    case check::Verdict::kLinearizable:
      return kExitLinearizable;
    case check::Verdict::kNotLinearizable:
      return kExitNotLinearizable;
    case check::Verdict::kUnknown:
      return kExitUnknown;
  }
  return kExitUnknown;
}

int RunCheck(const CheckOptions& opts) {
  std::string text;
  std::string error;
  if (!ReadInput(opts.path, &text, &error)) {
    std::cerr << fmt::format("synod check: cannot read {}: {}\n", opts.path, error);
    return kExitBadInput;
  }
  Result<check::History> history = check::ParseHistoryJsonl(text);
  if (!history.ok()) {
    std::cerr << fmt::format("synod check: {}: {}\n", opts.path, history.status().message());
    return kExitBadInput;
  }
  using Clock = std::chrono::steady_clock;
  const Clock::time_point started = Clock::now();
  const auto deadline = started + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(opts.timeout_seconds));
  check::SearchBudget budget;
  budget.expired = [deadline] { return Clock::now() >= deadline; };
  if (opts.steps_max > 0) budget.steps_max = opts.steps_max;
  const check::CheckResult result = check::CheckHistory(*history, budget);
  if (!opts.quiet) {
    const std::chrono::duration<double> took = Clock::now() - started;
    std::cout << check::FormatCheckResult(*history, result)
              << fmt::format("\nchecked in {:.3f} s, {} search steps\n", took.count(),
                             budget.steps_used);
  }
  return ExitCode(result.verdict);
}

}  // namespace

void AddCheckCommand(CLI::App& app) {
  auto opts = std::make_shared<CheckOptions>();
  CLI::App* cmd = app.add_subcommand(
      "check",
      "Check a history of get/put/del/cas operations (JSON lines) for linearizability. Exit "
      "code: 0 linearizable, 1 not linearizable, 2 unknown (budget ran out), 3 bad input.");
  cmd->add_option("history", opts->path, "History file, one JSON operation per line; - = stdin")
      ->required();
  cmd->add_option("--timeout-seconds", opts->timeout_seconds,
                  "Give up and answer unknown (exit 2) after this long")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-steps", opts->steps_max,
                  "Give up and answer unknown after this many search steps (0 = no limit); "
                  "deterministic, unlike the timeout");
  cmd->add_flag("-q,--quiet", opts->quiet, "Print nothing; the exit code is the verdict");
  cmd->callback([opts] {
    const int code = RunCheck(*opts);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace synod::cli
