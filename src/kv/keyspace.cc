#include "kv/keyspace.h"

#include "common/assert.h"
#include "common/slot.h"

namespace synod::kv {

namespace {

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view* in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in->empty()) return false;
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

constexpr char kValueKind = 'v';
constexpr char kTombstoneKind = 't';

}  // namespace

uint16_t KeySlot(std::string_view key) { return synod::KeySlot(key); }

uint64_t KeyPosition(std::string_view key) {
  return (static_cast<uint64_t>(KeySlot(key)) << 50) | (Fnv1a64(key) >> 14);
}

// A value record: 'v', varint version, varint expire_ms, then the bytes.
// A tombstone record: 't', varint deleting index.
std::string EncodeValueRecord(const Value& v) {
  SYNOD_ASSERT(v.expire_ms >= 0);
  std::string out;
  out.reserve(v.bytes.size() + 12);
  out.push_back(kValueKind);
  PutVarint(v.version.value(), &out);
  PutVarint(static_cast<uint64_t>(v.expire_ms), &out);
  out.append(v.bytes);
  return out;
}

std::string EncodeTombstoneRecord(LogIndex deleted_at) {
  std::string out;
  out.push_back(kTombstoneKind);
  PutVarint(deleted_at.value(), &out);
  return out;
}

Result<DecodedRecord> DecodeRecord(std::string_view bytes) {
  if (bytes.empty()) return Status::Corruption("kv record: empty");
  const char kind = bytes.front();
  bytes.remove_prefix(1);
  DecodedRecord r;
  uint64_t version = 0;
  if (!GetVarint(&bytes, &version)) return Status::Corruption("kv record: bad version");
  r.value.version = LogIndex(version);
  if (kind == kTombstoneKind) {
    if (!bytes.empty()) return Status::Corruption("kv record: bytes after a tombstone");
    r.tombstone = true;
    return r;
  }
  if (kind != kValueKind) return Status::Corruption("kv record: unknown kind");
  uint64_t expire = 0;
  if (!GetVarint(&bytes, &expire) || expire > static_cast<uint64_t>(INT64_MAX)) {
    return Status::Corruption("kv record: bad expiry");
  }
  r.value.expire_ms = static_cast<int64_t>(expire);
  r.value.bytes = std::string(bytes);
  return r;
}

Keyspace::Keyspace(const Keyspace& o)
    : tombstones_max_(o.tombstones_max_),
      map_(o.map_),
      expiry_(o.expiry_),
      tombstones_(o.tombstones_),
      tombstone_order_(o.tombstone_order_),
      tombstone_floor_(o.tombstone_floor_),
      flush_index_(o.flush_index_),
      index_(o.index_),
      bytes_(o.bytes_),
      touched_(o.touched_) {
  RebuildIndex();
}

Keyspace& Keyspace::operator=(const Keyspace& o) {
  if (this != &o) *this = Keyspace(o);
  return *this;
}

void Keyspace::RebuildIndex() {
  lookup_.clear();
  lookup_.reserve(map_.size());
  for (auto it = map_.begin(); it != map_.end(); ++it) {
    lookup_.emplace(KeyRef{it->first.pos, it->first.bytes}, it);
  }
}

Value* Keyspace::Lookup(std::string_view key) const {
  auto it = lookup_.find(KeyRef{KeyPosition(key), key});
  return it == lookup_.end() ? nullptr : &it->second->second;
}

const Value* Keyspace::FindRaw(std::string_view key) const { return Lookup(key); }

const Value* Keyspace::Find(std::string_view key, int64_t now_ms) const {
  const Value* v = FindRaw(key);
  if (v == nullptr || (v->expire_ms != 0 && v->expire_ms <= now_ms)) return nullptr;
  return v;
}

LogIndex Keyspace::VersionOf(std::string_view key, int64_t now_ms) const {
  if (const Value* v = Find(key, now_ms)) return v->version;
  auto t = tombstones_.find(key);
  return t == tombstones_.end() ? LogIndex(0) : t->second;
}

std::vector<std::string> Keyspace::Expired(int64_t now_ms, size_t limit) const {
  std::vector<std::string> out;
  for (auto it = expiry_.begin(); it != expiry_.end() && out.size() < limit; ++it) {
    if (it->first > now_ms) break;
    out.push_back(it->second);
  }
  return out;
}

std::optional<int64_t> Keyspace::NextExpiry() const {
  if (expiry_.empty()) return std::nullopt;
  return expiry_.begin()->first;
}

Value* Keyspace::FindForWrite(std::string_view key, int64_t now_ms) {
  Value* v = Lookup(key);
  if (v == nullptr) return nullptr;
  if (v->expire_ms != 0 && v->expire_ms <= now_ms) {
    Erase(key);
    return nullptr;
  }
  return v;
}

Value& Keyspace::Put(std::string_view key, std::string bytes, int64_t expire_ms) {
  SYNOD_ASSERT(expire_ms >= 0);
  const uint64_t pos = KeyPosition(key);
  const KeyRef ref{pos, key};
  auto found = lookup_.find(ref);
  Map::iterator it;
  if (found != lookup_.end()) {
    it = found->second;
  } else {
    DropTombstone(key);  // only a key that is not stored can have one
    it = map_.emplace_hint(map_.lower_bound(ref), Key{pos, std::string(key)}, Value{});
    lookup_.emplace(KeyRef{pos, it->first.bytes}, it);
    bytes_ += key.size();
  }
  Replace(key, it->second, std::move(bytes), expire_ms);
  return it->second;
}

void Keyspace::Replace(std::string_view key, Value& v, std::string bytes, int64_t expire_ms) {
  SYNOD_ASSERT(expire_ms >= 0);
  Touch(key, &v);
  IndexExpiry(key, v.expire_ms, expire_ms);
  bytes_ += bytes.size();
  bytes_ -= v.bytes.size();
  v.bytes = std::move(bytes);
  v.expire_ms = expire_ms;
  v.version = index_;
}

void Keyspace::Modified(std::string_view key, Value& v, size_t old_size) {
  Touch(key, &v);
  bytes_ += v.bytes.size();
  bytes_ -= old_size;
  v.version = index_;
}

void Keyspace::SetExpire(std::string_view key, Value& v, int64_t expire_ms) {
  SYNOD_ASSERT(expire_ms >= 0);
  IndexExpiry(key, v.expire_ms, expire_ms);
  v.expire_ms = expire_ms;
  Modified(key, v, v.bytes.size());
}

bool Keyspace::Erase(std::string_view key) {
  auto found = lookup_.find(KeyRef{KeyPosition(key), key});
  if (found == lookup_.end()) return false;
  const Map::iterator it = found->second;
  Touch(key, nullptr);
  IndexExpiry(key, it->second.expire_ms, 0);
  bytes_ -= key.size() + it->second.bytes.size();
  lookup_.erase(found);  // before the node its key views
  map_.erase(it);
  AddTombstone(key);
  return true;
}

void Keyspace::Clear() {
  for (const auto& [k, v] : map_) Touch(k.bytes, nullptr);
  for (const auto& [k, idx] : tombstones_) Touch(k, nullptr);
  lookup_.clear();
  map_.clear();
  bytes_ = 0;
  expiry_.clear();
  tombstones_.clear();
  tombstone_order_.clear();
  flush_index_ = index_;
}

Keyspace Keyspace::SplitOff(uint16_t first_slot) {
  Keyspace out(tombstones_max_);
  out.tombstone_floor_ = tombstone_floor_;
  out.flush_index_ = flush_index_;
  out.index_ = index_;
  // The keys of the moved slots are the map's tail (positions begin with the slot).
  auto from = map_.lower_bound(KeyRef{static_cast<uint64_t>(first_slot) << 50, {}});
  while (from != map_.end()) {
    auto next = std::next(from);
    lookup_.erase(KeyRef{from->first.pos, from->first.bytes});
    auto node = map_.extract(from);
    const std::string& key = node.key().bytes;
    if (node.mapped().expire_ms != 0) {
      expiry_.erase(std::pair<int64_t, std::string>(node.mapped().expire_ms, key));
      out.expiry_.emplace(node.mapped().expire_ms, key);
    }
    const uint64_t size = key.size() + node.mapped().bytes.size();
    bytes_ -= size;
    out.bytes_ += size;
    // Keys come in ascending order: each goes at the end of the new map.
    auto it = out.map_.insert(out.map_.end(), std::move(node));
    out.lookup_.emplace(KeyRef{it->first.pos, it->first.bytes}, it);
    from = next;
  }
  for (auto t = tombstones_.begin(); t != tombstones_.end();) {
    if (KeySlot(t->first) < first_slot) {
      ++t;
      continue;
    }
    tombstone_order_.erase(std::pair<LogIndex, std::string>(t->second, t->first));
    out.tombstone_order_.emplace(t->second, t->first);
    out.tombstones_.emplace(t->first, t->second);
    t = tombstones_.erase(t);
  }
  return out;
}

void Keyspace::Absorb(Keyspace&& other) {
  if (index_ > tombstone_floor_) tombstone_floor_ = index_;
  for (auto from = other.map_.begin(); from != other.map_.end();) {
    auto node = other.map_.extract(from++);
    const std::string& key = node.key().bytes;
    DropTombstone(key);
    node.mapped().version = index_;
    bytes_ += key.size() + node.mapped().bytes.size();
    const int64_t expire_ms = node.mapped().expire_ms;
    auto result = map_.insert(std::move(node));
    SYNOD_ASSERT_MSG(result.inserted, "a merge took a key the shard holds");
    auto it = result.position;
    IndexExpiry(it->first.bytes, 0, expire_ms);
    lookup_.emplace(KeyRef{it->first.pos, it->first.bytes}, it);
    Touch(it->first.bytes, &it->second);
  }
  other = Keyspace(other.tombstones_max_);
}

bool Keyspace::LoadValue(std::string key, Value v) {
  if (tombstones_.count(key) != 0) return false;
  const uint64_t pos = KeyPosition(key);
  const uint64_t size = key.size() + v.bytes.size();
  const int64_t expire_ms = v.expire_ms;
  auto [it, inserted] = map_.emplace(Key{pos, std::move(key)}, std::move(v));
  if (inserted) {
    IndexExpiry(it->first.bytes, 0, expire_ms);
    lookup_.emplace(KeyRef{pos, it->first.bytes}, it);
    bytes_ += size;
  }
  return inserted;
}

bool Keyspace::LoadTombstone(std::string key, LogIndex deleted_at) {
  if (FindRaw(key) != nullptr || tombstones_.count(key) != 0) return false;
  tombstone_order_.emplace(deleted_at, key);
  tombstones_.emplace(std::move(key), deleted_at);
  return true;
}

void Keyspace::AddTombstone(std::string_view key) {
  DropTombstone(key);
  tombstones_.emplace(std::string(key), index_);
  tombstone_order_.emplace(index_, std::string(key));
  while (tombstones_.size() > tombstones_max_) {
    auto oldest = tombstone_order_.begin();
    if (oldest->first > tombstone_floor_) tombstone_floor_ = oldest->first;
    Touch(oldest->second, nullptr);  // a tombstone's key is not stored
    tombstones_.erase(oldest->second);
    tombstone_order_.erase(oldest);
  }
}

void Keyspace::DropTombstone(std::string_view key) {
  auto t = tombstones_.find(key);
  if (t == tombstones_.end()) return;
  Touch(key, nullptr);
  tombstone_order_.erase(std::pair<LogIndex, std::string>(t->second, std::string(key)));
  tombstones_.erase(t);
}

void Keyspace::IndexExpiry(std::string_view key, int64_t old_ms, int64_t new_ms) {
  if (old_ms == new_ms) return;
  if (old_ms != 0) expiry_.erase(std::pair<int64_t, std::string>(old_ms, std::string(key)));
  if (new_ms != 0) expiry_.emplace(new_ms, std::string(key));
}

}  // namespace synod::kv
