// Interaction scripts with golden output (etcd's datadriven format): parsing, rendering,
// running and diffing. The commands themselves are executed by Env (env.h).
//
// A script is a sequence of commands, each written as
//
//   # comments and blank lines between commands are kept verbatim
//   name arg key=value key=(1,2,3) (1 2) "quoted arg" ...
//   ----
//   expected output, one or more lines
//   <blank line or end of file>
//
// When the output itself contains a blank line (or a line "----"), the block is fenced by a
// doubled separator so that it can be read back unambiguously:
//
//   name args
//   ----
//   ----
//   output with
//
//   blank lines
//   ----
//   ----
//
// A command that prints nothing has the output "ok".
//
// Everything here is pure (strings in, strings out); main.cc does the file I/O.
// Thread-safety: none needed; values only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace synod::raft::script {

// One argument: `key=value`, `key=(v1,v2)`, or a positional `value` / `(v1 v2)` (key empty).
struct Arg {
  std::string key;
  std::vector<std::string> vals;
  bool grouped = false;  // written in parentheses
};

// The arguments of one command, with typed accessors that return errors a script author can
// act on ("tick: bad number 'x'").
class Args {
 public:
  Args() = default;
  explicit Args(std::vector<Arg> args) : args_(std::move(args)) {}

  const std::vector<Arg>& all() const { return args_; }
  // The positional (key-less) arguments.
  std::vector<const Arg*> Positional() const;
  // The argument named `key`, or nullptr.
  const Arg* Find(std::string_view key) const;
  // The single value of `key`, or `def` when absent.
  Result<uint64_t> Uint(std::string_view key, uint64_t def) const;
  Result<bool> Bool(std::string_view key, bool def) const;
  std::optional<std::string> Str(std::string_view key) const;
  // Keys that are not in `known`: a misspelt option must not be silently ignored.
  Status CheckKeys(const std::vector<std::string_view>& known) const;

 private:
  std::vector<Arg> args_;
};

Result<uint64_t> ParseUint(std::string_view s);

struct Command {
  int line = 0;          // 1-based line of the command in the script
  std::string text;      // the command line as written (without the newline)
  std::string name;      // the first word
  Args args;             // the rest
  std::string expected;  // the expected output, without the final newline
};

// A parsed script. `prefix[i]` is the verbatim text (comments, blank lines) before
// commands[i]; `suffix` is what follows the last output block.
struct Script {
  std::vector<std::string> prefix;
  std::vector<Command> commands;
  std::string suffix;
};

// Splits a command line into its words (parentheses and double quotes group).
Result<std::vector<Arg>> ParseArgs(std::string_view line);

// Parses a whole script. Errors name the offending line.
Result<Script> ParseScript(std::string_view text);

// The output block for `output`: "----\n<output>\n", or the doubled form when needed.
// An empty output is written as "ok".
std::string FormatOutputBlock(std::string_view output);

// The script text with every command's output replaced by outputs[i] (what --rewrite
// writes). REQUIRES: outputs.size() == script.commands.size().
std::string RenderScript(const Script& script, const std::vector<std::string>& outputs);

// A line diff of expected against actual: lines prefixed "-" (expected only), "+" (actual
// only) or " " (both), from a longest common subsequence.
std::string DiffLines(std::string_view expected, std::string_view actual);

// The result of running every command of a script in a fresh Env.
struct RunResult {
  std::vector<std::string> outputs;  // actual output per command (normalized, "ok" if empty)
  std::vector<size_t> mismatches;    // indexes of commands whose output differed
};
RunResult RunScript(const Script& script);

// "name:LINE: command\n--- expected\n+++ actual\n<diff>" for each mismatch.
std::string DescribeMismatches(std::string_view name, const Script& script, const RunResult& r);

}  // namespace synod::raft::script
