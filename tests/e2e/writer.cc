#include "writer.h"

#include <chrono>
#include <memory>

namespace synod::e2e {

Writer::Writer(std::string prefix, std::vector<uint16_t> ports, int64_t command_timeout_ms)
    : prefix_(std::move(prefix)),
      ports_(std::move(ports)),
      command_timeout_ms_(command_timeout_ms) {}

Writer::~Writer() { Stop(); }

void Writer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Writer::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<std::pair<std::string, std::string>> Writer::acked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_;
}

std::map<std::string, size_t> Writer::errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return errors_;
}

std::vector<std::string> Writer::unexpected_errors() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unexpected_;
}

void Writer::Unexpected(std::string what) {
  // The first few say what went wrong; a count says how often.
  constexpr size_t kKept = 5;
  if (unexpected_.size() < kKept) {
    unexpected_.push_back(std::move(what));
  } else if (unexpected_.size() == kKept) {
    unexpected_.push_back("and more");
  }
  ++unexpected_count_;
}

size_t Writer::unexpected_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return unexpected_count_;
}

void Writer::Run() {
  size_t next_port = 0;
  auto conn = std::make_unique<Redis>(ports_[0], command_timeout_ms_);
  for (uint64_t n = 0; !stop_; ++n) {
    const std::string key = prefix_ + "-" + std::to_string(n);
    const std::string value = "v" + std::to_string(n) + "-" + prefix_;
    const Reply r = conn->Command({"SET", key, value});
    if (r.IsOk()) {
      std::lock_guard<std::mutex> lock(mu_);
      acked_.emplace_back(key, value);
      ++acked_count_;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (r.IsError()) {
        const std::string word = r.str.substr(0, r.str.find(' '));
        ++errors_[word];
        if (word != "CLUSTERDOWN" && word != "TRYAGAIN") Unexpected(key + ": " + r.str);
      } else if (r.type == Reply::kIoError) {
        ++errors_["IO"];
      } else {
        Unexpected(key + ": unexpected reply " + r.ToString());
      }
    }
    if (!conn->connected()) {
      // The node is gone (killed, removed): carry on through the next one.
      next_port = (next_port + 1) % ports_.size();
      conn = std::make_unique<Redis>(ports_[next_port], command_timeout_ms_);
    }
    // No leader yet: do not spin.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<std::string> CheckValues(Redis& r,
                                     const std::vector<std::pair<std::string, std::string>>& kv,
                                     size_t max_reported) {
  std::vector<std::string> out;
  constexpr size_t kBatch = 200;
  for (size_t start = 0; start < kv.size() && out.size() < max_reported; start += kBatch) {
    std::vector<std::string> argv = {"MGET"};
    const size_t end = std::min(kv.size(), start + kBatch);
    for (size_t i = start; i < end; ++i) argv.push_back(kv[i].first);
    const Reply got = r.Command(argv);
    if (got.type != REDIS_REPLY_ARRAY || got.elements.size() != end - start) {
      out.push_back("MGET failed: " + got.ToString());
      break;
    }
    for (size_t i = start; i < end && out.size() < max_reported; ++i) {
      const Reply& v = got.elements[i - start];
      if (v.type != REDIS_REPLY_STRING || v.str != kv[i].second) {
        out.push_back(kv[i].first + ": expected \"" + kv[i].second + "\", got " + v.ToString());
      }
    }
  }
  return out;
}

std::vector<std::string> SetAll(Redis& r,
                                const std::vector<std::pair<std::string, std::string>>& kv) {
  std::vector<std::string> out;
  constexpr size_t kBatch = 100;
  for (size_t start = 0; start < kv.size(); start += kBatch) {
    std::vector<std::vector<std::string>> cmds;
    const size_t end = std::min(kv.size(), start + kBatch);
    for (size_t i = start; i < end; ++i) cmds.push_back({"SET", kv[i].first, kv[i].second});
    const std::vector<Reply> replies = r.Pipeline(cmds);
    for (size_t i = start; i < end; ++i) {
      if (!replies[i - start].IsOk()) {
        out.push_back(kv[i].first + ": " + replies[i - start].ToString());
      }
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> MakePairs(const std::string& prefix, size_t count,
                                                           const std::string& value_prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < count; ++i) {
    out.emplace_back(prefix + std::to_string(i), value_prefix + std::to_string(i));
  }
  return out;
}

int64_t SetUntilOk(const std::vector<uint16_t>& ports, const std::string& key,
                   const std::string& value, int64_t timeout_ms) {
  const int64_t start = NowMs();
  std::vector<std::unique_ptr<Redis>> conns;
  for (uint16_t p : ports) conns.push_back(std::make_unique<Redis>(p, 3000));
  for (size_t i = 0; NowMs() - start < timeout_ms; ++i) {
    Redis& r = *conns[i % conns.size()];
    if (!r.connected()) r.Reconnect();
    if (r.Command({"SET", key, value}).IsOk()) return NowMs() - start;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

}  // namespace synod::e2e
