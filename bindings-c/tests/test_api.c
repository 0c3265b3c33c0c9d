/*
 * test_api.c: the C API as a C host uses it. Covers every exported function,
 * every aq_status value (NULL and invalid UTF-8 arguments included), the
 * thread-local last error, and one handle shared by 8 pthreads.
 *
 * Usage: test_api SCRATCH_DIR   (SQLite files are created there)
 * Prints "test_api: N passed, M failed" and exits non-zero on any failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "actionq.h"

/* Test hook exported by libactionq but kept out of the public header. */
aq_status aq_test_panic(void);

static int passed;
static int failed;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      passed++;                                                                \
    } else {                                                                   \
      failed++;                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

/* Checks a call's status; prints the last error when it differs. */
#define CHECK_STATUS(call, expected)                                           \
  do {                                                                         \
    aq_status got_ = (call);                                                   \
    if (got_ == (expected)) {                                                  \
      passed++;                                                                \
    } else {                                                                   \
      failed++;                                                                \
      fprintf(stderr, "%s:%d: %s returned %s, expected %s: %s\n", __FILE__,    \
              __LINE__, #call, aq_status_code(got_),                           \
              aq_status_code(expected), last_error());                         \
    }                                                                          \
  } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, AQ_STATUS_OK)

/* A lease (or any optional seconds argument) given as a value; NULL asks for
 * the queue's default. */
#define SECONDS(x) (&(double){(x)})

/* The thread's last error message (a per-thread static copy). */
static const char *last_error(void) {
  static _Thread_local char buf[1024];
  size_t len = 0;
  if (aq_last_error_message(buf, sizeof buf, &len) != AQ_STATUS_OK) {
    return "<aq_last_error_message failed>";
  }
  return buf;
}

static int last_error_is(const char *expected) {
  return strcmp(last_error(), expected) == 0;
}

static int last_error_starts_with(const char *prefix) {
  return strncmp(last_error(), prefix, strlen(prefix)) == 0;
}

/* Minimal JSON field readers: the first `"key":` in the text. Enough for the
 * flat records this API returns (an action's own "id" is its first key). */
static int json_int(const char *json, const char *key, int64_t *value) {
  char needle[64];
  snprintf(needle, sizeof needle, "\"%s\":", key);
  const char *at = json ? strstr(json, needle) : NULL;
  if (at == NULL) return 0;
  char *end = NULL;
  *value = strtoll(at + strlen(needle), &end, 10);
  return end != at + strlen(needle);
}

static int json_str(const char *json, const char *key, char *buf, size_t len) {
  char needle[64];
  snprintf(needle, sizeof needle, "\"%s\":\"", key);
  const char *at = json ? strstr(json, needle) : NULL;
  if (at == NULL) return 0;
  at += strlen(needle);
  const char *end = strchr(at, '"');
  if (end == NULL || (size_t)(end - at) >= len) return 0;
  memcpy(buf, at, (size_t)(end - at));
  buf[end - at] = '\0';
  return 1;
}

static int json_has(const char *json, const char *fragment) {
  return json != NULL && strstr(json, fragment) != NULL;
}

static int count(const char *json, const char *fragment) {
  int n = 0;
  for (const char *p = json; p && (p = strstr(p, fragment)) != NULL; p += strlen(fragment)) n++;
  return n;
}

/* The trusted host, the actor of most calls below (made in main). */
static aq_actor *host;

/* A principal vouched for by the host; the caller frees it. */
static aq_actor *principal(const char *name, const char *role, const char *server_id) {
  aq_actor *actor = NULL;
  CHECK_OK(aq_actor_principal(name, role, server_id, &actor));
  return actor;
}

/* The trusted host acting for `name`; the caller frees it. */
static aq_actor *trusted(const char *name) {
  aq_actor *actor = NULL;
  CHECK_OK(aq_actor_trusted(name, &actor));
  return actor;
}

/* A non-NULL pointer no function may write over on failure. */
static char sentinel_byte;
#define SENTINEL (&sentinel_byte)

static void test_version_and_status_codes(void) {
  char expected[32];
  snprintf(expected, sizeof expected, "%d.%d.%d", AQ_VERSION_MAJOR, AQ_VERSION_MINOR,
           AQ_VERSION_PATCH);
  CHECK(strcmp(aq_version(), expected) == 0);

  CHECK(strcmp(aq_status_code(AQ_STATUS_OK), "OK") == 0);
  CHECK(strcmp(aq_status_code(AQ_STATUS_INVALID_INPUT), "VALIDATION_ERROR") == 0);
  CHECK(strcmp(aq_status_code(AQ_STATUS_NOT_FOUND), "NOT_FOUND") == 0);
  CHECK(strcmp(aq_status_code(AQ_STATUS_NOT_WHITELISTED), "FORBIDDEN") == 0);
  CHECK(strcmp(aq_status_code(AQ_STATUS_CONFLICT), "CONFLICT") == 0);
  CHECK(strcmp(aq_status_code(AQ_STATUS_STORAGE), "STORAGE_ERROR") == 0);
  CHECK(strcmp(aq_status_code(AQ_STATUS_NULL_ARGUMENT), "NULL_ARGUMENT") == 0);
  CHECK(strcmp(aq_status_code(AQ_STATUS_INVALID_UTF8), "INVALID_UTF8") == 0);
  CHECK(strcmp(aq_status_code(AQ_STATUS_PANIC), "PANIC") == 0);
  CHECK(strcmp(aq_status_code(AQ_STATUS_UNAUTHENTICATED), "UNAUTHENTICATED") == 0);
  CHECK(strcmp(aq_status_code(AQ_STATUS_PERMISSION_DENIED), "PERMISSION_DENIED") == 0);
  CHECK(AQ_STATUS_UNAUTHENTICATED == 9 && AQ_STATUS_PERMISSION_DENIED == 10);
  CHECK(strcmp(aq_status_code(4242), "UNKNOWN") == 0);
}

static void test_panic_boundary(void) {
  fprintf(stderr, "test_api: a deliberate panic follows (its message is printed by Rust's hook)\n");
  CHECK_STATUS(aq_test_panic(), AQ_STATUS_PANIC);
  CHECK(last_error_is("internal error (panic) in actionq: aq_test_panic was called"));
  /* The thread and the library keep working. */
  char *json = NULL;
  CHECK_OK(aq_whitelist_default_json(&json));
  CHECK(json_has(json, "\"restart_service\""));
  CHECK(last_error_is(""));
  aq_string_free(json);
}

static void test_last_error_buffer(void) {
  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open_in_memory(NULL, &q));
  char *out = SENTINEL;
  CHECK_STATUS(aq_server_get(q, host, "missing", &out), AQ_STATUS_NOT_FOUND);
  CHECK(out == SENTINEL);
  const char *full = "Server 'missing' not found";
  size_t len = 0;
  CHECK_OK(aq_last_error_message(NULL, 0, &len)); /* length query */
  CHECK(len == strlen(full));
  char small[8];
  CHECK_OK(aq_last_error_message(small, sizeof small, &len));
  CHECK(strcmp(small, "Server ") == 0); /* truncated, NUL-terminated */
  CHECK(len == strlen(full));
  CHECK_OK(aq_last_error_message(small, sizeof small, NULL)); /* length output optional */
  CHECK_STATUS(aq_last_error_message(NULL, 8, &len), AQ_STATUS_NULL_ARGUMENT);
  CHECK(last_error_is(full)); /* reading never clears it */
  int64_t id = -1;
  CHECK_OK(aq_last_error_existing_action_id(&id));
  CHECK(id == 0);
  CHECK_STATUS(aq_last_error_existing_action_id(NULL), AQ_STATUS_NULL_ARGUMENT);
  aq_queue_free(q);
}

static void test_null_arguments(void) {
  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open_in_memory(NULL, &q));
  char *out = SENTINEL;
  aq_queue *qout = (aq_queue *)SENTINEL;

#define REFUSED(call, arg)                                                     \
  do {                                                                         \
    CHECK_STATUS(call, AQ_STATUS_NULL_ARGUMENT);                               \
    CHECK(last_error_is("argument '" arg "' must not be NULL"));               \
  } while (0)

  REFUSED(aq_queue_open(NULL, NULL, &qout), "path");
  REFUSED(aq_queue_open("x.db", NULL, NULL), "queue_out");
  REFUSED(aq_queue_open_in_memory(NULL, NULL), "queue_out");
  REFUSED(aq_queue_whitelist_json(NULL, &out), "queue");
  REFUSED(aq_queue_whitelist_json(q, NULL), "json_out");
  REFUSED(aq_whitelist_default_json(NULL), "json_out");
  REFUSED(aq_options_new(NULL), "options_out");
  REFUSED(aq_options_set_whitelist(NULL, "{}"), "options");
  REFUSED(aq_options_set_durability(NULL, AQ_DURABILITY_FULL), "options");
  REFUSED(aq_options_set_output_cap(NULL, 10), "options");
  REFUSED(aq_options_set_leases(NULL, 1, 2), "options");
  REFUSED(aq_options_set_busy_timeout_seconds(NULL, 1), "options");
  REFUSED(aq_options_set_expire_leases_on_read(NULL, false), "options");
  REFUSED(aq_server_create(NULL, host, "web-1", NULL, &out), "queue");
  REFUSED(aq_server_create(q, host, NULL, NULL, &out), "id");
  REFUSED(aq_server_create(q, host, "web-1", NULL, NULL), "server_json_out");
  REFUSED(aq_server_get(q, host, NULL, &out), "id");
  REFUSED(aq_server_pause(q, host, "web-1", NULL), "server_json_out");
  REFUSED(aq_server_unpause(NULL, host, "web-1", &out), "queue");
  REFUSED(aq_server_list_actions(q, host, NULL, NULL, 50, 0, NULL, &out), "server_id");
  REFUSED(aq_action_create(q, host, NULL, &out), "request_json");
  REFUSED(aq_action_get(NULL, host, 1, &out), "queue");
  REFUSED(aq_action_list(q, host, NULL, NULL, NULL, 50, 0, NULL, NULL), "page_json_out");
  REFUSED(aq_action_approve(q, host, 1, NULL), "action_json_out");
  REFUSED(aq_action_reject(q, host, 1, NULL, &out), "reason");
  REFUSED(aq_action_cancel(NULL, host, 1, &out), "queue");
  REFUSED(aq_action_claim_next(q, host, NULL, NULL, &out), "server_id");
  REFUSED(aq_action_heartbeat(q, host, 1, NULL, NULL, &out), "lease_token");
  REFUSED(aq_action_report_result(q, host, 1, NULL, 0, NULL, NULL, &out), "lease_token");
  REFUSED(aq_action_expire_leases(q, host, NULL), "actions_json_out");
  REFUSED(aq_event_list(NULL, host, 0, 10, &out), "queue");
  REFUSED(aq_action_expire_approvals(q, host, NULL), "actions_json_out");
  REFUSED(aq_audit_verify(NULL, host, &out), "queue");
  REFUSED(aq_audit_verify(q, host, NULL), "report_json_out");
  REFUSED(aq_server_list(NULL, host, &out), "queue");
  REFUSED(aq_server_list(q, host, NULL), "servers_json_out");
  REFUSED(aq_action_count(NULL, host, &out), "queue");
  REFUSED(aq_action_count(q, host, NULL), "counts_json_out");
  REFUSED(aq_queue_lease_expiries(NULL, host, &(uint64_t){0}), "queue");
  REFUSED(aq_queue_lease_expiries(q, host, NULL), "count_out");
  /* The actor is required: NULL is never the trusted host. */
  REFUSED(aq_server_create(q, NULL, "web-1", NULL, &out), "actor");
  REFUSED(aq_action_approve(q, NULL, 1, &out), "actor");
  REFUSED(aq_credential_issue(q, NULL, "root", "admin", NULL, &out), "actor");
  REFUSED(aq_queue_lease_expiries(q, NULL, &(uint64_t){0}), "actor");
  aq_actor *aout = (aq_actor *)SENTINEL;
  REFUSED(aq_actor_host(NULL), "actor_out");
  REFUSED(aq_actor_trusted(NULL, &aout), "name");
  REFUSED(aq_actor_trusted("alice", NULL), "actor_out");
  REFUSED(aq_actor_by(NULL, "alice", &aout), "actor");
  REFUSED(aq_actor_by(host, NULL, &aout), "name");
  REFUSED(aq_actor_principal("olga", NULL, NULL, &aout), "role");
  REFUSED(aq_actor_json(NULL, &out), "actor");
  REFUSED(aq_queue_authenticate(q, "aq_ad_x", NULL), "actor_out");
  CHECK(aout == (aq_actor *)SENTINEL);
  int matches = 7;
  REFUSED(aq_action_digest_matches(NULL, &matches), "action_json");
  REFUSED(aq_action_digest_matches("{}", NULL), "matches_out");
  CHECK(matches == 7);
#undef REFUSED
  CHECK(out == SENTINEL);
  CHECK(qout == (aq_queue *)SENTINEL);

  /* The NULL output was refused before any work: "web-1" was not created. */
  CHECK_STATUS(aq_server_get(q, host, "web-1", &out), AQ_STATUS_NOT_FOUND);

  /* Frees of NULL are no-ops. */
  aq_string_free(NULL);
  aq_queue_free(NULL);
  aq_options_free(NULL);
  aq_actor_free(NULL);
  aq_queue_free(q);
}

static void test_invalid_utf8(void) {
  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open_in_memory(NULL, &q));
  char *out = NULL;
  CHECK_OK(aq_server_create(q, host, "web-1", NULL, &out));
  aq_string_free(out);
  out = SENTINEL;
  const char *bad = "web\xff\xfe";

#define REFUSED(call, arg)                                                     \
  do {                                                                         \
    CHECK_STATUS(call, AQ_STATUS_INVALID_UTF8);                                \
    CHECK(last_error_starts_with("argument '" arg "' is not valid UTF-8"));    \
  } while (0)

  aq_queue *qout = (aq_queue *)SENTINEL;
  REFUSED(aq_queue_open(bad, NULL, &qout), "path");
  CHECK(qout == (aq_queue *)SENTINEL);
  REFUSED(aq_server_create(q, host, bad, NULL, &out), "id");
  REFUSED(aq_server_create(q, host, "web-2", bad, &out), "hostname");
  REFUSED(aq_server_get(q, host, bad, &out), "id");
  REFUSED(aq_server_pause(q, host, bad, &out), "id");
  REFUSED(aq_server_unpause(q, host, bad, &out), "id");
  REFUSED(aq_server_list_actions(q, host, "web-1", bad, 50, 0, NULL, &out), "status");
  REFUSED(aq_action_create(q, host, bad, &out), "request_json");
  REFUSED(aq_action_list(q, host, NULL, bad, NULL, 50, 0, NULL, &out), "server_id");
  REFUSED(aq_action_list(q, host, NULL, NULL, bad, 50, 0, NULL, &out), "action_type");
  REFUSED(aq_action_reject(q, host, 1, bad, &out), "reason");
  aq_actor *aout = (aq_actor *)SENTINEL;
  REFUSED(aq_actor_trusted(bad, &aout), "name");
  REFUSED(aq_actor_by(host, bad, &aout), "name");
  REFUSED(aq_actor_principal(bad, "viewer", NULL, &aout), "name");
  REFUSED(aq_actor_principal("ralf", "agent", bad, &aout), "server_id");
  CHECK(aout == (aq_actor *)SENTINEL);
  REFUSED(aq_action_claim_next(q, host, bad, NULL, &out), "server_id");
  REFUSED(aq_action_heartbeat(q, host, 1, bad, NULL, &out), "lease_token");
  REFUSED(aq_action_report_result(q, host, 1, "t", 0, NULL, bad, &out), "stderr_text");
  aq_options *o = NULL;
  CHECK_OK(aq_options_new(&o));
  REFUSED(aq_options_set_whitelist(o, bad), "config_json");
  aq_options_free(o);
#undef REFUSED
  CHECK(out == SENTINEL);
  aq_queue_free(q);
}

/* Every core error kind, each with its own status and message
 * (docs/contract/errors.md#messages). */
static void test_core_statuses(const char *dir) {
  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open_in_memory(NULL, &q));
  char *out = NULL;
  CHECK_OK(aq_server_create(q, host, "web-1", "web-1.lan", &out));
  aq_string_free(out);
  out = SENTINEL;

  /* INVALID_INPUT */
  CHECK_STATUS(aq_server_create(q, host, "-bad id", NULL, &out), AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"restart_service\"}", &out),
               AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_action_create(q, host, "{not json", &out), AQ_STATUS_INVALID_INPUT);
  CHECK(last_error_starts_with("invalid create request"));
  CHECK_STATUS(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"clear_logs\",\"alert_id\":0}",
                                &out),
               AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_action_list(q, host, NULL, NULL, NULL, 0, 0, NULL, &out), AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_action_list(q, host, NULL, NULL, NULL, 101, 0, NULL, &out), AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_action_list(q, host, NULL, NULL, NULL, 10, -1, NULL, &out), AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_action_list(q, host, "sleeping", NULL, NULL, 10, 0, NULL, &out), AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_event_list(q, host, -1, 10, &out), AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_event_list(q, host, 0, 0, &out), AQ_STATUS_INVALID_INPUT);

  /* NOT_FOUND */
  CHECK_STATUS(aq_action_get(q, host, 999, &out), AQ_STATUS_NOT_FOUND);
  CHECK(last_error_is("Action 999 not found"));
  CHECK_STATUS(aq_action_create(q, host, "{\"server_id\":\"ghost\",\"action_type\":\"clear_logs\"}", &out),
               AQ_STATUS_NOT_FOUND);
  CHECK(last_error_is("Server 'ghost' not found"));
  CHECK_STATUS(aq_server_pause(q, host, "ghost", &out), AQ_STATUS_NOT_FOUND);
  CHECK_STATUS(aq_server_unpause(q, host, "ghost", &out), AQ_STATUS_NOT_FOUND);
  CHECK_STATUS(aq_server_list_actions(q, host, "ghost", NULL, 50, 0, NULL, &out), AQ_STATUS_NOT_FOUND);
  CHECK_STATUS(aq_action_claim_next(q, host, "ghost", NULL, &out), AQ_STATUS_NOT_FOUND);

  /* NOT_WHITELISTED */
  CHECK_STATUS(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"rm_rf\"}", &out),
               AQ_STATUS_NOT_WHITELISTED);
  CHECK(last_error_is("Action type 'rm_rf' not in whitelist"));
  CHECK_STATUS(aq_action_create(q,
                                host,
                                "{\"server_id\":\"web-1\",\"action_type\":\"restart_service\","
                                "\"service_name\":\"nginx;reboot\"}",
                                &out),
               AQ_STATUS_NOT_WHITELISTED);

  /* CONFLICT: duplicate server, duplicate pending restart (with the existing id),
   * illegal transition, wrong lease token. */
  CHECK_STATUS(aq_server_create(q, host, "web-1", NULL, &out), AQ_STATUS_CONFLICT);
  char *paused = NULL;
  CHECK_OK(aq_server_pause(q, host, "web-1", &paused));
  aq_string_free(paused);
  char *first = NULL;
  const char *restart =
      "{\"server_id\":\"web-1\",\"action_type\":\"restart_service\",\"service_name\":\"nginx\"}";
  CHECK_OK(aq_action_create(q, host, restart, &first));
  int64_t first_id = 0;
  CHECK(json_int(first, "id", &first_id) && first_id == 1);
  aq_string_free(first);
  CHECK_STATUS(aq_action_create(q, host, restart, &out), AQ_STATUS_CONFLICT);
  CHECK(last_error_is("Pending action already exists for service 'nginx.service' on server 'web-1'"));
  int64_t existing = 0;
  CHECK_OK(aq_last_error_existing_action_id(&existing));
  CHECK(existing == first_id);
  char *cancelled = NULL;
  CHECK_OK(aq_action_cancel(q, host, first_id, &cancelled));
  aq_string_free(cancelled);
  CHECK_STATUS(aq_action_approve(q, host, first_id, &out), AQ_STATUS_CONFLICT);
  CHECK(last_error_is("Cannot approve action with status 'cancelled' (must be pending)"));
  CHECK_OK(aq_last_error_existing_action_id(&existing));
  CHECK(existing == 0);
  CHECK_STATUS(aq_action_heartbeat(q, host, first_id, "not-a-token", NULL, &out), AQ_STATUS_CONFLICT);
  CHECK_STATUS(aq_action_report_result(q, host, first_id, "not-a-token", 0, NULL, NULL, &out),
               AQ_STATUS_CONFLICT);
  CHECK(out == SENTINEL);
  aq_queue_free(q);

  /* STORAGE: a directory is no database. */
  aq_queue *bad = (aq_queue *)SENTINEL;
  CHECK_STATUS(aq_queue_open(dir, NULL, &bad), AQ_STATUS_STORAGE);
  CHECK(bad == (aq_queue *)SENTINEL);
  CHECK(strlen(last_error()) > 0); /* with a message */
}

static void test_options_and_whitelist(const char *dir) {
  aq_options *o = NULL;
  CHECK_OK(aq_options_new(&o));
  CHECK_STATUS(aq_options_set_whitelist(o, "{\"actions\":{}}"), AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_options_set_whitelist(o, "[1,2"), AQ_STATUS_INVALID_INPUT);
  const char *config =
      "{\"actions\":{\"install_package\":{"
      "\"command\":\"DEBIAN_FRONTEND=noninteractive apt-get install -y {package}\","
      "\"params\":{\"package\":{\"kind\":\"debian_package\"}},"
      "\"conflict\":{\"exclusive_group\":\"apt\"}}}}";
  CHECK_OK(aq_options_set_whitelist(o, config));
  CHECK_STATUS(aq_options_set_durability(o, 7), AQ_STATUS_INVALID_INPUT);
  CHECK_OK(aq_options_set_durability(o, AQ_DURABILITY_FULL));
  CHECK_OK(aq_options_set_durability(o, AQ_DURABILITY_NORMAL));
  CHECK_OK(aq_options_set_output_cap(o, 5));
  CHECK_OK(aq_options_set_leases(o, 1, 120));
  CHECK_OK(aq_options_set_busy_timeout_seconds(o, 5));
  /* Their effects: the busy timeout in test_busy_timeout below; durability
   * (syncs per commit, visible only from outside the process) in
   * bindings-c/tests/options.rs, durability_set_through_the_c_api_reaches_sqlite. */

  char path[512];
  snprintf(path, sizeof path, "%s/options.sqlite3", dir);
  unlink(path);
  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open(path, o, &q));
  aq_options_free(o); /* the queue keeps its own copy */

  char *wl = NULL;
  CHECK_OK(aq_queue_whitelist_json(q, &wl));
  CHECK(json_has(wl, "install_package") && !json_has(wl, "restart_service"));
  aq_string_free(wl);

  char *out = NULL;
  CHECK_OK(aq_server_create(q, host, "db-1", NULL, &out));
  aq_string_free(out);
  out = SENTINEL;
  CHECK_STATUS(aq_action_create(q, host, "{\"server_id\":\"db-1\",\"action_type\":\"clear_logs\"}", &out),
               AQ_STATUS_NOT_WHITELISTED);
  CHECK_STATUS(aq_action_create(q,
                                host,
                                "{\"server_id\":\"db-1\",\"action_type\":\"install_package\","
                                "\"params\":{\"package\":\"Bad Name\"}}",
                                &out),
               AQ_STATUS_NOT_WHITELISTED);
  char *action = NULL;
  CHECK_OK(aq_action_create(q,
                            host,
                            "{\"server_id\":\"db-1\",\"action_type\":\"install_package\","
                            "\"params\":{\"package\":\"htop\"},\"created_by\":\"c-test\"}",
                            &action));
  CHECK(json_has(action, "\"argv\":[\"apt-get\",\"install\",\"-y\",\"htop\"]"));
  CHECK(json_has(action, "\"env\":{\"DEBIAN_FRONTEND\":\"noninteractive\"}"));
  CHECK(json_has(action, "\"created_by\":\"c-test\""));
  int64_t id = 0;
  CHECK(json_int(action, "id", &id));
  aq_string_free(action);

  /* Lease bounds from the options; lease 1 s by default, then expiry. */
  CHECK_STATUS(aq_action_claim_next(q, host, "db-1", SECONDS(121), &out), AQ_STATUS_INVALID_INPUT);
  char *claim = NULL;
  CHECK_OK(aq_action_claim_next(q, host, "db-1", NULL, &claim));
  char token[64] = "";
  CHECK(json_str(claim, "lease_token", token, sizeof token) && strlen(token) == 36);
  aq_string_free(claim);
  char *beat = NULL;
  CHECK_OK(aq_action_heartbeat(q, host, id, token, SECONDS(1), &beat));
  CHECK(json_has(beat, "\"status\":\"executing\"") && !json_has(beat, "lease_token"));
  aq_string_free(beat);
  sleep(2);
  char *expired = NULL;
  CHECK_OK(aq_action_expire_leases(q, host, &expired));
  CHECK(count(expired, "\"status\":\"failed\"") == 1);
  CHECK(json_has(expired, "\"exit_code\":-1"));
  aq_string_free(expired);
  /* The stale agent cannot overwrite the outcome. */
  CHECK_STATUS(aq_action_report_result(q, host, id, token, 0, "late", NULL, &out), AQ_STATUS_CONFLICT);

  /* Output cap (5 characters) on a fresh claim. */
  char *second = NULL;
  CHECK_OK(aq_action_create(q,
                            host,
                            "{\"server_id\":\"db-1\",\"action_type\":\"install_package\","
                            "\"params\":{\"package\":\"curl\"}}",
                            &second));
  int64_t id2 = 0;
  CHECK(json_int(second, "id", &id2) && id2 == id + 1);
  aq_string_free(second);
  CHECK_OK(aq_action_claim_next(q, host, "db-1", SECONDS(60), &claim));
  CHECK(json_str(claim, "lease_token", token, sizeof token));
  aq_string_free(claim);
  char *done = NULL;
  CHECK_OK(aq_action_report_result(q, host, id2, token, 3, "0123456789", "\xc3\xa9rr", &done));
  CHECK(json_has(done, "\"status\":\"failed\""));
  CHECK(json_has(done, "\"stdout\":\"01234\""));
  CHECK(json_has(done, "\"stderr\":\"\xc3\xa9rr\""));
  CHECK(json_has(done, "\"exit_code\":3"));
  aq_string_free(done);
  aq_queue_free(q);

  char *defaults = NULL;
  CHECK_OK(aq_whitelist_default_json(&defaults));
  CHECK(json_has(defaults, "systemctl restart {service_name}"));
  aq_string_free(defaults);
}

/* Another process holding the write lock of a WAL database: an fcntl write
 * lock on byte 120 of its -shm file, SQLite's WAL_WRITE_LOCK slot, which every
 * writer takes first. A process of its own, since the POSIX locks of one
 * process never conflict with each other. It holds the lock until
 * release_write_lock or for at most max_hold_ms. */
typedef struct {
  pid_t pid;
  int release_fd;
} lock_holder;

static int hold_write_lock(const char *db, int max_hold_ms, lock_holder *h) {
  char shm[600];
  snprintf(shm, sizeof shm, "%s-shm", db);
  int to_child[2], to_parent[2];
  if (pipe(to_child) != 0) return 0;
  if (pipe(to_parent) != 0) return 0;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return 0;
  if (pid == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    int fd = open(shm, O_RDWR);
    struct flock lock;
    memset(&lock, 0, sizeof lock);
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    lock.l_start = 120;
    lock.l_len = 1;
    char ok = (fd >= 0 && fcntl(fd, F_SETLK, &lock) == 0) ? 'L' : 'E';
    if (write(to_parent[1], &ok, 1) != 1 || ok != 'L') _exit(2);
    struct pollfd release = {to_child[0], POLLIN, 0};
    poll(&release, 1, max_hold_ms); /* a byte, EOF or the bound */
    _exit(0);                       /* exiting drops the lock */
  }
  close(to_child[0]);
  close(to_parent[1]);
  char got = 0;
  ssize_t n = read(to_parent[0], &got, 1);
  close(to_parent[0]);
  h->pid = pid;
  h->release_fd = to_child[1];
  return n == 1 && got == 'L';
}

/* Releases the lock and reaps the holder; 1 when it exited cleanly. */
static int release_write_lock(lock_holder *h) {
  char byte = 'r';
  ssize_t n = write(h->release_fd, &byte, 1);
  (void)n; /* the holder may already have left (its bound) */
  close(h->release_fd);
  int status = 0;
  if (waitpid(h->pid, &status, 0) != h->pid) return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static double wall_seconds(void);

static aq_queue *open_with_busy_timeout(const char *path, double seconds) {
  aq_options *o = NULL;
  CHECK_OK(aq_options_new(&o));
  CHECK_OK(aq_options_set_busy_timeout_seconds(o, seconds));
  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open(path, o, &q));
  aq_options_free(o);
  return q;
}

typedef struct {
  aq_queue *q;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int started;
  char task[64]; /* the writer thread's "<pid>/task/<tid>" */
  atomic_int released;
  atomic_int done;
  aq_status status;
  int released_first;
  int64_t id;
  char message[256];
} patient_write;

/* Syscalls the store's busy handler waits in: sched_yield for its first polls,
 * then nanosleep/clock_nanosleep (as core/tests/sqlite_locking.rs). */
static int in_busy_wait(const char *task) {
#if defined(__x86_64__)
  static const long waiting[] = {24, 35, 230};
#elif defined(__aarch64__)
  static const long waiting[] = {124, 101, 115};
#else
  static const long waiting[] = {-1};
#endif
  char path[128];
  snprintf(path, sizeof path, "/proc/%s/syscall", task);
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  long nr = -1;
  int got = fscanf(f, "%ld", &nr);
  fclose(f);
  if (got != 1) return 0;
  for (size_t i = 0; i < sizeof waiting / sizeof waiting[0]; i++) {
    if (waiting[i] == nr) return 1;
  }
  return 0;
}

static void *patient_writer(void *arg) {
  patient_write *w = arg;
  pthread_mutex_lock(&w->mu);
  ssize_t n = readlink("/proc/thread-self", w->task, sizeof w->task - 1);
  w->task[n > 0 ? n : 0] = '\0';
  w->started = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  char *action = NULL;
  w->status =
      aq_action_create(w->q, host, "{\"server_id\":\"web-1\",\"action_type\":\"clear_logs\"}", &action);
  w->released_first = atomic_load(&w->released);
  atomic_store(&w->done, 1);
  snprintf(w->message, sizeof w->message, "%s", last_error());
  if (w->status == AQ_STATUS_OK) {
    json_int(action, "id", &w->id);
    aq_string_free(action);
  }
  return NULL;
}

/* aq_options_set_busy_timeout_seconds bounds how long a write waits for another
 * connection's lock: 50 ms gives up (STORAGE) while the lock is still held,
 * a long timeout waits and succeeds once the lock is released. */
static void test_busy_timeout(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/busy.sqlite3", dir);
  unlink(path);
  aq_queue *fast = open_with_busy_timeout(path, 0.05);
  aq_queue *patient = open_with_busy_timeout(path, 600);
  char *out = NULL;
  CHECK_OK(aq_server_create(fast, host, "web-1", NULL, &out));
  aq_string_free(out);
  const char *request = "{\"server_id\":\"web-1\",\"action_type\":\"clear_logs\"}";

  /* Held for at most 5 s: the default timeout (10 s) would outlast the hold
   * and succeed, 50 ms gives up while the lock is held. */
  lock_holder h;
  CHECK(hold_write_lock(path, 5000, &h));
  out = SENTINEL;
  CHECK_STATUS(aq_action_create(fast, host, request, &out), AQ_STATUS_STORAGE);
  CHECK(strstr(last_error(), "database is busy") != NULL);
  CHECK(out == SENTINEL);
  CHECK(release_write_lock(&h));

  /* 600 s: waits for the lock, succeeds after its release. The writer is seen
   * in the busy handler (/proc/<pid>/task/<tid>/syscall), then the lock stays
   * held 2 s more while the writer must keep waiting: a setter that took the
   * value as milliseconds (0.6 s) gives up within the hold. */
  patient_write w;
  memset(&w, 0, sizeof w);
  w.q = patient;
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  atomic_init(&w.released, 0);
  atomic_init(&w.done, 0);
  CHECK(hold_write_lock(path, 600000, &h));
  pthread_t writer;
  CHECK(pthread_create(&writer, NULL, patient_writer, &w) == 0);
  pthread_mutex_lock(&w.mu);
  while (!w.started) pthread_cond_wait(&w.cv, &w.mu);
  pthread_mutex_unlock(&w.mu);
  CHECK(w.task[0] != '\0');
  int seen_waiting = 0;
  while (!seen_waiting && !atomic_load(&w.done)) seen_waiting = in_busy_wait(w.task);
  CHECK(seen_waiting); /* else it returned without waiting for the lock */
  double hold_until = wall_seconds() + 2.0;
  while (wall_seconds() < hold_until && !atomic_load(&w.done)) {
    struct timespec poll_pause = {0, 1000 * 1000};
    nanosleep(&poll_pause, NULL);
  }
  if (atomic_load(&w.done)) fprintf(stderr, "patient write gave up while the lock was held\n");
  CHECK(!atomic_load(&w.done));
  atomic_store(&w.released, 1);
  CHECK(release_write_lock(&h));
  pthread_join(writer, NULL);
  if (w.status != AQ_STATUS_OK) fprintf(stderr, "patient write: %s\n", w.message);
  CHECK(w.status == AQ_STATUS_OK && w.id == 1);
  CHECK(w.released_first); /* it returned only after the release */
  pthread_cond_destroy(&w.cv);
  pthread_mutex_destroy(&w.mu);

  char *second = NULL;
  CHECK_OK(aq_action_create(fast, host, request, &second));
  int64_t id = 0;
  CHECK(json_int(second, "id", &id) && id == 2);
  aq_string_free(second);
  aq_queue_free(patient);
  aq_queue_free(fast);
}

/* The conventions every host shares (as core/tests/host_conventions.rs and
 * bindings-python/tests/test_conventions.py check them): seconds everywhere,
 * NULL (never 0) for the default lease, a lease of 0 refused, lost leases
 * expired before every read by default (an option turns it off), a trusted
 * name given as an actor, service_name twice refused by the core,
 * durability values from the core's list, limits as AQ_* macros. */

/* Seconds on the wall clock (CLOCK_REALTIME, the queue's clock). */
static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Claims web-1's next action with a 50 ms lease and returns once the wall
 * clock is past that lease (a clock condition, not a guessed delay). */
static int64_t claim_and_lose_lease(aq_queue *q, const char *request) {
  char *out = NULL;
  CHECK_OK(aq_action_create(q, host, request, &out));
  aq_string_free(out);
  char *claim = NULL;
  CHECK_OK(aq_action_claim_next(q, host, "web-1", SECONDS(0.05), &claim));
  double lease_end = wall_seconds() + 0.05;
  int64_t id = 0;
  CHECK(json_int(claim, "id", &id) && json_has(claim, "\"status\":\"executing\""));
  aq_string_free(claim);
  while (wall_seconds() <= lease_end + 0.001) {
    struct timespec pause = {0, 5 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return id;
}

static void test_conventions(void) {
  CHECK(AQ_DEFAULT_EXPIRE_LEASES_ON_READ == true);
  CHECK(AQ_DEFAULT_PAGE_LIMIT == 50 && AQ_MAX_PAGE_LIMIT == 100);
  CHECK(AQ_DEFAULT_EVENTS_LIMIT == 100 && AQ_MAX_EVENTS_LIMIT == 1000);
  CHECK(AQ_DEFAULT_LEASE_SECONDS == 300 && AQ_DEFAULT_BUSY_TIMEOUT_SECONDS == 10);

  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open_in_memory(NULL, &q));
  char *out = NULL;
  CHECK_OK(aq_server_create(q, host, "web-1", NULL, &out));
  aq_string_free(out);

  /* Lost leases are expired before every read, by default. */
  const char *restart_a = "{\"server_id\":\"web-1\",\"action_type\":\"restart_service\",\"service_name\":\"a\"}";
  const char *restart_b = "{\"server_id\":\"web-1\",\"action_type\":\"restart_service\",\"service_name\":\"b\"}";
  const char *restart_c = "{\"server_id\":\"web-1\",\"action_type\":\"restart_service\",\"service_name\":\"c\"}";
  int64_t id = claim_and_lose_lease(q, restart_a);
  char *read = NULL;
  CHECK_OK(aq_action_get(q, host, id, &read));
  CHECK(json_has(read, "\"status\":\"failed\"") && json_has(read, "\"exit_code\":-1"));
  aq_string_free(read);
  claim_and_lose_lease(q, restart_b);
  CHECK_OK(aq_action_list(q, host, "executing", NULL, NULL, AQ_MAX_PAGE_LIMIT, 0, NULL, &read));
  CHECK(json_has(read, "\"total\":0"));
  aq_string_free(read);
  claim_and_lose_lease(q, restart_c);
  CHECK_OK(aq_event_list(q, host, 0, AQ_MAX_EVENTS_LIMIT, &read));
  CHECK(count(read, "\"detail\":\"lease expired\"") == 3);
  aq_string_free(read);
  CHECK_OK(aq_action_expire_leases(q, host, &read));
  CHECK(strcmp(read, "[]") == 0); /* the reads did it */
  aq_string_free(read);
  uint64_t expiries = 0;
  CHECK_OK(aq_queue_lease_expiries(q, host, &expiries));
  CHECK(expiries == 3); /* the handle counts them, whichever call expired them */

  /* A lease of 0 is refused; NULL is the default lease. */
  CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"clear_logs\"}", &out));
  aq_string_free(out);
  out = SENTINEL;
  CHECK_STATUS(aq_action_claim_next(q, host, "web-1", SECONDS(0), &out), AQ_STATUS_INVALID_INPUT);
  CHECK(last_error_starts_with("lease must be more than 0 seconds"));
  CHECK(out == SENTINEL);
  char *claim = NULL;
  CHECK_OK(aq_action_claim_next(q, host, "web-1", NULL, &claim));
  char token[64] = "";
  int64_t claimed = 0;
  CHECK(json_str(claim, "lease_token", token, sizeof token) && json_int(claim, "id", &claimed));
  aq_string_free(claim);
  CHECK_STATUS(aq_action_heartbeat(q, host, claimed, token, SECONDS(0), &out), AQ_STATUS_INVALID_INPUT);

  /* A trusted name is an actor, like every other. */
  CHECK_OK(aq_server_pause(q, host, "web-1", &out));
  aq_string_free(out);
  CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"apt_update\"}", &out));
  int64_t pending = 0;
  CHECK(json_int(out, "id", &pending));
  aq_string_free(out);
  aq_actor *alice = trusted("alice");
  CHECK_OK(aq_action_reject(q, alice, pending, "not now", &out));
  aq_actor_free(alice);
  CHECK(json_has(out, "\"rejected_by\":\"alice\"") && json_has(out, "\"rejection_reason\":\"not now\""));
  aq_string_free(out);

  /* service_name given twice: the core's InvalidInput. */
  out = SENTINEL;
  CHECK_STATUS(aq_action_create(q,
                                host,
                                "{\"server_id\":\"web-1\",\"action_type\":\"restart_service\","
                                "\"service_name\":\"a\",\"params\":{\"service_name\":\"a\"}}",
                                &out),
               AQ_STATUS_INVALID_INPUT);
  CHECK(last_error_is("service_name given both on its own and in params"));

  /* Limits are the macros. */
  CHECK_STATUS(aq_action_list(q, host, NULL, NULL, NULL, AQ_MAX_PAGE_LIMIT + 1, 0, NULL, &out),
               AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_event_list(q, host, 0, AQ_MAX_EVENTS_LIMIT + 1, &out), AQ_STATUS_INVALID_INPUT);
  CHECK(out == SENTINEL);
  aq_queue_free(q);

  /* Settings: seconds, durability from the core's list, the sweep optional. */
  aq_options *o = NULL;
  CHECK_OK(aq_options_new(&o));
  CHECK_STATUS(aq_options_set_durability(o, 2), AQ_STATUS_INVALID_INPUT);
  CHECK(last_error_is(
      "durability must be one of: AQ_DURABILITY_NORMAL (0), AQ_DURABILITY_FULL (1) (got 2)"));
  CHECK_STATUS(aq_options_set_busy_timeout_seconds(o, -1), AQ_STATUS_INVALID_INPUT);
  CHECK(last_error_starts_with("seconds must be a finite number of seconds >= 0"));
  CHECK_STATUS(aq_options_set_leases(o, -1, 10), AQ_STATUS_INVALID_INPUT);
  CHECK_OK(aq_options_set_busy_timeout_seconds(o, 0.25));
  CHECK_OK(aq_options_set_expire_leases_on_read(o, false));
  CHECK_OK(aq_queue_open_in_memory(o, &q));
  aq_options_free(o);
  CHECK_OK(aq_server_create(q, host, "web-1", NULL, &out));
  aq_string_free(out);
  id = claim_and_lose_lease(q, restart_a);
  CHECK_OK(aq_action_get(q, host, id, &read));
  CHECK(json_has(read, "\"status\":\"executing\"")); /* no sweep: the host's call */
  aq_string_free(read);
  CHECK_OK(aq_action_expire_leases(q, host, &read));
  CHECK(count(read, "\"status\":\"failed\"") == 1);
  aq_string_free(read);
  aq_queue_free(q);
}

/* The whole flow (docs/contract/domain.md#status-machine) on a SQLite file,
 * reopened to show it persisted. */
static void test_flow(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/flow.sqlite3", dir);
  unlink(path);
  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open(path, NULL, &q));

  char *s = NULL;
  CHECK_OK(aq_server_create(q, host, "web-1", "web-1.lan", &s));
  CHECK(json_has(s, "\"id\":\"web-1\"") && json_has(s, "\"is_paused\":false"));
  CHECK(json_has(s, "\"paused_at\":null"));
  aq_string_free(s);
  CHECK_OK(aq_server_pause(q, host, "web-1", &s));
  CHECK(json_has(s, "\"is_paused\":true") && !json_has(s, "\"paused_at\":null"));
  aq_string_free(s);
  CHECK_OK(aq_server_get(q, host, "web-1", &s));
  CHECK(json_has(s, "\"hostname\":\"web-1.lan\""));
  aq_string_free(s);

  char *a = NULL;
  CHECK_OK(aq_action_create(q,
                            host,
                            "{\"server_id\":\"web-1\",\"action_type\":\"restart_service\","
                            "\"service_name\":\"nginx\",\"alert_id\":42}",
                            &a));
  CHECK(json_has(a, "\"status\":\"pending\""));
  CHECK(json_has(a, "\"command\":\"systemctl restart nginx.service\""));
  CHECK(json_has(a, "\"approved_by\":null"));
  CHECK(json_has(a, "\"alert_id\":42"));
  int64_t id = 0;
  CHECK(json_int(a, "id", &id));
  aq_string_free(a);

  /* Claim finds nothing while it is pending. */
  char *claim = SENTINEL;
  CHECK_OK(aq_action_claim_next(q, host, "web-1", NULL, &claim));
  CHECK(claim == NULL);

  aq_actor *alice = trusted("alice");
  CHECK_OK(aq_action_approve(q, alice, id, &a));
  aq_actor_free(alice);
  CHECK(json_has(a, "\"status\":\"approved\"") && json_has(a, "\"approved_by\":\"alice\""));
  aq_string_free(a);

  CHECK_OK(aq_action_claim_next(q, host, "web-1", SECONDS(300), &claim));
  char token[64] = "";
  CHECK(json_str(claim, "lease_token", token, sizeof token));
  CHECK(json_has(claim, "\"status\":\"executing\""));
  /* The agent checks that what it runs is what was approved. */
  int matches = -1;
  CHECK_OK(aq_action_digest_matches(claim, &matches));
  CHECK(matches == 1);
  CHECK(json_has(claim, "\"approvals\":[{\"by\":\"alice\""));
  aq_string_free(claim);
  CHECK_STATUS(aq_action_digest_matches("not json", &matches), AQ_STATUS_INVALID_INPUT);
  CHECK_OK(aq_action_report_result(q, host, id, token, 0, "restarted", NULL, &a));
  CHECK(json_has(a, "\"status\":\"completed\"") && json_has(a, "\"exit_code\":0"));
  aq_string_free(a);

  /* Another two on the paused server: one rejected, one left pending. */
  char *b = NULL;
  CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"clear_logs\"}", &b));
  int64_t rejected_id = 0;
  CHECK(json_int(b, "id", &rejected_id));
  aq_string_free(b);
  CHECK_STATUS(aq_action_reject(q, host, rejected_id, "", &b), AQ_STATUS_INVALID_INPUT);
  CHECK_OK(aq_action_reject(q, host, rejected_id, "maintenance window", &b));
  CHECK(json_has(b, "\"rejected_by\":\"dashboard\"") &&
        json_has(b, "\"rejection_reason\":\"maintenance window\""));
  aq_string_free(b);
  CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"apt_update\"}", &b));
  aq_string_free(b);
  CHECK_OK(aq_server_unpause(q, host, "web-1", &s));
  CHECK(json_has(s, "\"paused_at\":null"));
  aq_string_free(s);
  aq_queue_free(q);

  /* Reopen: everything persisted. */
  q = NULL;
  CHECK_OK(aq_queue_open(path, NULL, &q));
  char *page = NULL;
  CHECK_OK(aq_action_list(q, host, NULL, NULL, NULL, 2, 0, NULL, &page));
  int64_t total = 0, limit = 0;
  CHECK(json_int(page, "total", &total) && total == 3);
  CHECK(json_int(page, "limit", &limit) && limit == 2);
  CHECK(count(page, "\"action_type\":") == 2);
  CHECK(json_has(page, "\"actions\":[{\"id\":3,")); /* newest first */
  aq_string_free(page);
  CHECK_OK(aq_action_list(q, host, NULL, NULL, NULL, 2, 2, NULL, &page));
  CHECK(count(page, "\"action_type\":") == 1 && json_has(page, "\"offset\":2"));
  aq_string_free(page);
  CHECK_OK(aq_action_list(q, host, "completed", "web-1", "restart_service", 50, 0, NULL, &page));
  CHECK(json_int(page, "total", &total) && total == 1);
  aq_string_free(page);
  CHECK_OK(aq_server_list_actions(q, host, "web-1", "pending", 50, 0, NULL, &page));
  CHECK(json_int(page, "total", &total) && total == 1);
  CHECK(json_has(page, "\"action_type\":\"apt_update\""));
  aq_string_free(page);

  char *events = NULL;
  CHECK_OK(aq_event_list(q, host, 0, 1000, &events));
  /* paused; created(pending), approved, executing, completed; pending, rejected; pending;
     unpaused. */
  CHECK(count(events, "\"to_status\":") == 9);
  CHECK(count(events, "\"kind\":\"action\",\"subject\":\"web-1\"") == 7);
  CHECK(json_has(events, "\"action_id\":null,\"from_status\":null,\"to_status\":null,"
                         "\"by\":\"dashboard\""));
  CHECK(json_has(events, "\"detail\":\"paused\",\"kind\":\"server\",\"subject\":\"web-1\""));
  CHECK(json_has(events, "\"detail\":\"unpaused\",\"kind\":\"server\",\"subject\":\"web-1\""));
  CHECK(json_has(events, "\"from_status\":\"executing\",\"to_status\":\"completed\""));
  aq_string_free(events);
  CHECK_OK(aq_event_list(q, host, 8, 1000, &events));
  CHECK(count(events, "\"to_status\":") == 1 && json_has(events, "\"id\":9"));
  aq_string_free(events);
  CHECK_OK(aq_event_list(q, host, 9, 10, &events));
  CHECK(strcmp(events, "[]") == 0);
  aq_string_free(events);
  aq_queue_free(q);
}

/* ---- 8 threads, one handle ------------------------------------------------ */

enum { THREADS = 8, PER_THREAD = 20, TOTAL = THREADS * PER_THREAD };

struct worker {
  aq_queue *q;
  int index;
  int errors;
  int claimed;
  int64_t ids[TOTAL];
};

static void *create_worker(void *arg) {
  struct worker *w = arg;
  for (int i = 0; i < PER_THREAD; i++) {
    char *a = NULL;
    if (aq_action_create(w->q, host, "{\"server_id\":\"shared\",\"action_type\":\"clear_logs\"}", &a) !=
        AQ_STATUS_OK) {
      w->errors++;
      continue;
    }
    aq_string_free(a);
    /* The last error is per thread: each thread sees its own message. */
    char *out = SENTINEL;
    char expected[64];
    snprintf(expected, sizeof expected, "Action %d not found", 100000 + w->index);
    if (aq_action_get(w->q, host, 100000 + w->index, &out) != AQ_STATUS_NOT_FOUND || out != SENTINEL ||
        !last_error_is(expected)) {
      w->errors++;
    }
  }
  return NULL;
}

static void *claim_worker(void *arg) {
  struct worker *w = arg;
  for (;;) {
    char *claim = NULL;
    if (aq_action_claim_next(w->q, host, "shared", NULL, &claim) != AQ_STATUS_OK) {
      w->errors++;
      return NULL;
    }
    if (claim == NULL) return NULL;
    int64_t id = 0;
    char token[64];
    if (!json_int(claim, "id", &id) || !json_str(claim, "lease_token", token, sizeof token)) {
      w->errors++;
    } else {
      w->ids[w->claimed++] = id;
      char *done = NULL;
      if (aq_action_report_result(w->q, host, id, token, 0, "ok", NULL, &done) != AQ_STATUS_OK) {
        w->errors++;
      }
      aq_string_free(done);
    }
    aq_string_free(claim);
  }
}

static void test_threads(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/threads.sqlite3", dir);
  unlink(path);
  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open(path, NULL, &q));
  char *s = NULL;
  CHECK_OK(aq_server_create(q, host, "shared", NULL, &s));
  aq_string_free(s);

  static struct worker workers[THREADS];
  pthread_t threads[THREADS];
  for (int i = 0; i < THREADS; i++) {
    workers[i] = (struct worker){.q = q, .index = i};
    CHECK(pthread_create(&threads[i], NULL, create_worker, &workers[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
  for (int i = 0; i < THREADS; i++) CHECK(workers[i].errors == 0);

  char *page = NULL;
  int64_t total = 0;
  CHECK_OK(aq_action_list(q, host, "approved", "shared", NULL, 1, 0, NULL, &page));
  CHECK(json_int(page, "total", &total) && total == TOTAL);
  aq_string_free(page);

  for (int i = 0; i < THREADS; i++) {
    CHECK(pthread_create(&threads[i], NULL, claim_worker, &workers[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);

  /* Every action claimed exactly once: ids 1..TOTAL, no duplicates. */
  static int seen[TOTAL + 1];
  int claimed = 0, duplicates = 0, out_of_range = 0;
  for (int i = 0; i < THREADS; i++) {
    CHECK(workers[i].errors == 0);
    for (int j = 0; j < workers[i].claimed; j++) {
      int64_t id = workers[i].ids[j];
      if (id < 1 || id > TOTAL) {
        out_of_range++;
      } else if (seen[id]++) {
        duplicates++;
      }
      claimed++;
    }
  }
  CHECK(claimed == TOTAL);
  CHECK(duplicates == 0);
  CHECK(out_of_range == 0);
  CHECK_OK(aq_action_list(q, host, "completed", NULL, NULL, 1, 0, NULL, &page));
  CHECK(json_int(page, "total", &total) && total == TOTAL);
  aq_string_free(page);
  aq_queue_free(q);
}

/* aq_clock: a manual clock drives the queue's timestamps and leases. */
static void test_manual_clock(void) {
  aq_clock *clock = NULL;
  aq_options *options = NULL;
  aq_queue *q = NULL;
  char *json = NULL;
  char buf[64];
  int64_t now = 0;
  /* 2026-01-01T00:00:00Z */
  const int64_t start = INT64_C(1767225600) * 1000000;
  CHECK_STATUS(aq_clock_new_manual(start, NULL), AQ_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(aq_clock_new_manual(INT64_MAX, &clock), AQ_STATUS_INVALID_INPUT);
  CHECK(clock == NULL);
  CHECK_OK(aq_clock_new_manual(start, &clock));
  CHECK_OK(aq_clock_now(clock, &now));
  CHECK(now == start);
  CHECK_STATUS(aq_clock_now(NULL, &now), AQ_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(aq_clock_now(clock, NULL), AQ_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(aq_clock_advance(NULL, 1), AQ_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(aq_clock_advance(clock, NAN), AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_clock_advance(clock, INFINITY), AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_clock_advance(clock, 1e300), AQ_STATUS_INVALID_INPUT);
  CHECK_OK(aq_clock_now(clock, &now));
  CHECK(now == start);

  CHECK_OK(aq_options_new(&options));
  CHECK_STATUS(aq_options_set_clock(options, NULL), AQ_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(aq_options_set_clock(NULL, clock), AQ_STATUS_NULL_ARGUMENT);
  CHECK_OK(aq_options_set_clock(options, clock));
  CHECK_OK(aq_queue_open_in_memory(options, &q));
  aq_options_free(options);
  CHECK_OK(aq_server_create(q, host, "web-1", NULL, &json));
  CHECK(json_str(json, "created_at", buf, sizeof buf) && strcmp(buf, "2026-01-01T00:00:00Z") == 0);
  aq_string_free(json);
  CHECK_OK(aq_clock_advance(clock, 1.5));
  CHECK_OK(aq_clock_now(clock, &now));
  CHECK(now == start + 1500000);
  CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"clear_logs\"}", &json));
  CHECK(json_str(json, "created_at", buf, sizeof buf) && strcmp(buf, "2026-01-01T00:00:01.500000Z") == 0);
  aq_string_free(json);
  CHECK_OK(aq_action_claim_next(q, host, "web-1", SECONDS(10), &json));
  aq_string_free(json);
  /* Freed by the host: the queue keeps its own reference, and the time. */
  aq_clock_free(clock);
  aq_clock_free(NULL);
  CHECK_OK(aq_action_expire_leases(q, host, &json));
  CHECK(json != NULL && strcmp(json, "[]") == 0);
  aq_string_free(json);
  aq_queue_free(q);
}

/* Identity from C: an agent credential claims for its own server only, and a
 * revoked secret is refused at once on another handle of the same file. */
static void test_identity(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/identity.sqlite3", dir);
  aq_queue *q = NULL, *other = NULL;
  CHECK_OK(aq_queue_open(path, NULL, &q));
  CHECK_OK(aq_queue_open(path, NULL, &other));
  char *json = NULL;
  CHECK_OK(aq_server_create(q, host, "web-1", NULL, &json));
  aq_string_free(json);
  CHECK_OK(aq_server_create(q, host, "web-2", NULL, &json));
  aq_string_free(json);

  char *issued = NULL;
  CHECK_OK(aq_credential_issue(q, host, "web-1-agent", "agent", "web-1", &issued));
  char secret[128];
  int64_t credential_id = 0;
  CHECK(json_str(issued, "secret", secret, sizeof secret));
  CHECK(json_int(issued, "id", &credential_id));
  CHECK(strncmp(secret, "aq_ag_", 6) == 0);
  aq_string_free(issued);

  aq_actor *agent = NULL;
  CHECK_OK(aq_queue_authenticate(other, secret, &agent));
  CHECK_OK(aq_actor_json(agent, &json));
  CHECK(json != NULL && strcmp(json, "{\"kind\":\"principal\",\"name\":\"web-1-agent\",\"role\":\"agent\","
                                     "\"server_id\":\"web-1\"}") == 0);
  aq_string_free(json);
  CHECK_OK(aq_actor_json(host, &json));
  CHECK(json != NULL && strcmp(json, "{\"kind\":\"host\"}") == 0);
  aq_string_free(json);

  CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"clear_logs\"}", &json));
  aq_string_free(json);
  char *claim = SENTINEL;
  CHECK_STATUS(aq_action_claim_next(other, agent, "web-2", NULL, &claim), AQ_STATUS_PERMISSION_DENIED);
  CHECK(claim == SENTINEL);
  CHECK(last_error_is("Agent for server 'web-1' cannot claim actions of server 'web-2'"));
  claim = NULL;
  CHECK_OK(aq_action_claim_next(other, agent, "web-1", NULL, &claim));
  CHECK(claim != NULL);
  char token[64];
  int64_t id = 0;
  CHECK(json_str(claim, "lease_token", token, sizeof token) && json_int(claim, "id", &id));
  aq_string_free(claim);
  CHECK_OK(aq_action_report_result(other, agent, id, token, 0, "ok", NULL, &json));
  CHECK(json_has(json, "\"status\":\"completed\""));
  aq_string_free(json);

  aq_actor *viewer = principal("victor", "viewer", NULL);
  json = SENTINEL;
  CHECK_STATUS(aq_credential_list(q, viewer, &json), AQ_STATUS_PERMISSION_DENIED);
  CHECK(json == SENTINEL);

  /* A failed authenticate writes no actor: a variable that was NULL stays
     NULL, and every operation refuses a NULL actor (never the trusted host,
     who could issue an admin credential), writing nothing. */
  aq_actor *nobody = NULL;
  CHECK_STATUS(aq_queue_authenticate(q, "aq_ad_guessed", &nobody), AQ_STATUS_UNAUTHENTICATED);
  CHECK(nobody == NULL);
  json = SENTINEL;
  CHECK_STATUS(aq_credential_issue(q, nobody, "mallory", "admin", NULL, &json), AQ_STATUS_NULL_ARGUMENT);
  CHECK(last_error_is("argument 'actor' must not be NULL"));
  CHECK_STATUS(aq_credential_list(q, nobody, &json), AQ_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(aq_server_pause(q, nobody, "web-1", &json), AQ_STATUS_NULL_ARGUMENT);
  CHECK_STATUS(aq_action_claim_next(q, nobody, "web-1", NULL, &json), AQ_STATUS_NULL_ARGUMENT);
  CHECK(json == SENTINEL);
  CHECK_OK(aq_credential_list(q, host, &json));
  CHECK(json_has(json, "web-1-agent") && !json_has(json, "mallory"));
  aq_string_free(json);

  /* The trusted host acting for a name, on any operation; a trusted name on
     a principal, whose name is what is recorded, is refused. */
  aq_actor *ops = trusted("ops-bot");
  CHECK_OK(aq_actor_json(ops, &json));
  CHECK(json != NULL && strcmp(json, "{\"kind\":\"trusted\",\"name\":\"ops-bot\"}") == 0);
  aq_string_free(json);
  CHECK_OK(aq_server_pause(q, ops, "web-2", &json));
  aq_string_free(json);
  CHECK_OK(aq_action_create(q, ops, "{\"server_id\":\"web-2\",\"action_type\":\"clear_logs\"}", &json));
  CHECK(json_has(json, "\"created_by\":\"ops-bot\""));
  int64_t pending = 0;
  CHECK(json_int(json, "id", &pending));
  aq_string_free(json);
  aq_actor_free(ops);
  aq_actor *olga = principal("olga", "operator", NULL);
  aq_actor *refused = (aq_actor *)SENTINEL;
  CHECK_STATUS(aq_actor_by(olga, "alice", &refused), AQ_STATUS_INVALID_INPUT);
  CHECK(last_error_is("a queue acting as principal 'olga' records that name; it cannot act for 'alice'"));
  CHECK(refused == (aq_actor *)SENTINEL);
  CHECK_STATUS(aq_actor_trusted("", &refused), AQ_STATUS_INVALID_INPUT);
  CHECK(refused == (aq_actor *)SENTINEL);
  aq_actor *alice = NULL;
  CHECK_OK(aq_actor_by(host, "alice", &alice));
  CHECK_OK(aq_action_approve(q, alice, pending, &json));
  CHECK(json_has(json, "\"approved_by\":\"alice\""));
  aq_string_free(json);
  aq_actor_free(alice);
  aq_actor_free(olga);

  CHECK_OK(aq_credential_revoke(q, host, credential_id, &json));
  aq_string_free(json);
  aq_actor *again = NULL;
  CHECK_STATUS(aq_queue_authenticate(other, secret, &again), AQ_STATUS_UNAUTHENTICATED);
  CHECK(again == NULL);
  CHECK(strstr(last_error(), secret + 6) == NULL);
  CHECK_STATUS(aq_queue_authenticate(other, "\xff\xfe", &again), AQ_STATUS_UNAUTHENTICATED);

  aq_actor_free(viewer);
  aq_actor_free(agent);
  aq_actor_free(NULL);
  aq_queue_free(other);
  aq_queue_free(q);
}

/* The tamper-evident audit chain and the approval sweep through the C API
   (tampering is the core's test, core/tests/audit_tamper.rs). */
static void test_audit_verify(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/audit.sqlite3", dir);
  unlink(path);
  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open(path, NULL, &q));
  char *s = NULL;
  CHECK_OK(aq_server_create(q, host, "web-1", NULL, &s));
  aq_string_free(s);
  for (int i = 0; i < 3; i++) {
    CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"clear_logs\"}", &s));
    aq_string_free(s);
  }
  char *report = NULL;
  CHECK_OK(aq_audit_verify(q, host, &report));
  CHECK(report != NULL && strcmp(report, "{\"checked\":3,\"first_bad_event_id\":null,\"pruned_through\":null}") == 0);
  aq_string_free(report);
  aq_actor *admin = principal("ada", "admin", NULL);
  aq_actor *operator_ = principal("olga", "operator", NULL);
  CHECK_OK(aq_audit_verify(q, admin, &report));
  CHECK(report != NULL && strcmp(report, "{\"checked\":3,\"first_bad_event_id\":null,\"pruned_through\":null}") == 0);
  aq_string_free(report);
  report = SENTINEL;
  CHECK_STATUS(aq_audit_verify(q, operator_, &report), AQ_STATUS_PERMISSION_DENIED);
  CHECK(report == SENTINEL);

  /* Servers and totals, trusted and as a principal. */
  char *json = NULL;
  CHECK_OK(aq_server_list(q, host, &json));
  CHECK(json != NULL && count(json, "\"id\":") == 1 && json_has(json, "\"id\":\"web-1\""));
  aq_string_free(json);
  CHECK_OK(aq_server_list(q, operator_, &json));
  CHECK(json_has(json, "\"id\":\"web-1\""));
  aq_string_free(json);
  CHECK_OK(aq_action_count(q, host, &json));
  CHECK(json != NULL && strcmp(json, "[{\"server_id\":\"web-1\",\"status\":\"approved\",\"count\":3}]") == 0);
  aq_string_free(json);
  CHECK_OK(aq_action_count(q, operator_, &json));
  CHECK(json != NULL && strcmp(json, "[{\"server_id\":\"web-1\",\"status\":\"approved\",\"count\":3}]") == 0);
  aq_string_free(json);
  aq_queue_free(q);

  /* The approval sweep: with the sweep before reads off and a manual clock,
   * only the action past its ttl (60 s) is rejected. */
  aq_clock *clock = NULL;
  CHECK_OK(aq_clock_new_manual(INT64_C(1767225600) * 1000000, &clock));
  aq_options *o = NULL;
  CHECK_OK(aq_options_new(&o));
  CHECK_OK(aq_options_set_whitelist(o, "{\"actions\": {\"short_lived\": {\"command\": "
                                       "\"journalctl --vacuum-time=1d\", \"approval\": {\"ttl_seconds\": 60}}}}"));
  CHECK_OK(aq_options_set_expire_leases_on_read(o, false));
  CHECK_OK(aq_options_set_clock(o, clock));
  CHECK_OK(aq_queue_open_in_memory(o, &q));
  aq_options_free(o);
  CHECK_OK(aq_server_create(q, host, "web-1", NULL, &s));
  aq_string_free(s);
  CHECK_OK(aq_server_pause(q, host, "web-1", &s));
  aq_string_free(s);
  int64_t first = 0, second = 0;
  CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"short_lived\"}", &s));
  CHECK(json_int(s, "id", &first));
  aq_string_free(s);
  CHECK_OK(aq_clock_advance(clock, 30));
  CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"short_lived\"}", &s));
  CHECK(json_int(s, "id", &second));
  aq_string_free(s);
  CHECK_OK(aq_clock_advance(clock, 31));
  char *expired = NULL;
  CHECK_OK(aq_action_expire_approvals(q, host, &expired));
  int64_t expired_id = 0;
  CHECK(expired != NULL && count(expired, "\"status\":\"rejected\"") == 1 &&
        json_int(expired, "id", &expired_id) && expired_id == first);
  aq_string_free(expired);
  CHECK_OK(aq_clock_advance(clock, 30));
  expired = SENTINEL;
  CHECK_STATUS(aq_action_expire_approvals(q, admin, NULL), AQ_STATUS_NULL_ARGUMENT);
  CHECK_OK(aq_action_expire_approvals(q, operator_, &expired));
  CHECK(expired != NULL && count(expired, "\"status\":\"rejected\"") == 1 &&
        json_int(expired, "id", &expired_id) && expired_id == second);
  aq_string_free(expired);
  aq_actor_free(operator_);
  aq_actor_free(admin);
  aq_clock_free(clock);
  aq_queue_free(q);
}

/* Waits (docs/contract/push.md): a claim wait woken by an approval from
   another thread on the same handle, a wait that ends empty, 0 at once, a
   wait out of range refused. */
static double monotonic_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct waiter {
  aq_queue *q;
  aq_status status;
  char *claim;
};

static void *claim_waiter(void *arg) {
  struct waiter *w = arg;
  w->status = aq_action_claim_next_wait(w->q, host, "wait-1", NULL, 30.0, &w->claim);
  return NULL;
}

static void test_wait(void) {
  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open_in_memory(NULL, &q));
  char *s = NULL;
  CHECK_OK(aq_server_create(q, host, "wait-1", NULL, &s));
  aq_string_free(s);

  char *claim = SENTINEL;
  double start = monotonic_seconds();
  CHECK_OK(aq_action_claim_next_wait(q, host, "wait-1", NULL, 0.2, &claim));
  CHECK(claim == NULL);
  CHECK(monotonic_seconds() - start >= 0.2);
  char *events = NULL;
  CHECK_OK(aq_event_list_wait(q, host, 1000, 10, 0.0, &events));
  CHECK(strcmp(events, "[]") == 0);
  aq_string_free(events);
  CHECK_STATUS(aq_action_claim_next_wait(q, host, "wait-1", NULL, AQ_MAX_WAIT_SECONDS + 1, &claim),
               AQ_STATUS_INVALID_INPUT);
  CHECK(strstr(last_error(), "wait must be between 0 and 60 seconds") != NULL);
  CHECK_STATUS(aq_event_list_wait(q, host, 0, 10, -1.0, &events), AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_event_list_wait(q, host, 0, 10, NAN, &events), AQ_STATUS_INVALID_INPUT);

  CHECK_OK(aq_server_pause(q, host, "wait-1", &s));
  aq_string_free(s);
  char *action = NULL;
  CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"wait-1\",\"action_type\":\"clear_logs\"}", &action));
  int64_t id = 0;
  CHECK(json_int(action, "id", &id));
  aq_string_free(action);
  struct waiter w = {.q = q, .status = AQ_STATUS_OK, .claim = NULL};
  pthread_t thread;
  CHECK(pthread_create(&thread, NULL, claim_waiter, &w) == 0);
  struct timespec asleep = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
  nanosleep(&asleep, NULL); /* the waiter is asleep by then (it re-checks after any change) */
  start = monotonic_seconds();
  CHECK_OK(aq_action_approve(q, host, id, &s));
  aq_string_free(s);
  pthread_join(thread, NULL);
  CHECK(w.status == AQ_STATUS_OK);
  CHECK(w.claim != NULL && json_has(w.claim, "\"lease_token\""));
  CHECK(monotonic_seconds() - start < 30.0);
  aq_string_free(w.claim);
  aq_queue_free(q);
}

/* Job leases and notification delivery cursors (docs/contract/notifications.md#delivery):
   a lease held by one holder is refused to another, a cursor moves only for the
   lease's holder, a failure keeps it and says why; admins only. */
static void test_deliveries(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/deliveries.sqlite3", dir);
  unlink(path);
  aq_queue *q = NULL;
  CHECK_OK(aq_queue_open(path, NULL, &q));
  char *s = NULL;
  CHECK_OK(aq_server_create(q, host, "web-1", NULL, &s));
  aq_string_free(s);
  CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"clear_logs\"}", &s));
  aq_string_free(s);
  char *json = NULL;
  CHECK_OK(aq_delivery_register(q, host, "ops", "webhook", &json));
  CHECK(json != NULL && json_has(json, "\"cursor\":1") && json_has(json, "\"lag_events\":0"));
  aq_string_free(json);
  CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"restart_service\",\"service_name\":\"nginx\"}", &s));
  aq_string_free(s);
  json = SENTINEL;
  CHECK_STATUS(aq_delivery_record(q, host, "ops", "r1", 2, "sent", NULL, &json), AQ_STATUS_CONFLICT);
  CHECK(json == SENTINEL && last_error_is("Lease 'delivery:ops' is not held by 'r1'"));
  CHECK_OK(aq_lease_take(q, host, "delivery:ops", "r1", 30.0, &json));
  CHECK(json_has(json, "\"holder\":\"r1\""));
  aq_string_free(json);
  CHECK_STATUS(aq_lease_take(q, host, "delivery:ops", "r2", 30.0, &json), AQ_STATUS_CONFLICT);
  CHECK_STATUS(aq_lease_take(q, host, "delivery:ops", "r1", 0.0, &json), AQ_STATUS_INVALID_INPUT);
  CHECK_OK(aq_delivery_record(q, host, "ops", "r1", 2, "failed", "HTTP 500", &json));
  CHECK(json_has(json, "\"cursor\":1") && json_has(json, "\"last_error\":\"HTTP 500\"") && json_has(json, "\"failed\":1"));
  aq_string_free(json);
  CHECK_STATUS(aq_delivery_record(q, host, "ops", "r1", 2, "failed", NULL, &json), AQ_STATUS_INVALID_INPUT);
  CHECK_STATUS(aq_delivery_record(q, host, "ops", "r1", 2, "delivered", NULL, &json), AQ_STATUS_INVALID_INPUT);
  CHECK_OK(aq_delivery_record(q, host, "ops", "r1", 2, "sent", NULL, &json));
  CHECK(json_has(json, "\"cursor\":2") && json_has(json, "\"sent\":1") && json_has(json, "\"last_error\":null"));
  aq_string_free(json);
  for (int i = 0; i < 2; i++) {
    CHECK_OK(aq_action_create(q, host, "{\"server_id\":\"web-1\",\"action_type\":\"clear_logs\"}", &s));
    aq_string_free(s);
  }
  CHECK_STATUS(aq_delivery_record_sent(q, host, "ops", "r1", 4, 5, &json), AQ_STATUS_INVALID_INPUT);
  CHECK_OK(aq_delivery_record_sent(q, host, "ops", "r1", 4, 2, &json));
  CHECK(json_has(json, "\"cursor\":4") && json_has(json, "\"sent\":3") && json_has(json, "\"lag_events\":0"));
  aq_string_free(json);
  CHECK_STATUS(aq_delivery_record_sent(q, host, "ops", "r1", 4, 0, &json), AQ_STATUS_CONFLICT);
  CHECK(last_error_is("Delivery 'ops' is already past event 4 (cursor 4)"));
  aq_actor *operator_ = principal("olga", "operator", NULL);
  json = SENTINEL;
  CHECK_STATUS(aq_delivery_list(q, operator_, &json), AQ_STATUS_PERMISSION_DENIED);
  CHECK(json == SENTINEL);
  aq_actor *admin = principal("ada", "admin", NULL);
  CHECK_OK(aq_delivery_list(q, admin, &json));
  CHECK(count(json, "\"name\":") == 1 && json_has(json, "\"name\":\"ops\""));
  aq_string_free(json);
  bool released = false;
  CHECK_OK(aq_lease_release(q, admin, "delivery:ops", "r1", &released));
  CHECK(released);
  CHECK_OK(aq_lease_release(q, admin, "delivery:ops", "r1", &released));
  CHECK(!released);
  CHECK_STATUS(aq_delivery_record(q, host, NULL, "r1", 2, "sent", NULL, &json), AQ_STATUS_NULL_ARGUMENT);
  CHECK(last_error_is("argument 'name' must not be NULL"));
  CHECK_STATUS(aq_lease_release(q, host, "x", "r1", NULL), AQ_STATUS_NULL_ARGUMENT);
  CHECK(last_error_is("argument 'released_out' must not be NULL"));
  CHECK(AQ_MAX_JOB_LEASE_SECONDS == 3600 && AQ_MAX_SINK_NAME_CHARS == 64);
  aq_actor_free(admin);
  aq_actor_free(operator_);
  aq_queue_free(q);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  if (aq_actor_host(&host) != AQ_STATUS_OK) return 1;
  test_version_and_status_codes();
  test_panic_boundary();
  test_last_error_buffer();
  test_null_arguments();
  test_invalid_utf8();
  test_core_statuses(dir);
  test_options_and_whitelist(dir);
  test_busy_timeout(dir);
  test_flow(dir);
  test_audit_verify(dir);
  test_conventions();
  test_manual_clock();
  test_identity(dir);
  test_threads(dir);
  test_wait();
  test_deliveries(dir);
  aq_actor_free(host);
  printf("test_api: %d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
