/* capi_client.c — drives the public C API (include/llmmeter.h) from a
 * script of operations, for tests/integration/test_capi.sh.
 *
 * Built against libllmmeter.so with nothing but the public header, so it
 * proves what a program outside the tree can do. One line of output per
 * operation:
 *
 *   capi_client price MODEL PROVIDER USAGE      -> "price RC PUSD"
 *   capi_client run BUDGET AGENT OP...          -> one line per OP:
 *     admit:MODEL:PROVIDER:EST   "admit RC[ REASON]"  (EST a USAGE or -)
 *     charge:USAGE               "charge RC[ REASON]"
 *     settle:USAGE|-             "settle RC COST_PUSD"
 *     release                    "release RC"
 *     status:FILE                "status RC" (the JSON into FILE)
 *     close                      "close RC[ REASON]" (then reopen)
 *
 * USAGE is input,output,cache_read,cache_write,reasoning; PROVIDER and
 * AGENT may be "-" (NULL). Exits 0 when every operation could be run (the
 * results are the test's to judge), 2 on a malformed script.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmmeter.h"

static int parse_usage(const char *s, struct llmmeter_usage *u) {
  struct llmmeter_usage z = LLMMETER_USAGE_INIT;
  *u = z;
  unsigned long long v[5];
  int end = 0;
  if (sscanf(s, "%llu,%llu,%llu,%llu,%llu%n", &v[0], &v[1], &v[2], &v[3], &v[4],
             &end) != 5 ||
      s[end])
    return -1;
  u->input = v[0];
  u->output = v[1];
  u->cache_read = v[2];
  u->cache_write = v[3];
  u->reasoning = v[4];
  return 0;
}

static const char *opt(const char *s) { return strcmp(s, "-") ? s : NULL; }

static void print_rc(const char *op, int rc) {
  const char *why = llmmeter_last_error();
  printf("%s %d%s%s\n", op, rc, *why ? " " : "", why);
}

static int cmd_price(int argc, char **argv) {
  struct llmmeter_usage u;
  if (argc != 5 || parse_usage(argv[4], &u) != 0)
    return 2;
  int64_t pusd = 0;
  int rc = llmmeter_price(argv[2], opt(argv[3]), &u, &pusd);
  char usd[32];
  llmmeter_format_usd(pusd, usd, sizeof(usd));
  printf("price %d %" PRId64 " %s\n", rc, pusd, usd);
  return 0;
}

static int cmd_run(int argc, char **argv) {
  if (argc < 4)
    return 2;
  const char *agent = opt(argv[3]);
  llmmeter_budget *b = NULL;
  int rc = llmmeter_open(argv[2], 0, &b);
  if (rc != 0) {
    print_rc("open", rc);
    return 1;
  }
  llmmeter_call *call = NULL;
  for (int i = 4; i < argc; i++) {
    char *op = argv[i];
    struct llmmeter_usage u;
    if (strncmp(op, "admit:", 6) == 0) {
      char *model = op + 6, *prov = strchr(model, ':');
      char *est = prov ? strchr(prov + 1, ':') : NULL;
      if (!est)
        return 2;
      *prov++ = 0;
      *est++ = 0;
      if (strcmp(est, "-") && parse_usage(est, &u) != 0)
        return 2;
      rc = llmmeter_admit(b, model, agent, opt(prov),
                          strcmp(est, "-") ? &u : NULL, &call);
      print_rc("admit", rc);
    } else if (strncmp(op, "charge:", 7) == 0) {
      if (parse_usage(op + 7, &u) != 0)
        return 2;
      print_rc("charge", llmmeter_charge(call, &u));
    } else if (strncmp(op, "settle:", 7) == 0) {
      int known = strcmp(op + 7, "-") != 0;
      if (known && parse_usage(op + 7, &u) != 0)
        return 2;
      int64_t cost = -1;
      rc = llmmeter_settle(call, known ? &u : NULL, &cost);
      printf("settle %d %" PRId64 "\n", rc, cost);
      if (rc == 0)
        call = NULL;
    } else if (strcmp(op, "release") == 0) {
      print_rc("release", llmmeter_release(call));
      call = NULL;
    } else if (strncmp(op, "status:", 7) == 0) {
      char *json = NULL;
      rc = llmmeter_status_json(b, &json);
      FILE *f = rc == 0 ? fopen(op + 7, "w") : NULL;
      if (f) {
        fputs(json, f);
        fclose(f);
      }
      llmmeter_free(json);
      print_rc("status", rc);
    } else if (strcmp(op, "close") == 0) {
      rc = llmmeter_close(b);
      print_rc("close", rc);
      if (rc == 0 && llmmeter_open(argv[2], 0, &b) != 0)
        return 1;
    } else {
      return 2;
    }
  }
  if (call)
    llmmeter_release(call);
  return llmmeter_close(b) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (llmmeter_version() >> 16 != LLMMETER_VERSION_NUM >> 16) {
    fprintf(stderr, "capi_client: library API %x, header %x\n",
            llmmeter_version(), LLMMETER_VERSION_NUM);
    return 1;
  }
  int rc = 2;
  if (argc > 1 && strcmp(argv[1], "price") == 0)
    rc = cmd_price(argc, argv);
  else if (argc > 1 && strcmp(argv[1], "run") == 0)
    rc = cmd_run(argc, argv);
  if (rc == 2)
    fprintf(stderr,
            "capi_client: bad arguments (see tests/capi/capi_client.c)\n");
  return rc;
}
