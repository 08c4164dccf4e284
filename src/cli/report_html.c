/* report_html.c — `llmmeter report --html FILE`: where the money went, as a
 * page people keep open.
 *
 * One pass over the ledger aggregates everything the page draws before
 * anything is drawn: the rows by model and by agent (ledger_sum.h, the
 * same sums as `report --json`), and per UTC minute the spend of each row,
 * the calls, denials and cuts (a hash of cells). Only then is a bucket
 * width chosen (1 minute to days) that puts the whole span into at most
 * BUCKETS_MAX bars, and only the SERIES_MAX most expensive models and
 * agents get their own colour (the rest are "other"). So the page has a
 * bounded size whether the ledger has ten lines or ten million: memory
 * grows with the minutes and keys the ledger covers, the page does not.
 *
 * The page is self-contained by construction: inline CSS and SVG, no
 * script, no font, no URL. Every number is printed from integers (exact
 * dollars through money.h); the SVG's geometry alone uses doubles.
 */
#include "report_html.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "budget.h"
#include "cli.h"
#include "config.h"
#include "ledger_sum.h"
#include "money.h"
#include "window.h"
#include "utc.h"

#define BUCKETS_MAX 72 /* bars per chart */
#define SERIES_MAX 8   /* coloured series per stacked chart, then "other" */
#define TABLE_ROWS 25  /* rows per table, then one "N more" row */

/* A cell: what one minute holds for one series. series -1 is the minute's
 * totals; 0.. a model row; LM_REPORT_ROWS_MAX + 1 + i agent row i. */
struct cell {
  int64_t minute; /* epoch minutes; INT64_MIN: empty slot */
  int32_t series;
  uint32_t calls, denied, cut;
  int64_t cost;
};

struct cells {
  struct cell *c;
  size_t cap, n; /* cap a power of two, n < cap * 3 / 4 */
};

#define AGENT_SERIES(i) (LM_REPORT_ROWS_MAX + 1 + (i))

static uint64_t cell_hash(int64_t minute, int32_t series) {
  uint64_t h = (uint64_t)minute * 0x9E3779B97F4A7C15ULL ^
               (uint64_t)(uint32_t)series * 0xC2B2AE3D27D4EB4FULL;
  return h ^ (h >> 29);
}

static int cells_grow(struct cells *cs) {
  size_t cap = cs->cap ? cs->cap * 2 : 4096;
  struct cell *c = malloc(cap * sizeof(*c));
  if (!c)
    return -1;
  for (size_t i = 0; i < cap; i++)
    c[i].minute = INT64_MIN;
  for (size_t i = 0; i < cs->cap; i++) {
    if (cs->c[i].minute == INT64_MIN)
      continue;
    size_t k = cell_hash(cs->c[i].minute, cs->c[i].series) & (cap - 1);
    while (c[k].minute != INT64_MIN)
      k = (k + 1) & (cap - 1);
    c[k] = cs->c[i];
  }
  free(cs->c);
  cs->c = c;
  cs->cap = cap;
  return 0;
}

static struct cell *cell_get(struct cells *cs, int64_t minute, int32_t series) {
  if ((cs->n + 1) * 4 >= cs->cap * 3 && cells_grow(cs) != 0)
    return NULL;
  size_t k = cell_hash(minute, series) & (cs->cap - 1);
  while (cs->c[k].minute != INT64_MIN) {
    if (cs->c[k].minute == minute && cs->c[k].series == series)
      return &cs->c[k];
    k = (k + 1) & (cs->cap - 1);
  }
  cs->n++;
  cs->c[k] = (struct cell){.minute = minute, .series = series};
  return &cs->c[k];
}

/* Everything the page draws, aggregated. */
struct agg {
  struct lm_report_rows models, agents;
  struct cells cells;
  int64_t min_minute, max_minute; /* of lines with a time */
  uint64_t skipped, untimed, soft_events;
  char budget[LM_BUDGET_NAME_MAX]; /* the lines' budget; "" none yet */
  bool many_budgets;
};

static int aggregate(FILE *in, struct agg *g) {
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int rc = 0;
  g->min_minute = INT64_MAX;
  g->max_minute = INT64_MIN;
  while (rc == 0 && (len = getline(&line, &cap, in)) > 0) {
    struct lm_ledger_line l;
    if (lm_ledger_line_parse(line, (size_t)len, &l) != 0) {
      g->skipped++;
      lm_ledger_line_free(&l);
      continue;
    }
    if (l.budget[0] && !g->many_budgets) {
      if (!g->budget[0])
        snprintf(g->budget, sizeof(g->budget), "%s", l.budget);
      else if (strcmp(g->budget, l.budget) != 0)
        g->many_budgets = true;
    }
    if (l.outcome == LM_LEDGER_SOFT) {
      g->soft_events++;
      lm_ledger_line_free(&l);
      continue;
    }
    int mi = lm_report_rows_add(&g->models, lm_ledger_line_key(&l, "model"),
                                &l);
    int ai = lm_report_rows_add(&g->agents, lm_ledger_line_key(&l, "agent"),
                                &l);
    if (l.time < 0) {
      g->untimed++;
      lm_ledger_line_free(&l);
      continue;
    }
    int64_t m = l.time / 60;
    if (m < g->min_minute)
      g->min_minute = m;
    if (m > g->max_minute)
      g->max_minute = m;
    const int32_t series[3] = {-1, mi, AGENT_SERIES(ai)};
    for (int s = 0; s < 3; s++) {
      struct cell *c = cell_get(&g->cells, m, series[s]);
      if (!c) {
        rc = -1;
        break;
      }
      c->calls += l.outcome != LM_LEDGER_DENIED;
      c->denied += l.outcome == LM_LEDGER_DENIED;
      c->cut += l.outcome == LM_LEDGER_CUT;
      c->cost = lm_money_add(c->cost, l.cost_pusd);
    }
    lm_ledger_line_free(&l);
  }
  free(line);
  return rc;
}

/* The drawn form: buckets of `width` minutes from `start`, each with the
 * cost of the SERIES_MAX top models / agents and the rest. */
struct bucket {
  int64_t cost, model[SERIES_MAX + 1], agent[SERIES_MAX + 1];
  uint64_t calls, denied, cut;
};

struct drawn {
  int64_t start, width; /* minutes */
  int n;
  struct bucket b[BUCKETS_MAX];
  int n_models, n_agents; /* series with a colour (<= SERIES_MAX) */
  int model_slot[LM_REPORT_ROWS_MAX + 1]; /* row -> series, SERIES_MAX: other */
  int agent_slot[LM_REPORT_ROWS_MAX + 1];
  int model_top[SERIES_MAX], agent_top[SERIES_MAX]; /* series -> row */
  bool model_other, agent_other;
};

/* The widths a bucket may have, in minutes: the first that fits the span
 * into BUCKETS_MAX bars wins; past the last, whole days. */
static int64_t bucket_width(int64_t span_minutes) {
  static const int64_t w[] = {1, 5, 15, 60, 360, 1440};
  for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
    if (span_minutes / w[i] < BUCKETS_MAX)
      return w[i];
  return (span_minutes / BUCKETS_MAX / 1440 + 1) * 1440;
}

/* The top rows by cost, without reordering the rows (cells name them by
 * their index). */
static int top_rows(const struct lm_report_rows *r, int *top, int *slot,
                    bool *other) {
  int n = 0;
  for (int i = 0; i <= LM_REPORT_ROWS_MAX; i++)
    slot[i] = SERIES_MAX;
  for (; n < SERIES_MAX && n < r->n; n++) {
    int best = -1;
    for (int i = 0; i < r->n; i++)
      if (slot[i] == SERIES_MAX &&
          (best < 0 || r->rows[i].cost > r->rows[best].cost))
        best = i;
    /* Only rows that cost something get a colour of their own. */
    if (best < 0 || (r->rows[best].cost == 0 && n > 0))
      break;
    top[n] = best;
    slot[best] = n;
  }
  *other = r->n > n;
  return n;
}

static void draw_prepare(const struct agg *g, struct drawn *d) {
  memset(d, 0, sizeof(*d));
  d->n_models = top_rows(&g->models, d->model_top, d->model_slot,
                         &d->model_other);
  d->n_agents = top_rows(&g->agents, d->agent_top, d->agent_slot,
                         &d->agent_other);
  if (g->min_minute > g->max_minute)
    return; /* no line with a time */
  d->width = bucket_width(g->max_minute - g->min_minute);
  /* Aligned to the width in UTC (whole hours, whole days), so bars read as
   * "14:00" or "12-02" rather than at odd offsets. */
  d->start = g->min_minute - g->min_minute % d->width;
  d->n = (int)((g->max_minute - d->start) / d->width) + 1;
  if (d->n > BUCKETS_MAX)
    d->n = BUCKETS_MAX; /* cannot happen by bucket_width; kept bounded */
  for (size_t i = 0; i < g->cells.cap; i++) {
    const struct cell *c = &g->cells.c[i];
    if (c->minute == INT64_MIN)
      continue;
    int64_t k = (c->minute - d->start) / d->width;
    if (k < 0 || k >= d->n)
      continue;
    struct bucket *b = &d->b[k];
    if (c->series < 0) {
      b->cost = lm_money_add(b->cost, c->cost);
      b->calls += c->calls;
      b->denied += c->denied;
      b->cut += c->cut;
    } else if (c->series <= LM_REPORT_ROWS_MAX) {
      int s = d->model_slot[c->series];
      b->model[s] = lm_money_add(b->model[s], c->cost);
    } else {
      int s = d->agent_slot[c->series - AGENT_SERIES(0)];
      b->agent[s] = lm_money_add(b->agent[s], c->cost);
    }
  }
}

/* --- writing -------------------------------------------------------- */

static void esc(FILE *o, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '&':
      fputs("&amp;", o);
      break;
    case '<':
      fputs("&lt;", o);
      break;
    case '>':
      fputs("&gt;", o);
      break;
    case '"':
      fputs("&quot;", o);
      break;
    case '\'':
      fputs("&#39;", o);
      break;
    default:
      if (*p >= 0x20)
        fputc(*p, o);
    }
  }
}

static const char *usd(int64_t pusd, char *buf, size_t n) {
  return lm_money_format_exact(pusd, buf, n);
}

static const char *palette[SERIES_MAX + 1] = {
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
    "#edc948", "#b07aa1", "#ff9da7", "#9c9c9c"}; /* the last: other */

static void bucket_label(int64_t minute, int64_t width, char *buf, size_t n) {
  time_t t = (time_t)(minute * 60);
  struct tm tm;
  lm_utc(t, &tm);
  strftime(buf, n, width >= 1440 ? "%m-%d" : "%H:%M", &tm);
}

/* A round step for about `ticks` axis ticks up to max (pico-USD): 1, 2 or
 * 5 times a power of ten. */
static int64_t nice_step(int64_t max, int ticks) {
  int64_t raw = max / ticks + 1, p = 1;
  while (p <= raw / 10)
    p *= 10;
  int64_t m = raw / p;
  return (m >= 5 ? 10 : m >= 2 ? 5 : 2) * p;
}

#define VB_W 640
#define VB_H 240
#define PL 64  /* plot left */
#define PR 632 /* plot right */
#define PT 12  /* plot top */
#define PB 208 /* plot bottom */

static double ypos(int64_t v, int64_t top) {
  return PB - (double)(PB - PT) * ((double)v / (double)top);
}

static void axes(FILE *o, const struct drawn *d, int64_t top, int64_t step,
                 bool money) {
  char a[48];
  for (int64_t v = 0; v <= top; v += step) {
    double y = ypos(v, top);
    fprintf(o,
            "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" "
            "class=\"grid\"/><text x=\"%d\" y=\"%.1f\" class=\"yl\">%s%s"
            "</text>\n",
            PL, PR, y, y, PL - 4, y + 3, money ? "$" : "",
            money ? lm_money_format_display(v, 2, a, sizeof(a))
                  : (snprintf(a, sizeof(a), "%" PRId64,
                              (int64_t)(v / LM_PUSD_PER_USD)),
                     a));
  }
  int every = d->n > 12 ? (d->n + 5) / 6 : 1;
  double bw = (double)(PR - PL) / d->n;
  for (int k = 0; k < d->n; k += every) {
    bucket_label(d->start + k * d->width, d->width, a, sizeof(a));
    fprintf(o, "<text x=\"%.1f\" y=\"%d\" class=\"xl\">%s</text>\n",
            PL + bw * k + bw / 2, PB + 16, a);
  }
}

static const char *row_name(const struct lm_report_rows *r, const int *top,
                            int s) {
  return s < SERIES_MAX ? r->rows[top[s]].key : "other";
}

/* Spend per bucket, stacked by the top series of `rows`. */
static void chart_stacked(FILE *o, const struct drawn *d,
                          const struct lm_report_rows *rows, bool by_agent,
                          const char *title) {
  const int *top = by_agent ? d->agent_top : d->model_top;
  int ns = by_agent ? d->n_agents : d->n_models;
  bool other = by_agent ? d->agent_other : d->model_other;
  int64_t max = 0;
  for (int k = 0; k < d->n; k++)
    if (d->b[k].cost > max)
      max = d->b[k].cost;
  int64_t step = nice_step(max, 4), top_v = step * ((max + step - 1) / step);
  if (top_v <= 0)
    top_v = step;
  char a[48], when[16];
  fprintf(o,
          "<section class=\"card\"><h2>%s</h2><svg viewBox=\"0 0 %d %d\" "
          "role=\"img\" aria-label=\"%s\">\n",
          title, VB_W, VB_H, title);
  axes(o, d, top_v, step, true);
  double bw = (double)(PR - PL) / d->n;
  for (int k = 0; k < d->n; k++) {
    const int64_t *v = by_agent ? d->b[k].agent : d->b[k].model;
    int64_t acc = 0;
    bucket_label(d->start + k * d->width, d->width, when, sizeof(when));
    for (int s = 0; s <= SERIES_MAX; s++) {
      if (!v[s])
        continue;
      double y0 = ypos(acc, top_v), y1 = ypos(acc + v[s], top_v);
      acc += v[s];
      fprintf(o,
              "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
              "fill=\"%s\"><title>%s ",
              PL + bw * k + bw * 0.1, y1, bw * 0.8,
              y0 - y1 < 0.5 ? 0.5 : y0 - y1, palette[s], when);
      esc(o, row_name(rows, top, s));
      fprintf(o, ": $%s</title></rect>\n", usd(v[s], a, sizeof(a)));
    }
  }
  fputs("</svg><ul class=\"legend\">", o);
  for (int s = 0; s < ns; s++) {
    fprintf(o, "<li><i style=\"background:%s\"></i>", palette[s]);
    esc(o, rows->rows[top[s]].key);
    fputs("</li>", o);
  }
  if (other)
    fprintf(o, "<li><i style=\"background:%s\"></i>other</li>",
            palette[SERIES_MAX]);
  fputs("</ul></section>\n", o);
}

/* Cumulative spend over the span against the budget's limits. */
static void chart_cumulative(FILE *o, const struct drawn *d,
                             const struct lm_snapshot *snap) {
  int64_t total = 0;
  for (int k = 0; k < d->n; k++)
    total = lm_money_add(total, d->b[k].cost);
  int64_t hard = snap ? snap->hard_pusd : -1,
          soft = snap ? snap->soft_pusd : -1;
  int64_t max = total > hard ? total : hard;
  int64_t step = nice_step(max, 4), top_v = step * (max / step + 1);
  char a[48];
  fputs("<section class=\"card\"><h2>Cumulative spend against the "
        "limits</h2><svg viewBox=\"0 0 640 240\" role=\"img\" "
        "aria-label=\"cumulative spend\">\n",
        o);
  axes(o, d, top_v, step, true);
  double bw = (double)(PR - PL) / d->n;
  fprintf(o, "<polyline class=\"cum\" points=\"%d,%d", PL, PB);
  int64_t acc = 0;
  for (int k = 0; k < d->n; k++) {
    acc = lm_money_add(acc, d->b[k].cost);
    fprintf(o, " %.1f,%.1f", PL + bw * (k + 1), ypos(acc, top_v));
  }
  fputs("\"/>\n", o);
  const struct {
    int64_t v;
    const char *cls, *name;
  } lim[2] = {{hard, "hard", "hard limit"}, {soft, "soft", "soft limit"}};
  for (int i = 0; i < 2; i++) {
    if (lim[i].v < 0)
      continue;
    double y = ypos(lim[i].v, top_v);
    fprintf(o,
            "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"%s\"/>"
            "<text x=\"%d\" y=\"%.1f\" class=\"ll\">%s $%s</text>\n",
            PL, PR, y, y, lim[i].cls, PL + 4, y - 3, lim[i].name,
            lm_money_format_display(lim[i].v, 2, a, sizeof(a)));
  }
  fputs("</svg>", o);
  if (!snap)
    fputs("<p class=\"note\">No budget found for this ledger: the limits are "
          "not drawn (use --budget NAME).</p>",
          o);
  else if (snap->window != LM_WINDOW_NONE)
    fprintf(o,
            "<p class=\"note\">The limits apply per %s window; the line sums "
            "the whole ledger.</p>",
            lm_window_name(snap->window));
  fputs("</section>\n", o);
}

/* Denials and cuts per bucket, side by side. */
static void chart_refusals(FILE *o, const struct drawn *d) {
  uint64_t max = 0;
  for (int k = 0; k < d->n; k++) {
    if (d->b[k].denied > max)
      max = d->b[k].denied;
    if (d->b[k].cut > max)
      max = d->b[k].cut;
  }
  /* Counts drawn on the money axis's code: one count is one "USD". */
  int64_t m = (int64_t)max * LM_PUSD_PER_USD;
  int64_t step = nice_step(m, 4);
  if (step < LM_PUSD_PER_USD)
    step = LM_PUSD_PER_USD;
  int64_t top_v = step * (m / step + 1);
  char when[16];
  fputs("<section class=\"card\"><h2>Denials and cuts</h2><svg viewBox=\"0 0 "
        "640 240\" role=\"img\" aria-label=\"denials and cuts\">\n",
        o);
  axes(o, d, top_v, step, false);
  double bw = (double)(PR - PL) / d->n;
  for (int k = 0; k < d->n; k++) {
    bucket_label(d->start + k * d->width, d->width, when, sizeof(when));
    const uint64_t v[2] = {d->b[k].denied, d->b[k].cut};
    for (int s = 0; s < 2; s++) {
      if (!v[s])
        continue;
      double y = ypos((int64_t)v[s] * LM_PUSD_PER_USD, top_v);
      fprintf(o,
              "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
              "class=\"%s\"><title>%s: %" PRIu64 " %s</title></rect>\n",
              PL + bw * k + bw * (0.1 + 0.4 * s), y, bw * 0.4, PB - y,
              s ? "cutbar" : "denbar", when, v[s], s ? "cut" : "denied");
    }
  }
  fputs("</svg><ul class=\"legend\"><li><i class=\"denbar\"></i>denied</li>"
        "<li><i class=\"cutbar\"></i>cut mid-stream</li></ul></section>\n",
        o);
}

static void table(FILE *o, const char *id, const char *title, const char *what,
                  struct lm_report_rows *r) {
  char a[48];
  lm_report_rows_sort(r);
  fprintf(o,
          "<section class=\"card wide\"><h2>%s</h2><div class=\"scroll\">"
          "<table id=\"%s\"><thead><tr><th>%s</th><th>calls</th>"
          "<th>denied</th><th>cut</th><th>cost (USD)</th><th>input</th>"
          "<th>output</th><th>share</th></tr></thead><tbody>\n",
          title, id, what);
  struct lm_report_row rest = {.key = ""};
  int rest_n = 0;
  for (int i = 0; i < r->n; i++) {
    const struct lm_report_row *x = &r->rows[i];
    if (i >= TABLE_ROWS) {
      rest.calls += x->calls;
      rest.denied += x->denied;
      rest.cut += x->cut;
      rest.cost = lm_money_add(rest.cost, x->cost);
      rest.tok[LM_TOK_INPUT] += x->tok[LM_TOK_INPUT];
      rest.tok[LM_TOK_OUTPUT] += x->tok[LM_TOK_OUTPUT];
      rest_n++;
      continue;
    }
    /* share in tenths of a percent, integer only */
    int64_t pm = r->total.cost > 0
                     ? (int64_t)((__int128)x->cost * 1000 / r->total.cost)
                     : 0;
    fputs("<tr class=\"row\" data-key=\"", o);
    esc(o, x->key);
    fputs("\"><td class=\"k\">", o);
    esc(o, x->key);
    fprintf(
        o,
        "</td><td class=\"calls\">%" PRIu64 "</td><td class=\"denied\">%" PRIu64
        "</td><td class=\"cut\">%" PRIu64 "</td><td class=\"usd\">%s</td>"
        "<td>%" PRIu64 "</td><td>%" PRIu64 "</td><td><span class=\"bar\" "
        "style=\"width:%" PRId64 "px\"></span>%" PRId64 ".%" PRId64
        "%%</td></tr>\n",
        x->calls, x->denied, x->cut, usd(x->cost, a, sizeof(a)),
        x->tok[LM_TOK_INPUT], x->tok[LM_TOK_OUTPUT], pm / 10, pm / 10, pm % 10);
  }
  if (rest_n)
    fprintf(
        o,
        "<tr class=\"more\"><td class=\"k\">%d more</td><td>%" PRIu64
        "</td><td>%" PRIu64 "</td><td>%" PRIu64 "</td><td>%s</td><td>%" PRIu64
        "</td><td>%" PRIu64 "</td><td></td></tr>\n",
        rest_n, rest.calls, rest.denied, rest.cut, usd(rest.cost, a, sizeof(a)),
        rest.tok[LM_TOK_INPUT], rest.tok[LM_TOK_OUTPUT]);
  fputs("</tbody></table></div></section>\n", o);
}

static const char *css =
    ":root{color-scheme:light dark;--fg:#1d2330;--bg:#f6f7f9;--card:#fff;"
    "--mute:#667085;--line:#d0d5dd}"
    "@media (prefers-color-scheme:dark){:root{--fg:#e6e8ee;--bg:#12151b;"
    "--card:#1b2029;--mute:#98a2b3;--line:#344054}}"
    "*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;"
    "color:var(--fg);background:var(--bg)}"
    "header,main{max-width:1280px;margin:0 auto;padding:12px 16px}"
    "h1{font-size:22px;margin:8px 0}h2{font-size:16px;margin:0 0 8px}"
    ".sub{color:var(--mute);margin:0;overflow-wrap:anywhere}"
    ".kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));"
    "gap:10px;margin:12px 0 0}"
    ".kpi{background:var(--card);border:1px solid var(--line);border-radius:8px;"
    "padding:10px 12px}.kpi b{display:block;font-size:20px;"
    "font-variant-numeric:tabular-nums;overflow-wrap:anywhere}"
    ".kpi span{color:var(--mute);font-size:13px}"
    "main{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,"
    "520px),1fr));gap:14px}"
    ".card{background:var(--card);border:1px solid var(--line);border-radius:8px;"
    "padding:12px;min-width:0}.wide{grid-column:1/-1}"
    "svg{width:100%;height:auto;display:block}"
    "svg text{fill:var(--mute);font-size:11px}.yl{text-anchor:end}"
    ".xl{text-anchor:middle}.grid{stroke:var(--line);stroke-width:1}"
    ".cum{fill:none;stroke:#4e79a7;stroke-width:2.5}"
    ".hard{stroke:#d92d20;stroke-width:2;stroke-dasharray:6 4}"
    ".soft{stroke:#f79009;stroke-width:2;stroke-dasharray:3 4}"
    "svg .ll{fill:var(--fg);font-size:12px}"
    ".denbar{fill:#d92d20;background:#d92d20}.cutbar{fill:#f79009;"
    "background:#f79009}"
    ".legend{list-style:none;padding:0;margin:8px 0 0;display:flex;"
    "flex-wrap:wrap;gap:4px 14px;font-size:13px}"
    ".legend i{display:inline-block;width:11px;height:11px;border-radius:2px;"
    "margin-right:5px;vertical-align:-1px}"
    ".note{color:var(--mute);font-size:13px;margin:6px 0 0}"
    ".scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;"
    "font-variant-numeric:tabular-nums}"
    "th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:right;"
    "white-space:nowrap}th:first-child,td.k{text-align:left}"
    "td.k{max-width:22em;overflow:hidden;text-overflow:ellipsis}"
    ".bar{display:inline-block;height:9px;background:#4e79a7;border-radius:2px;"
    "margin-right:6px;max-width:100px}"
    "footer{color:var(--mute);font-size:12px;text-align:center;padding:16px}";

static void kpi(FILE *o, const char *id, const char *label, const char *value,
                const char *data) {
  fprintf(o, "<div class=\"kpi\"><b id=\"%s\"%s>%s</b><span>%s</span></div>",
          id, data ? data : "", value, label);
}

static void page(FILE *o, const char *ledger, struct agg *g,
                 const struct drawn *d, const struct lm_snapshot *snap) {
  char a[48], b[48], data[96], when[64], until[64];
  fputs(
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
      "<title>llmmeter report</title><style>",
      o);
  fputs(css, o);
  fputs("</style></head><body>\n<header><h1>Where the money went</h1>"
        "<p class=\"sub\">ledger ",
        o);
  esc(o, ledger);
  if (d->n) {
    time_t t0 = (time_t)(g->min_minute * 60), t1 = (time_t)(g->max_minute * 60);
    struct tm tm;
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M", lm_utc(t0, &tm));
    strftime(until, sizeof(until), "%Y-%m-%d %H:%M", lm_utc(t1, &tm));
    int64_t w = d->width;
    fprintf(o, " &middot; %s to %s UTC &middot; bars of %" PRId64 " %s", when,
            until,
            w % 1440 == 0 ? w / 1440
            : w % 60 == 0 ? w / 60
                          : w,
            w % 1440 == 0 ? (w == 1440 ? "day" : "days")
            : w % 60 == 0 ? "h"
                          : "min");
  }
  if (snap) {
    fputs(" &middot; budget ", o);
    esc(o, snap->name);
  }
  fputs("</p>\n<div class=\"kpis\">", o);
  const struct lm_report_row *t = &g->models.total;
  snprintf(data, sizeof(data), " data-pusd=\"%" PRId64 "\"", t->cost);
  snprintf(b, sizeof(b), "$%s", usd(t->cost, a, sizeof(a)));
  kpi(o, "total-cost", "spent (exact USD)", b, data);
  snprintf(b, sizeof(b), "%" PRIu64, t->calls);
  kpi(o, "total-calls", "calls", b, NULL);
  snprintf(b, sizeof(b), "%" PRIu64, t->denied);
  kpi(o, "total-denied", "denied", b, NULL);
  snprintf(b, sizeof(b), "%" PRIu64, t->cut);
  kpi(o, "total-cut", "cut mid-stream", b, NULL);
  snprintf(b, sizeof(b), "%" PRIu64, t->tok[LM_TOK_INPUT]);
  kpi(o, "total-input", "input tokens", b, NULL);
  snprintf(b, sizeof(b), "%" PRIu64, t->tok[LM_TOK_OUTPUT]);
  kpi(o, "total-output", "output tokens", b, NULL);
  if (snap && snap->hard_pusd >= 0) {
    snprintf(b, sizeof(b), "$%s",
             lm_money_format_display(snap->hard_pusd, 2, a, sizeof(a)));
    kpi(o, "limit", "hard limit", b, NULL);
  }
  fputs("</div></header>\n<main>\n", o);
  if (d->n) {
    chart_stacked(o, d, &g->models, false, "Spend over time by model");
    chart_stacked(o, d, &g->agents, true, "Spend over time by agent");
    chart_cumulative(o, d, snap);
    chart_refusals(o, d);
  } else {
    fputs("<section class=\"card wide\"><p>No call in this ledger has a "
          "time: nothing to draw over time.</p></section>\n",
          o);
  }
  /* The tables sort the rows: after the charts, which name rows by index. */
  table(o, "models", "Top models", "model", &g->models);
  table(o, "agents", "Top agents", "agent", &g->agents);
  fputs("</main>\n<footer>", o);
  fprintf(o,
          "%" PRIu64 " lines skipped (not ledger records) &middot; %" PRIu64
          " soft-limit events &middot; %" PRIu64 " calls without a time",
          g->skipped, g->soft_events, g->untimed);
  fputs(" &middot; made by llmmeter report --html</footer>\n</body></html>\n",
        o);
}

/* The budget whose limits are drawn, if it exists: its snapshot or NULL. */
static struct lm_snapshot *limits_of(const char *explicit_name,
                                     const struct agg *g) {
  char name[LM_BUDGET_URL_MAX], err[256];
  const char *want = explicit_name;
  if (!want && g->budget[0] && !g->many_budgets)
    want = g->budget;
  lm_budget_resolve_name(want, lm_config_get()->budget, name, sizeof(name));
  struct lm_budget *b;
  if (lm_budget_open(name, false, &b, err, sizeof(err)) != 0)
    return NULL;
  struct lm_snapshot *s = malloc(sizeof(*s));
  if (s && lm_budget_snapshot(b, s) != 0) {
    free(s);
    s = NULL;
  }
  lm_budget_close(b);
  return s;
}

int lm_report_html(FILE *in, const char *ledger, const char *out_path,
                   const char *budget) {
  struct agg g;
  memset(&g, 0, sizeof(g));
  struct drawn *d = malloc(sizeof(*d));
  if (!d || lm_report_rows_init(&g.models) != 0 ||
      lm_report_rows_init(&g.agents) != 0 || aggregate(in, &g) != 0) {
    fprintf(stderr, "llmmeter: report --html: out of memory\n");
    free(d);
    lm_report_rows_free(&g.models);
    lm_report_rows_free(&g.agents);
    free(g.cells.c);
    return LM_EXIT_ERROR;
  }
  draw_prepare(&g, d);
  struct lm_snapshot *snap = limits_of(budget, &g);
  int rc = LM_EXIT_OK;
  char tmp[4096];
  FILE *o = stdout;
  if (strcmp(out_path, "-") != 0) {
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", out_path, (int)getpid());
    o = fopen(tmp, "we");
  }
  if (!o) {
    fprintf(stderr, "llmmeter: cannot write %s: %s\n", tmp, strerror(errno));
    rc = LM_EXIT_ERROR;
  } else {
    page(o, ledger, &g, d, snap);
    if (o != stdout) {
      bool bad = ferror(o) != 0;
      bad |= fclose(o) != 0;
      if (bad || rename(tmp, out_path) != 0) {
        fprintf(stderr, "llmmeter: cannot write %s: %s\n", out_path,
                strerror(errno));
        unlink(tmp);
        rc = LM_EXIT_ERROR;
      }
    } else {
      fflush(stdout);
    }
  }
  if (g.skipped)
    fprintf(stderr,
            "llmmeter: skipped %" PRIu64 " lines that are not ledger records\n",
            g.skipped);
  free(snap);
  free(d);
  free(g.cells.c);
  lm_report_rows_free(&g.models);
  lm_report_rows_free(&g.agents);
  return rc;
}
