// libFuzzer target for the RESP codec (src/server/resp/). Run it with scripts/fuzz.sh.
//
// Input layout: byte 0 picks the limits and the largest piece size, byte 1 seeds the piece
// sizes, the rest is fed to a RequestParser and to a ReplyParser. Invariants checked:
//   - parsing never crashes, overflows or trips a sanitizer;
//   - the same bytes fed whole or in pieces give the same commands (replies) and error;
//   - after kError every call returns kError with the same text;
//   - every parsed command, re-encoded as a RESP multibulk, parses back to the same argv;
//   - memory held stays proportional to the bytes fed (no allocation from claimed lengths).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "server/resp/resp.h"

namespace synod::resp {
namespace {

using Argv = std::vector<std::string>;

struct RequestOutcome {
  std::vector<Argv> commands;
  bool error = false;
  std::string error_text;
  bool operator==(const RequestOutcome&) const = default;
};

// Piece sizes from a tiny deterministic generator, so a crash reproduces from its input.
class Pieces {
 public:
  Pieces(uint8_t max, uint8_t seed) : max_(max == 0 ? 1 : max), state_(seed * 2654435761u + 1) {}
  size_t NextSize() {
    state_ = state_ * 1103515245u + 12345u;
    return 1 + (state_ >> 16) % max_;
  }

 private:
  uint32_t max_;
  uint32_t state_;
};

void DrainRequests(RequestParser* p, RequestOutcome* out, size_t fed_bytes) {
  // Each command consumes at least two bytes ("x\n"), which bounds the loop.
  for (size_t i = 0; i <= fed_bytes; ++i) {
    Argv argv;
    const RequestParser::State state = p->Next(&argv);
    // Memory follows the bytes received: reserving ahead is capped at 1 MiB per argument and
    // 1024 argument slots, whatever length a client claims. The factor covers the smallest
    // argument, "$0\r\n\r\n": 6 bytes of input for a std::string slot of 32, doubled.
    SYNOD_ASSERT(p->capacity_bytes() <= 16 * fed_bytes + (2u << 20));
    if (state == RequestParser::State::kCommand) {
      SYNOD_ASSERT(!argv.empty());
      out->commands.push_back(std::move(argv));
      continue;
    }
    if (state == RequestParser::State::kError) {
      SYNOD_ASSERT(!p->error().empty());
      out->error = true;
      out->error_text = p->error();
      // Sticky: more bytes change nothing.
      p->Feed("*1\r\n$4\r\nPING\r\n");
      Argv ignored;
      SYNOD_ASSERT(p->Next(&ignored) == RequestParser::State::kError);
      SYNOD_ASSERT(p->error() == out->error_text);
      SYNOD_ASSERT(ignored.empty());
    }
    return;
  }
  SYNOD_UNREACHABLE();
}

RequestOutcome ParseRequests(std::string_view input, Limits limits, Pieces* pieces) {
  RequestParser p(limits);
  RequestOutcome out;
  size_t fed = 0;
  while (fed < input.size() && !out.error) {
    const size_t n = pieces == nullptr ? input.size() : pieces->NextSize();
    const std::string_view piece = input.substr(fed, n);
    p.Feed(piece);
    fed += piece.size();
    DrainRequests(&p, &out, fed);
  }
  return out;
}

std::string Encode(const Argv& argv) {
  std::string out;
  ReplyWriter w(&out);  // a request is an array of bulks, which the writer writes
  w.ArrayHeader(argv.size());
  for (const std::string& a : argv) w.Bulk(a);
  return out;
}

struct ReplyOutcome {
  std::vector<ReplyValue> values;
  bool error = false;
  std::string error_text;
};

ReplyOutcome ParseReplies(std::string_view input, Pieces* pieces) {
  ReplyLimits limits;
  limits.depth_max = 16;
  ReplyParser p(limits);
  ReplyOutcome out;
  size_t fed = 0;
  while (fed < input.size() && !out.error) {
    const size_t n = pieces == nullptr ? input.size() : pieces->NextSize();
    p.Feed(input.substr(fed, n));
    fed += input.substr(fed, n).size();
    for (size_t i = 0; i <= fed; ++i) {  // each value consumes at least 3 bytes
      ReplyValue v;
      const ReplyParser::State state = p.Next(&v);
      if (state == ReplyParser::State::kValue) {
        out.values.push_back(std::move(v));
        continue;
      }
      if (state == ReplyParser::State::kError) {
        out.error = true;
        out.error_text = p.error();
        p.Feed("+OK\r\n");
        SYNOD_ASSERT(p.Next(&v) == ReplyParser::State::kError);
      }
      break;
    }
  }
  return out;
}

void CheckRequests(std::string_view input, uint8_t mode, uint8_t seed) {
  Limits limits;
  if (mode & 0x80) {  // small limits half of the time, so that every bound is reached
    limits.bulk_bytes_max = 64;
    limits.args_max = 8;
    limits.inline_bytes_max = 32;
  }
  const RequestOutcome whole = ParseRequests(input, limits, nullptr);
  Pieces pieces(mode & 0x3f, seed);
  SYNOD_ASSERT(ParseRequests(input, limits, &pieces) == whole);
  Pieces bytes(1, seed);
  SYNOD_ASSERT(ParseRequests(input, limits, &bytes) == whole);
  for (const Argv& argv : whole.commands) {
    const RequestOutcome again = ParseRequests(Encode(argv), Limits{}, nullptr);
    SYNOD_ASSERT(!again.error);
    SYNOD_ASSERT(again.commands.size() == 1);
    SYNOD_ASSERT(again.commands[0] == argv);
  }
}

void CheckReplies(std::string_view input, uint8_t mode, uint8_t seed) {
  const ReplyOutcome whole = ParseReplies(input, nullptr);
  Pieces pieces(mode & 0x3f, seed);
  const ReplyOutcome split = ParseReplies(input, &pieces);
  SYNOD_ASSERT(split.error == whole.error);
  SYNOD_ASSERT(split.error_text == whole.error_text);
  SYNOD_ASSERT(split.values.size() == whole.values.size());
  for (size_t i = 0; i < whole.values.size(); ++i) {
    SYNOD_ASSERT(split.values[i].Equals(whole.values[i]));
  }
}

}  // namespace
}  // namespace synod::resp

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  const uint8_t seed = data[1];
  const std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  synod::resp::CheckRequests(input, mode, seed);
  synod::resp::CheckReplies(input, mode, seed);
  return 0;
}
