// actionq.hpp: a small C++17 RAII wrapper over the actionq C API.
//
// - actionq::Queue shares an aq_queue* (closed with its last copy) and acts as
//   one actionq::Actor: the trusted host when opened; queue.by("alice") acts
//   for a name the host vouches for, queue.acting_as(actor) as any actor
//   (a principal from Queue::authenticate or Actor::principal).
// - Every call returns the JSON text as std::string (the C string is freed at once).
// - A failing call throws actionq::Error, carrying the aq_status, its stable
//   code, the message, and (for a duplicate action) the existing action's id.
#pragma once

#include <actionq.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace actionq {

class Error : public std::runtime_error {
 public:
  Error(aq_status status, const std::string &message, int64_t existing_action_id)
      : std::runtime_error(std::string(aq_status_code(status)) + ": " + message),
        status_(status),
        message_(message),
        existing_action_id_(existing_action_id) {}

  aq_status status() const noexcept { return status_; }
  const char *code() const noexcept { return aq_status_code(status_); }
  const std::string &message() const noexcept { return message_; }
  // The colliding action of a duplicate create; 0 otherwise.
  int64_t existing_action_id() const noexcept { return existing_action_id_; }

 private:
  aq_status status_;
  std::string message_;
  int64_t existing_action_id_;
};

namespace detail {

// Throws for a non-OK status, with the thread's last error.
inline void check(aq_status status) {
  if (status == AQ_STATUS_OK) return;
  size_t len = 0;
  aq_last_error_message(nullptr, 0, &len);
  std::string message(len, '\0');
  aq_last_error_message(message.data(), len + 1, &len);
  int64_t existing = 0;
  aq_last_error_existing_action_id(&existing);
  throw Error(status, message, existing);
}

struct StringFree {
  void operator()(char *s) const noexcept { aq_string_free(s); }
};
using OwnedString = std::unique_ptr<char, StringFree>;

// Runs a call that yields a char * through its last argument.
template <typename Call>
std::optional<std::string> json_call(Call &&call) {
  char *raw = nullptr;
  check(call(&raw));
  OwnedString owned(raw);
  if (!owned) return std::nullopt;
  return std::string(owned.get());
}

template <typename Call>
std::string json(Call &&call) {
  return json_call(std::forward<Call>(call)).value();
}

inline const char *opt(const std::optional<std::string> &s) { return s ? s->c_str() : nullptr; }
inline const double *opt(const std::optional<double> &d) { return d ? &*d : nullptr; }

struct OptionsFree {
  void operator()(aq_options *o) const noexcept { aq_options_free(o); }
};
struct QueueFree {
  void operator()(aq_queue *q) const noexcept { aq_queue_free(q); }
};
struct ActorFree {
  void operator()(aq_actor *a) const noexcept { aq_actor_free(a); }
};

// Runs a call that yields an aq_actor * through its last argument.
template <typename Call>
std::shared_ptr<const aq_actor> actor_call(Call &&call) {
  aq_actor *raw = nullptr;
  check(call(&raw));
  return std::shared_ptr<const aq_actor>(raw, ActorFree{});
}

}  // namespace detail

// Who acts (an immutable aq_actor, shared by its copies).
class Actor {
 public:
  // The trusted host itself.
  static Actor host() {
    return Actor(detail::actor_call([](aq_actor **out) { return aq_actor_host(out); }));
  }
  // The trusted host acting for `name`, a name it vouches for.
  static Actor trusted(const std::string &name) {
    return Actor(detail::actor_call([&](aq_actor **out) { return aq_actor_trusted(name.c_str(), out); }));
  }
  // A principal the host authenticated itself; `server_id` for an agent only.
  static Actor principal(const std::string &name, const std::string &role,
                         const std::optional<std::string> &server_id = {}) {
    return Actor(detail::actor_call([&](aq_actor **out) {
      return aq_actor_principal(name.c_str(), role.c_str(), detail::opt(server_id), out);
    }));
  }
  // {"kind":"host"}, {"kind":"trusted","name"} or {"kind":"principal","name","role","server_id"}.
  std::string json() const {
    return detail::json([&](char **out) { return aq_actor_json(get(), out); });
  }
  const aq_actor *get() const noexcept { return handle_.get(); }

 private:
  friend class Queue;
  explicit Actor(std::shared_ptr<const aq_actor> handle) : handle_(std::move(handle)) {}
  std::shared_ptr<const aq_actor> handle_;
};

// Settings for opening a queue; unset ones keep the library defaults.
struct Options {
  std::optional<std::string> whitelist_json;
  std::optional<aq_durability> durability;
  std::optional<size_t> output_cap;
};

class Queue {
 public:
  // Opens the SQLite file at `path` (created if missing).
  static Queue open(const std::string &path, const Options &options = {}) {
    auto o = make_options(options);
    aq_queue *q = nullptr;
    detail::check(aq_queue_open(path.c_str(), o.get(), &q));
    return Queue(std::shared_ptr<aq_queue>(q, detail::QueueFree{}), Actor::host());
  }

  static Queue in_memory(const Options &options = {}) {
    auto o = make_options(options);
    aq_queue *q = nullptr;
    detail::check(aq_queue_open_in_memory(o.get(), &q));
    return Queue(std::shared_ptr<aq_queue>(q, detail::QueueFree{}), Actor::host());
  }

  // The same queue acting as `actor`.
  Queue acting_as(const Actor &actor) const { return Queue(handle_, actor); }
  // The same queue acting for `name`, a name the trusted host vouches for
  // (refused on a queue acting as a principal, whose name is recorded).
  Queue by(const std::string &name) const {
    return Queue(handle_, Actor(detail::actor_call([&](aq_actor **out) {
                   return aq_actor_by(actor_.get(), name.c_str(), out);
                 })));
  }
  // The principal a credential's secret belongs to (throws UNAUTHENTICATED).
  Actor authenticate(const std::string &secret) const {
    return Actor(detail::actor_call([&](aq_actor **out) { return aq_queue_authenticate(get(), secret.c_str(), out); }));
  }
  const Actor &actor() const noexcept { return actor_; }

  std::string create_server(const std::string &id, const std::optional<std::string> &hostname = {}) const {
    return detail::json(
        [&](char **out) { return aq_server_create(get(), actor_.get(), id.c_str(), detail::opt(hostname), out); });
  }
  std::string get_server(const std::string &id) const {
    return detail::json([&](char **out) { return aq_server_get(get(), actor_.get(), id.c_str(), out); });
  }
  std::string pause_server(const std::string &id) const {
    return detail::json([&](char **out) { return aq_server_pause(get(), actor_.get(), id.c_str(), out); });
  }
  std::string unpause_server(const std::string &id) const {
    return detail::json([&](char **out) { return aq_server_unpause(get(), actor_.get(), id.c_str(), out); });
  }
  std::string list_server_actions(const std::string &server_id, const std::optional<std::string> &status = {},
                                  int64_t limit = 50, int64_t offset = 0,
                                  const std::optional<int64_t> &before_id = {}) const {
    return detail::json([&](char **out) {
      return aq_server_list_actions(get(), actor_.get(), server_id.c_str(), detail::opt(status), limit, offset,
                                    before_id ? &*before_id : nullptr, out);
    });
  }

  // `request_json`: {"server_id", "action_type", "service_name"?, "params"?, "alert_id"?, "created_by"?}
  std::string create_action(const std::string &request_json) const {
    return detail::json([&](char **out) { return aq_action_create(get(), actor_.get(), request_json.c_str(), out); });
  }
  std::string get_action(int64_t id) const {
    return detail::json([&](char **out) { return aq_action_get(get(), actor_.get(), id, out); });
  }
  std::string list_actions(const std::optional<std::string> &status = {},
                           const std::optional<std::string> &server_id = {},
                           const std::optional<std::string> &action_type = {}, int64_t limit = 50,
                           int64_t offset = 0, const std::optional<int64_t> &before_id = {}) const {
    return detail::json([&](char **out) {
      return aq_action_list(get(), actor_.get(), detail::opt(status), detail::opt(server_id), detail::opt(action_type),
                            limit, offset, before_id ? &*before_id : nullptr, out);
    });
  }
  std::string approve(int64_t id) const {
    return detail::json([&](char **out) { return aq_action_approve(get(), actor_.get(), id, out); });
  }
  std::string reject(int64_t id, const std::string &reason) const {
    return detail::json([&](char **out) { return aq_action_reject(get(), actor_.get(), id, reason.c_str(), out); });
  }
  std::string cancel(int64_t id) const {
    return detail::json([&](char **out) { return aq_action_cancel(get(), actor_.get(), id, out); });
  }
  // The claim's JSON (with "lease_token"), or nullopt when nothing is approved.
  // lease_seconds: nullopt for the queue's default lease (0 is refused).
  std::optional<std::string> claim_next(const std::string &server_id,
                                        std::optional<double> lease_seconds = std::nullopt) const {
    return detail::json_call([&](char **out) {
      return aq_action_claim_next(get(), actor_.get(), server_id.c_str(), detail::opt(lease_seconds), out);
    });
  }
  std::string heartbeat(int64_t id, const std::string &lease_token,
                        std::optional<double> lease_seconds = std::nullopt) const {
    return detail::json([&](char **out) {
      return aq_action_heartbeat(get(), actor_.get(), id, lease_token.c_str(), detail::opt(lease_seconds), out);
    });
  }
  std::string report_result(int64_t id, const std::string &lease_token, int32_t exit_code,
                            const std::optional<std::string> &stdout_text = {},
                            const std::optional<std::string> &stderr_text = {}) const {
    return detail::json([&](char **out) {
      return aq_action_report_result(get(), actor_.get(), id, lease_token.c_str(), exit_code, detail::opt(stdout_text),
                                     detail::opt(stderr_text), out);
    });
  }
  std::string expire_leases() const {
    return detail::json([&](char **out) { return aq_action_expire_leases(get(), actor_.get(), out); });
  }
  std::string events_since(int64_t cursor, int64_t limit = 100) const {
    return detail::json([&](char **out) { return aq_event_list(get(), actor_.get(), cursor, limit, out); });
  }

 private:
  Queue(std::shared_ptr<aq_queue> handle, Actor actor) : handle_(std::move(handle)), actor_(std::move(actor)) {}
  aq_queue *get() const noexcept { return handle_.get(); }

  static std::unique_ptr<aq_options, detail::OptionsFree> make_options(const Options &options) {
    aq_options *raw = nullptr;
    detail::check(aq_options_new(&raw));
    std::unique_ptr<aq_options, detail::OptionsFree> o(raw);
    if (options.whitelist_json) detail::check(aq_options_set_whitelist(o.get(), options.whitelist_json->c_str()));
    if (options.durability) detail::check(aq_options_set_durability(o.get(), *options.durability));
    if (options.output_cap) detail::check(aq_options_set_output_cap(o.get(), *options.output_cap));
    return o;
  }

  std::shared_ptr<aq_queue> handle_;
  Actor actor_;
};

}  // namespace actionq
