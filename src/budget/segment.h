/* segment.h — the budget's shared-memory segment: its layout and its
 * lifecycle (create, attach, validate, remove).
 *
 * Treat this header as a file format. Every process of a swarm maps the same
 * bytes, so the layout is fixed-width, versioned and checked with
 * _Static_asserts; a segment is trusted only after its owner, mode, size,
 * magic, version and layout size have been checked, and every index read
 * from it is bounds-checked again where it is used (another process of the
 * same user may be buggy or hostile).
 *
 * Every change to the counters and the lease table is a step taken under
 * one robust process-shared mutex (the kernel hands it on when its holder
 * dies), and every word a step writes is first recorded, with its old
 * value, in the segment's undo journal: the next locker that finds the
 * holder dead rolls its half-done step back (shm_journal.c), so a process
 * killed at any instruction leaves every counter as if the step had never
 * begun. Readers that need no consistent view (limits, a hard-limit check)
 * read the atomics without the lock.
 */
#ifndef LM_SEGMENT_H
#define LM_SEGMENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "usage.h"

#define LM_SEG_MAGIC 0x524554454d4d4c4cULL /* "LLMMETER" little-endian */
/* 2: the token counters gained the parts of usage.h (audio, image, video,
 * citation and separate reasoning tokens, web searches): lm_counters 128 ->
 * 200 bytes, rows and rules 256 -> 320; a model row names its provider. A
 * version-1 segment is refused, never reinterpreted.
 * 3: 16,384 lease slots (was 1,024): asyncio agents hold hundreds of
 * streams each, and a swarm of them thousands (1 MiB of slots).
 * 4: the header counts the processes the leak guard refused or warned about
 * (unmetered_denied, unmetered_warned: programs that resolved an LLM host
 * with no TLS library llmmeter can see); the counters after it moved. A
 * version-3 segment is refused as every older one is.
 * 5: the undo journal (struct lm_journal) at the end: every counter and
 * lease change is a journaled step under the mutex; the lease states
 * CLAIMED and APPLYING and the reconcile gate are no longer used (a slot
 * found in one is hostile). A version-4 segment is refused. */
#define LM_SEG_VERSION 5u
#define LM_NAME_MAX 64     /* model / agent / pattern names, NUL included */
#define LM_PROVIDER_MAX 32 /* a model row's provider, NUL included */
#define LM_ROWS 256        /* per-model and per-agent rows (+1 "other") */
#define LM_ROW_OTHER LM_ROWS
#define LM_ROW_NONE 0xffffffffu
#define LM_RULES 32 /* per-model / per-agent limit rules */
/* Concurrent in-flight calls across every process of a budget. Sized, not
 * waited for: a call refused "busy" fails at once and an SDK's retry
 * storms; 64 B a slot, claimed by a hashed linear probe (O(1) while the
 * table is not nearly full), scanned whole only by reclaim
 * (when full, or after a death). */
#define LM_LEASES 16384
#define LM_BUDGET_NAME_MAX 64

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");

enum lm_window_kind {
  LM_WINDOW_NONE = 0, /* lifetime */
  LM_WINDOW_HOUR,
  LM_WINDOW_DAY,
  LM_WINDOW_WEEK,  /* ISO week, Monday 00:00 UTC */
  LM_WINDOW_MONTH, /* calendar month, UTC */
  LM_WINDOW_KINDS
};

enum lm_mode { LM_MODE_OPTIMISTIC = 0, LM_MODE_STRICT = 1 };

/* One set of counters for one window. `window` is the window start (epoch
 * seconds) these counts belong to; the first process to see a newer window
 * swings it with a CAS and subtracts what it read, so the reset happens
 * exactly once and no concurrent charge is lost. Reservations are in-flight
 * money and are never reset. */
struct lm_counters {
  _Atomic int64_t window;
  _Atomic int64_t spent;                 /* pico-USD charged in this window */
  _Atomic int64_t reserved;              /* pico-USD held by in-flight leases */
  _Atomic uint64_t requests;             /* settled calls in this window */
  _Atomic uint64_t reserved_requests;    /* admitted, not yet settled */
  _Atomic uint64_t tokens[LM_TOK_KINDS]; /* by enum lm_token_kind */
  _Atomic uint64_t reserved_tokens; /* estimated tokens of in-flight calls */
  _Atomic uint64_t denied;
  _Atomic uint64_t unmetered;     /* calls whose usage could not be read */
  _Atomic uint64_t unpriced;      /* calls to a model without a price */
  _Atomic int64_t first_activity; /* epoch seconds, 0 = never */
  _Atomic int64_t last_activity;
};
_Static_assert(sizeof(struct lm_counters) == 200, "lm_counters layout");
_Static_assert(LM_TOK_KINDS == 14, "lm_counters holds 14 token kinds");

enum lm_row_state { LM_ROW_FREE = 0, LM_ROW_CLAIMED = 1, LM_ROW_READY = 2 };

/* A per-model or per-agent row. The state word is (pid << 2 | state).
 * A model's row is per model and provider (who bills it): the same model
 * at Groq and at OpenRouter has two rows. `provider` was padding in
 * segments made before it existed (zeros: unknown), so the layout and its
 * version are unchanged; agent rows leave it empty. */
struct lm_row {
  _Atomic uint64_t state;
  uint32_t hash;  /* of name, then provider */
  uint32_t flags; /* LM_ROWF_* */
  char name[LM_NAME_MAX];
  struct lm_counters c;
  char provider[LM_PROVIDER_MAX];
  char pad[40 - LM_PROVIDER_MAX];
};
_Static_assert(sizeof(struct lm_row) == 320, "lm_row layout");
_Static_assert(offsetof(struct lm_row, provider) == 280,
               "lm_row.provider is where the padding was");
#define LM_ROWF_UNPRICED 1u

/* A rule's kind is its target (low byte) and what it limits (next byte):
 * spend per window (counted together), or a cap on each single call. */
enum lm_rule_kind { LM_RULE_MODEL = 1, LM_RULE_AGENT = 2 };
enum lm_rule_measure {
  LM_RULE_SPEND = 0 << 8,       /* USD per window, all matches together */
  LM_RULE_CALL_USD = 1 << 8,    /* USD per call */
  LM_RULE_CALL_INPUT = 2 << 8,  /* input tokens per call */
  LM_RULE_CALL_OUTPUT = 3 << 8, /* output tokens per call */
  LM_RULE_RPM = 4 << 8,         /* requests per minute, all matches */
  LM_RULE_TPM = 5 << 8,         /* tokens per minute, all matches */
};
#define LM_RULE_TARGET(k) ((k)&0xffu)
#define LM_RULE_MEASURE(k) ((k)&0xff00u)
enum lm_rule_state {
  LM_RULE_UNUSED = 0,
  LM_RULE_ACTIVE = 1,
  LM_RULE_RETIRED = 2
};

/* A USD limit on every model (or agent) matching a glob, counted together.
 * Retired rules keep their slot so a lease that still carries the rule's
 * bit never charges a newer rule. */
struct lm_rule {
  _Atomic uint32_t state;
  uint32_t kind;
  _Atomic int64_t limit_pusd;
  char pattern[LM_NAME_MAX];
  struct lm_counters c;
  _Atomic int64_t tat; /* rate rules: the bucket's theoretical arrival time */
  char pad[32];
};
_Static_assert(sizeof(struct lm_rule) == 320, "lm_rule layout");

enum lm_lease_state {
  LM_LEASE_FREE = 0,
  LM_LEASE_CLAIMED = 1,  /* layout 4 only: a slot never holds it now */
  LM_LEASE_APPLYING = 2, /* layout 4 only: a slot never holds it now */
  LM_LEASE_ACTIVE = 3,   /* reservation fully applied (claimed in one step) */
};

/* An in-flight call. state = (pid << 8) | lm_lease_state. The owner's start
 * time (clock ticks since boot, /proc/PID/stat field 22) makes pid reuse
 * harmless: a lease is dead when its pid is gone or runs another process. */
struct lm_lease_slot {
  _Atomic uint64_t state;
  uint64_t owner_start;
  int64_t reserved_pusd; /* estimate held for this call */
  int64_t charged_pusd;  /* charged so far (streams charge as they flow) */
  uint64_t reserved_tokens;
  uint32_t model_row; /* index or LM_ROW_NONE */
  uint32_t agent_row;
  uint32_t rule_mask; /* rules whose counters hold this reservation */
  uint32_t flags;     /* LM_LEASEF_* */
  int64_t admitted_at;
};
_Static_assert(sizeof(struct lm_lease_slot) == 64, "lm_lease_slot layout");
#define LM_LEASEF_DOLLARS 1u /* reserved money (not a zero-priced call) */

/* Limits: -1 means "no limit". Changeable live by `llmmeter set`. */
struct lm_limits {
  _Atomic int64_t hard_pusd;
  _Atomic int64_t soft_pusd;     /* -1: 80% of hard */
  _Atomic int64_t tokens;        /* input+output tokens per window */
  _Atomic int64_t requests;      /* calls per window */
  _Atomic uint32_t window_kind;  /* enum lm_window_kind */
  _Atomic uint32_t mode;         /* enum lm_mode */
  _Atomic int64_t max_call_pusd; /* per-call caps, -1 none */
  _Atomic int64_t max_call_input_tokens;
  _Atomic int64_t max_call_output_tokens;
  /* Rates, per minute, shared by every process (-1: none). */
  _Atomic int64_t rpm, tpm, itpm, otpm;
  _Atomic int64_t deadline;   /* epoch seconds after which LLM calls stop */
  _Atomic int64_t max_llm_ns; /* total time inside LLM transfers */
  int64_t reserved_for_future[2];
};

/* The undo journal of the step in progress. A step (shm_journal.c) records
 * each word's offset and old value in e[n] and only then publishes n + 1
 * and stores the new value; committing stores n = 0. So at any instant the
 * first n entries hold the old value of every word the step has changed,
 * and rolling them back (last first) restores the segment as it was when
 * the step began. Sized for the largest step there is (a reset: every
 * counter of every set) with room to spare, checked where steps are made.
 * `rebuild` is the intent of a reservation rebuild (reconcile of a hostile
 * lease table): set before, cleared after, redone by the next locker. */
#define LM_JOURNAL_MAX 12288
struct lm_journal_entry {
  uint64_t off; /* of the word from the segment's start */
  uint64_t old;
};
struct lm_journal {
  _Atomic uint32_t n;
  _Atomic uint32_t rebuild;
  _Atomic uint64_t steps;  /* steps committed */
  _Atomic uint64_t undone; /* half-done steps of dead holders rolled back */
  uint64_t pad;
  struct lm_journal_entry e[LM_JOURNAL_MAX];
};
_Static_assert(sizeof(struct lm_journal) == 32 + 16 * LM_JOURNAL_MAX,
               "lm_journal layout");

struct lm_segment {
  /* Identity: written once at creation, magic last. */
  _Atomic uint64_t magic;
  uint32_t version;
  uint32_t header_size; /* sizeof(struct lm_segment) */
  uint64_t total_size;
  uint32_t owner_uid;
  uint32_t row_count;   /* LM_ROWS */
  uint32_t rule_count;  /* LM_RULES */
  uint32_t lease_count; /* LM_LEASES */
  int64_t created_at;
  char name[LM_BUDGET_NAME_MAX];

  pthread_mutex_t lock; /* robust, process-shared: structural changes only */
  char lock_pad[64 - sizeof(pthread_mutex_t) % 64];

  struct lm_limits limits;
  _Atomic uint32_t rules_gen; /* bumped whenever a rule changes */
  _Atomic uint32_t wake;      /* futex word: bumped when money frees up */
  _Atomic uint32_t waiters;   /* processes waiting on `wake` */
  _Atomic uint32_t gate_pad;
  _Atomic uint32_t gate; /* layout 4's reconcile gate: unused since 5 */
  uint32_t gate_pad2;
  _Atomic uint64_t reclaimed;  /* leases reclaimed from dead processes */
  _Atomic uint64_t reconciles; /* dead steps rolled back, sums rebuilt */
  /* Processes that resolved an LLM API host while no TLS library llmmeter
   * can see was loaded (src/resolve/): refused, or let through with a
   * warning. Lifetime counts (not windowed); `llmmeter reset` zeroes them. */
  _Atomic uint64_t unmetered_denied;
  _Atomic uint64_t unmetered_warned;
  _Atomic int64_t reset_at; /* last `llmmeter reset`, epoch seconds */
  /* Rate buckets (GCRA): theoretical arrival times, CLOCK_MONOTONIC ns. */
  _Atomic int64_t rpm_tat, tpm_tat, itpm_tat, otpm_tat;
  _Atomic int64_t llm_ns;      /* time spent inside LLM transfers */
  _Atomic int64_t soft_window; /* 1 + window id in which the soft limit
                                   was crossed (0: not yet) */
  char on_soft[256];           /* command run once at the soft limit */
  char downgrade[512];         /* model=model,... used above the soft limit */

  struct lm_counters total;
  struct lm_row models[LM_ROWS + 1];
  struct lm_row agents[LM_ROWS + 1];
  struct lm_rule rules[LM_RULES];
  struct lm_lease_slot leases[LM_LEASES];
  struct lm_journal journal;
};

/* Attach result. The mapping stays valid until lm_segment_detach. */
struct lm_segment_map {
  struct lm_segment *seg;
  size_t size;
  char name[LM_BUDGET_NAME_MAX + 2]; /* "/name" as given to shm_open */
};

/* Error codes returned by this module; lm_segment_strerror explains. */
enum lm_seg_err {
  LM_SEG_OK = 0,
  LM_SEG_ENOENT = -1,  /* no such budget */
  LM_SEG_EEXIST = -2,  /* exists (create without force) */
  LM_SEG_EOWNER = -3,  /* owned by another uid or group/world accessible */
  LM_SEG_EFORMAT = -4, /* wrong magic/version/size: corrupt or other layout */
  LM_SEG_ENAME = -5,   /* invalid budget name */
  LM_SEG_ESYS = -6,    /* system call failed (errno kept in err text) */
};

/* Default budget name: llmmeter-<uid>. */
void lm_segment_default_name(char *out, size_t size);
/* Budget names are [A-Za-z0-9._-]{1,63}. */
int lm_segment_name_valid(const char *name);

/* Creates the segment (mode 0600). With force, an existing segment of ours
 * is replaced. Fills err (one line) on failure. */
int lm_segment_create(const char *name, int force, struct lm_segment_map *m,
                      char *err, size_t errlen);
/* Attaches after validating owner, mode, size and identity. */
int lm_segment_attach(const char *name, struct lm_segment_map *m, char *err,
                      size_t errlen);
void lm_segment_detach(struct lm_segment_map *m);
int lm_segment_remove(const char *name, char *err, size_t errlen);

/* Calls fn for each budget segment of this user in /dev/shm. */
int lm_segment_list(void (*fn)(const char *name, void *ctx), void *ctx);

/* The segment's robust lock, waited for at most two seconds (a lock held
 * that long is a stopped process or a hostile segment). Returns 0, 1 (we
 * hold it, and its last holder died holding it: the caller must repair
 * what it left, see shm_journal.c), or -1 (not acquired). */
int lm_segment_lock(struct lm_segment *s);
void lm_segment_unlock(struct lm_segment *s);

#endif
