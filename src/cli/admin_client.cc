#include "cli/admin_client.h"

#include <httplib.h>

#include "common/address.h"

namespace synod::cli {

std::string UrlEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Result<AdminReply> AdminCall(const std::string& method, const std::string& address,
                             const std::string& path, int64_t timeout_ms, bool follow_leader) {
  std::string target = address;
  for (int hop = 0; hop < 5; ++hop) {
    auto hp = SplitHostPort(target, PortZero::kRefused);
    if (!hp.ok()) return hp.status();
    httplib::Client client(hp->host, hp->port);
    const time_t sec = static_cast<time_t>(timeout_ms / 1000);
    const time_t usec = static_cast<time_t>((timeout_ms % 1000) * 1000);
    client.set_connection_timeout(sec, usec);
    client.set_read_timeout(sec, usec);
    client.set_write_timeout(sec, usec);
    httplib::Result res =
        method == "POST" ? client.Post(path.c_str(), "", "text/plain") : client.Get(path.c_str());
    if (!res) {
      const httplib::Error err = res.error();
      return Status::Unavailable("node at " + target + " is unreachable (" +
                                 httplib::to_string(err) + ")");
    }
    AdminReply r;
    r.status = res->status;
    r.body = res->body;
    r.json = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    if (r.json.is_discarded()) r.json = nullptr;
    if (follow_leader && r.status == 421 && r.json.is_object() && r.json.contains("leader_admin") &&
        r.json["leader_admin"].is_string() && !r.json["leader_admin"].get<std::string>().empty()) {
      target = r.json["leader_admin"].get<std::string>();
      continue;
    }
    return r;
  }
  return Status::Unavailable("the leader kept moving while following redirects");
}

}  // namespace synod::cli
