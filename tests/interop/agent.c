/*
 * The C host of the interop test (tests/test_interop.py): an agent that claims
 * the approved actions of its servers on one SQLite file and reports a result
 * for each, while other processes (a Python creator, a Rust events reader,
 * another agent) use the same file.
 *
 * Usage: interop_agent DB HANDSHAKE_DIR NAME EXPECTED SERVER...
 * Opens the queue, writes HANDSHAKE_DIR/NAME.ready, waits for HANDSHAKE_DIR/go,
 * then claims round-robin over the SERVERs. Its first claim is held until every
 * agent named in ACTIONQ_INTEROP_AGENTS (space-separated) holds one: it writes
 * HANDSHAKE_DIR/NAME.holding and waits for every agent's, so all agents were
 * claiming at once and each claims at least one action. For each claim it reports
 * exit code 3 when the action id is a multiple of 4, else 0, with
 * stdout "NAME ran <command>" and, for exit 3, stderr "NAME: <id> failed",
 * and prints one JSON line {"id","exit_code","stdout","stderr"} on stdout.
 * It stops when a whole round claims nothing while EXPECTED actions exist
 * and none of them is pending or approved. Any failed call (a busy lock
 * included) is printed on stderr and exits with status 1.
 * JSON is read and written with cJSON (Debian's libcjson-dev).
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "actionq.h"

/* Lock waits are absorbed by the busy timeout, never reported. */
#define BUSY_TIMEOUT_SECONDS 60.0
/* Long enough that no lease runs out during the test. */
#define LEASE_SECONDS 600.0
/* Failure timeout of the waits (not a correctness bound). */
#define DEADLINE_SECONDS 240

static const char *agent_name = "interop_agent";
static const char *handshake_dir = ".";
static int holding_done = 0;

static void die(const char *what, aq_status status) {
  char message[4096];
  aq_last_error_message(message, sizeof message, NULL);
  fprintf(stderr, "%s: %s failed: %s: %s\n", agent_name, what, aq_status_code(status), message);
  exit(1);
}

static void fail(const char *what) {
  fprintf(stderr, "%s: %s\n", agent_name, what);
  exit(1);
}

/* Pacing only: correctness comes from the handshake and the store. */
static void pause_briefly(void) {
  struct timespec pause = {0, 1000000};
  nanosleep(&pause, NULL);
}

/* Writes path atomically (a reader of path sees all or nothing). */
static void publish(const char *path, const char *text) {
  char tmp[4096];
  int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (n < 0 || (size_t)n >= sizeof tmp) fail("a handshake path too long");
  FILE *f = fopen(tmp, "w");
  if (!f || fputs(text, f) < 0 || fclose(f) != 0) fail("cannot write a handshake file");
  if (rename(tmp, path) != 0) fail("cannot rename a handshake file");
}

static void wait_for(const char *path) {
  time_t start = time(NULL);
  while (access(path, F_OK) != 0) {
    if (time(NULL) - start > DEADLINE_SECONDS) {
      fprintf(stderr, "%s: %s never appeared\n", agent_name, path);
      exit(1);
    }
    pause_briefly();
  }
}

/* Writes DIR/NAME.holding, then waits for every agent's (ACTIONQ_INTEROP_AGENTS). */
static void hold_until_every_agent_holds(void) {
  char path[4096], names[1024];
  const char *agents = getenv("ACTIONQ_INTEROP_AGENTS");
  if (!agents || strlen(agents) >= sizeof names) fail("ACTIONQ_INTEROP_AGENTS unset or too long");
  snprintf(path, sizeof path, "%s/%s.holding", handshake_dir, agent_name);
  publish(path, "holding");
  strcpy(names, agents);
  for (char *name = strtok(names, " "); name; name = strtok(NULL, " ")) {
    snprintf(path, sizeof path, "%s/%s.holding", handshake_dir, name);
    wait_for(path);
  }
  holding_done = 1;
}

/* Who every call acts as: the trusted host (this test issues no credentials). */
static aq_actor *host;

/* How many actions match `status` (NULL: any). */
static double count(const aq_queue *q, const char *status) {
  char *out = NULL;
  aq_status s = aq_action_list(q, host, status, NULL, NULL, 1, 0, NULL, &out);
  if (s != AQ_STATUS_OK) die("aq_action_list", s);
  cJSON *page = cJSON_Parse(out);
  aq_string_free(out);
  const cJSON *total = cJSON_GetObjectItemCaseSensitive(page, "total");
  if (!cJSON_IsNumber(total)) fail("a page without a total");
  double n = total->valuedouble;
  cJSON_Delete(page);
  return n;
}

/* Claims one action of server_id and reports its result; 0 when none was waiting. */
static int work_one(const aq_queue *q, const char *server_id) {
  const double lease = LEASE_SECONDS;
  char *out = NULL;
  aq_status s = aq_action_claim_next(q, host, server_id, &lease, &out);
  if (s != AQ_STATUS_OK) die("aq_action_claim_next", s);
  if (!out) return 0;
  cJSON *claim = cJSON_Parse(out);
  aq_string_free(out);
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(claim, "id");
  const cJSON *token = cJSON_GetObjectItemCaseSensitive(claim, "lease_token");
  const cJSON *command = cJSON_GetObjectItemCaseSensitive(claim, "command");
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(claim, "status");
  if (!cJSON_IsNumber(id) || !cJSON_IsString(token) || !cJSON_IsString(command) ||
      !cJSON_IsString(status) || strcmp(status->valuestring, "executing") != 0)
    fail("a claim without id, lease_token, command or status executing");
  int64_t action_id = (int64_t)id->valuedouble;
  if (!holding_done) hold_until_every_agent_holds();
  int32_t exit_code = action_id % 4 == 0 ? 3 : 0;
  char stdout_text[512], stderr_text[128];
  snprintf(stdout_text, sizeof stdout_text, "%s ran %s", agent_name, command->valuestring);
  snprintf(stderr_text, sizeof stderr_text, "%s: %lld failed", agent_name, (long long)action_id);
  const char *stderr_arg = exit_code ? stderr_text : NULL;

  s = aq_action_report_result(q, host, action_id, token->valuestring, exit_code, stdout_text, stderr_arg, &out);
  if (s != AQ_STATUS_OK) die("aq_action_report_result", s);
  cJSON *done = cJSON_Parse(out);
  aq_string_free(out);
  const cJSON *final = cJSON_GetObjectItemCaseSensitive(done, "status");
  if (!cJSON_IsString(final) || strcmp(final->valuestring, exit_code ? "failed" : "completed") != 0)
    fail("the report did not finish the action as asked");
  cJSON_Delete(done);
  cJSON_Delete(claim);

  cJSON *line = cJSON_CreateObject();
  cJSON_AddNumberToObject(line, "id", (double)action_id);
  cJSON_AddNumberToObject(line, "exit_code", exit_code);
  cJSON_AddStringToObject(line, "stdout", stdout_text);
  if (stderr_arg)
    cJSON_AddStringToObject(line, "stderr", stderr_arg);
  else
    cJSON_AddNullToObject(line, "stderr");
  char *text = cJSON_PrintUnformatted(line);
  printf("%s\n", text);
  fflush(stdout);
  cJSON_free(text);
  cJSON_Delete(line);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fputs("usage: interop_agent DB HANDSHAKE_DIR NAME EXPECTED SERVER...\n", stderr);
    return 2;
  }
  const char *db = argv[1], *dir = argv[2];
  handshake_dir = dir;
  agent_name = argv[3];
  double expected = atof(argv[4]);
  char **servers = argv + 5;
  int server_count = argc - 5;

  aq_options *options = NULL;
  aq_status s = aq_options_new(&options);
  if (s != AQ_STATUS_OK) die("aq_options_new", s);
  s = aq_options_set_busy_timeout_seconds(options, BUSY_TIMEOUT_SECONDS);
  if (s != AQ_STATUS_OK) die("aq_options_set_busy_timeout_seconds", s);
  aq_queue *q = NULL;
  s = aq_queue_open(db, options, &q);
  if (s != AQ_STATUS_OK) die("aq_queue_open", s);
  aq_options_free(options);
  s = aq_actor_host(&host);
  if (s != AQ_STATUS_OK) die("aq_actor_host", s);

  char path[4096];
  snprintf(path, sizeof path, "%s/%s.ready", dir, agent_name);
  publish(path, "ready");
  snprintf(path, sizeof path, "%s/go", dir);
  wait_for(path);

  time_t start = time(NULL);
  for (;;) {
    int claimed = 0;
    for (int i = 0; i < server_count; i++) claimed += work_one(q, servers[i]);
    if (claimed) continue;
    if (count(q, NULL) >= expected && count(q, "pending") == 0 && count(q, "approved") == 0) break;
    if (time(NULL) - start > DEADLINE_SECONDS) fail("the actions never all appeared");
    pause_briefly();
  }
  aq_actor_free(host);
  aq_queue_free(q);
  return 0;
}
