// The subcommands of the `synod` binary. Each lives in its own <name>_cmd.cc and registers
// itself on the root CLI11 app through one Add<Name>Command function, which main.cc calls.
//
// Exit codes: a subcommand's callback ends the process with a non-zero code by throwing
// CLI::RuntimeError(code) (CLI11's own mechanism: App::exit prints nothing for it); returning
// normally means 0. Usage errors (unknown flag, missing argument) exit with kExitUsage.
//
// Thread-safety: called from main's thread, once, before parsing.
#pragma once

#include <CLI/CLI.hpp>

namespace synod::cli {

// Bad command line: the same code as `synod check`'s "bad input".
inline constexpr int kExitUsage = 3;

// `synod check HISTORY.jsonl`: checks a history for linearizability (check_cmd.cc).
void AddCheckCommand(CLI::App& app);
void AddSimCommand(CLI::App& app);
// `synod start`: one node (start_cmd.cc). `synod up`: a local cluster (up_cmd.cc).
void AddStartCommand(CLI::App& app);
void AddUpCommand(CLI::App& app);
// `synod status` and `synod member` (status_cmd.cc).
void AddStatusCommand(CLI::App& app);
void AddShardsCommand(CLI::App& app);
// `synod shard split ID [--at SLOT]`, `synod shard move ID --from N --to M`.
void AddShardCommand(CLI::App& app);
// `synod node list`.
void AddNodeCommand(CLI::App& app);
void AddMemberCommand(CLI::App& app);
// `synod bench`: the load generator (bench_cmd.cc, docs/loadgen.md).
void AddBenchCommand(CLI::App& app);

}  // namespace synod::cli
