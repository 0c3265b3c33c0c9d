/*
 * The C host's driver for the cross-host scenarios (the JSON files of tests/scenarios):
 * runs every step of one scenario through libactionq's C API, as a C host
 * calls it, and prints the transcript (a JSON array, one outcome per step).
 *
 * Usage: c_driver SCENARIO.json STORE  (STORE: "memory" or a SQLite file path)
 * A malformed scenario exits with status 2. JSON is read and written with
 * cJSON (Debian's libcjson-dev).
 *
 * Value objects (tests/README.md) become what a C caller passes: {"$null": true}
 * a NULL pointer, {"$bytes_hex": "..."} the raw bytes (not UTF-8),
 * {"$repeat"}/{"$concat"} the string they spell. A C string cannot hold a NUL
 * and cJSON's strings end at one, so a step with a NUL inside a string must
 * name "c" in its "skip"; a skipped step's outcome is {"skipped": true}.
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
#define MAX_STEP_STRINGS 64

static const char *const HOST = "c";

/* Strings made for the current step's arguments, freed after it. */
static char *step_strings[MAX_STEP_STRINGS];
static int step_string_count;

static void free_step_strings(void) {
  for (int i = 0; i < step_string_count; i++) free(step_strings[i]);
  step_string_count = 0;
}

static struct {
  char *name;
  char *token;
} tokens[MAX_TOKENS];
static int token_count;

/* Credential secrets saved by issue_credential steps ("save_secret"). */
static struct {
  char *name;
  char *secret;
} secrets[MAX_TOKENS];
static int secret_count;

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

static int is_value_object(const cJSON *v) {
  return cJSON_IsObject(v) && v->child && v->child->string && v->child->string[0] == '$';
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Appends the bytes `v` spells (a string or a value object) to buf[*len..];
 * returns 0 for {"$null": true}. */
static int spell(const cJSON *v, char **buf, size_t *len) {
  const char *add = NULL;
  size_t add_len = 0, times = 1;
  char *bytes = NULL;
  if (cJSON_IsString(v)) {
    add = v->valuestring;
    add_len = strlen(add);
  } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "$null"))) {
    return 0;
  } else if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "$repeat"))) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(v, "times");
    if (!cJSON_IsNumber(n) || n->valuedouble < 0) bad_scenario("$repeat: times must be a number >= 0");
    add = cJSON_GetObjectItemCaseSensitive(v, "$repeat")->valuestring;
    add_len = strlen(add);
    times = (size_t)n->valuedouble;
  } else if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(v, "$concat"))) {
    const cJSON *part;
    cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(v, "$concat")) {
      if (!spell(part, buf, len)) bad_scenario("$concat: a part is $null");
    }
    return 1;
  } else if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "$bytes_hex"))) {
    const char *hex = cJSON_GetObjectItemCaseSensitive(v, "$bytes_hex")->valuestring;
    bytes = malloc(strlen(hex) / 2 + 1);
    for (const char *h = hex; *h;) {
      if (*h == ' ') {
        h++;
        continue;
      }
      int hi = hex_digit(h[0]), lo = hi < 0 ? -1 : hex_digit(h[1]);
      if (lo < 0) bad_scenario("$bytes_hex: not hex: %s", hex);
      if (hi == 0 && lo == 0) bad_scenario("$bytes_hex: a C string cannot hold a NUL byte");
      bytes[add_len++] = (char)(hi * 16 + lo);
      h += 2;
    }
    add = bytes;
  } else {
    bad_scenario("unknown value object %s", cJSON_PrintUnformatted(v));
  }
  *buf = realloc(*buf, *len + add_len * times + 1);
  for (size_t i = 0; i < times; i++, *len += add_len) memcpy(*buf + *len, add, add_len);
  (*buf)[*len] = '\0';
  free(bytes);
  return 1;
}

/* The C string a step value stands for (freed after the step), or NULL for $null. */
static const char *spelled(const cJSON *v) {
  if (cJSON_IsString(v)) return v->valuestring;
  char *buf = NULL;
  size_t len = 0;
  if (!spell(v, &buf, &len)) return NULL;
  if (step_string_count == MAX_STEP_STRINGS) bad_scenario("too many strings in one step");
  step_strings[step_string_count++] = buf;
  return buf;
}

/* A string argument, or NULL when absent, null or {"$null": true}. */
static const char *opt_str(const cJSON *step, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, key);
  if (!v || cJSON_IsNull(v)) return NULL;
  if (!cJSON_IsString(v) && !is_value_object(v)) bad_scenario("%s: expected a string", key);
  return spelled(v);
}

/* A required string argument; {"$null": true} passes NULL (bad input), absent is a bad scenario. */
static const char *req_str(const cJSON *step, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(step, key);
  if (!v || cJSON_IsNull(v)) bad_scenario("missing argument %s", key);
  return opt_str(step, key);
}

/* A copy of a step value for a JSON request, its value objects spelled out. */
static cJSON *expanded(const cJSON *v) {
  if (is_value_object(v)) {
    const char *s = spelled(v);
    return s ? cJSON_CreateString(s) : cJSON_CreateNull();
  }
  if (cJSON_IsObject(v) || cJSON_IsArray(v)) {
    cJSON *copy = cJSON_IsObject(v) ? cJSON_CreateObject() : cJSON_CreateArray();
    const cJSON *item;
    cJSON_ArrayForEach(item, v) {
      if (cJSON_IsObject(v))
        cJSON_AddItemToObject(copy, item->string, expanded(item));
      else
        cJSON_AddItemToArray(copy, expanded(item));
    }
    return copy;
  }
  return cJSON_Duplicate(v, 1);
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
  if (!given || given[0] != '$') return given;
  for (int i = 0; i < token_count; i++)
    if (strcmp(tokens[i].name, given + 1) == 0) return tokens[i].token;
  bad_scenario("no saved token %s", given + 1);
  return NULL;
}

/* A "$name" secret argument is a saved secret; anything else is literal. */
static const char *secret_arg(const char *given) {
  if (!given || given[0] != '$') return given;
  for (int i = 0; i < secret_count; i++)
    if (strcmp(secrets[i].name, given + 1) == 0) return secrets[i].secret;
  bad_scenario("no saved secret %s", given + 1);
  return NULL;
}

/* The actor a step acts as, as the Rust driver's actor_queue: "as" a saved
 * principal, else the trusted host; then "by" a trusted name on it, which the
 * library refuses on a principal. A refusal is returned, with *actor NULL;
 * on success the caller frees *actor. */
static aq_status acting(aq_queue *q, const cJSON *step, aq_actor **actor) {
  const char *as = opt_str(step, "as");
  aq_actor *base = NULL;
  if (as) {
    if (aq_queue_authenticate(q, secret_arg(as), &base) != AQ_STATUS_OK) bad_scenario("as %s: refused", as);
  } else if (aq_actor_host(&base) != AQ_STATUS_OK) {
    bad_scenario("aq_actor_host refused");
  }
  const char *by = opt_str(step, "by");
  if (!by) {
    *actor = base;
    return AQ_STATUS_OK;
  }
  aq_status s = aq_actor_by(base, by, actor);
  aq_actor_free(base);
  return s;
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
    if (v) cJSON_AddItemToObject(body, fields[i], expanded(v));
  }
  char *text = cJSON_PrintUnformatted(body);
  cJSON_Delete(body);
  return text;
}

/* One step, acting as `as`. */
static cJSON *call(aq_queue *q, aq_clock *clock, const cJSON *step, const aq_actor *as) {
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
    s = aq_server_create(q, as, req_str(step, "id"), opt_str(step, "hostname"), &out);
  } else if (strcmp(name, "get_server") == 0) {
    s = aq_server_get(q, as, req_str(step, "id"), &out);
  } else if (strcmp(name, "pause_server") == 0) {
    s = aq_server_pause(q, as, req_str(step, "id"), &out);
  } else if (strcmp(name, "unpause_server") == 0) {
    s = aq_server_unpause(q, as, req_str(step, "id"), &out);
  } else if (strcmp(name, "create_action") == 0) {
    char *body = create_body(step);
    s = aq_action_create(q, as, body, &out);
    cJSON_free(body);
  } else if (strcmp(name, "get_action") == 0) {
    s = aq_action_get(q, as, (int64_t)num(step, "id"), &out);
  } else if (strcmp(name, "list_actions") == 0) {
    s = aq_action_list(q, as, opt_str(step, "status"), opt_str(step, "server_id"),
                       opt_str(step, "action_type"), int_or(step, "limit", AQ_DEFAULT_PAGE_LIMIT),
                       int_or(step, "offset", 0), NULL, &out);
  } else if (strcmp(name, "list_server_actions") == 0) {
    s = aq_server_list_actions(q, as, req_str(step, "server_id"), opt_str(step, "status"),
                               int_or(step, "limit", AQ_DEFAULT_PAGE_LIMIT),
                               int_or(step, "offset", 0), NULL, &out);
  } else if (strcmp(name, "approve_action") == 0) {
    s = aq_action_approve(q, as, (int64_t)num(step, "id"), &out);
  } else if (strcmp(name, "digest_matches") == 0) {
    s = aq_action_get(q, as, (int64_t)num(step, "id"), &out);
    if (s == AQ_STATUS_OK) {
      int matches = 0;
      if (aq_action_digest_matches(out, &matches) != AQ_STATUS_OK) bad_scenario("digest_matches refused");
      aq_string_free(out);
      cJSON *result = cJSON_CreateObject();
      cJSON_AddBoolToObject(result, "ok", matches);
      return result;
    }
  } else if (strcmp(name, "list_servers") == 0) {
    s = aq_server_list(q, as, &out);
  } else if (strcmp(name, "count_actions") == 0) {
    s = aq_action_count(q, as, &out);
  } else if (strcmp(name, "verify_audit") == 0) {
    s = aq_audit_verify(q, as, &out);
  } else if (strcmp(name, "prune") == 0) {
    s = aq_queue_prune(q, as, int_or(step, "older_than_seconds", 0), &out);
  } else if (strcmp(name, "export") == 0) {
    aq_export *export = NULL;
    s = aq_queue_export(q, as, req_str(step, "before"), &export);
    if (s == AQ_STATUS_OK) {
      /* Every line, parsed: the list the other hosts give. */
      cJSON *lines = cJSON_CreateArray();
      char *line = NULL;
      while ((s = aq_export_next(export, &line)) == AQ_STATUS_OK && line) {
        cJSON_AddItemToArray(lines, cJSON_Parse(line));
        aq_string_free(line);
      }
      aq_export_free(export);
      if (s == AQ_STATUS_OK) {
        cJSON *result = cJSON_CreateObject();
        cJSON_AddItemToObject(result, "ok", lines);
        return result;
      }
      cJSON_Delete(lines);
    }
  } else if (strcmp(name, "issue_credential") == 0) {
    s = aq_credential_issue(q, as, req_str(step, "name"), req_str(step, "role"), opt_str(step, "server_id"), &out);
    const char *save = opt_str(step, "save_secret");
    if (s == AQ_STATUS_OK && save) {
      cJSON *issued = cJSON_Parse(out);
      const cJSON *secret = cJSON_GetObjectItemCaseSensitive(issued, "secret");
      if (!cJSON_IsString(secret)) bad_scenario("issued credential without a secret");
      if (secret_count == MAX_TOKENS) bad_scenario("too many saved secrets");
      secrets[secret_count].name = strdup(save);
      secrets[secret_count].secret = strdup(secret->valuestring);
      secret_count++;
      cJSON_Delete(issued);
    }
  } else if (strcmp(name, "list_credentials") == 0) {
    s = aq_credential_list(q, as, &out);
  } else if (strcmp(name, "revoke_credential") == 0) {
    s = aq_credential_revoke(q, as, (int64_t)num(step, "id"), &out);
  } else if (strcmp(name, "authenticate") == 0) {
    aq_actor *principal = NULL;
    s = aq_queue_authenticate(q, secret_arg(req_str(step, "secret")), &principal);
    if (s == AQ_STATUS_OK) {
      s = aq_actor_json(principal, &out);
      aq_actor_free(principal);
    }
    if (s == AQ_STATUS_OK) {
      /* The principal's fields, as the other hosts print a principal. */
      cJSON *value = cJSON_Parse(out);
      aq_string_free(out);
      cJSON_DeleteItemFromObjectCaseSensitive(value, "kind");
      cJSON *result = cJSON_CreateObject();
      cJSON_AddItemToObject(result, "ok", value);
      return result;
    }
  } else if (strcmp(name, "reject_action") == 0) {
    s = aq_action_reject(q, as, (int64_t)num(step, "id"), req_str(step, "reason"), &out);
  } else if (strcmp(name, "cancel_action") == 0) {
    s = aq_action_cancel(q, as, (int64_t)num(step, "id"), &out);
  } else if (strcmp(name, "claim_next") == 0) {
    s = aq_action_claim_next(q, as, req_str(step, "server_id"), lease_arg, &out);
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
    s = aq_action_heartbeat(q, as, (int64_t)num(step, "id"), token_arg(step), lease_arg, &out);
  } else if (strcmp(name, "await_cancel") == 0) {
    cJSON *wait = cJSON_GetObjectItemCaseSensitive(step, "wait_seconds");
    s = aq_action_await_cancel(q, as, (int64_t)num(step, "id"), token_arg(step), lease_arg,
                               cJSON_IsNumber(wait) ? wait->valuedouble : 0.0, &out);
  } else if (strcmp(name, "report_cancelled") == 0) {
    s = aq_action_report_cancelled(q, as, (int64_t)num(step, "id"), token_arg(step), (int32_t)num(step, "exit_code"),
                                   opt_str(step, "stdout"), opt_str(step, "stderr"), &out);
  } else if (strcmp(name, "append_output") == 0) {
    int stored = 0;
    s = aq_action_append_output(q, as, (int64_t)num(step, "id"), token_arg(step), (int64_t)num(step, "seq"),
                                opt_str(step, "stdout"), opt_str(step, "stderr"), &stored);
    if (s == AQ_STATUS_OK) {
      cJSON *result = cJSON_CreateObject();
      cJSON_AddItemToObject(result, "ok", cJSON_CreateBool(stored));
      return result;
    }
  } else if (strcmp(name, "output_since") == 0) {
    s = aq_action_output_since(q, as, (int64_t)num(step, "id"), (int64_t)num(step, "after"), 0.0, &out);
  } else if (strcmp(name, "report_result") == 0) {
    s = aq_action_report_result(q, as, (int64_t)num(step, "id"), token_arg(step), (int32_t)num(step, "exit_code"),
                                opt_str(step, "stdout"), opt_str(step, "stderr"), &out);
  } else if (strcmp(name, "expire_leases") == 0) {
    s = aq_action_expire_leases(q, as, &out);
  } else if (strcmp(name, "expire_approvals") == 0) {
    s = aq_action_expire_approvals(q, as, &out);
  } else if (strcmp(name, "lease_expiries") == 0) {
    uint64_t count = 0;
    s = aq_queue_lease_expiries(q, as, &count);
    if (s == AQ_STATUS_OK) {
      cJSON *result = cJSON_CreateObject();
      cJSON_AddNumberToObject(result, "ok", (double)count);
      return result;
    }
  } else if (strcmp(name, "take_lease") == 0) {
    s = aq_lease_take(q, as, req_str(step, "name"), req_str(step, "holder"), num(step, "ttl_seconds"), &out);
  } else if (strcmp(name, "release_lease") == 0) {
    bool released = false;
    s = aq_lease_release(q, as, req_str(step, "name"), req_str(step, "holder"), &released);
    if (s == AQ_STATUS_OK) {
      cJSON *result = cJSON_CreateObject();
      cJSON_AddBoolToObject(result, "ok", released);
      return result;
    }
  } else if (strcmp(name, "register_delivery") == 0) {
    s = aq_delivery_register(q, as, req_str(step, "name"), req_str(step, "kind"), &out);
  } else if (strcmp(name, "record_delivery") == 0) {
    s = aq_delivery_record(q, as, req_str(step, "name"), req_str(step, "holder"), (int64_t)num(step, "event_id"),
                           req_str(step, "outcome"), opt_str(step, "error"), &out);
  } else if (strcmp(name, "record_sent") == 0) {
    s = aq_delivery_record_sent(q, as, req_str(step, "name"), req_str(step, "holder"),
                                (int64_t)num(step, "through_event_id"), (int64_t)num(step, "sent"), &out);
  } else if (strcmp(name, "list_deliveries") == 0) {
    s = aq_delivery_list(q, as, &out);
  } else if (strcmp(name, "events_since") == 0) {
    s = aq_event_list(q, as, (int64_t)num(step, "cursor"), int_or(step, "limit", AQ_DEFAULT_EVENTS_LIMIT),
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
  cJSON_ArrayForEach(step, steps) {
    const cJSON *skip = cJSON_GetObjectItemCaseSensitive(step, "skip");
    if (skip && !cJSON_IsObject(skip)) bad_scenario("skip must map hosts to a why");
    if (cJSON_GetObjectItemCaseSensitive(skip, HOST)) {
      cJSON *skipped = cJSON_CreateObject();
      cJSON_AddTrueToObject(skipped, "skipped");
      cJSON_AddItemToArray(transcript, skipped);
      continue;
    }
    aq_actor *as = NULL;
    aq_status s = acting(q, step, &as);
    cJSON_AddItemToArray(transcript, s == AQ_STATUS_OK ? call(q, clock, step, as) : outcome(s, NULL));
    aq_actor_free(as);
    free_step_strings();
  }
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
  for (int i = 0; i < secret_count; i++) {
    free(secrets[i].name);
    free(secrets[i].secret);
  }
  return 0;
}
