/* status.c — renders a budget snapshot as a table, JSON or Prometheus.
 *
 * The JSON shape is a stable interface (documented in README.md): fields
 * are only ever added. Money is printed exactly (decimal USD from integer
 * pico-USD), never through a double.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "status.h"
#include "money.h"
#include "window.h"
#include "utc.h"

static void json_str(FILE *o, const char *s) {
  fputc('"', o);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(o, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(o, "\\u%04x", *p);
    else
      fputc(*p, o);
  }
  fputc('"', o);
}

/* hard - spent - reserved, at least 0, without overflow: the counters come
 * from shared memory and may hold anything. */
static int64_t remaining(const struct lm_snapshot *s) {
  __int128 r = (__int128)s->hard_pusd - s->total.spent - s->total.reserved;
  return r < 0 ? 0 : r > INT64_MAX ? INT64_MAX : (int64_t)r;
}

static const char *usd(int64_t pusd, char *buf, size_t n) {
  return lm_money_format_exact(pusd, buf, n);
}

/* The token object: the five of the first layout in their order, then the
 * parts (usage.h), every kind but web searches, which are no tokens: the
 * caller prints them beside the object. */
static void json_tokens(FILE *o, const uint64_t *t) {
  fprintf(o,
          "{\"input\":%" PRIu64 ",\"output\":%" PRIu64
          ",\"cache_read\":%" PRIu64 ",\"cache_write\":%" PRIu64
          ",\"reasoning\":%" PRIu64,
          t[LM_TOK_INPUT], t[LM_TOK_OUTPUT], t[LM_TOK_CACHE_READ],
          t[LM_TOK_CACHE_WRITE], t[LM_TOK_REASONING]);
  for (int k = LM_TOK_REASONING + 1; k < LM_TOK_KINDS; k++)
    if (k != LM_TOK_WEB_SEARCHES)
      fprintf(o, ",\"%s\":%" PRIu64, lm_token_kind_name(k), t[k]);
  fputc('}', o);
}

static void json_row(FILE *o, const char *key, const struct lm_snap_row *r) {
  char a[40], b[40];
  fprintf(o, "{\"%s\":", key);
  json_str(o, r->name);
  if (strcmp(key, "model") == 0) { /* who bills it; null: not recorded */
    fputs(",\"provider\":", o);
    if (r->provider[0])
      json_str(o, r->provider);
    else
      fputs("null", o);
  }
  fprintf(o,
          ",\"spent_usd\":%s,\"reserved_usd\":%s,\"requests\":%" PRIu64
          ",\"in_flight\":%" PRIu64 ",\"denied\":%" PRIu64
          ",\"unmetered\":%" PRIu64 ",\"unpriced\":%s,\"tokens\":",
          usd(r->c.spent, a, sizeof(a)), usd(r->c.reserved, b, sizeof(b)),
          r->c.requests, r->c.reserved_requests, r->c.denied, r->c.unmetered,
          (r->flags & LM_ROWF_UNPRICED) || r->c.unpriced ? "true" : "false");
  json_tokens(o, r->c.tokens);
  fprintf(o, ",\"web_searches\":%" PRIu64 "}",
          r->c.tokens[LM_TOK_WEB_SEARCHES]);
}

static void limit_json(FILE *o, int64_t v, int money) {
  char a[40];
  if (v < 0)
    fputs("null", o);
  else if (money)
    fputs(usd(v, a, sizeof(a)), o);
  else
    fprintf(o, "%" PRId64, v);
}

static void print_json(FILE *o, const struct lm_snapshot *s,
                       const char *extra) {
  char a[40];
  int64_t rem = s->hard_pusd < 0 ? -1 : remaining(s);
  fputs("{\"budget\":", o);
  json_str(o, s->name);
  fputs(",\"limit_usd\":", o);
  limit_json(o, s->hard_pusd, 1);
  fputs(",\"soft_limit_usd\":", o);
  limit_json(o, s->soft_pusd, 1);
  fprintf(o, ",\"spent_usd\":%s", usd(s->total.spent, a, sizeof(a)));
  fprintf(o, ",\"reserved_usd\":%s", usd(s->total.reserved, a, sizeof(a)));
  fputs(",\"remaining_usd\":", o);
  if (s->hard_pusd < 0)
    fputs("null", o);
  else
    fputs(usd(rem < 0 ? 0 : rem, a, sizeof(a)), o);
  fprintf(o, ",\"spent_pusd\":%" PRId64 ",\"reserved_pusd\":%" PRId64,
          s->total.spent, s->total.reserved);
  fprintf(o,
          ",\"requests\":%" PRIu64 ",\"in_flight\":%" PRIu64
          ",\"denied\":%" PRIu64 ",\"unmetered\":%" PRIu64
          ",\"unpriced\":%" PRIu64,
          s->total.requests, s->total.reserved_requests, s->total.denied,
          s->total.unmetered, s->total.unpriced);
  fputs(",\"tokens\":", o);
  json_tokens(o, s->total.tokens);
  fprintf(o, ",\"web_searches\":%" PRIu64,
          s->total.tokens[LM_TOK_WEB_SEARCHES]);
  fputs(",\"token_limit\":", o);
  limit_json(o, s->tokens_limit, 0);
  fputs(",\"request_limit\":", o);
  limit_json(o, s->requests_limit, 0);
  fputs(",\"max_call_usd\":", o);
  limit_json(o, s->max_call_pusd, 1);
  fputs(",\"max_call_input_tokens\":", o);
  limit_json(o, s->max_call_input_tokens, 0);
  fputs(",\"max_call_output_tokens\":", o);
  limit_json(o, s->max_call_output_tokens, 0);
  fprintf(o, ",\"waiting\":%u", s->waiters);
  const char *rn[4] = {"rpm", "tpm", "input_tpm", "output_tpm"};
  int64_t rl[4] = {s->rpm, s->tpm, s->itpm, s->otpm};
  int64_t ru[4] = {s->rpm_used, s->tpm_used, s->itpm_used, s->otpm_used};
  fputs(",\"rates\":{", o);
  for (int i = 0, first = 1; i < 4; i++) {
    if (rl[i] < 0)
      continue;
    fprintf(o, "%s\"%s\":{\"limit\":%" PRId64 ",\"used\":%" PRId64 "}",
            first ? "" : ",", rn[i], rl[i], ru[i]);
    first = 0;
  }
  fputs("},\"deadline\":", o);
  limit_json(o, s->deadline, 0);
  fprintf(
      o, ",\"llm_seconds\":%.3f,\"max_llm_seconds\":", (double)s->llm_ns / 1e9);
  if (s->max_llm_ns < 0)
    fputs("null", o);
  else
    fprintf(o, "%.3f", (double)s->max_llm_ns / 1e9);
  fprintf(o, ",\"soft_crossed\":%s,\"on_soft\":",
          s->soft_crossed ? "true" : "false");
  json_str(o, s->on_soft);
  fputs(",\"downgrade\":", o);
  json_str(o, s->downgrade);
  fprintf(o, ",\"mode\":\"%s\"", s->mode ? "strict" : "optimistic");
  fprintf(o,
          ",\"window\":{\"kind\":\"%s\",\"start\":%" PRId64 ",\"resets_in_s\":",
          lm_window_name(s->window), s->window_start);
  if (s->resets_in_s < 0)
    fputs("null}", o);
  else
    fprintf(o, "%" PRId64 "}", s->resets_in_s);
  fprintf(o, ",\"first_activity\":%" PRId64 ",\"last_activity\":%" PRId64,
          s->total.first_activity, s->total.last_activity);
  fputs(",\"models\":[", o);
  for (int i = 0; i < s->n_models; i++) {
    if (i)
      fputc(',', o);
    json_row(o, "model", &s->models[i]);
  }
  fputs("],\"agents\":[", o);
  for (int i = 0; i < s->n_agents; i++) {
    if (i)
      fputc(',', o);
    json_row(o, "agent", &s->agents[i]);
  }
  fputs("],\"limits\":[", o);
  for (int i = 0; i < s->n_rules; i++) {
    const struct lm_snap_rule *r = &s->rules[i];
    char b[40], c[40];
    if (i)
      fputc(',', o);
    fprintf(o, "{\"kind\":\"%s\",\"pattern\":",
            LM_RULE_TARGET(r->kind) == LM_RULE_AGENT ? "agent" : "model");
    json_str(o, r->pattern);
    int m = (int)LM_RULE_MEASURE(r->kind);
    if (m == LM_RULE_SPEND)
      fprintf(o, ",\"limit_usd\":%s,\"spent_usd\":%s,\"reserved_usd\":%s}",
              usd(r->limit_pusd, a, sizeof(a)), usd(r->c.spent, b, sizeof(b)),
              usd(r->c.reserved, c, sizeof(c)));
    else if (m == LM_RULE_CALL_USD)
      fprintf(o, ",\"max_call_usd\":%s}", usd(r->limit_pusd, a, sizeof(a)));
    else if (m == LM_RULE_RPM || m == LM_RULE_TPM)
      fprintf(o, ",\"%s\":%lld,\"used\":%lld}",
              m == LM_RULE_RPM ? "rpm" : "tpm", (long long)r->limit_pusd,
              (long long)r->rate_used);
    else
      fprintf(o, ",\"max_call_%s_tokens\":%lld}",
              m == LM_RULE_CALL_INPUT ? "input" : "output",
              (long long)r->limit_pusd);
  }
  fprintf(o, "],\"in_flight_leases\":%u,\"reclaimed\":%" PRIu64,
          s->active_leases, s->reclaimed);
  fprintf(o,
          ",\"unmetered_processes\":{\"refused\":%" PRIu64
          ",\"warned\":%" PRIu64 "}%s}\n",
          s->unmetered_denied, s->unmetered_warned, extra ? extra : "");
}

/* Prometheus text format (0.0.4) for any number of budgets: each metric
 * family is one HELP and TYPE line and then its samples for every budget,
 * since a family may appear only once in an exposition. */
static void prom_family(FILE *o, const char *name, const char *type,
                        const char *help) {
  fprintf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_line(FILE *o, const char *metric, const char *budget,
                      const char *label, const char *lv, const char *value) {
  fprintf(o, "%s{budget=\"%s\"", metric, budget);
  if (label)
    fprintf(o, ",%s=\"%s\"", label, lv);
  fprintf(o, "} %s\n", value);
}

/* Copies s into out as a Prometheus label value (\, " and newline
 * escaped: names come from shared memory and may hold anything). */
static void prom_escape(const char *s, char *out, size_t size) {
  size_t k = 0;
  for (const char *p = s; *p && k + 2 < size; p++) {
    if (*p == '"' || *p == '\\' || *p == '\n')
      out[k++] = '\\';
    out[k++] = *p == '\n' ? 'n' : *p;
  }
  out[k] = 0;
}

/* The samples of one per-row family (what: 0 spent, 1 requests, 2 tokens
 * by kind, 3 web searches) for the model or agent rows of every budget. */
static void prom_rows(FILE *o, const struct lm_snapshot *const *ss, int n,
                      const char *label, int what) {
  char v[48];
  for (int b = 0; b < n; b++) {
    const struct lm_snapshot *s = ss[b];
    bool models = strcmp(label, "model") == 0;
    const struct lm_snap_row *rows = models ? s->models : s->agents;
    int nr = models ? s->n_models : s->n_agents;
    for (int i = 0; i < nr; i++) {
      char name[LM_NAME_MAX * 2], prov[LM_PROVIDER_MAX * 2];
      char labels[sizeof(name) + sizeof(prov) + 32];
      prom_escape(rows[i].name, name, sizeof(name));
      prom_escape(rows[i].provider, prov, sizeof(prov));
      /* A model's rows are per provider: the label tells them apart. */
      if (prov[0])
        snprintf(labels, sizeof(labels), "%s=\"%s\",provider=\"%s\"", label,
                 name, prov);
      else
        snprintf(labels, sizeof(labels), "%s=\"%s\"", label, name);
      if (what == 0)
        fprintf(o, "llmmeter_%s_spent_usd{budget=\"%s\",%s} %s\n", label,
                s->name, labels, usd(rows[i].c.spent, v, sizeof(v)));
      else if (what == 1)
        fprintf(o, "llmmeter_%s_requests_total{budget=\"%s\",%s} %" PRIu64 "\n",
                label, s->name, labels, rows[i].c.requests);
      else if (what == 3)
        fprintf(
            o, "llmmeter_%s_web_searches_total{budget=\"%s\",%s} %" PRIu64 "\n",
            label, s->name, labels, rows[i].c.tokens[LM_TOK_WEB_SEARCHES]);
      else
        for (int t = 0; t < LM_TOK_KINDS; t++)
          if (t != LM_TOK_WEB_SEARCHES)
            fprintf(o,
                    "llmmeter_%s_tokens_total{budget=\"%s\",%s,kind=\"%s\"} "
                    "%" PRIu64 "\n",
                    label, s->name, labels, lm_token_kind_name(t),
                    rows[i].c.tokens[t]);
    }
  }
}

void lm_status_print_prom(FILE *o, const struct lm_snapshot *const *ss, int n) {
  char v[48];
  prom_family(o, "llmmeter_spent_usd", "gauge",
              "Money charged in the current window (USD).");
  for (int b = 0; b < n; b++)
    prom_line(o, "llmmeter_spent_usd", ss[b]->name, NULL, NULL,
              usd(ss[b]->total.spent, v, sizeof(v)));
  prom_family(o, "llmmeter_reserved_usd", "gauge",
              "Money held by calls in flight (USD).");
  for (int b = 0; b < n; b++)
    prom_line(o, "llmmeter_reserved_usd", ss[b]->name, NULL, NULL,
              usd(ss[b]->total.reserved, v, sizeof(v)));
  const struct {
    const char *m, *help;
    size_t off;
  } lims[] = {
      {"llmmeter_limit_usd", "The hard limit (USD); absent: none.",
       offsetof(struct lm_snapshot, hard_pusd)},
      {"llmmeter_soft_limit_usd", "The soft limit (USD); absent: none.",
       offsetof(struct lm_snapshot, soft_pusd)},
  };
  for (size_t k = 0; k < sizeof(lims) / sizeof(lims[0]); k++) {
    bool any = false;
    for (int b = 0; b < n; b++) {
      int64_t lim = *(const int64_t *)((const char *)ss[b] + lims[k].off);
      if (lim < 0)
        continue;
      if (!any)
        prom_family(o, lims[k].m, "gauge", lims[k].help);
      any = true;
      prom_line(o, lims[k].m, ss[b]->name, NULL, NULL, usd(lim, v, sizeof(v)));
    }
  }
  const struct {
    const char *m, *type, *help;
    size_t off;
  } cnt[] = {
      {"llmmeter_requests_total", "counter", "Settled LLM calls.",
       offsetof(struct lm_snap_counters, requests)},
      {"llmmeter_denied_total", "counter", "LLM calls refused by the budget.",
       offsetof(struct lm_snap_counters, denied)},
      {"llmmeter_unmetered_total", "counter",
       "Calls whose usage could not be read (charged at their estimate).",
       offsetof(struct lm_snap_counters, unmetered)},
      {"llmmeter_in_flight", "gauge", "LLM calls admitted and not settled.",
       offsetof(struct lm_snap_counters, reserved_requests)},
  };
  for (size_t k = 0; k < sizeof(cnt) / sizeof(cnt[0]); k++) {
    prom_family(o, cnt[k].m, cnt[k].type, cnt[k].help);
    for (int b = 0; b < n; b++) {
      snprintf(v, sizeof(v), "%" PRIu64,
               *(const uint64_t *)((const char *)&ss[b]->total + cnt[k].off));
      prom_line(o, cnt[k].m, ss[b]->name, NULL, NULL, v);
    }
  }
  /* The leak guard's processes (src/resolve/): what was not metered. */
  prom_family(o, "llmmeter_unmetered_processes_total", "counter",
              "Processes that resolved an LLM host with no TLS library "
              "llmmeter can see, by what was done.");
  for (int b = 0; b < n; b++) {
    snprintf(v, sizeof(v), "%" PRIu64, ss[b]->unmetered_denied);
    prom_line(o, "llmmeter_unmetered_processes_total", ss[b]->name, "verdict",
              "refused", v);
    snprintf(v, sizeof(v), "%" PRIu64, ss[b]->unmetered_warned);
    prom_line(o, "llmmeter_unmetered_processes_total", ss[b]->name, "verdict",
              "warned", v);
  }
  prom_family(o, "llmmeter_tokens_total", "counter",
              "Tokens charged, by kind (the parts are parts of input and "
              "output).");
  for (int b = 0; b < n; b++)
    for (int t = 0; t < LM_TOK_KINDS; t++) {
      if (t == LM_TOK_WEB_SEARCHES)
        continue;
      snprintf(v, sizeof(v), "%" PRIu64, ss[b]->total.tokens[t]);
      prom_line(o, "llmmeter_tokens_total", ss[b]->name, "kind",
                lm_token_kind_name(t), v);
    }
  prom_family(o, "llmmeter_web_searches_total", "counter",
              "Server-side web searches the providers reported.");
  for (int b = 0; b < n; b++) {
    snprintf(v, sizeof(v), "%" PRIu64,
             ss[b]->total.tokens[LM_TOK_WEB_SEARCHES]);
    prom_line(o, "llmmeter_web_searches_total", ss[b]->name, NULL, NULL, v);
  }
  bool any = false;
  for (int b = 0; b < n; b++) {
    if (ss[b]->resets_in_s < 0)
      continue;
    if (!any)
      prom_family(o, "llmmeter_window_resets_in_seconds", "gauge",
                  "Seconds until the budget's window resets.");
    any = true;
    snprintf(v, sizeof(v), "%" PRId64, ss[b]->resets_in_s);
    prom_line(o, "llmmeter_window_resets_in_seconds", ss[b]->name, NULL, NULL,
              v);
  }
  const char *rk[4] = {"rpm", "tpm", "input_tpm", "output_tpm"};
  for (int used = 1; used >= 0; used--) {
    const char *m = used ? "llmmeter_rate_used_per_minute"
                         : "llmmeter_rate_limit_per_minute";
    any = false;
    for (int b = 0; b < n; b++) {
      const struct lm_snapshot *s = ss[b];
      int64_t rlim[4] = {s->rpm, s->tpm, s->itpm, s->otpm};
      int64_t ruse[4] = {s->rpm_used, s->tpm_used, s->itpm_used, s->otpm_used};
      for (int i = 0; i < 4; i++) {
        if (rlim[i] < 0)
          continue;
        if (!any)
          prom_family(o, m, "gauge",
                      used ? "Current use of a rate limit, per minute."
                           : "A rate limit, per minute.");
        any = true;
        snprintf(v, sizeof(v), "%" PRId64, used ? ruse[i] : rlim[i]);
        prom_line(o, m, s->name, "kind", rk[i], v);
      }
    }
  }
  static const struct {
    const char *suffix, *type, *help;
  } rf[] = {
      {"spent_usd", "gauge", "Money charged in the current window (USD)."},
      {"requests_total", "counter", "Settled LLM calls."},
      {"tokens_total", "counter", "Tokens charged, by kind."},
      {"web_searches_total", "counter", "Server-side web searches."},
  };
  for (int label = 0; label < 2; label++)
    for (int w = 0; w < 4; w++) {
      const char *l = label ? "agent" : "model";
      int rows = 0;
      for (int b = 0; b < n; b++)
        rows += label ? ss[b]->n_agents : ss[b]->n_models;
      if (!rows)
        continue;
      char name[64], help[96];
      snprintf(name, sizeof(name), "llmmeter_%s_%s", l, rf[w].suffix);
      snprintf(help, sizeof(help), "Per %s: %s", l, rf[w].help);
      prom_family(o, name, rf[w].type, help);
      prom_rows(o, ss, n, l, w);
    }
}

void lm_status_duration(int64_t s, char *buf, size_t n) {
  if (s >= 86400)
    snprintf(buf, n, "%" PRId64 "d %" PRId64 "h", s / 86400, s % 86400 / 3600);
  else if (s >= 3600)
    snprintf(buf, n, "%" PRId64 "h %" PRId64 "m", s / 3600, s % 3600 / 60);
  else if (s >= 60)
    snprintf(buf, n, "%" PRId64 "m %" PRId64 "s", s / 60, s % 60);
  else
    snprintf(buf, n, "%" PRId64 "s", s);
}

static void table_rows(FILE *o, const char *title,
                       const struct lm_snap_row *rows, int n, bool providers) {
  if (!n)
    return;
  fprintf(o, "\n%-32s ", title);
  if (providers)
    fprintf(o, "%-12s ", "PROVIDER");
  fprintf(o, "%12s %8s %6s %12s %12s %10s\n", "SPENT", "REQS", "DENIED",
          "INPUT", "OUTPUT", "CACHE RD");
  for (int i = 0; i < n; i++) {
    const struct lm_snap_row *r = &rows[i];
    char a[40];
    fprintf(o, "%-32.32s ", r->name);
    if (providers)
      fprintf(o, "%-12.12s ", r->provider[0] ? r->provider : "-");
    fprintf(o,
            "%12s %8" PRIu64 " %6" PRIu64 " %12" PRIu64 " %12" PRIu64
            " %10" PRIu64 "%s\n",
            lm_money_format_display(r->c.spent, 4, a, sizeof(a)), r->c.requests,
            r->c.denied, r->c.tokens[LM_TOK_INPUT], r->c.tokens[LM_TOK_OUTPUT],
            r->c.tokens[LM_TOK_CACHE_READ],
            (r->flags & LM_ROWF_UNPRICED) ? "  (unpriced)" : "");
  }
}

/* One line of the parts that are not zero (audio, image, video, citation
 * tokens; web searches), or nothing for text-only traffic. */
static void print_parts(FILE *o, const uint64_t *t) {
  int n = 0;
  for (int k = LM_TOK_REASONING + 1; k < LM_TOK_KINDS; k++) {
    if (!t[k])
      continue;
    char name[32];
    snprintf(name, sizeof(name), "%s", lm_token_kind_name(k));
    for (char *p = name; *p; p++)
      if (*p == '_')
        *p = ' ';
    fprintf(o, "%s%s %" PRIu64, n++ ? ", " : "parts     ", name, t[k]);
  }
  if (n)
    fputc('\n', o);
}

static void print_table(FILE *o, const struct lm_snapshot *s,
                        const char *extra) {
  char a[40], b[40], c[40], d[48];
  fprintf(o, "budget    %s   mode %s   window %s", s->name,
          s->mode ? "strict" : "optimistic", lm_window_name(s->window));
  if (s->resets_in_s >= 0) {
    lm_status_duration(s->resets_in_s, d, sizeof(d));
    fprintf(o, " (resets in %s)", d);
  }
  fputc('\n', o);
  if (s->hard_pusd >= 0) {
    int64_t rem = remaining(s);
    fprintf(o, "limit     $%s   soft $%s\n",
            lm_money_format_display(s->hard_pusd, 2, a, sizeof(a)),
            lm_money_format_display(s->soft_pusd, 2, b, sizeof(b)));
    fprintf(o, "spent     $%s   reserved $%s   remaining $%s\n",
            lm_money_format_display(s->total.spent, 4, a, sizeof(a)),
            lm_money_format_display(s->total.reserved, 4, b, sizeof(b)),
            lm_money_format_display(rem < 0 ? 0 : rem, 4, c, sizeof(c)));
    /* Utilisation in basis points, integer only. */
    __int128 q = s->hard_pusd ? (__int128)s->total.spent * 10000 / s->hard_pusd
                              : 10000;
    /* bounded: a segment's counters may hold anything */
    int64_t bp = q > 1000000000 ? 1000000000 : q < 0 ? 0 : (int64_t)q;
    int fill = (int)(bp > 10000 ? 40 : bp * 40 / 10000);
    fputc('[', o);
    for (int i = 0; i < 40; i++)
      fputc(i < fill ? '#' : '-', o);
    fprintf(o, "] %" PRId64 ".%" PRId64 "%%%s\n", bp / 100, bp % 100,
            s->total.spent >= s->hard_pusd   ? "  LIMIT REACHED"
            : s->total.spent >= s->soft_pusd ? "  over soft limit"
                                             : "");
  } else {
    fprintf(o, "limit     none\n");
    fprintf(o, "spent     $%s   reserved $%s\n",
            lm_money_format_display(s->total.spent, 4, a, sizeof(a)),
            lm_money_format_display(s->total.reserved, 4, b, sizeof(b)));
  }
  fprintf(o,
          "requests  %" PRIu64 "   denied %" PRIu64 "   unmetered %" PRIu64
          "   in flight %" PRIu64 "\n",
          s->total.requests, s->total.denied, s->total.unmetered,
          s->total.reserved_requests);
  if (s->unmetered_denied || s->unmetered_warned)
    fprintf(o,
            "unseen    %" PRIu64 " process(es) refused, %" PRIu64
            " warned: they resolved an LLM host with no TLS library "
            "llmmeter can see\n",
            s->unmetered_denied, s->unmetered_warned);
  if (extra)
    fputs(extra, o);
  fprintf(o,
          "tokens    input %" PRIu64 " (cache read %" PRIu64
          ", cache write %" PRIu64 ")   output %" PRIu64 " (reasoning %" PRIu64
          ")\n",
          s->total.tokens[LM_TOK_INPUT], s->total.tokens[LM_TOK_CACHE_READ],
          s->total.tokens[LM_TOK_CACHE_WRITE], s->total.tokens[LM_TOK_OUTPUT],
          s->total.tokens[LM_TOK_REASONING]);
  print_parts(o, s->total.tokens);
  if (s->tokens_limit >= 0 || s->requests_limit >= 0 || s->max_call_pusd >= 0 ||
      s->max_call_input_tokens >= 0 || s->max_call_output_tokens >= 0) {
    fputs("limits   ", o);
    if (s->tokens_limit >= 0)
      fprintf(o, " tokens %" PRId64, s->tokens_limit);
    if (s->requests_limit >= 0)
      fprintf(o, " requests %" PRId64, s->requests_limit);
    if (s->max_call_pusd >= 0)
      fprintf(o, " per-call $%s",
              lm_money_format_display(s->max_call_pusd, 4, a, sizeof(a)));
    if (s->max_call_input_tokens >= 0)
      fprintf(o, " per-call-input %" PRId64, s->max_call_input_tokens);
    if (s->max_call_output_tokens >= 0)
      fprintf(o, " per-call-output %" PRId64, s->max_call_output_tokens);
    fputc('\n', o);
  }
  if (s->waiters)
    fprintf(o, "waiting   %u calls wait for in-flight calls to settle\n",
            s->waiters);
  const char *rn[4] = {"rpm", "tpm", "input tpm", "output tpm"};
  int64_t rl[4] = {s->rpm, s->tpm, s->itpm, s->otpm};
  int64_t ru[4] = {s->rpm_used, s->tpm_used, s->itpm_used, s->otpm_used};
  for (int i = 0; i < 4; i++)
    if (rl[i] >= 0)
      fprintf(o, "rate      %s %" PRId64 "/%" PRId64 "\n", rn[i], ru[i], rl[i]);
  if (s->deadline >= 0) {
    char when[32];
    time_t t = (time_t)s->deadline;
    struct tm tm;
    lm_utc(t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    int64_t left = s->deadline - s->now;
    lm_status_duration(left > 0 ? left : 0, d, sizeof(d));
    fprintf(o, "deadline  %s (%s%s)\n", when, left > 0 ? "in " : "passed",
            left > 0 ? d : "");
  }
  if (s->max_llm_ns >= 0 || s->llm_ns > 0) {
    fprintf(o, "llm time  %.1fs", (double)s->llm_ns / 1e9);
    if (s->max_llm_ns >= 0)
      fprintf(o, " of %.0fs", (double)s->max_llm_ns / 1e9);
    fputc('\n', o);
  }
  if (s->on_soft[0])
    fprintf(o, "on soft   %s%s\n", s->on_soft,
            s->soft_crossed ? "   (ran this window)" : "");
  if (s->downgrade[0])
    fprintf(o, "downgrade %s%s\n", s->downgrade,
            s->soft_crossed ||
                    (s->soft_pusd >= 0 && s->total.spent >= s->soft_pusd)
                ? "   (active)"
                : "");
  for (int i = 0; i < s->n_rules; i++) {
    const struct lm_snap_rule *r = &s->rules[i];
    const char *tg = LM_RULE_TARGET(r->kind) == LM_RULE_AGENT ? "agent"
                                                              : "model";
    int m = (int)LM_RULE_MEASURE(r->kind);
    if (m == LM_RULE_SPEND)
      fprintf(o, "rule      %s %s = $%s   spent $%s\n", tg, r->pattern,
              lm_money_format_display(r->limit_pusd, 2, a, sizeof(a)),
              lm_money_format_display(r->c.spent, 4, b, sizeof(b)));
    else if (m == LM_RULE_CALL_USD)
      fprintf(o, "rule      %s %s: at most $%s per call\n", tg, r->pattern,
              lm_money_format_display(r->limit_pusd, 4, a, sizeof(a)));
    else if (m == LM_RULE_RPM || m == LM_RULE_TPM)
      fprintf(o, "rule      %s %s: %lld/%lld %s\n", tg, r->pattern,
              (long long)r->rate_used, (long long)r->limit_pusd,
              m == LM_RULE_RPM ? "requests per minute" : "tokens per minute");
    else
      fprintf(o, "rule      %s %s: at most %lld %s tokens per call\n", tg,
              r->pattern, (long long)r->limit_pusd,
              m == LM_RULE_CALL_INPUT ? "input" : "output");
  }
  table_rows(o, "MODEL", s->models, s->n_models, true);
  table_rows(o, "AGENT", s->agents, s->n_agents, false);
}

void lm_status_print_extra(FILE *out, const struct lm_snapshot *s,
                           enum lm_status_format fmt,
                           const struct lm_status_extra *x) {
  switch (fmt) {
  case LM_FMT_JSON:
    print_json(out, s, x ? x->json : NULL);
    break;
  case LM_FMT_PROM:
    lm_status_print_prom(out, &s, 1);
    break;
  default:
    print_table(out, s, x ? x->table : NULL);
  }
}

void lm_status_print(FILE *out, const struct lm_snapshot *s,
                     enum lm_status_format fmt) {
  lm_status_print_extra(out, s, fmt, NULL);
}
