// raft_script: runs Raft interaction scripts (see script.h for the format).
//
//   raft_script test FILE_OR_DIR... [--rewrite]
//       Runs each script and compares every command's output with the expected output in
//       the file. On a mismatch prints a diff per command and exits 1. With --rewrite the
//       files are rewritten with the actual output instead (then read the git diff!).
//   raft_script run DIR
//       Runs every script in DIR and prints each as a transcript (comments, commands and
//       their actual output), then "ran N scenarios, M mismatches".
//
// This file is the only one of the driver that touches files; the rest is pure.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "raft/script/script.h"

namespace fs = std::filesystem;
using synod::raft::script::DescribeMismatches;
using synod::raft::script::ParseScript;
using synod::raft::script::RenderScript;
using synod::raft::script::RunResult;
using synod::raft::script::RunScript;

namespace {

int Usage() {
  std::cerr << "usage: raft_script test FILE_OR_DIR... [--rewrite]\n"
               "       raft_script run DIR\n";
  return 2;
}

bool ReadFile(const fs::path& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

bool WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

// The scripts named by `args`: files as given, directories expanded to their *.txt, sorted.
std::vector<fs::path> CollectScripts(const std::vector<std::string>& args, bool* ok) {
  std::vector<fs::path> files;
  for (const std::string& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      std::vector<fs::path> in_dir;
      for (const auto& e : fs::directory_iterator(a, ec)) {
        if (e.is_regular_file() && e.path().extension() == ".txt") in_dir.push_back(e.path());
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (fs::is_regular_file(a, ec)) {
      files.emplace_back(a);
    } else {
      std::cerr << a << ": no such file or directory\n";
      *ok = false;
    }
  }
  return files;
}

// Runs one script. Returns the number of mismatching commands, or -1 on a read/parse error.
int RunOne(const fs::path& path, bool rewrite, bool transcript) {
  std::string text;
  if (!ReadFile(path, &text)) {
    std::cerr << path.string() << ": cannot read\n";
    return -1;
  }
  auto script = ParseScript(text);
  if (!script.ok()) {
    std::cerr << path.string() << ": " << script.status().message() << "\n";
    return -1;
  }
  RunResult r = RunScript(*script);
  const std::string actual = RenderScript(*script, r.outputs);
  if (transcript) {
    std::cout << "=== " << path.stem().string() << " ===\n" << actual << "\n";
  }
  if (r.mismatches.empty()) return 0;
  if (rewrite) {
    if (!WriteFile(path, actual)) {
      std::cerr << path.string() << ": cannot write\n";
      return -1;
    }
    std::cout << path.string() << ": rewrote " << r.mismatches.size() << " outputs\n";
    return 0;
  }
  std::cout << DescribeMismatches(path.string(), *script, r);
  return static_cast<int>(r.mismatches.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Usage();
  const std::string mode = argv[1];
  bool rewrite = false;
  std::vector<std::string> targets;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--rewrite") {
      rewrite = true;
    } else {
      targets.push_back(a);
    }
  }
  if ((mode != "test" && mode != "run") || (mode == "run" && rewrite)) return Usage();
  bool ok = true;
  const std::vector<fs::path> files = CollectScripts(targets, &ok);
  int mismatches = 0;
  int failed = 0;
  for (const fs::path& f : files) {
    int m = RunOne(f, rewrite, mode == "run");
    if (m < 0) {
      ++failed;
    } else {
      mismatches += m;
    }
  }
  std::cout << "ran " << files.size() << " scenarios, " << mismatches << " mismatches";
  if (failed > 0) std::cout << ", " << failed << " unreadable";
  std::cout << "\n";
  return ok && mismatches == 0 && failed == 0 ? 0 : 1;
}
