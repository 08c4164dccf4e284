/* interpose.c — finds the real libcurl(s) and reaches modules that bypass
 * the exported hooks (see interpose.h).
 *
 * Why this exists (see /work/shared/interposition.md):
 *  - a libcurl that arrived as a dependency of an RTLD_LOCAL module (pycurl,
 *    WWW::Curl) is invisible to dlsym(RTLD_NEXT), so "the real function"
 *    must be looked up per libcurl object, not globally;
 *  - a module loaded with RTLD_DEEPBIND (PHP's curl extension) binds
 *    straight to its own libcurl and never reaches our exports, so its GOT
 *    slots are rewritten to point at the hook layer;
 *  - two libcurls can coexist (OpenSSL and GnuTLS builds), so every loaded
 *    libcurl gets its own instance slot k and its own table of real
 *    functions, and every patched slot goes to the hook table of the
 *    instance that module would have bound to.
 *
 * How it works. A scan walks dl_iterate_phdr and, for each object not seen
 * before: an object defining curl_easy_perform is registered as an instance
 * (pinned with RTLD_NOLOAD|RTLD_NODELETE, its table filled by dlvsym on its
 * version node); an object with JUMP_SLOT/GLOB_DAT relocations against the
 * LM_CURL_VT_NAMES symbols (or dlopen) whose slot holds neither our export
 * nor a hook is patched. Scans happen in lm_interpose_init(), and after
 * each dlopen() through our wrapper when the loader's add/sub counters
 * moved. Everything that mutates state runs under one mutex; the instance
 * table is published with release stores so lookups by address are
 * lock-free. Reading the ELF structures and writing a slot is elf_got.c:
 * this file decides which slots, and what goes in them.
 *
 * Identity of a module across scans: its load base plus a fingerprint
 * (dynamic section address, name hash). A module dlclose()d and reloaded at
 * the same place is caught by a sentinel: the first slot we patched must
 * still hold the value we wrote, or the module is processed again.
 *
 * Never: a constructor, heap allocation of our own, printing, or a RELRO
 * page left writable. The only libc calls that may allocate are dlopen,
 * dlsym and dlvsym, and they run once per module or instance, never on a
 * hot path.
 */
#include "interpose.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "elf_got.h"

#define MAX_MODULES 1024              /* modules remembered between scans */
#define MAX_WORK 8                    /* modules needing work per scan pass */
#define MAX_PASSES 256                /* bound on passes of one scan */
#define MAX_CALLERS 64                /* caller-module routing cache */
#define DLOPEN_INDEX LM_CURL_VT_COUNT /* pseudo-index: "dlopen" */

typedef void *(*dlopen_fn)(const char *, int);

static const char *const names[LM_CURL_VT_COUNT] = {LM_CURL_VT_NAMES};

_Static_assert(sizeof(struct lm_curl_vt) ==
                   LM_CURL_VT_COUNT * sizeof(void (*)(void)),
               "lm_curl_vt must be exactly LM_CURL_VT_COUNT pointers");

/* One loaded libcurl. Written once under lock before n_instances is
 * raised past it; read without a lock after an acquire load of the count. */
struct instance {
  uintptr_t base;   /* link_map l_addr */
  uintptr_t lo, hi; /* [lo, hi): span of its PT_LOAD segments */
  void *handle;     /* pinned: RTLD_NOLOAD|RTLD_NODELETE */
  struct lm_curl_vt vt;
};

/* One object seen by a scan: nothing to do again unless it disappeared or
 * its sentinel slot no longer holds what we wrote. */
struct module {
  uintptr_t base;
  uintptr_t fingerprint;
  uintptr_t *sentinel; /* first slot we patched, or NULL */
  uintptr_t sentinel_value;
  unsigned char alive; /* seen by the current scan */
};

/* An object that needs work in this pass (collected under the loader's
 * lock by the dl_iterate_phdr callback, processed after it returns). */
struct work {
  uintptr_t base, fingerprint, lo, hi;
  const ElfW(Phdr) *phdr;
  int phnum;
  int is_curl; /* defines curl_easy_perform */
  int imports; /* has slots to patch */
  char name[PATH_MAX];
};

/* A routing answer for one caller module. */
struct caller {
  uintptr_t map, base;
  unsigned long long adds; /* loader adds when a -1 answer was cached */
  int k;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct instance instances[LM_MAX_CURL_INSTANCES];
static int n_instances; /* atomic */

static struct lm_curl_vt hook_tables[LM_MAX_CURL_INSTANCES];
static struct lm_curl_vt export_table;
static int hooks_ready; /* atomic: lm_interpose_init ran */

static int scan_ready; /* self_base and friends are known */
static uintptr_t self_base, ldso_base, vdso_lo;
static unsigned long long scan_adds, scan_subs; /* at last full scan */
static int scanned;                             /* a scan completed */

static struct module modules[MAX_MODULES];
static int n_modules;
static struct work todo[MAX_WORK];

static struct caller callers[MAX_CALLERS];
static int n_callers;

static dlopen_fn libc_dlopen; /* atomic */

static char last_err[256];
static const char *last_err_ptr; /* atomic: NULL or last_err */

static __thread int in_dlopen __attribute__((tls_model("initial-exec")));

/* The hook layer's lazy init; absent in builds without a hook layer. */
extern void lm_hook_ensure_init(void) __attribute__((weak));

/* Our own exported dlopen, referenced without going through the GOT. */
void *dlopen(const char *file, int mode) __attribute__((visibility("default")));
static void *dlopen_self(const char *file, int mode)
    __attribute__((alias("dlopen"), nothrow));

/* ---- small helpers ---------------------------------------------------- */

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_err, sizeof last_err, fmt, ap);
  va_end(ap);
  __atomic_store_n(&last_err_ptr, last_err, __ATOMIC_RELEASE);
}

static void *vt_get(const struct lm_curl_vt *vt, int i) {
  void *p;
  memcpy(&p, (const char *)vt + (size_t)i * sizeof p, sizeof p);
  return p;
}

static void vt_set(struct lm_curl_vt *vt, int i, void *p) {
  memcpy((char *)vt + (size_t)i * sizeof p, &p, sizeof p);
}

static dlopen_fn real_dlopen(void) {
  dlopen_fn fn = __atomic_load_n(&libc_dlopen, __ATOMIC_ACQUIRE);
  if (!fn) {
    void *p = dlsym(RTLD_NEXT, "dlopen");
    memcpy(&fn, &p, sizeof fn);
    if (fn)
      __atomic_store_n(&libc_dlopen, fn, __ATOMIC_RELEASE);
  }
  return fn;
}

/* A handle on the object lm: by name, or the main program's. */
static void *reopen(dlopen_fn real, const struct link_map *lm) {
  return lm->l_name[0] ? real(lm->l_name, RTLD_LAZY | RTLD_NOLOAD)
                       : real(NULL, RTLD_LAZY);
}

static int name_index(const char *name) {
  if (strncmp(name, "curl_", 5) == 0) {
    for (int i = 0; i < LM_CURL_VT_COUNT; i++)
      if (strcmp(name, names[i]) == 0)
        return i;
    return -1;
  }
  if (strcmp(name, "dlopen") == 0)
    return DLOPEN_INDEX;
  return -1;
}

/* lm_elf_imports filter: a name we patch. *want_dlopen: "dlopen" too. */
static int patchable_name(const char *name, void *want_dlopen) {
  int idx = name_index(name);
  return idx >= 0 && (idx < LM_CURL_VT_COUNT || *(const int *)want_dlopen);
}

/* Does the object have a JUMP_SLOT/GLOB_DAT relocation against one of the
 * names we patch? want_dlopen: count "dlopen" too. */
static int imports_patchable(const struct lm_elf_dyn *d, int want_dlopen) {
  return lm_elf_imports(d, patchable_name, &want_dlopen);
}

static uintptr_t fingerprint(const char *name, const ElfW(Dyn) *dyn) {
  uintptr_t h = (uintptr_t)dyn;
  for (const char *s = name ? name : ""; *s; s++)
    h = h * 31 + (unsigned char)*s;
  return h;
}

/* ---- the loader's counters ------------------------------------------- */

struct counters {
  unsigned long long adds, subs;
};

static int counters_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  struct counters *c = arg;
  (void)size;
  c->adds = info->dlpi_adds;
  c->subs = info->dlpi_subs;
  return 1; /* the first object is enough */
}

static struct counters counters_now(void) {
  struct counters c = {0, 0};
  dl_iterate_phdr(counters_cb, &c);
  return c;
}

/* ---- instances -------------------------------------------------------- */

int lm_interpose_count(void) {
  return __atomic_load_n(&n_instances, __ATOMIC_ACQUIRE);
}

const struct lm_curl_vt *lm_interpose_real(int k) {
  if (k < 0 || k >= lm_interpose_count())
    return NULL;
  return &instances[k].vt;
}

int lm_interpose_instance_of_addr(const void *fn) {
  uintptr_t a = (uintptr_t)fn;
  int n = lm_interpose_count();
  if (!fn)
    return -1;
  for (int k = 0; k < n; k++)
    if (a >= instances[k].lo && a < instances[k].hi)
      return k;
  return -1;
}

const char *lm_interpose_last_error(void) {
  return __atomic_load_n(&last_err_ptr, __ATOMIC_ACQUIRE);
}

/* Register the libcurl described by w (already known to define
 * curl_easy_perform). Returns its slot or -1. Under lock. */
static int register_locked(const struct work *w) {
  int n = lm_interpose_count();
  for (int k = 0; k < n; k++)
    if (instances[k].base == w->base)
      return k;
  if (n == LM_MAX_CURL_INSTANCES) {
    fail("interpose: more than %d libcurl instances; %s not hooked",
         LM_MAX_CURL_INSTANCES, w->name);
    return -1;
  }
  dlopen_fn real = real_dlopen();
  void *h = real ? real(w->name, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE)
                 : NULL;
  if (!h) {
    fail("interpose: cannot pin libcurl %s", w->name);
    return -1;
  }
  struct instance *in = &instances[n];
  memset(in, 0, sizeof *in);
  in->base = w->base;
  in->lo = w->lo;
  in->hi = w->hi;
  in->handle = h;
  for (int i = 0; i < LM_CURL_VT_COUNT; i++) {
    void *p = dlvsym(h, names[i], "CURL_OPENSSL_4");
    if (!p)
      p = dlvsym(h, names[i], "CURL_GNUTLS_3");
    if (!p)
      p = dlsym(h, names[i]);
    if (p && ((uintptr_t)p < in->lo || (uintptr_t)p >= in->hi))
      p = NULL; /* resolved into some other object: not this libcurl's */
    vt_set(&in->vt, i, p);
  }
  (void)dlerror(); /* failed version lookups are expected; keep dlerror clean */
  __atomic_store_n(&n_instances, n + 1, __ATOMIC_RELEASE);
  return n;
}

struct find {
  uintptr_t base;
  struct work *w;
  int found;
};

static int find_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  struct find *f = arg;
  struct lm_elf_dyn d;
  (void)size;
  if (info->dlpi_addr != f->base)
    return 0;
  if (lm_elf_dyn_of(info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum, &d) !=
      0)
    return 1;
  if (!lm_elf_defines(&d, "curl_easy_perform"))
    return 1;
  struct work *w = f->w;
  memset(w, 0, offsetof(struct work, name));
  w->base = info->dlpi_addr;
  w->phdr = info->dlpi_phdr;
  w->phnum = info->dlpi_phnum;
  w->is_curl = 1;
  lm_elf_span(w->base, w->phdr, w->phnum, &w->lo, &w->hi);
  snprintf(w->name, sizeof w->name, "%s",
           info->dlpi_name ? info->dlpi_name : "");
  f->found = 1;
  return 1;
}

/* The instance owning addr, registering the object that contains it if it
 * is a libcurl nobody registered yet. Under lock. */
static int instance_registering_locked(const void *addr) {
  int k = lm_interpose_instance_of_addr(addr);
  if (k >= 0 || !addr)
    return k;
  Dl_info info;
  struct link_map *lm = NULL;
  if (!dladdr1(addr, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
    return -1;
  struct work w;
  struct find f = {lm->l_addr, &w, 0};
  dl_iterate_phdr(find_cb, &f);
  if (!f.found || !w.name[0])
    return -1;
  return register_locked(&w);
}

/* ---- patching --------------------------------------------------------- */

/* lm_elf_got_write, with a failure recorded for lm_interpose_last_error. */
static int write_slot(struct lm_elf_got *got, uintptr_t *slot, uintptr_t val) {
  char why[128];
  if (lm_elf_got_write(got, slot, val, why, sizeof why) == 0)
    return 0;
  fail("interpose: %s", why);
  return -1;
}

static int is_ours(int idx, uintptr_t v) {
  if (idx == DLOPEN_INDEX)
    return v == (uintptr_t)&dlopen_self;
  if (!v)
    return 0;
  if (v == (uintptr_t)vt_get(&export_table, idx))
    return 1;
  for (int k = 0; k < LM_MAX_CURL_INSTANCES; k++)
    if (v == (uintptr_t)vt_get(&hook_tables[k], idx))
      return 1;
  return 0;
}

/* One module being patched: the handle, and each name's target in its
 * scope, resolved by dlsym at most once per module. */
struct patch {
  void *h;
  const struct work *w;
  int hooks_ready;
  void *target[LM_CURL_VT_COUNT + 1];
  unsigned char resolved[LM_CURL_VT_COUNT + 1];
};

/* What the slot of symbol name (index idx), now holding cur, should hold
 * instead; 0 to leave it as it is. Under lock. */
static uintptr_t replacement_locked(struct patch *p, const char *name, int idx,
                                    uintptr_t cur) {
  const struct work *w = p->w;
  if (idx < LM_CURL_VT_COUNT && !p->hooks_ready) {
    fail("interpose: hooks not registered yet; %s of %s unpatched", name,
         w->name[0] ? w->name : "main program");
    return 0;
  }
  if (!p->resolved[idx]) {
    p->target[idx] = dlsym(p->h, name);
    p->resolved[idx] = 1;
  }
  void *tgt = p->target[idx];
  if (!tgt)
    return 0; /* unresolvable (weak) import: leave it */
  /* Rewrite only a slot bound straight to that target or still holding
   * its own lazy PLT stub; anything else belongs to someone else. */
  if (cur != (uintptr_t)tgt && (cur < w->lo || cur >= w->hi))
    return 0;
  if (idx == DLOPEN_INDEX) {
    /* Only redirect slots that would reach libc's dlopen. */
    if (tgt != (void *)real_dlopen())
      return 0;
    return (uintptr_t)&dlopen_self;
  }
  if (tgt == vt_get(&export_table, idx))
    return 0; /* binds to us */
  int k = instance_registering_locked(tgt);
  if (k < 0) {
    fail("interpose: %s of %s resolves outside any libcurl", name,
         w->name[0] ? w->name : "main program");
    return 0;
  }
  return (uintptr_t)vt_get(&hook_tables[k], idx);
}

/* Patch the curl_* (when hooks are known) and dlopen slots of one module.
 * h is a handle on it; its dependency scope decides each slot's target. */
static void patch_locked(void *h, const struct work *w, struct module *rec) {
  struct lm_elf_dyn d;
  if (lm_elf_dyn_of(w->base, w->phdr, w->phnum, &d) != 0)
    return;
  struct lm_elf_got got;
  lm_elf_got_init(&got, w->base, w->phdr, w->phnum);
  struct patch p;
  memset(&p, 0, sizeof p);
  p.h = h;
  p.w = w;
  p.hooks_ready = __atomic_load_n(&hooks_ready, __ATOMIC_ACQUIRE);
  struct lm_elf_slots it;
  const char *name;
  uintptr_t *slot;
  lm_elf_slots_begin(&it, &d);
  while (lm_elf_slots_next(&it, &name, &slot)) {
    int idx = name_index(name);
    if (idx < 0)
      continue;
    uintptr_t cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (is_ours(idx, cur))
      continue;
    uintptr_t val = replacement_locked(&p, name, idx, cur);
    if (!val || write_slot(&got, slot, val) != 0)
      continue;
    if (rec && !rec->sentinel) {
      rec->sentinel = slot;
      rec->sentinel_value = val;
    }
  }
  (void)dlerror();
}

/* libcurl calls some of its own exported functions through its PLT
 * (curl_easy_perform -> curl_multi_add_handle, curl_multi_perform, ...).
 * Where that libcurl sits in the global scope those slots bind to our
 * exports, so the hook layer would see libcurl's internal calls as if the
 * program made them. Point such slots back at the instance's own real
 * functions. Only slots holding our export or an unresolved lazy stub are
 * touched. */
static void unhook_self_locked(int k, const struct work *w) {
  struct lm_elf_dyn d;
  if (k < 0 || lm_elf_dyn_of(w->base, w->phdr, w->phnum, &d) != 0)
    return;
  struct lm_elf_got got;
  lm_elf_got_init(&got, w->base, w->phdr, w->phnum);
  struct lm_elf_slots it;
  const char *name;
  uintptr_t *slot;
  lm_elf_slots_begin(&it, &d);
  while (lm_elf_slots_next(&it, &name, &slot)) {
    int idx = name_index(name);
    if (idx < 0 || idx >= LM_CURL_VT_COUNT)
      continue;
    uintptr_t real = (uintptr_t)vt_get(&instances[k].vt, idx);
    uintptr_t cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (!real || cur == real)
      continue;
    if (is_ours(idx, cur) || (cur >= w->lo && cur < w->hi))
      (void)write_slot(&got, slot, real); /* recorded; the rest go on */
  }
}

/* ---- scanning --------------------------------------------------------- */

static void scan_state_init_locked(void) {
  if (scan_ready)
    return;
  Dl_info info;
  struct link_map *self = NULL;
  if (dladdr1((void *)&lm_interpose_init, &info, (void **)&self,
              RTLD_DL_LINKMAP) &&
      self)
    self_base = self->l_addr;
  ldso_base = (uintptr_t)getauxval(AT_BASE);
  vdso_lo = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
  scan_ready = 1;
}

static struct module *module_find(uintptr_t base) {
  for (int i = 0; i < n_modules; i++)
    if (modules[i].base == base)
      return &modules[i];
  return NULL;
}

static struct module *module_add(uintptr_t base, uintptr_t fp) {
  if (n_modules == MAX_MODULES)
    return NULL; /* stays "new": idempotent */
  struct module *m = &modules[n_modules++];
  memset(m, 0, sizeof *m);
  m->base = base;
  m->fingerprint = fp;
  m->alive = 1;
  return m;
}

struct scan {
  int nwork;
  int more;        /* work did not fit: another pass needed */
  int want_dlopen; /* patch dlopen slots too */
  unsigned long long adds, subs;
};

static int scan_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  struct scan *s = arg;
  (void)size;
  s->adds = info->dlpi_adds;
  s->subs = info->dlpi_subs;
  uintptr_t base = info->dlpi_addr, lo, hi;
  lm_elf_span(base, info->dlpi_phdr, info->dlpi_phnum, &lo, &hi);
  if (base == self_base || (ldso_base && base == ldso_base) ||
      (vdso_lo && lo == vdso_lo))
    return 0;
  const ElfW(Dyn) *dyn = lm_elf_dynamic(base, info->dlpi_phdr,
                                        info->dlpi_phnum);
  if (!dyn)
    return 0;
  uintptr_t fp = fingerprint(info->dlpi_name, dyn);
  struct module *m = module_find(base);
  if (m && m->fingerprint == fp &&
      (!m->sentinel ||
       __atomic_load_n(m->sentinel, __ATOMIC_RELAXED) == m->sentinel_value)) {
    m->alive = 1;
    return 0; /* seen, and not reloaded since */
  }
  if (m) { /* same base, another or a reloaded object: start over */
    m->fingerprint = fp;
    m->sentinel = NULL;
    m->alive = 1;
  }
  struct lm_elf_dyn d;
  int is_curl = 0, imports = 0;
  if (lm_elf_dyn_parse(base, dyn, &d) == 0) {
    is_curl = lm_elf_defines(&d, "curl_easy_perform");
    imports = !is_curl && imports_patchable(&d, s->want_dlopen);
  }
  if (!is_curl && !imports) {
    if (!m)
      module_add(base, fp);
    return 0;
  }
  if (s->nwork == MAX_WORK) {
    if (m)
      m->fingerprint = 0; /* force a look next pass */
    s->more = 1;
    return 0;
  }
  struct work *w = &todo[s->nwork++];
  w->base = base;
  w->fingerprint = fp;
  w->lo = lo;
  w->hi = hi;
  w->phdr = info->dlpi_phdr;
  w->phnum = info->dlpi_phnum;
  w->is_curl = is_curl;
  w->imports = imports;
  snprintf(w->name, sizeof w->name, "%s",
           info->dlpi_name ? info->dlpi_name : "");
  return 0;
}

static void process_locked(struct work *w) {
  struct module *rec = module_find(w->base);
  if (!rec)
    rec = module_add(w->base, w->fingerprint);
  if (w->is_curl) {
    int k = register_locked(w);
    if (__atomic_load_n(&hooks_ready, __ATOMIC_ACQUIRE))
      unhook_self_locked(k, w);
    return;
  }
  dlopen_fn real = real_dlopen();
  if (!real)
    return;
  void *h = w->name[0] ? real(w->name, RTLD_LAZY | RTLD_NOLOAD)
                       : real(NULL, RTLD_LAZY);
  struct link_map *lm = NULL;
  if (!h) {
    (void)dlerror();
    fail("interpose: cannot reopen %s to patch it", w->name);
    return;
  }
  if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || !lm || lm->l_addr != w->base) {
    /* Another namespace (dlmopen) or a race with dlclose: leave it. */
    fail("interpose: %s is not the object scanned; left unpatched",
         w->name[0] ? w->name : "main program");
  } else {
    patch_locked(h, w, rec);
  }
  dlclose(h);
  (void)dlerror();
}

/* Scan every object the loader knows; process the new ones. Under lock,
 * with in_dlopen set so our own dlopen calls pass straight through. */
static void scan_locked(void) {
  scan_state_init_locked();
  struct counters c = counters_now();
  if (scanned && c.adds == scan_adds && c.subs == scan_subs)
    return;
  int dropped_any = scanned && c.subs != scan_subs;
  if (dropped_any)
    for (int i = 0; i < n_modules; i++)
      modules[i].alive = 0;
  struct scan s;
  for (int pass = 0; pass < MAX_PASSES; pass++) {
    memset(&s, 0, sizeof s);
    s.want_dlopen = 1;
    dl_iterate_phdr(scan_cb, &s);
    for (int i = 0; i < s.nwork; i++)
      process_locked(&todo[i]);
    if (!s.more)
      break;
  }
  if (dropped_any) { /* forget objects that are gone */
    int j = 0;
    for (int i = 0; i < n_modules; i++)
      if (modules[i].alive)
        modules[j++] = modules[i];
    n_modules = j;
  }
  scan_adds = s.adds;
  scan_subs = s.subs;
  scanned = 1;
}

/* ---- public entry points ---------------------------------------------- */

void lm_interpose_init(const struct lm_curl_vt hooks[LM_MAX_CURL_INSTANCES],
                       const struct lm_curl_vt *exports) {
  if (__atomic_load_n(&hooks_ready, __ATOMIC_ACQUIRE))
    return;
  int saved = in_dlopen;
  in_dlopen = 1;
  pthread_mutex_lock(&lock);
  if (!hooks_ready) {
    if (hooks)
      memcpy(hook_tables, hooks, sizeof hook_tables);
    if (exports)
      export_table = *exports;
    __atomic_store_n(&hooks_ready, 1, __ATOMIC_RELEASE);
    /* Modules seen before the hooks were known kept their curl slots:
     * forget them so this scan looks at everything again. */
    n_modules = 0;
    scanned = 0;
    scan_locked();
  }
  pthread_mutex_unlock(&lock);
  in_dlopen = saved;
}

/* The cached answer for the caller module lm, if any. A cached -1 holds
 * only while the loader has added nothing since (adds). */
static int caller_cached(const struct link_map *lm, unsigned long long adds,
                         int *k) {
  for (int i = 0; i < n_callers; i++) {
    const struct caller *c = &callers[i];
    if (c->map == (uintptr_t)lm && c->base == lm->l_addr &&
        (c->k >= 0 || c->adds == adds)) {
      *k = c->k;
      return 1;
    }
  }
  return 0;
}

static void caller_remember(const struct link_map *lm, unsigned long long adds,
                            int k) {
  struct caller *c = NULL;
  for (int i = 0; i < n_callers && !c; i++)
    if (callers[i].map == (uintptr_t)lm)
      c = &callers[i];
  if (!c && n_callers < MAX_CALLERS)
    c = &callers[n_callers++];
  if (!c)
    c = &callers[(uintptr_t)lm / 64 % MAX_CALLERS];
  c->map = (uintptr_t)lm;
  c->base = lm->l_addr;
  c->adds = adds;
  c->k = k;
}

/* The instance for a call of name from module lm (NULL: unknown), asking
 * the loader. Under lock. */
static int caller_resolve_locked(const struct link_map *lm, const char *name) {
  int k = -1;
  if (lm && lm->l_addr != self_base) {
    dlopen_fn real = real_dlopen();
    void *h = real ? reopen(real, lm) : NULL;
    if (h) {
      void *p = dlsym(h, name);
      int idx = name_index(name);
      if (p && !(idx >= 0 && idx < LM_CURL_VT_COUNT &&
                 p == vt_get(&export_table, idx)))
        k = instance_registering_locked(p);
      dlclose(h);
    }
  }
  if (k < 0)
    k = instance_registering_locked(dlsym(RTLD_NEXT, name));
  if (k < 0 && lm_interpose_count() == 1)
    k = 0;
  (void)dlerror();
  return k;
}

int lm_interpose_instance_for_caller(const void *retaddr, const char *name) {
  Dl_info info;
  struct link_map *lm = NULL;
  int k = -1;
  if (!name)
    return -1;
  if (!dladdr1(retaddr, &info, (void **)&lm, RTLD_DL_LINKMAP))
    lm = NULL;
  int saved = in_dlopen;
  /* Inside a dlopen on this thread (a module constructor calling curl),
   * the loader's lock may be held; a scanning thread holding lock may be
   * waiting for it. Do not wait in turn: answer without the cache. */
  if (saved && pthread_mutex_trylock(&lock) != 0)
    return lm_interpose_count() == 1 ? 0 : -1;
  in_dlopen = 1;
  if (!saved)
    pthread_mutex_lock(&lock);
  scan_locked(); /* no-op unless the loader's counters moved */
  unsigned long long adds = scan_adds;
  if (!lm || !caller_cached(lm, adds, &k)) {
    k = caller_resolve_locked(lm, name);
    if (lm)
      caller_remember(lm, adds, k);
  }
  pthread_mutex_unlock(&lock);
  in_dlopen = saved;
  return k;
}

/* ---- the dlopen wrapper ----------------------------------------------- */

struct newest {
  unsigned long long skip; /* objects before the newly added ones */
  unsigned long long seen;
  int imports_curl;
};

static int count_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)info;
  (void)size;
  ((struct newest *)arg)->seen++;
  return 0;
}

static int newest_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  struct newest *n = arg;
  struct lm_elf_dyn d;
  (void)size;
  if (n->seen++ < n->skip)
    return 0;
  if (lm_elf_dyn_of(info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum, &d) ==
          0 &&
      !lm_elf_defines(&d, "curl_easy_perform") && imports_patchable(&d, 0)) {
    n->imports_curl = 1;
    return 1;
  }
  return 0;
}

/* Did the last `added` objects of the link chain bring curl imports? New
 * objects are appended, so they are the tail of dl_iterate_phdr's order. */
static int new_objects_import_curl(unsigned long long added) {
  struct newest n = {0, 0, 0};
  dl_iterate_phdr(count_cb, &n);
  n.skip = n.seen > added ? n.seen - added : 0;
  n.seen = 0;
  dl_iterate_phdr(newest_cb, &n);
  return n.imports_curl;
}

static void after_dlopen(struct counters before, int mode) {
  struct counters now = counters_now();
  if (now.adds == before.adds)
    return; /* nothing new was mapped */
  if (!__atomic_load_n(&hooks_ready, __ATOMIC_ACQUIRE)) {
    int curl = new_objects_import_curl(now.adds - before.adds);
    if (!curl && !(mode & RTLD_DEEPBIND))
      return;
    if (curl && lm_hook_ensure_init) {
      lm_hook_ensure_init(); /* calls lm_interpose_init: a full scan */
      if (__atomic_load_n(&hooks_ready, __ATOMIC_ACQUIRE))
        return;
    }
  }
  pthread_mutex_lock(&lock);
  scan_locked();
  pthread_mutex_unlock(&lock);
}

static int has_search_path(const struct link_map *lm) {
  for (const ElfW(Dyn) *d = lm->l_ld; d && d->d_tag != DT_NULL; d++)
    if (d->d_tag == DT_RPATH || d->d_tag == DT_RUNPATH)
      return 1;
  return 0;
}

/* glibc resolves a bare file name with the DT_RPATH/DT_RUNPATH of the
 * object that called dlopen, and through this wrapper that caller is us.
 * When the real caller has its own search path, search it the way the
 * loader would (dlinfo RTLD_DI_SERINFO on the caller) and open the first
 * match by path; an object already loaded under that name wins, as in
 * glibc. */
static void *dlopen_as(dlopen_fn real, const char *file, int mode,
                       const void *caller) {
  Dl_info info;
  struct link_map *lm = NULL;
  if (!file || !file[0] || strchr(file, '/') ||
      !dladdr1(caller, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm ||
      !has_search_path(lm))
    return real(file, mode);
  void *h = real(file, RTLD_LAZY | RTLD_NOLOAD);
  if (h) {
    dlclose(h);
    return real(file, mode);
  }
  void *ch = reopen(real, lm);
  union {
    Dl_serinfo si;
    /* cppcheck-suppress unusedStructMember ; it gives the union its size */
    char bytes[8192];
  } u;
  Dl_serinfo size;
  if (ch && dlinfo(ch, RTLD_DI_SERINFOSIZE, &size) == 0 &&
      size.dls_size <= sizeof u) {
    u.si.dls_size = size.dls_size;
    u.si.dls_cnt = size.dls_cnt;
    if (dlinfo(ch, RTLD_DI_SERINFO, &u.si) == 0) {
      for (unsigned i = 0; i < u.si.dls_cnt && !h; i++) {
        char path[PATH_MAX];
        int n = snprintf(path, sizeof path, "%s/%s",
                         u.si.dls_serpath[i].dls_name, file);
        if (n > 0 && (size_t)n < sizeof path && access(path, F_OK) == 0)
          h = real(path, mode);
      }
    }
  }
  if (ch)
    dlclose(ch);
  return h ? h : real(file, mode);
}

void *dlopen(const char *file, int mode) {
  dlopen_fn real = real_dlopen();
  if (!real)
    return NULL;
  if (in_dlopen)
    return real(file, mode);
  in_dlopen = 1;
  struct counters before = counters_now();
  void *h = dlopen_as(real, file, mode, __builtin_return_address(0));
  if (h) {
    after_dlopen(before, mode);
    (void)dlerror(); /* a successful dlopen leaves no error behind */
  }
  in_dlopen = 0;
  return h;
}
