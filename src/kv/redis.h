// Redis's string and keyspace commands over a Keyspace, as pure deterministic functions.
//
// Redis's behaviour is the specification: reply types, error texts ("ERR syntax error",
// "ERR value is not an integer or out of range", ...) and every option's edge cases. Each
// command is a function of (keyspace, argv, context); none reads a clock or a random source:
// the context carries the time (and, for RANDOMKEY, a random number chosen by the caller).
//
// Write commands run at apply time on every replica (StateMachine, op kRedis) with the entry's
// logical time, so relative TTLs become the same absolute times everywhere. Read commands run
// on one replica against its current state (linearizable or stale, the host decides) with the
// reader's time; a key past its expiry is absent to them. A write command may also run a read
// command inside a transaction (MULTI/EXEC applies reads and writes in one entry).
//
// The host (server/) checks arity before proposing, but every function is safe with any argv
// decoded from a log: a wrong argument count or a bad option is an error reply, never a crash.
//
// Thread-safety: the functions are pure; the Keyspace is the caller's to serialize.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kv/command.h"
#include "kv/keyspace.h"

namespace synod::kv {

struct Options;

using Args = std::vector<std::string>;

struct ExecContext {
  // Unix ms: the entry's logical time (writes) or the reader's clock (reads).
  int64_t now_ms = 0;
  // Longest value (proto-max-bulk-len); APPEND/SETRANGE/... results above it are refused with
  // "ERR string exceeds maximum allowed size (proto-max-bulk-len)".
  uint64_t value_bytes_max = 512ull * 1024 * 1024;
  uint64_t key_bytes_max = 64 * 1024;
  // RANDOMKEY only: a random number picked by the reading host.
  uint64_t random = 0;
};

using ReadFnPtr = Reply (*)(const Keyspace& ks, const Args& argv, const ExecContext& ctx);
using WriteFnPtr = Reply (*)(Keyspace& ks, const Args& argv, const ExecContext& ctx);

struct RedisCommand {
  const char* name;  // lower case
  int arity;         // Redis arity: N exactly N arguments (name included), -N at least N
  ReadFnPtr read;    // exactly one of read and write is set
  WriteFnPtr write;
  // Where its keys are, as Redis's legacy key range (the server's command table says the same:
  // a test holds them equal): first (0: no key), last (negative: from the end), step.
  int first_key = 1;
  int last_key = 1;
  int key_step = 1;
};

// The commands kv executes, by lower-case name (case-insensitive lookup). nullptr if unknown.
const RedisCommand* FindRedisCommand(std::string_view name);
const std::vector<RedisCommand>& RedisCommands();

// The positions of the keys in `argv` for the command `cmd` (empty for a keyless command, or an
// argv too short for its first key).
std::vector<size_t> KeyPositions(const RedisCommand& cmd, size_t argc);

// Runs any command of the table at apply time (reads included, for transactions). Unknown
// names and wrong arity get the error replies Redis gives.
Reply ExecuteRedis(Keyspace& ks, const Args& argv, const ExecContext& ctx);
// Runs a read command against a replica's state. A write command here is a programmer error.
Reply ExecuteRedisRead(const Keyspace& ks, const Args& argv, const ExecContext& ctx);

// Helpers shared by the command files (redis_*.cc).
namespace redis {

// Redis's string2ll: optional '-', digits, no leading zeros, no spaces, within int64.
bool ParseInt64(std::string_view s, int64_t* out);
std::string FormatInt64(int64_t v);
// Redis's string2ld for INCRBYFLOAT: a finite long double, no spaces.
bool ParseLongDouble(std::string_view s, long double* out);
// Formats as Redis's ld2string(LD_STR_HUMAN): up to 17 significant digits, no exponent,
// trailing zeros removed.
std::string FormatLongDouble(long double v);
// Case-insensitive ASCII equality ("ex" == "EX").
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
// Redis's glob matching (stringmatchlen): * ? [abc] [^a] [a-z] and \ escapes.
bool GlobMatch(std::string_view pattern, std::string_view s);

// The common error replies, with Redis's exact texts.
Reply WrongArity(std::string_view name);  // "ERR wrong number of arguments for 'x' command"
Reply SyntaxError();                      // "ERR syntax error"
Reply NotInteger();                       // "ERR value is not an integer or out of range"
Reply NotFloat();                         // "ERR value is not a valid float"
Reply TooLarge();  // "ERR string exceeds maximum allowed size (proto-max-bulk-len)"

void AddStringCommands(std::vector<RedisCommand>* table);
void AddKeyCommands(std::vector<RedisCommand>* table);

}  // namespace redis

}  // namespace synod::kv
