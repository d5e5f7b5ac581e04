#include "raft/script/script.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/assert.h"
#include "raft/script/env.h"

namespace synod::raft::script {

namespace {

constexpr std::string_view kSeparator = "----";
// Above this many cells the LCS table is not built and the diff shows both sides whole.
constexpr size_t kDiffCellsMax = size_t{4} << 20;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool IsBlank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return IsSpace(c); });
}

bool IsComment(std::string_view line) {
  size_t i = 0;
  while (i < line.size() && IsSpace(line[i])) ++i;
  return i < line.size() && line[i] == '#';
}

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// Reads a double-quoted string starting at line[pos] == '"'; advances pos past the quote.
Result<std::string> ReadQuoted(std::string_view line, size_t& pos) {
  std::string out;
  for (++pos; pos < line.size(); ++pos) {
    char c = line[pos];
    if (c == '"') {
      ++pos;
      return out;
    }
    if (c == '\\' && pos + 1 < line.size()) c = line[++pos];
    out.push_back(c);
  }
  return Status::InvalidArgument("unterminated quote");
}

// Reads "(a,b c)" starting at line[pos] == '('; values split on commas and spaces.
Result<std::vector<std::string>> ReadGroup(std::string_view line, size_t& pos) {
  size_t close = line.find(')', pos);
  if (close == std::string_view::npos) return Status::InvalidArgument("unterminated '('");
  std::vector<std::string> vals;
  std::string cur;
  for (size_t i = pos + 1; i < close; ++i) {
    if (line[i] == ',' || IsSpace(line[i])) {
      if (!cur.empty()) vals.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(line[i]);
    }
  }
  if (!cur.empty()) vals.push_back(std::move(cur));
  pos = close + 1;
  return vals;
}

// Reads one value (quoted, grouped or bare) at line[pos] into arg.
Status ReadValue(std::string_view line, size_t& pos, Arg& arg) {
  if (pos < line.size() && line[pos] == '(') {
    auto vals = ReadGroup(line, pos);
    if (!vals.ok()) return vals.status();
    arg.vals = std::move(vals).value();
    arg.grouped = true;
    return Status::Ok();
  }
  if (pos < line.size() && line[pos] == '"') {
    auto s = ReadQuoted(line, pos);
    if (!s.ok()) return s.status();
    arg.vals.push_back(std::move(s).value());
    return Status::Ok();
  }
  size_t end = pos;
  while (end < line.size() && !IsSpace(line[end])) ++end;
  arg.vals.emplace_back(line.substr(pos, end - pos));
  pos = end;
  return Status::Ok();
}

bool NeedsDoubleSeparator(std::string_view output) {
  for (std::string_view line : SplitLines(output)) {
    if (IsBlank(line) || line == kSeparator) return true;
  }
  return false;
}

std::string Normalize(std::string out) {
  while (!out.empty() && (out.back() == '\n' || IsSpace(out.back()))) out.pop_back();
  if (out.empty()) return "ok";
  return out;
}

// Reads the output block after a command's "----" line; `i` is the index of the first line
// after it and ends past the block.
Result<std::string> ReadOutputBlock(const std::vector<std::string_view>& lines, size_t& i) {
  std::string out;
  if (i < lines.size() && lines[i] == kSeparator) {
    const size_t open = i;
    for (++i; i + 1 < lines.size(); ++i) {
      // The fence closes with ----/---- followed by a blank line or the end, so that the
      // output itself may contain a "----" line.
      const bool at_end = i + 2 >= lines.size() || IsBlank(lines[i + 2]);
      if (lines[i] == kSeparator && lines[i + 1] == kSeparator && at_end) {
        i += 2;
        if (!out.empty()) out.pop_back();
        return out;
      }
      out.append(lines[i]).push_back('\n');
    }
    return Status::InvalidArgument(
        fmt::format("line {}: output opened with ----/---- is not closed by ----/----", open + 1));
  }
  for (; i < lines.size() && !IsBlank(lines[i]); ++i) out.append(lines[i]).push_back('\n');
  if (!out.empty()) out.pop_back();
  return out;
}

}  // namespace

std::vector<const Arg*> Args::Positional() const {
  std::vector<const Arg*> out;
  for (const Arg& a : args_) {
    if (a.key.empty()) out.push_back(&a);
  }
  return out;
}

const Arg* Args::Find(std::string_view key) const {
  for (const Arg& a : args_) {
    if (a.key == key) return &a;
  }
  return nullptr;
}

Result<uint64_t> ParseUint(std::string_view s) {
  if (s.empty() || s.size() > 19) return Status::InvalidArgument(fmt::format("bad number '{}'", s));
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return Status::InvalidArgument(fmt::format("bad number '{}'", s));
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

Result<uint64_t> Args::Uint(std::string_view key, uint64_t def) const {
  const Arg* a = Find(key);
  if (a == nullptr) return def;
  if (a->vals.size() != 1) return Status::InvalidArgument(fmt::format("{}= wants one value", key));
  return ParseUint(a->vals[0]);
}

Result<bool> Args::Bool(std::string_view key, bool def) const {
  const Arg* a = Find(key);
  if (a == nullptr) return def;
  if (a->vals.size() == 1 && a->vals[0] == "true") return true;
  if (a->vals.size() == 1 && a->vals[0] == "false") return false;
  return Status::InvalidArgument(fmt::format("{}= wants true or false", key));
}

std::optional<std::string> Args::Str(std::string_view key) const {
  const Arg* a = Find(key);
  if (a == nullptr || a->vals.size() != 1) return std::nullopt;
  return a->vals[0];
}

Status Args::CheckKeys(const std::vector<std::string_view>& known) const {
  for (const Arg& a : args_) {
    if (a.key.empty()) continue;
    if (std::find(known.begin(), known.end(), a.key) == known.end()) {
      return Status::InvalidArgument(fmt::format("unknown option '{}='", a.key));
    }
  }
  return Status::Ok();
}

Result<std::vector<Arg>> ParseArgs(std::string_view line) {
  std::vector<Arg> args;
  size_t pos = 0;
  while (true) {
    while (pos < line.size() && IsSpace(line[pos])) ++pos;
    if (pos >= line.size()) break;
    Arg arg;
    // A key is a bare word directly followed by '='.
    size_t word_end = pos;
    while (word_end < line.size() && !IsSpace(line[word_end]) && line[word_end] != '=' &&
           line[word_end] != '(' && line[word_end] != '"') {
      ++word_end;
    }
    if (word_end < line.size() && line[word_end] == '=' && word_end > pos) {
      arg.key = std::string(line.substr(pos, word_end - pos));
      pos = word_end + 1;
    }
    SYNOD_RETURN_IF_ERROR(ReadValue(line, pos, arg));
    args.push_back(std::move(arg));
  }
  return args;
}

Result<Script> ParseScript(std::string_view text) {
  const std::vector<std::string_view> lines = SplitLines(text);
  Script script;
  std::string prefix;
  size_t i = 0;
  while (i < lines.size()) {
    if (IsBlank(lines[i]) || IsComment(lines[i])) {
      prefix.append(lines[i]).push_back('\n');
      ++i;
      continue;
    }
    Command cmd;
    cmd.line = static_cast<int>(i) + 1;
    cmd.text = std::string(lines[i]);
    auto args = ParseArgs(lines[i]);
    if (!args.ok()) {
      return Status::InvalidArgument(fmt::format("line {}: {}", cmd.line, args.status().message()));
    }
    std::vector<Arg> words = std::move(args).value();
    cmd.name = words.front().vals.empty() ? "" : words.front().vals.front();
    words.erase(words.begin());
    cmd.args = Args(std::move(words));
    ++i;
    if (i >= lines.size() || lines[i] != kSeparator) {
      return Status::InvalidArgument(
          fmt::format("line {}: expected ---- after the command", i + 1));
    }
    ++i;
    auto out = ReadOutputBlock(lines, i);
    if (!out.ok()) return out.status();
    cmd.expected = std::move(out).value();
    script.prefix.push_back(std::move(prefix));
    prefix.clear();
    script.commands.push_back(std::move(cmd));
  }
  script.suffix = std::move(prefix);
  return script;
}

std::string FormatOutputBlock(std::string_view output) {
  std::string out = Normalize(std::string(output));
  if (NeedsDoubleSeparator(out)) return fmt::format("----\n----\n{}\n----\n----\n", out);
  return fmt::format("----\n{}\n", out);
}

std::string RenderScript(const Script& script, const std::vector<std::string>& outputs) {
  SYNOD_ASSERT(outputs.size() == script.commands.size());
  std::string out;
  for (size_t i = 0; i < script.commands.size(); ++i) {
    out += script.prefix[i];
    out += script.commands[i].text;
    out += '\n';
    out += FormatOutputBlock(outputs[i]);
  }
  out += script.suffix;
  return out;
}

std::string DiffLines(std::string_view expected, std::string_view actual) {
  const std::vector<std::string_view> a = SplitLines(expected);
  const std::vector<std::string_view> b = SplitLines(actual);
  std::string out;
  if ((a.size() + 1) * (b.size() + 1) > kDiffCellsMax) {
    for (std::string_view l : a) out.append("-").append(l).push_back('\n');
    for (std::string_view l : b) out.append("+").append(l).push_back('\n');
    return out;
  }
  // lcs[i][j]: the longest common subsequence of a[i:] and b[j:].
  const size_t w = b.size() + 1;
  std::vector<uint32_t> lcs((a.size() + 1) * w, 0);
  for (size_t i = a.size(); i-- > 0;) {
    for (size_t j = b.size(); j-- > 0;) {
      lcs[i * w + j] = a[i] == b[j] ? lcs[(i + 1) * w + j + 1] + 1
                                    : std::max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
    }
  }
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    if (i < a.size() && j < b.size() && a[i] == b[j]) {
      out.append(" ").append(a[i++]).push_back('\n');
      ++j;
    } else if (j < b.size() && (i == a.size() || lcs[i * w + j + 1] >= lcs[(i + 1) * w + j])) {
      out.append("+").append(b[j++]).push_back('\n');
    } else {
      out.append("-").append(a[i++]).push_back('\n');
    }
  }
  return out;
}

RunResult RunScript(const Script& script) {
  RunResult r;
  Env env;
  for (size_t i = 0; i < script.commands.size(); ++i) {
    const Command& cmd = script.commands[i];
    r.outputs.push_back(Normalize(env.Run(cmd)));
    if (r.outputs.back() != Normalize(cmd.expected)) r.mismatches.push_back(i);
  }
  return r;
}

std::string DescribeMismatches(std::string_view name, const Script& script, const RunResult& r) {
  std::string out;
  for (size_t i : r.mismatches) {
    const Command& cmd = script.commands[i];
    out += fmt::format("{}:{}: output differs for: {}\n--- expected\n+++ actual\n", name, cmd.line,
                       cmd.text);
    out += DiffLines(Normalize(cmd.expected), r.outputs[i]);
  }
  return out;
}

}  // namespace synod::raft::script
