#include "sim/sim_disk.h"

#include <algorithm>

#include "common/assert.h"

namespace synod::sim {

Status SimDisk::InjectedFault(const char* op) {
  if (full_) {
    ++stats_.faults_injected;
    return Status::IoError(std::string(op) + ": disk full (simulated)");
  }
  if (fail_next_writes_ > 0) {
    --fail_next_writes_;
    ++stats_.faults_injected;
    return Status::IoError(std::string(op) + ": I/O error (simulated)");
  }
  return Status::Ok();
}

Status SimDisk::Append(std::string_view bytes) {
  SYNOD_RETURN_IF_ERROR(InjectedFault("append"));
  ++stats_.appends;
  pending_.append(bytes);
  return Status::Ok();
}

Status SimDisk::Sync() {
  SYNOD_RETURN_IF_ERROR(InjectedFault("sync"));
  ++stats_.syncs_requested;
  sync_requested_bytes_ = pending_.size();
  return Status::Ok();
}

Result<std::string> SimDisk::ReadAll() { return durable_ + pending_; }

Status SimDisk::Replace(std::string_view bytes) {
  SYNOD_RETURN_IF_ERROR(InjectedFault("replace"));
  ++stats_.replaces;
  durable_.assign(bytes);
  pending_.clear();
  // The bytes a sync in flight covered are gone; its completion must not make later appends
  // durable.
  sync_requested_bytes_ = 0;
  return Status::Ok();
}

void SimDisk::CompleteSync() {
  SYNOD_ASSERT(sync_requested_bytes_ <= pending_.size());
  if (sync_requested_bytes_ == 0) return;
  ++stats_.syncs_completed;
  durable_.append(pending_, 0, sync_requested_bytes_);
  pending_.erase(0, sync_requested_bytes_);
  sync_requested_bytes_ = 0;
}

void SimDisk::Crash(env::Random& rng, bool torn_writes) {
  ++stats_.crashes;
  if (torn_writes && !pending_.empty()) {
    const uint64_t survived = rng.Uniform(pending_.size() + 1);
    std::string tail = pending_.substr(0, survived);
    if (survived > 0 && rng.Chance(0.5)) {
      const uint64_t garbled = 1 + rng.Uniform(std::min<uint64_t>(kGarbledBytesMax, survived));
      for (uint64_t i = survived - garbled; i < survived; ++i) {
        // XOR with a non-zero byte, so that every garbled byte really changes.
        tail[i] = static_cast<char>(tail[i] ^ static_cast<char>(1 + rng.Uniform(255)));
      }
    }
    durable_ += tail;
  }
  pending_.clear();
  sync_requested_bytes_ = 0;
}

}  // namespace synod::sim
