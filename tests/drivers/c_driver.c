/*
 * The C host's driver for the cross-host scenarios (the JSON files of tests/scenarios):
 * runs every step of one scenario through libactionq's C API, as a C host
 * calls it, and prints the transcript (a JSON array, one outcome per step).
 *
 * Usage: c_driver SCENARIO.json STORE  (STORE: "memory" or a SQLite file path)
 * A malformed scenario exits with status 2. JSON is read and written with
 * cJSON (Debian's libcjson-dev).
 */
#define _DEFAULT_SOURCE /* timegm */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actionq.h"

#define MAX_TOKENS 64

static struct {
  char *name;
  char *token;
} tokens[MAX_TOKENS];
static int token_count;

static void bad_scenario(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  fputs("c_driver: bad scenario: ", stderr);
  vfprintf(stderr, fmt, args);
  fputc('\n', stderr);
  va_end(args);
  exit(2);
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) bad_scenario("cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)size + 1);
  if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) bad_scenario("cannot read %s", path);
  text[size] = '\0';
  fclose(f);
  return text;
}

/* A string argument, or NULL when absent or null. */
static const char *opt_str(const cJSON *step, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, key);
  if (!v || cJSON_IsNull(v)) return NULL;
  if (!cJSON_IsString(v)) bad_scenario("%s: expected a string", key);
  return v->valuestring;
}

static const char *req_str(const cJSON *step, const char *key) {
  const char *s = opt_str(step, key);
  if (!s) bad_scenario("missing argument %s", key);
  return s;
}

static int has(const cJSON *step, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, key);
  return v && !cJSON_IsNull(v);
}

static double num(const cJSON *step, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, key);
  if (!cJSON_IsNumber(v)) bad_scenario("%s: expected a number", key);
  return v->valuedouble;
}

static int64_t int_or(const cJSON *step, const char *key, int64_t fallback) {
  return has(step, key) ? (int64_t)num(step, key) : fallback;
}

static const char *token_arg(const cJSON *step) {
  const char *given = req_str(step, "lease_token");
  if (given[0] != '$') return given;
  for (int i = 0; i < token_count; i++)
    if (strcmp(tokens[i].name, given + 1) == 0) return tokens[i].token;
  bad_scenario("no saved token %s", given + 1);
  return NULL;
}

/* The outcome of one call: {"ok": <parsed out>}, {"none": true} or {"error": ...}. */
static cJSON *outcome(aq_status status, char *out) {
  cJSON *result = cJSON_CreateObject();
  if (status == AQ_STATUS_OK) {
    if (out) {
      cJSON *value = cJSON_Parse(out);
      if (!value) bad_scenario("library returned invalid JSON: %s", out);
      cJSON_AddItemToObject(result, "ok", value);
      aq_string_free(out);
    } else {
      cJSON_AddTrueToObject(result, "none");
    }
    return result;
  }
  char message[4096];
  size_t len = 0;
  aq_last_error_message(message, sizeof message, &len);
  int64_t existing = 0;
  aq_last_error_existing_action_id(&existing);
  cJSON *error = cJSON_AddObjectToObject(result, "error");
  cJSON_AddStringToObject(error, "code", aq_status_code(status));
  cJSON_AddStringToObject(error, "message", message);
  if (existing > 0)
    cJSON_AddNumberToObject(error, "existing_action_id", (double)existing);
  else
    cJSON_AddNullToObject(error, "existing_action_id");
  return result;
}

/* The create body of a step: its server_id, action_type, service_name,
 * params, alert_id and created_by, as JSON text (caller frees). */
static char *create_body(const cJSON *step) {
  static const char *const fields[] = {"server_id", "action_type", "service_name",
                                       "params",    "alert_id",    "created_by"};
  cJSON *body = cJSON_CreateObject();
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, fields[i]);
    if (v) cJSON_AddItemToObject(body, fields[i], cJSON_Duplicate(v, 1));
  }
  char *text = cJSON_PrintUnformatted(body);
  cJSON_Delete(body);
  return text;
}

static cJSON *call(aq_queue *q, aq_clock *clock, const cJSON *step) {
  const char *name = req_str(step, "call");
  char *out = NULL;
  aq_status s;
  double lease = 0;
  const double *lease_arg = NULL;
  if (has(step, "lease_seconds")) {
    lease = num(step, "lease_seconds");
    lease_arg = &lease;
  }
  if (strcmp(name, "create_server") == 0) {
    s = aq_server_create(q, req_str(step, "id"), opt_str(step, "hostname"), &out);
  } else if (strcmp(name, "get_server") == 0) {
    s = aq_server_get(q, req_str(step, "id"), &out);
  } else if (strcmp(name, "pause_server") == 0) {
    s = aq_server_pause(q, req_str(step, "id"), &out);
  } else if (strcmp(name, "unpause_server") == 0) {
    s = aq_server_unpause(q, req_str(step, "id"), &out);
  } else if (strcmp(name, "create_action") == 0) {
    char *body = create_body(step);
    s = aq_action_create(q, body, &out);
    cJSON_free(body);
  } else if (strcmp(name, "get_action") == 0) {
    s = aq_action_get(q, (int64_t)num(step, "id"), &out);
  } else if (strcmp(name, "list_actions") == 0) {
    s = aq_action_list(q, opt_str(step, "status"), opt_str(step, "server_id"),
                       opt_str(step, "action_type"), int_or(step, "limit", AQ_DEFAULT_PAGE_LIMIT),
                       int_or(step, "offset", 0), &out);
  } else if (strcmp(name, "list_server_actions") == 0) {
    s = aq_server_list_actions(q, req_str(step, "server_id"), opt_str(step, "status"),
                               int_or(step, "limit", AQ_DEFAULT_PAGE_LIMIT),
                               int_or(step, "offset", 0), &out);
  } else if (strcmp(name, "approve_action") == 0) {
    s = aq_action_approve(q, (int64_t)num(step, "id"), req_str(step, "by"), &out);
  } else if (strcmp(name, "reject_action") == 0) {
    s = aq_action_reject(q, (int64_t)num(step, "id"), req_str(step, "reason"), req_str(step, "by"), &out);
  } else if (strcmp(name, "cancel_action") == 0) {
    s = aq_action_cancel(q, (int64_t)num(step, "id"), req_str(step, "by"), &out);
  } else if (strcmp(name, "claim_next") == 0) {
    s = aq_action_claim_next(q, req_str(step, "server_id"), lease_arg, &out);
    if (s == AQ_STATUS_OK && out) {
      cJSON *claim = cJSON_Parse(out);
      aq_string_free(out);
      cJSON *token = cJSON_GetObjectItemCaseSensitive(claim, "lease_token");
      if (!cJSON_IsString(token)) bad_scenario("claim without a lease_token");
      const char *save = opt_str(step, "save_token");
      if (save) {
        if (token_count == MAX_TOKENS) bad_scenario("too many saved tokens");
        tokens[token_count].name = strdup(save);
        tokens[token_count].token = strdup(token->valuestring);
        token_count++;
      }
      cJSON_ReplaceItemInObjectCaseSensitive(claim, "lease_token", cJSON_CreateString("<token>"));
      cJSON *result = cJSON_CreateObject();
      cJSON_AddItemToObject(result, "ok", claim);
      return result;
    }
  } else if (strcmp(name, "heartbeat") == 0) {
    s = aq_action_heartbeat(q, (int64_t)num(step, "id"), token_arg(step), lease_arg, &out);
  } else if (strcmp(name, "report_result") == 0) {
    s = aq_action_report_result(q, (int64_t)num(step, "id"), token_arg(step), (int32_t)num(step, "exit_code"),
                                opt_str(step, "stdout"), opt_str(step, "stderr"), &out);
  } else if (strcmp(name, "expire_leases") == 0) {
    s = aq_action_expire_leases(q, &out);
  } else if (strcmp(name, "events_since") == 0) {
    s = aq_event_list(q, (int64_t)num(step, "cursor"), int_or(step, "limit", AQ_DEFAULT_EVENTS_LIMIT),
                      &out);
  } else if (strcmp(name, "advance_clock") == 0) {
    s = aq_clock_advance(clock, num(step, "seconds"));
    if (s != AQ_STATUS_OK) bad_scenario("advance_clock refused");
  } else {
    bad_scenario("unknown call %s", name);
    return NULL;
  }
  return outcome(s, out);
}

static int64_t unix_micros(const char *rfc3339) {
  struct tm tm = {0};
  if (sscanf(rfc3339, "%d-%d-%dT%d:%d:%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec) != 6)
    bad_scenario("clock: expected YYYY-MM-DDTHH:MM:SSZ, got %s", rfc3339);
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000000;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fputs("usage: c_driver SCENARIO.json STORE\n", stderr);
    return 2;
  }
  char *text = read_file(argv[1]);
  cJSON *scenario = cJSON_Parse(text);
  free(text);
  if (!scenario) bad_scenario("not JSON");
  aq_clock *clock = NULL;
  aq_options *options = NULL;
  aq_queue *q = NULL;
  if (aq_clock_new_manual(unix_micros(req_str(scenario, "clock")), &clock) != AQ_STATUS_OK ||
      aq_options_new(&options) != AQ_STATUS_OK || aq_options_set_clock(options, clock) != AQ_STATUS_OK)
    bad_scenario("clock or options refused");
  const cJSON *whitelist = cJSON_GetObjectItemCaseSensitive(scenario, "whitelist");
  if (whitelist) {
    char *config = cJSON_PrintUnformatted(whitelist);
    if (aq_options_set_whitelist(options, config) != AQ_STATUS_OK) bad_scenario("whitelist refused");
    cJSON_free(config);
  }
  aq_status opened = strcmp(argv[2], "memory") == 0 ? aq_queue_open_in_memory(options, &q)
                                                     : aq_queue_open(argv[2], options, &q);
  if (opened != AQ_STATUS_OK) bad_scenario("cannot open %s", argv[2]);
  aq_options_free(options);

  const cJSON *steps = cJSON_GetObjectItemCaseSensitive(scenario, "steps");
  if (!cJSON_IsArray(steps)) bad_scenario("no steps");
  cJSON *transcript = cJSON_CreateArray();
  const cJSON *step;
  cJSON_ArrayForEach(step, steps) { cJSON_AddItemToArray(transcript, call(q, clock, step)); }
  char *printed = cJSON_PrintUnformatted(transcript);
  puts(printed);
  cJSON_free(printed);
  cJSON_Delete(transcript);
  cJSON_Delete(scenario);
  aq_queue_free(q);
  aq_clock_free(clock);
  for (int i = 0; i < token_count; i++) {
    free(tokens[i].name);
    free(tokens[i].token);
  }
  return 0;
}
