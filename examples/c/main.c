/*
 * actionq from C: the whole flow on a SQLite file.
 *
 *   gcc main.c -o example_c $(pkg-config --cflags --libs actionq)
 *   ./example_c /tmp/actionq-example.sqlite3
 *
 * Register a server, put it in maintenance, queue a restart (held as pending),
 * approve it for alice, claim it as the server's agent, report the result,
 * then list the actions and read the audit log. Every operation names who
 * acts (an aq_actor); every result is JSON, freed with aq_string_free();
 * every call returns an aq_status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <actionq.h>

/* Prints the failed call and the thread's last error message, then exits. */
static void check(aq_status status, const char *what) {
  if (status == AQ_STATUS_OK) return;
  char message[512];
  aq_last_error_message(message, sizeof message, NULL);
  fprintf(stderr, "%s failed: %s (%s)\n", what, message, aq_status_code(status));
  exit(1);
}

/* Copies the string value of "key" out of a flat JSON object. A real host
 * would use its JSON library; this keeps the example dependency-free. */
static void json_string_field(const char *json, const char *key, char *buf, size_t len) {
  char needle[64];
  snprintf(needle, sizeof needle, "\"%s\":\"", key);
  const char *at = strstr(json, needle);
  const char *end = at ? strchr(at + strlen(needle), '"') : NULL;
  if (at == NULL || end == NULL || (size_t)(end - at - strlen(needle)) >= len) {
    fprintf(stderr, "no \"%s\" in %s\n", key, json);
    exit(1);
  }
  at += strlen(needle);
  memcpy(buf, at, (size_t)(end - at));
  buf[end - at] = '\0';
}

static long long json_id(const char *json) {
  const char *at = strstr(json, "\"id\":"); /* an action's first field */
  return at ? strtoll(at + 5, NULL, 10) : 0;
}

int main(int argc, char **argv) {
  const char *path = argc > 1 ? argv[1] : "actionq-example.sqlite3";
  printf("libactionq %s, database %s\n", aq_version(), path);

  aq_options *options = NULL;
  check(aq_options_new(&options), "aq_options_new");
  check(aq_options_set_durability(options, AQ_DURABILITY_FULL), "aq_options_set_durability");
  aq_queue *queue = NULL;
  check(aq_queue_open(path, options, &queue), "aq_queue_open");
  aq_options_free(options); /* only read while opening */

  /* Who acts: this program itself (the trusted host), and alice, whom it has
   * authenticated its own way. A host whose people hold actionq credentials
   * gets their actor from aq_queue_authenticate instead. */
  aq_actor *host = NULL;
  check(aq_actor_host(&host), "aq_actor_host");
  aq_actor *alice = NULL;
  check(aq_actor_trusted("alice", &alice), "aq_actor_trusted");

  char *json = NULL;
  check(aq_server_create(queue, host, "web-1", "web-1.lan", &json), "aq_server_create");
  printf("server:   %s\n", json);
  aq_string_free(json);

  check(aq_server_pause(queue, host, "web-1", &json), "aq_server_pause");
  printf("paused:   %s\n", json);
  aq_string_free(json);

  check(aq_action_create(queue,
                         host,
                         "{\"server_id\":\"web-1\",\"action_type\":\"restart_service\","
                         "\"service_name\":\"nginx\",\"alert_id\":17}",
                         &json),
        "aq_action_create");
  long long id = json_id(json);
  printf("created:  %s\n", json);
  aq_string_free(json);

  /* A duplicate while the first is pending is a conflict naming the first. */
  aq_status status = aq_action_create(
      queue, host, "{\"server_id\":\"web-1\",\"action_type\":\"restart_service\",\"service_name\":\"nginx\"}",
      &json);
  int64_t existing = 0;
  aq_last_error_existing_action_id(&existing);
  char message[256];
  aq_last_error_message(message, sizeof message, NULL);
  printf("duplicate: %s: %s (existing action %lld)\n", aq_status_code(status), message,
         (long long)existing);
  if (status != AQ_STATUS_CONFLICT || existing != id) return 1;

  check(aq_action_approve(queue, alice, id, &json), "aq_action_approve");
  printf("approved: %s\n", json);
  aq_string_free(json);

  /* The agent side: claim, then report with the lease token. */
  double lease_seconds = 120; /* NULL instead: the queue's default lease */
  check(aq_action_claim_next(queue, host, "web-1", &lease_seconds, &json), "aq_action_claim_next");
  if (json == NULL) {
    fprintf(stderr, "nothing to claim\n");
    return 1;
  }
  char token[64];
  json_string_field(json, "lease_token", token, sizeof token);
  printf("claimed:  action %lld, lease token %s\n", json_id(json), token);
  aq_string_free(json);

  check(aq_action_report_result(queue, host, id, token, 0, "nginx restarted", NULL, &json),
        "aq_action_report_result");
  printf("result:   %s\n", json);
  aq_string_free(json);

  check(aq_action_list(queue, host, NULL, "web-1", NULL, 50, 0, NULL, &json), "aq_action_list");
  printf("list:     %s\n", json);
  aq_string_free(json);

  check(aq_event_list(queue, host, 0, 100, &json), "aq_event_list");
  printf("events:   %s\n", json);
  aq_string_free(json);

  aq_actor_free(alice);
  aq_actor_free(host);
  aq_queue_free(queue);
  return 0;
}
