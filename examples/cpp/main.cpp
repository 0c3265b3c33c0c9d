// actionq from C++17: the whole flow on a SQLite file, through the RAII
// wrapper in actionq.hpp (no manual frees; failures are exceptions).
//
//   g++ -std=c++17 main.cpp -o example_cpp $(pkg-config --cflags --libs actionq)
//   ./example_cpp /tmp/actionq-example-cpp.sqlite3
#include <cstdlib>
#include <iostream>
#include <string>

#include "actionq.hpp"

namespace {

// The string value of "key" in a flat JSON object (a real host would use its
// JSON library; this keeps the example dependency-free).
std::string string_field(const std::string &json, const std::string &key) {
  const std::string needle = "\"" + key + "\":\"";
  const auto at = json.find(needle);
  if (at == std::string::npos) throw std::runtime_error("no " + key + " in " + json);
  const auto start = at + needle.size();
  return json.substr(start, json.find('"', start) - start);
}

int64_t id_of(const std::string &json) {
  const auto at = json.find("\"id\":");  // an action's first field
  if (at == std::string::npos) throw std::runtime_error("no id in " + json);
  return std::stoll(json.substr(at + 5));
}

}  // namespace

int main(int argc, char **argv) {
  const std::string path = argc > 1 ? argv[1] : "actionq-example-cpp.sqlite3";
  try {
    std::cout << "libactionq " << aq_version() << ", database " << path << "\n";
    actionq::Options options;
    options.output_cap = 1000;
    const auto queue = actionq::Queue::open(path, options);

    std::cout << "server:   " << queue.create_server("web-1", std::string("web-1.lan")) << "\n";
    std::cout << "paused:   " << queue.pause_server("web-1") << "\n";

    const auto created = queue.create_action(
        R"({"server_id":"web-1","action_type":"restart_service","service_name":"nginx","alert_id":17})");
    const int64_t id = id_of(created);
    std::cout << "created:  " << created << "\n";

    // A duplicate while the first is pending: an exception carrying the status.
    try {
      queue.create_action(R"({"server_id":"web-1","action_type":"restart_service","service_name":"nginx"})");
      std::cerr << "duplicate was accepted\n";
      return 1;
    } catch (const actionq::Error &e) {
      std::cout << "duplicate: " << e.what() << " (existing action " << e.existing_action_id() << ")\n";
      if (e.status() != AQ_STATUS_CONFLICT || e.existing_action_id() != id) return 1;
    }

    // alice, whom this program authenticated its own way, approves.
    std::cout << "approved: " << queue.by("alice").approve(id) << "\n";

    const auto claim = queue.claim_next("web-1", 120);
    if (!claim) {
      std::cerr << "nothing to claim\n";
      return 1;
    }
    const auto token = string_field(*claim, "lease_token");
    std::cout << "claimed:  action " << id_of(*claim) << ", lease token " << token << "\n";
    std::cout << "beat:     " << queue.heartbeat(id, token, 120) << "\n";
    std::cout << "result:   " << queue.report_result(id, token, 0, std::string("nginx restarted")) << "\n";
    if (queue.claim_next("web-1")) {
      std::cerr << "claimed twice\n";
      return 1;
    }

    std::cout << "list:     " << queue.list_actions({}, std::string("web-1")) << "\n";
    std::cout << "events:   " << queue.events_since(0) << "\n";

    // Errors carry their status; the queue stays usable.
    try {
      queue.get_action(9999);
    } catch (const actionq::Error &e) {
      std::cout << "missing:  " << e.code() << ": " << e.message() << "\n";
      if (e.status() != AQ_STATUS_NOT_FOUND) return 1;
    }
  } catch (const actionq::Error &e) {
    std::cerr << "actionq error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
