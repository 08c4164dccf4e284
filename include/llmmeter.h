/* llmmeter.h — the public C API of libllmmeter.so (symbol version LLMMETER_1).
 *
 * For a program that talks to an LLM over a transport no hook of the
 * library reaches (a websocket, gRPC, its own HTTP stack): it tells the
 * budget about each call itself, and the budget is the same one every
 * hooked process of the swarm charges, with the same prices and limits.
 * Usable from C and through any FFI (Python ctypes): opaque handles, plain
 * C types, int results, no callbacks, nothing to free but what the API
 * says to free with llmmeter_free.
 *
 * One call's lifecycle, as the hooks run it:
 *
 *   llmmeter_admit    before the call leaves: reserves its estimate, or
 *                     refuses (LLMMETER_EDENIED, reason in
 *                     llmmeter_last_error()); the call must then not be sent
 *   llmmeter_charge   as usage arrives (a stream): charges the delta and
 *                     says whether the call must stop (LLMMETER_STOP)
 *   llmmeter_settle   when the call is done: charges its final usage and
 *                     returns what is left of the reservation
 *   llmmeter_release  when the call failed: refunds the reservation
 *
 * Settle or release ends the call and frees its handle. Money is integer
 * pico-USD (1e-12 USD) in int64_t: exact, never rounded.
 *
 * Results: 0 is success, negative values are errors (enum llmmeter_code),
 * and the few positive values are successes that say something more. After
 * a failure, llmmeter_last_error() has one line saying why.
 *
 * Threads: every function is thread-safe. A budget handle may be shared by
 * any number of threads; a call handle is used by one thread at a time.
 * Calls belong to the process that admitted them (after fork(), the child
 * admits its own).
 *
 * Environment: the library's settings apply as they do to hooked calls
 * (README "Configuration"): LLMMETER_BUDGET, LLMMETER_AGENT, LLMMETER_PRICES,
 * LLMMETER_DEFAULT_PRICE, LLMMETER_UNPRICED, LLMMETER_WAIT_S,
 * LLMMETER_MAX_CALL_*, LLMMETER_MIDSTREAM, LLMMETER_LIMIT_USD (with
 * LLMMETER_OPEN_CREATE) and LLMMETER_LEDGER. LLMMETER_DISABLE does not: it
 * turns the hooks off, and these calls are the program's own.
 */
#ifndef LLMMETER_H
#define LLMMETER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define LLMMETER_API __attribute__((visibility("default")))
#else
#define LLMMETER_API
#endif

/* The API version this header describes: major << 16 | minor << 8 | patch.
 * The major is the symbol version node (LLMMETER_1). */
#define LLMMETER_VERSION_NUM 0x010000

/* Results. Errors are negative; positive values are successes. */
enum llmmeter_code {
  LLMMETER_OK = 0,
  LLMMETER_STOP = 1,     /* llmmeter_charge: charged, and the call must stop
                             (hard limit, per-call cap or time reached) */
  LLMMETER_UNPRICED = 2, /* llmmeter_price: the model has no price; the
                             cost is what such a call is charged */
  LLMMETER_EINVAL = -1,  /* a bad argument (NULL, bad name, bad usage) */
  LLMMETER_ENOMEM = -2,  /* out of memory */
  LLMMETER_ENOENT = -3,  /* no such budget */
  LLMMETER_EACCES = -4,  /* the budget belongs to another user, or others
                             may access it: refused */
  LLMMETER_EFORMAT = -5, /* the budget is corrupt or of another layout */
  LLMMETER_ESYS = -6,    /* a system call failed */
  LLMMETER_EDENIED = -7, /* admission refused by the budget */
  LLMMETER_EBUSY = -8,   /* llmmeter_close: calls are still open */
  LLMMETER_ERANGE = -9,  /* the output buffer is too small */
};

/* Token usage on llmmeter's one basis, whatever the provider's convention:
 * input counts every prompt token, cache reads and writes included;
 * output counts every completion token, reasoning included. So
 * cache_read + cache_write <= input and reasoning <= output.
 *
 * Set size to sizeof(struct llmmeter_usage) (LLMMETER_USAGE_INIT does):
 * fields are only ever added at the end, and the library reads as many as
 * the caller's size covers (fields of a newer header this library does
 * not know must be zero). */
struct llmmeter_usage {
  uint32_t size;        /* sizeof(struct llmmeter_usage) */
  uint32_t reserved;    /* 0 */
  uint64_t input;       /* all prompt tokens */
  uint64_t output;      /* all completion tokens */
  uint64_t cache_read;  /* part of input read from the provider's cache */
  uint64_t cache_write; /* part of input written to the cache */
  uint64_t reasoning;   /* part of output spent on reasoning */
};
#define LLMMETER_USAGE_INIT \
  { sizeof(struct llmmeter_usage), 0, 0, 0, 0, 0, 0 }

typedef struct llmmeter_budget llmmeter_budget;
typedef struct llmmeter_call llmmeter_call;

/* llmmeter_open flags */
#define LLMMETER_OPEN_CREATE \
  1u /* create the budget if it does not exist:
                                   with LLMMETER_LIMIT_USD as its hard
                                   limit if that is set, else no limits */

/* ---- version and errors -------------------------------------------------- */

/* LLMMETER_VERSION_NUM of the library actually loaded. */
LLMMETER_API unsigned int llmmeter_version(void);

/* A static description of a result code ("budget refused the call"). */
LLMMETER_API const char *llmmeter_strerror(int code);

/* Why the last call into the API on this thread failed or stopped: one
 * line ("budget 'team': hard limit $5.00 reached (spent $5.01)"), "" after
 * a plain success. Thread-local; valid until this thread's next llmmeter_*
 * call. Never NULL. */
LLMMETER_API const char *llmmeter_last_error(void);

/* ---- budgets --------------------------------------------------------------- */

/* Opens the budget `name` ([A-Za-z0-9._-]{1,63}); NULL or "" is the one
 * the library uses: LLMMETER_BUDGET, else this user's default
 * (llmmeter-<uid>). flags: 0 or LLMMETER_OPEN_CREATE. Returns 0 and sets
 * *out, or a negative code (*out NULL). The handle is closed with
 * llmmeter_close. */
LLMMETER_API int llmmeter_open(const char *name, unsigned int flags,
                               llmmeter_budget **out);

/* Closes a budget handle (NULL: nothing). Returns 0, or LLMMETER_EBUSY
 * (the handle stays open) while calls admitted on it are not yet settled or
 * released. The budget itself lives on (it is shared). */
LLMMETER_API int llmmeter_close(llmmeter_budget *b);

/* The budget's name; valid while the handle is open. */
LLMMETER_API const char *llmmeter_budget_name(const llmmeter_budget *b);

/* The budget's status as JSON, the same document as `llmmeter status
 * --json` (README "status --json"; leases of dead processes are refunded
 * first, as there). Returns 0 and sets *json to a NUL-terminated string
 * the caller frees with llmmeter_free, or a negative code. */
LLMMETER_API int llmmeter_status_json(llmmeter_budget *b, char **json);

/* Frees what the API allocated for the caller (NULL: nothing). */
LLMMETER_API void llmmeter_free(void *p);

/* ---- calls ----------------------------------------------------------------- */

/* Admits one LLM call before it is sent.
 *   model     the model requested ("gpt-4o", "claude-sonnet-4-5"); required,
 *             at most 127 bytes
 *   agent     the agent it is charged to (the per-agent rows and rules);
 *             NULL or "": LLMMETER_AGENT, else the program's name; at most
 *             63 bytes
 *   provider  who bills the call: "openai", "anthropic", "google", "groq",
 *             "xai", "bedrock", ...: that provider's price applies first
 *             (NULL: the model's own provider); the ledger and the status
 *             rows record it; "ollama" is a local model and costs nothing
 *             unless LLMMETER_PRICES prices it
 *   estimate  the usage the call may reach (input tokens of the prompt, the
 *             max_tokens asked for): reserved at the model's price until the
 *             call ends; NULL: no input and LLMMETER_DEFAULT_MAX_TOKENS of
 *             output
 * An unpriced model is charged at LLMMETER_DEFAULT_PRICE if set, else at
 * its provider's highest prices (never free by accident), or refused under
 * LLMMETER_UNPRICED=deny. May wait (up to LLMMETER_WAIT_S) while only other
 * calls' reservations or a rate limit stand in the way.
 * Returns 0 and sets *out; LLMMETER_EDENIED if the budget refuses the call
 * (the reason, naming the budget, in llmmeter_last_error(); do not send
 * it); or another negative code. *out is NULL unless 0 is returned. */
LLMMETER_API int llmmeter_admit(llmmeter_budget *b, const char *model,
                                const char *agent, const char *provider,
                                const struct llmmeter_usage *estimate,
                                llmmeter_call **out);

/* Charges usage that arrived (the delta since the last charge) at the
 * call's price; for streams, as they flow, so a program killed mid-stream
 * has paid for what it received. Returns 0; LLMMETER_STOP when, with this
 * charge, the budget's hard limit, a per-call cap or its time is reached
 * (unless LLMMETER_MIDSTREAM=finish): the charge is made, and the program
 * should stop the call and settle it, as the hooks cut a stream; or a
 * negative code (nothing charged). */
LLMMETER_API int llmmeter_charge(llmmeter_call *c,
                                 const struct llmmeter_usage *delta);

/* Ends a call that completed. `final` is the call's total usage as the
 * provider reported it: what the charges so far add up to is corrected to
 * it (up, or down). NULL: the usage is unknown; what was charged stands,
 * and if nothing was, the estimate is charged and the call counted as
 * unmetered. The reservation's rest is returned to the budget. Sets
 * *cost_pusd (if not NULL) to what the call cost in all. Returns 0, or
 * LLMMETER_EINVAL for a bad `final` (the call stays open). On 0 the handle
 * is freed. */
LLMMETER_API int llmmeter_settle(llmmeter_call *c,
                                 const struct llmmeter_usage *final,
                                 int64_t *cost_pusd);

/* Ends a call that failed: refunds its reservation. What was charged stays
 * charged (the provider bills what it sent), and a call that was charged
 * anything counts as a request. Frees the handle (NULL: nothing). Returns
 * 0. */
LLMMETER_API int llmmeter_release(llmmeter_call *c);

/* ---- prices ---------------------------------------------------------------- */

/* The exact cost, in pico-USD, of `usage` for `model` at `provider` (as in
 * llmmeter_admit; NULL: the model's own), at today's price: what a call
 * with that usage is charged, the model's per-call fee included (the
 * estimate of llmmeter_admit and the first charge of a call include it
 * too). Returns 0 (a table or LLMMETER_PRICES
 * price), LLMMETER_UNPRICED (no price: the cost is the fallback the call
 * would be charged, see llmmeter_admit), or a negative code. */
LLMMETER_API int llmmeter_price(const char *model, const char *provider,
                                const struct llmmeter_usage *usage,
                                int64_t *pusd);

/* Formats pico-USD as exact decimal USD, trailing zeros trimmed to two
 * decimals ("0.000001375", "5.00", "-0.25"). Returns 0, or LLMMETER_ERANGE if
 * buf (size bytes) cannot hold it and the NUL (32 bytes always can). */
LLMMETER_API int llmmeter_format_usd(int64_t pusd, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
