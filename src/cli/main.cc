// The `synod` binary: one executable, one subcommand per task (DESIGN.md, "Operations").
#include <CLI/CLI.hpp>

#include "cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"Synod: a replicated key-value store with a built-in linearizability checker."};
  app.require_subcommand(1);
  synod::cli::AddCheckCommand(app);
  synod::cli::AddSimCommand(app);
  synod::cli::AddStartCommand(app);
  synod::cli::AddUpCommand(app);
  synod::cli::AddStatusCommand(app);
  synod::cli::AddShardsCommand(app);
  synod::cli::AddShardCommand(app);
  synod::cli::AddNodeCommand(app);
  synod::cli::AddMemberCommand(app);
  synod::cli::AddBenchCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // RuntimeError carries a subcommand's exit code; help and version exit 0; anything else is
    // a usage error, which CLI11 explains on stderr.
    const int code = app.exit(e);
    if (e.get_name() == "RuntimeError" || code == 0) return code;
    return synod::cli::kExitUsage;
  }
  return 0;
}
