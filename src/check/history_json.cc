#include "check/history_json.h"

#include <fmt/format.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

namespace synod::check {
namespace {

using nlohmann::json;

// A field lookup that distinguishes "missing", "null" and a value of the wrong type. Every
// error message names the field; ParseLine adds the line number.
class Fields {
 public:
  explicit Fields(const json& object) : object_(object) {}

  const json* Find(const char* name) const {
    auto it = object_.find(name);
    return it == object_.end() ? nullptr : &*it;
  }

  Status Int(const char* name, int64_t* out) const {
    const json* v = Find(name);
    if (v == nullptr) return Missing(name);
    return ToInt(name, *v, out);
  }

  // A string, or nullopt for null. `*present` tells whether the field exists at all.
  Status OptString(const char* name, std::optional<std::string>* out, bool* present) const {
    const json* v = Find(name);
    *present = v != nullptr;
    out->reset();
    if (v == nullptr || v->is_null()) return Status::Ok();
    if (!v->is_string()) return WrongType(name, "a string or null", *v);
    *out = v->get<std::string>();
    return Status::Ok();
  }

  // A boolean; `fallback` when missing.
  Status Bool(const char* name, bool fallback, bool* out) const {
    const json* v = Find(name);
    if (v == nullptr) {
      *out = fallback;
      return Status::Ok();
    }
    if (!v->is_boolean()) return WrongType(name, "true or false", *v);
    *out = v->get<bool>();
    return Status::Ok();
  }

  static Status ToInt(const char* name, const json& v, int64_t* out) {
    if (v.is_number_unsigned()) {
      const auto u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Status::InvalidArgument(fmt::format("field \"{}\" is too large", name));
      }
      *out = static_cast<int64_t>(u);
      return Status::Ok();
    }
    if (v.is_number_integer()) {
      *out = v.get<int64_t>();
      return Status::Ok();
    }
    return WrongType(name, "an integer", v);
  }

  static Status Missing(const char* name) {
    return Status::InvalidArgument(fmt::format("missing field \"{}\"", name));
  }

  static Status WrongType(const char* name, const char* want, const json& got) {
    return Status::InvalidArgument(
        fmt::format("field \"{}\" must be {}, not {}", name, want, got.type_name()));
  }

 private:
  const json& object_;
};

Status ParseOpType(const Fields& f, OpType* out) {
  const json* v = f.Find("op");
  if (v == nullptr) return Fields::Missing("op");
  if (!v->is_string()) return Fields::WrongType("op", "a string", *v);
  const auto& name = v->get_ref<const std::string&>();
  for (OpType t : {OpType::kGet, OpType::kPut, OpType::kDel, OpType::kCas}) {
    if (name == OpTypeName(t)) {
      *out = t;
      return Status::Ok();
    }
  }
  return Status::InvalidArgument(
      fmt::format("unknown op \"{}\" (expected get, put, del or cas)", name));
}

// The outcome fields. "return" may be missing or null only for an unknown operation; "value"
// must be present (possibly null) for a get whose result is known and for a cas; "expected"
// must be present for a cas.
Status ParseOutcome(const Fields& f, Operation* op) {
  SYNOD_RETURN_IF_ERROR(f.Bool("unknown", false, &op->unknown));
  SYNOD_RETURN_IF_ERROR(f.Bool("ok", true, &op->ok));
  SYNOD_RETURN_IF_ERROR(f.Int("call", &op->call_ns));
  const json* ret = f.Find("return");
  if (ret != nullptr && !(op->unknown && ret->is_null())) {
    SYNOD_RETURN_IF_ERROR(Fields::ToInt("return", *ret, &op->return_ns));
  } else if (op->unknown) {
    op->return_ns = op->call_ns;
  } else {
    return Fields::Missing("return");
  }
  bool has_value = false;
  bool has_expected = false;
  SYNOD_RETURN_IF_ERROR(f.OptString("value", &op->value, &has_value));
  SYNOD_RETURN_IF_ERROR(f.OptString("expected", &op->expected, &has_expected));
  const bool known_get = op->type == OpType::kGet && !op->unknown && op->ok;
  if (!has_value && (known_get || op->type == OpType::kCas)) return Fields::Missing("value");
  if (!has_expected && op->type == OpType::kCas) return Fields::Missing("expected");
  return ValidateOperation(*op);
}

Status ParseObject(const json& j, Operation* op) {
  if (!j.is_object()) return Status::InvalidArgument("expected a JSON object");
  const Fields f(j);
  SYNOD_RETURN_IF_ERROR(f.Int("client", &op->client));
  SYNOD_RETURN_IF_ERROR(ParseOpType(f, &op->type));
  const json* key = f.Find("key");
  if (key == nullptr) return Fields::Missing("key");
  if (!key->is_string()) return Fields::WrongType("key", "a string", *key);
  op->key = key->get<std::string>();
  return ParseOutcome(f, op);
}

// Exceptions stay inside this function: nlohmann reports syntax errors by throwing.
Status ParseLine(std::string_view line, Operation* op) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {
    std::string_view what = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix; keep the description.
    // Its "line 1" is always 1 (we parse one line at a time): keep only the column.
    if (auto pos = what.find("] "); pos != std::string_view::npos) what.remove_prefix(pos + 2);
    std::string message(what);
    if (auto pos = message.find("at line 1, column"); pos != std::string::npos) {
      message.replace(pos, 17, "at column");
    }
    return Status::InvalidArgument(fmt::format("malformed JSON: {}", message));
  }
  return ParseObject(j, op);
}

bool IsBlank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

}  // namespace

Result<History> ParseHistoryJsonl(std::string_view text) {
  History history;
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (IsBlank(line)) continue;
    Operation op;
    Status s = ParseLine(line, &op);
    if (!s.ok()) {
      return Status::InvalidArgument(fmt::format("line {}: {}", line_number, s.message()));
    }
    history.push_back(std::move(op));
  }
  return history;
}

Result<std::string> OperationToJson(const Operation& op) {
  // ordered_json keeps the documented field order, which makes files easy to read and diff.
  nlohmann::ordered_json j;
  j["client"] = op.client;
  j["op"] = std::string(OpTypeName(op.type));
  j["key"] = op.key;
  j["value"] = op.value.has_value() ? nlohmann::ordered_json(*op.value) : nullptr;
  j["expected"] = op.expected.has_value() ? nlohmann::ordered_json(*op.expected) : nullptr;
  j["call"] = op.call_ns;
  j["return"] = op.return_ns;
  j["ok"] = op.ok;
  j["unknown"] = op.unknown;
  try {
    return j.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    return Status::InvalidArgument("key or value is not valid UTF-8; JSON cannot carry it");
  }
}

Result<std::string> WriteHistoryJsonl(const History& history) {
  std::string out;
  for (size_t i = 0; i < history.size(); ++i) {
    Result<std::string> line = OperationToJson(history[i]);
    if (!line.ok()) {
      return Status::InvalidArgument(fmt::format("op #{}: {}", i + 1, line.status().message()));
    }
    out += *line;
    out += '\n';
  }
  return out;
}

}  // namespace synod::check
