#include "loadgen/workload.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstring>

#include "common/assert.h"

namespace synod::loadgen {
namespace {

constexpr std::string_view kKeyPrefix = "key:";
constexpr std::string_view kKeyWord = "__key__";
constexpr std::string_view kValueWord = "__value__";
// Keys longer than this would only measure memcpy; the RESP limit is far above.
constexpr size_t kKeySizeMax = 1024;
constexpr size_t kValueSizeMax = 64 << 20;

size_t DecimalDigits(uint64_t v) {
  size_t n = 1;
  while (v >= 10) {
    v /= 10;
    ++n;
  }
  return n;
}

bool ParseNumber(std::string_view s, double* out) {
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(*out);
}

}  // namespace

Result<Workload> Workload::Make(const WorkloadOptions& options) {
  if (options.keys == 0) return Status::InvalidArgument("the key space must hold at least 1 key");
  if (options.key_size == 0 || options.key_size > kKeySizeMax) {
    return Status::InvalidArgument(fmt::format("the key size must be 1..{}", kKeySizeMax));
  }
  if (options.value_size > kValueSizeMax) {
    return Status::InvalidArgument(fmt::format("the value size must be 0..{}", kValueSizeMax));
  }
  if (!(options.read_fraction >= 0 && options.read_fraction <= 1)) {
    return Status::InvalidArgument("the read fraction must be in 0..1");
  }
  const size_t digits = DecimalDigits(options.keys - 1);
  if (digits > options.key_size) {
    return Status::InvalidArgument(
        fmt::format("{} keys need {} digits, more than the key size of {} bytes", options.keys,
                    digits, options.key_size));
  }
  Workload w(options);
  w.prefix_bytes_ = options.key_size >= kKeyPrefix.size() + digits ? kKeyPrefix.size() : 0;
  const std::string key_word(kKeyWord);
  w.get_ = w.Encode({"GET", key_word});
  w.set_ = w.Encode({"SET", key_word, std::string(kValueWord)});
  if (!options.command.empty()) {
    std::vector<std::string> words = options.command;
    bool has_key = false;
    for (const std::string& word : words) has_key = has_key || word == kKeyWord;
    if (!has_key) words.push_back(key_word);
    w.custom_ = w.Encode(words);
  }
  return w;
}

Workload::Template Workload::Encode(const std::vector<std::string>& words) const {
  Template t;
  t.bytes = fmt::format("*{}\r\n", words.size());
  for (const std::string& word : words) {
    if (word == kKeyWord) {
      t.bytes += fmt::format("${}\r\n", options_.key_size);
      t.key_offsets.push_back(t.bytes.size());
      t.bytes.append(options_.key_size, '0');
    } else if (word == kValueWord) {
      // Redis-benchmark's value: the same byte repeated, so compression cannot flatter us
      // less than it flatters redis-benchmark.
      t.bytes += fmt::format("${}\r\n", options_.value_size);
      t.bytes.append(options_.value_size, 'x');
    } else {
      t.bytes += fmt::format("${}\r\n{}", word.size(), word);
    }
    t.bytes += "\r\n";
  }
  return t;
}

void Workload::WriteKey(uint64_t index, char* dst) const {
  SYNOD_ASSERT(index < options_.keys);
  std::memcpy(dst, kKeyPrefix.data(), prefix_bytes_);
  // Digits from the right; the loop is bounded by the key size.
  for (size_t i = options_.key_size; i > prefix_bytes_; --i) {
    dst[i - 1] = static_cast<char>('0' + index % 10);
    index /= 10;
  }
}

std::string Workload::Key(uint64_t index) const {
  std::string key(options_.key_size, '0');
  WriteKey(index, key.data());
  return key;
}

void Workload::Append(const Template& t, Rng& rng, std::string* out) const {
  const size_t start = out->size();
  out->append(t.bytes);
  const uint64_t index = rng.Below(options_.keys);
  for (size_t offset : t.key_offsets) WriteKey(index, out->data() + start + offset);
}

OpKind Workload::AppendRequest(Rng& rng, std::string* out) const {
  if (!options_.command.empty()) {
    Append(custom_, rng, out);
    return OpKind::kCustom;
  }
  // Compared against a uniform draw so that 0 and 1 are exact (never / always a read).
  if (options_.read_fraction > 0 && rng.Unit() < options_.read_fraction) {
    Append(get_, rng, out);
    return OpKind::kRead;
  }
  Append(set_, rng, out);
  return OpKind::kWrite;
}

Result<int64_t> ParseDuration(std::string_view text) {
  struct Unit {
    std::string_view suffix;
    double ns;
  };
  // Longest suffixes first, so that "ms" is not read as "m" followed by garbage.
  static constexpr Unit kUnits[] = {{"ms", 1e6}, {"us", 1e3}, {"ns", 1},
                                    {"s", 1e9},  {"m", 60e9}, {"h", 3600e9}};
  double scale = 1e9;
  std::string_view number = text;
  for (const Unit& u : kUnits) {
    if (text.size() > u.suffix.size() && text.ends_with(u.suffix)) {
      number = text.substr(0, text.size() - u.suffix.size());
      scale = u.ns;
      break;
    }
  }
  double v = 0;
  if (!ParseNumber(number, &v) || v < 0 || v * scale > 9e18) {
    return Status::InvalidArgument(
        fmt::format("bad duration '{}' (want e.g. 10s, 500ms, 2m)", text));
  }
  return static_cast<int64_t>(std::llround(v * scale));
}

Result<double> ParseRatio(std::string_view text) {
  const size_t colon = text.find(':');
  double r = 0;
  double w = 0;
  if (colon == std::string_view::npos || !ParseNumber(text.substr(0, colon), &r) ||
      !ParseNumber(text.substr(colon + 1), &w) || r < 0 || w < 0 || r + w <= 0) {
    return Status::InvalidArgument(
        fmt::format("bad ratio '{}' (want READS:WRITES, e.g. 9:1)", text));
  }
  return r / (r + w);
}

std::vector<std::string> SplitCommand(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  bool quoted = false;
  bool in_word = false;
  for (char c : text) {
    if (c == '"') {
      quoted = !quoted;
      in_word = true;
    } else if (c == ' ' && !quoted) {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word.push_back(c);
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

}  // namespace synod::loadgen
