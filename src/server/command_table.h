// The command table: every Redis command Synod answers, declared once with its arity, flags
// and key positions (Kvrocks's commander table, with flags as an enum rather than strings).
//
// The key positions let the cluster route a command without knowing it, and feed COMMAND INFO
// and COMMAND GETKEYS. A handler gets the parsed arguments and a ReplySink and answers through
// the sink exactly once, now or later (a write answers when its Raft entry is applied).
//
// Thread-safety: the table is immutable after start-up; handlers run on the core thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/resp/resp.h"

namespace synod::server {

class Connection;
class ServerContext;

// Command flags, as COMMAND INFO reports them.
enum CommandFlag : uint32_t {
  kWrite = 1 << 0,     // may modify the keyspace: proposed through Raft
  kReadOnly = 1 << 1,  // reads the keyspace: ReadIndex/lease, or local after READONLY
  kFast = 1 << 2,      // O(1) or O(log n)
  kAdmin = 1 << 3,     // server administration
  kNoAuth = 1 << 4,    // allowed before AUTH
  kLoading = 1 << 5,   // allowed while the node is not ready
  kStale = 1 << 6,     // answered from local state only (INFO, PING)
  kConnection = 1 << 7,
  kTransaction = 1 << 8,  // runs at once inside MULTI (EXEC, DISCARD, MULTI, WATCH, QUIT)
};

// The most commands one MULTI may queue (the batch entry's bound is kv::kBatchMax).
inline constexpr size_t kTransactionCommandsMax = 100'000;

// Where a reply goes. Holds the connection weakly: a reply that arrives after the client left
// is dropped. Exactly one of the reply calls must be made (the sink asserts it).
class ReplySink {
 public:
  ReplySink(std::weak_ptr<Connection> conn, uint64_t slot, int protocol)
      : conn_(std::move(conn)), slot_(slot), protocol_(protocol) {}
  ReplySink(ReplySink&&) noexcept = default;
  ReplySink& operator=(ReplySink&&) noexcept = default;
  ReplySink(const ReplySink&) = delete;
  ReplySink& operator=(const ReplySink&) = delete;
  ~ReplySink();

  int protocol() const { return protocol_; }
  // Sends the bytes made by a resp::ReplyWriter of protocol().
  void Send(std::string bytes);
  // Shorthands.
  void Error(std::string_view message);  // "-<message>"
  void Ok();
  void Integer(int64_t v);
  void Bulk(std::string_view s);
  void Null();

 private:
  std::weak_ptr<Connection> conn_;
  uint64_t slot_ = 0;
  int protocol_ = 2;
  bool done_ = false;
};

struct CommandCall {
  ServerContext& ctx;
  Connection& conn;
  std::vector<std::string>& argv;  // argv[0] is the command name as the client sent it
};

using CommandHandler = void (*)(CommandCall& call, ReplySink sink);

struct CommandSpec {
  const char* name;  // lower case
  // Redis arity: N > 0 exactly N arguments (name included); -N at least N.
  int arity;
  uint32_t flags;
  int first_key;  // 0 when the command takes no key
  int last_key;   // -1: the last argument
  int key_step;
  CommandHandler handler;
  const char* summary;
};

// The table, sorted by name. Lookup is case-insensitive; nullptr when unknown.
const std::vector<CommandSpec>& CommandTable();
const CommandSpec* FindCommand(std::string_view name);
// Whether argv's length satisfies the spec's arity.
bool ArityOk(const CommandSpec& spec, size_t argc);
// The positions of the keys in an argv of `argc` arguments (the name at 0), from first_key,
// last_key (negative: from the end) and key_step, as Redis's legacy key range. Empty when the
// command takes no key. COMMAND GETKEYS answers with them.
std::vector<size_t> KeyPositions(const CommandSpec& spec, size_t argc);
// The flag names COMMAND INFO lists ("write", "readonly", ...).
std::vector<std::string_view> FlagNames(uint32_t flags);

}  // namespace synod::server
