/* interpose.c — finds the real libcurl(s) and reaches modules that bypass
 * the exported hooks.
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
 * lock-free.
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
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#define LM_IP_R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define LM_IP_R_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define LM_IP_R_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define LM_IP_R_GLOB_DAT R_AARCH64_GLOB_DAT
#else
#error "interpose.c: relocation types known for x86_64 and aarch64 only"
#endif

#define LM_IP_MAX_MODULES 1024 /* modules remembered between scans */
#define LM_IP_MAX_WORK 8       /* modules needing work per scan pass */
#define LM_IP_MAX_PASSES 256   /* bound on passes of one scan */
#define LM_IP_MAX_CALLERS 64   /* caller-module routing cache */
#define LM_IP_DLOPEN_INDEX LM_CURL_VT_COUNT /* pseudo-index: "dlopen" */

typedef void *(*lm_ip_dlopen_fn)(const char *, int);

static const char *const lm_ip_names[LM_CURL_VT_COUNT] = {LM_CURL_VT_NAMES};

_Static_assert(sizeof(struct lm_curl_vt) ==
                   LM_CURL_VT_COUNT * sizeof(void (*)(void)),
               "lm_curl_vt must be exactly LM_CURL_VT_COUNT pointers");

/* One loaded libcurl. Written once under g_lock before g_inst_count is
 * raised past it; read without a lock after an acquire load of the count. */
struct lm_ip_instance {
  uintptr_t base;   /* link_map l_addr */
  uintptr_t lo, hi; /* [lo, hi): span of its PT_LOAD segments */
  void *handle;     /* pinned: RTLD_NOLOAD|RTLD_NODELETE */
  struct lm_curl_vt vt;
};

/* One object seen by a scan: nothing to do again unless it disappeared or
 * its sentinel slot no longer holds what we wrote. */
struct lm_ip_module {
  uintptr_t base;
  uintptr_t fingerprint;
  uintptr_t *sentinel; /* first slot we patched, or NULL */
  uintptr_t sentinel_value;
  unsigned char alive; /* seen by the current scan */
};

/* An object that needs work in this pass (collected under the loader's
 * lock by the dl_iterate_phdr callback, processed after it returns). */
struct lm_ip_work {
  uintptr_t base, fingerprint, lo, hi;
  const ElfW(Phdr) * phdr;
  int phnum;
  int is_curl;  /* defines curl_easy_perform */
  int imports;  /* has slots to patch */
  char name[PATH_MAX];
};

/* The parts of a dynamic section we read. */
struct lm_ip_dyn {
  const ElfW(Sym) * symtab;
  const char *strtab;
  size_t strsz;
  const ElfW(Rela) * jmprel;
  size_t jmprel_n;
  const ElfW(Rela) * rela;
  size_t rela_n;
  const uint32_t *gnu_hash;
  const uint32_t *sysv_hash;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static struct lm_ip_instance g_inst[LM_MAX_CURL_INSTANCES];
static int g_inst_count; /* atomic */

static struct lm_curl_vt g_hooks[LM_MAX_CURL_INSTANCES];
static struct lm_curl_vt g_exports;
static int g_hooks_ready; /* atomic: lm_interpose_init ran */

static int g_scan_ready; /* g_self_base and friends are known */
static uintptr_t g_self_base, g_ldso_base, g_vdso_lo;
static unsigned long long g_scan_adds, g_scan_subs; /* at last full scan */
static int g_scanned;                                /* a scan completed */

static struct lm_ip_module g_mods[LM_IP_MAX_MODULES];
static int g_nmods;
static struct lm_ip_work g_work[LM_IP_MAX_WORK];

struct lm_ip_caller {
  uintptr_t map, base;
  unsigned long long adds; /* loader adds when a -1 answer was cached */
  int k;
};
static struct lm_ip_caller g_callers[LM_IP_MAX_CALLERS];
static int g_ncallers;

static lm_ip_dlopen_fn g_real_dlopen; /* atomic */

static char g_err[256];
static const char *g_err_ptr; /* atomic: NULL or g_err */

static __thread int t_in_dlopen __attribute__((tls_model("initial-exec")));

/* The hook layer's lazy init; absent in builds without a hook layer. */
extern void lm_hook_ensure_init(void) __attribute__((weak));

/* Our own exported dlopen, referenced without going through the GOT. */
void *dlopen(const char *file, int mode) __attribute__((visibility("default")));
extern void *lm_ip_dlopen_self(const char *file, int mode)
    __attribute__((alias("dlopen"), visibility("hidden"), nothrow));

/* ---- small helpers ---------------------------------------------------- */

__attribute__((format(printf, 1, 2))) static void lm_ip_fail(const char *fmt,
                                                             ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_err, sizeof g_err, fmt, ap);
  va_end(ap);
  __atomic_store_n(&g_err_ptr, g_err, __ATOMIC_RELEASE);
}

static void *lm_ip_vt_get(const struct lm_curl_vt *vt, int i) {
  void *p;
  memcpy(&p, (const char *)vt + (size_t)i * sizeof p, sizeof p);
  return p;
}

static void lm_ip_vt_set(struct lm_curl_vt *vt, int i, void *p) {
  memcpy((char *)vt + (size_t)i * sizeof p, &p, sizeof p);
}

static lm_ip_dlopen_fn lm_ip_real_dlopen(void) {
  lm_ip_dlopen_fn fn = __atomic_load_n(&g_real_dlopen, __ATOMIC_ACQUIRE);
  if (!fn) {
    void *p = dlsym(RTLD_NEXT, "dlopen");
    memcpy(&fn, &p, sizeof fn);
    if (fn) __atomic_store_n(&g_real_dlopen, fn, __ATOMIC_RELEASE);
  }
  return fn;
}

static int lm_ip_name_index(const char *name) {
  if (strncmp(name, "curl_", 5) == 0) {
    for (int i = 0; i < LM_CURL_VT_COUNT; i++)
      if (strcmp(name, lm_ip_names[i]) == 0) return i;
    return -1;
  }
  if (strcmp(name, "dlopen") == 0) return LM_IP_DLOPEN_INDEX;
  return -1;
}

/* Dynamic-section pointers are relocated in place by ld.so for most
 * objects, but not for read-only dynamic sections (the vdso). */
static const void *lm_ip_dptr(uintptr_t base, ElfW(Addr) v) {
  return (const void *)(v < base ? base + v : v);
}

static int lm_ip_dyn_parse(uintptr_t base, const ElfW(Dyn) * dyn,
                           struct lm_ip_dyn *d) {
  size_t jmprel_sz = 0, rela_sz = 0, relaent = sizeof(ElfW(Rela));
  long pltrel = DT_RELA;
  memset(d, 0, sizeof *d);
  for (; dyn->d_tag != DT_NULL; dyn++) {
    switch (dyn->d_tag) {
    case DT_SYMTAB: d->symtab = lm_ip_dptr(base, dyn->d_un.d_ptr); break;
    case DT_STRTAB: d->strtab = lm_ip_dptr(base, dyn->d_un.d_ptr); break;
    case DT_STRSZ: d->strsz = dyn->d_un.d_val; break;
    case DT_JMPREL: d->jmprel = lm_ip_dptr(base, dyn->d_un.d_ptr); break;
    case DT_PLTRELSZ: jmprel_sz = dyn->d_un.d_val; break;
    case DT_PLTREL: pltrel = (long)dyn->d_un.d_val; break;
    case DT_RELA: d->rela = lm_ip_dptr(base, dyn->d_un.d_ptr); break;
    case DT_RELASZ: rela_sz = dyn->d_un.d_val; break;
    case DT_RELAENT: relaent = dyn->d_un.d_val; break;
    case DT_GNU_HASH: d->gnu_hash = lm_ip_dptr(base, dyn->d_un.d_ptr); break;
    case DT_HASH: d->sysv_hash = lm_ip_dptr(base, dyn->d_un.d_ptr); break;
    default: break;
    }
  }
  if (!d->symtab || !d->strtab || relaent != sizeof(ElfW(Rela))) return -1;
  if (pltrel != DT_RELA) d->jmprel = NULL; /* REL-style PLT: not on our ABIs */
  d->jmprel_n = d->jmprel ? jmprel_sz / sizeof(ElfW(Rela)) : 0;
  d->rela_n = d->rela ? rela_sz / sizeof(ElfW(Rela)) : 0;
  return 0;
}

static const char *lm_ip_sym_name(const struct lm_ip_dyn *d, size_t symi) {
  ElfW(Word) off = d->symtab[symi].st_name;
  if (d->strsz && off >= d->strsz) return "";
  return d->strtab + off;
}

static uint32_t lm_ip_gnu_hash_of(const char *s) {
  uint32_t h = 5381;
  for (; *s; s++) h = h * 33 + (unsigned char)*s;
  return h;
}

static unsigned long lm_ip_sysv_hash_of(const char *s) {
  unsigned long h = 0, g;
  for (; *s; s++) {
    h = (h << 4) + (unsigned char)*s;
    g = h & 0xf0000000UL;
    if (g) h ^= g >> 24;
    h &= ~g;
  }
  return h;
}

/* Does this object itself define name (not merely import it)? */
static int lm_ip_defines(const struct lm_ip_dyn *d, const char *name) {
  if (d->gnu_hash) {
    const uint32_t *ht = d->gnu_hash;
    uint32_t nbuckets = ht[0], symoffset = ht[1], bloom_size = ht[2];
    const ElfW(Addr) *bloom = (const ElfW(Addr) *)(const void *)&ht[4];
    const uint32_t *buckets = (const uint32_t *)(const void *)&bloom[bloom_size];
    const uint32_t *chain = &buckets[nbuckets];
    uint32_t h = lm_ip_gnu_hash_of(name);
    if (nbuckets == 0) return 0;
    for (uint32_t i = buckets[h % nbuckets]; i >= symoffset && i != 0; i++) {
      uint32_t h2 = chain[i - symoffset];
      if ((h | 1) == (h2 | 1) && strcmp(name, lm_ip_sym_name(d, i)) == 0)
        return d->symtab[i].st_shndx != SHN_UNDEF && d->symtab[i].st_value;
      if (h2 & 1) break;
    }
    return 0;
  }
  if (d->sysv_hash) {
    const uint32_t *ht = d->sysv_hash;
    uint32_t nbucket = ht[0];
    const uint32_t *bucket = &ht[2], *chain = &bucket[nbucket];
    if (nbucket == 0) return 0;
    for (uint32_t i = bucket[lm_ip_sysv_hash_of(name) % nbucket]; i != STN_UNDEF;
         i = chain[i])
      if (strcmp(name, lm_ip_sym_name(d, i)) == 0)
        return d->symtab[i].st_shndx != SHN_UNDEF && d->symtab[i].st_value;
  }
  return 0;
}

/* Does the object have a JUMP_SLOT/GLOB_DAT relocation against one of the
 * names we patch? want_dlopen: count "dlopen" too. */
static int lm_ip_imports(const struct lm_ip_dyn *d, int want_dlopen) {
  const ElfW(Rela) *tabs[2] = {d->jmprel, d->rela};
  size_t ns[2] = {d->jmprel_n, d->rela_n};
  for (int t = 0; t < 2; t++) {
    for (size_t r = 0; r < ns[t]; r++) {
      unsigned type = (unsigned)ELF64_R_TYPE(tabs[t][r].r_info);
      size_t symi = ELF64_R_SYM(tabs[t][r].r_info);
      if ((type != LM_IP_R_JUMP_SLOT && type != LM_IP_R_GLOB_DAT) || !symi)
        continue;
      int idx = lm_ip_name_index(lm_ip_sym_name(d, symi));
      if (idx >= 0 && (idx < LM_CURL_VT_COUNT || want_dlopen)) return 1;
    }
  }
  return 0;
}

static const ElfW(Dyn) * lm_ip_phdr_dynamic(uintptr_t base,
                                            const ElfW(Phdr) * ph, int n) {
  for (int i = 0; i < n; i++)
    if (ph[i].p_type == PT_DYNAMIC)
      return (const ElfW(Dyn) *)(base + ph[i].p_vaddr);
  return NULL;
}

static void lm_ip_phdr_span(uintptr_t base, const ElfW(Phdr) * ph, int n,
                            uintptr_t *lo, uintptr_t *hi) {
  uintptr_t l = UINTPTR_MAX, h = 0;
  for (int i = 0; i < n; i++) {
    if (ph[i].p_type != PT_LOAD) continue;
    if (ph[i].p_vaddr < l) l = ph[i].p_vaddr;
    if (ph[i].p_vaddr + ph[i].p_memsz > h) h = ph[i].p_vaddr + ph[i].p_memsz;
  }
  *lo = l == UINTPTR_MAX ? 0 : base + l;
  *hi = base + h;
}

static uintptr_t lm_ip_fingerprint(const char *name, const ElfW(Dyn) * dyn) {
  uintptr_t h = (uintptr_t)dyn;
  for (const char *s = name ? name : ""; *s; s++) h = h * 31 + (unsigned char)*s;
  return h;
}

/* ---- the loader's counters ------------------------------------------- */

struct lm_ip_counters {
  unsigned long long adds, subs;
};

static int lm_ip_counters_cb(struct dl_phdr_info *info, size_t size,
                             void *arg) {
  struct lm_ip_counters *c = arg;
  (void)size;
  c->adds = info->dlpi_adds;
  c->subs = info->dlpi_subs;
  return 1; /* the first object is enough */
}

static struct lm_ip_counters lm_ip_counters_now(void) {
  struct lm_ip_counters c = {0, 0};
  dl_iterate_phdr(lm_ip_counters_cb, &c);
  return c;
}

/* ---- instances -------------------------------------------------------- */

int lm_interpose_count(void) {
  return __atomic_load_n(&g_inst_count, __ATOMIC_ACQUIRE);
}

const struct lm_curl_vt *lm_interpose_real(int k) {
  if (k < 0 || k >= lm_interpose_count()) return NULL;
  return &g_inst[k].vt;
}

int lm_interpose_instance_of_addr(const void *fn) {
  uintptr_t a = (uintptr_t)fn;
  int n = lm_interpose_count();
  if (!fn) return -1;
  for (int k = 0; k < n; k++)
    if (a >= g_inst[k].lo && a < g_inst[k].hi) return k;
  return -1;
}

const char *lm_interpose_last_error(void) {
  return __atomic_load_n(&g_err_ptr, __ATOMIC_ACQUIRE);
}

/* Register the libcurl described by w (already known to define
 * curl_easy_perform). Returns its slot or -1. Under g_lock. */
static int lm_ip_register_locked(const struct lm_ip_work *w) {
  int n = lm_interpose_count();
  for (int k = 0; k < n; k++)
    if (g_inst[k].base == w->base) return k;
  if (n == LM_MAX_CURL_INSTANCES) {
    lm_ip_fail("interpose: more than %d libcurl instances; %s not hooked",
               LM_MAX_CURL_INSTANCES, w->name);
    return -1;
  }
  lm_ip_dlopen_fn real = lm_ip_real_dlopen();
  void *h = real ? real(w->name, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE)
                 : NULL;
  if (!h) {
    lm_ip_fail("interpose: cannot pin libcurl %s", w->name);
    return -1;
  }
  struct lm_ip_instance *in = &g_inst[n];
  memset(in, 0, sizeof *in);
  in->base = w->base;
  in->lo = w->lo;
  in->hi = w->hi;
  in->handle = h;
  for (int i = 0; i < LM_CURL_VT_COUNT; i++) {
    void *p = dlvsym(h, lm_ip_names[i], "CURL_OPENSSL_4");
    if (!p) p = dlvsym(h, lm_ip_names[i], "CURL_GNUTLS_3");
    if (!p) p = dlsym(h, lm_ip_names[i]);
    if (p && ((uintptr_t)p < in->lo || (uintptr_t)p >= in->hi))
      p = NULL; /* resolved into some other object: not this libcurl's */
    lm_ip_vt_set(&in->vt, i, p);
  }
  (void)dlerror(); /* failed version lookups are expected; keep dlerror clean */
  __atomic_store_n(&g_inst_count, n + 1, __ATOMIC_RELEASE);
  return n;
}

struct lm_ip_find {
  uintptr_t base;
  struct lm_ip_work *w;
  int found;
};

static int lm_ip_find_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  struct lm_ip_find *f = arg;
  (void)size;
  if (info->dlpi_addr != f->base) return 0;
  const ElfW(Dyn) *dyn =
      lm_ip_phdr_dynamic(info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum);
  struct lm_ip_dyn d;
  if (!dyn || lm_ip_dyn_parse(info->dlpi_addr, dyn, &d) != 0) return 1;
  if (!lm_ip_defines(&d, "curl_easy_perform")) return 1;
  struct lm_ip_work *w = f->w;
  memset(w, 0, offsetof(struct lm_ip_work, name));
  w->base = info->dlpi_addr;
  w->phdr = info->dlpi_phdr;
  w->phnum = info->dlpi_phnum;
  w->is_curl = 1;
  lm_ip_phdr_span(w->base, w->phdr, w->phnum, &w->lo, &w->hi);
  snprintf(w->name, sizeof w->name, "%s", info->dlpi_name ? info->dlpi_name : "");
  f->found = 1;
  return 1;
}

/* The instance owning addr, registering the object that contains it if it
 * is a libcurl nobody registered yet. Under g_lock. */
static int lm_ip_instance_registering_locked(const void *addr) {
  int k = lm_interpose_instance_of_addr(addr);
  if (k >= 0 || !addr) return k;
  Dl_info info;
  struct link_map *lm = NULL;
  if (!dladdr1(addr, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm) return -1;
  struct lm_ip_work w;
  struct lm_ip_find f = {lm->l_addr, &w, 0};
  dl_iterate_phdr(lm_ip_find_cb, &f);
  if (!f.found || !w.name[0]) return -1;
  return lm_ip_register_locked(&w);
}

/* ---- patching --------------------------------------------------------- */

/* Protection of the mapping holding page, from /proc/self/maps; -1 if it
 * cannot be read. Reads with raw syscalls into a stack buffer. */
static int lm_ip_page_prot(uintptr_t page) {
  char buf[4096];
  size_t have = 0;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  int prot = -1;
  if (fd < 0) return -1;
  for (;;) {
    ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
    if (r <= 0) break;
    have += (size_t)r;
    buf[have] = '\0';
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
      unsigned long lo, hi;
      char perms[5];
      *nl = '\0';
      if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && page >= lo &&
          page < hi) {
        prot = (perms[0] == 'r' ? PROT_READ : 0) |
               (perms[1] == 'w' ? PROT_WRITE : 0) |
               (perms[2] == 'x' ? PROT_EXEC : 0);
        goto done;
      }
      line = nl + 1;
    }
    have = (size_t)(buf + have - line);
    memmove(buf, line, have);
    if (have == sizeof buf - 1) have = 0; /* absurd line: drop it */
  }
done:
  close(fd);
  return prot;
}

struct lm_ip_relro {
  uintptr_t lo, hi; /* page-aligned, as ld.so protects it */
};

static struct lm_ip_relro lm_ip_relro_of(uintptr_t base, const ElfW(Phdr) * ph,
                                         int n) {
  struct lm_ip_relro r = {0, 0};
  uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
  for (int i = 0; i < n; i++) {
    if (ph[i].p_type != PT_GNU_RELRO) continue;
    r.lo = (base + ph[i].p_vaddr) & ~(pg - 1);
    r.hi = (base + ph[i].p_vaddr + ph[i].p_memsz) & ~(pg - 1);
  }
  return r;
}

/* Write val into slot, briefly making a read-only page writable and
 * restoring its protection. 0 on success. */
static int lm_ip_write_slot(uintptr_t *slot, uintptr_t val,
                            const struct lm_ip_relro *relro) {
  uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t page = (uintptr_t)slot & ~(pg - 1);
  if ((uintptr_t)slot % sizeof(uintptr_t)) {
    lm_ip_fail("interpose: misaligned GOT slot %p", (void *)slot);
    return -1;
  }
  int prot = lm_ip_page_prot(page);
  if (prot < 0)
    prot = page >= relro->lo && page < relro->hi ? PROT_READ
                                                 : PROT_READ | PROT_WRITE;
  if (!(prot & PROT_WRITE) &&
      mprotect((void *)page, pg, prot | PROT_WRITE) != 0) {
    lm_ip_fail("interpose: mprotect RW of GOT page %p failed", (void *)page);
    return -1;
  }
  __atomic_store_n(slot, val, __ATOMIC_RELEASE);
  if (!(prot & PROT_WRITE) && mprotect((void *)page, pg, prot) != 0) {
    lm_ip_fail("interpose: could not restore protection of GOT page %p",
               (void *)page);
    return -1;
  }
  return 0;
}

static int lm_ip_is_ours(int idx, uintptr_t v) {
  if (idx == LM_IP_DLOPEN_INDEX) return v == (uintptr_t)&lm_ip_dlopen_self;
  if (!v) return 0;
  if (v == (uintptr_t)lm_ip_vt_get(&g_exports, idx)) return 1;
  for (int k = 0; k < LM_MAX_CURL_INSTANCES; k++)
    if (v == (uintptr_t)lm_ip_vt_get(&g_hooks[k], idx)) return 1;
  return 0;
}

/* Patch the curl_* (when hooks are known) and dlopen slots of one module.
 * h is a handle on it; its dependency scope decides each slot's target. */
static void lm_ip_patch_locked(void *h, struct lm_ip_work *w,
                               struct lm_ip_module *rec) {
  const ElfW(Dyn) *dyn = lm_ip_phdr_dynamic(w->base, w->phdr, w->phnum);
  struct lm_ip_dyn d;
  if (!dyn || lm_ip_dyn_parse(w->base, dyn, &d) != 0) return;
  struct lm_ip_relro relro = lm_ip_relro_of(w->base, w->phdr, w->phnum);
  int hooks_ready = __atomic_load_n(&g_hooks_ready, __ATOMIC_ACQUIRE);
  void *target[LM_CURL_VT_COUNT + 1];
  unsigned char resolved[LM_CURL_VT_COUNT + 1] = {0};
  const ElfW(Rela) *tabs[2] = {d.jmprel, d.rela};
  size_t ns[2] = {d.jmprel_n, d.rela_n};
  for (int t = 0; t < 2; t++) {
    for (size_t r = 0; r < ns[t]; r++) {
      const ElfW(Rela) *rel = &tabs[t][r];
      unsigned type = (unsigned)ELF64_R_TYPE(rel->r_info);
      size_t symi = ELF64_R_SYM(rel->r_info);
      if ((type != LM_IP_R_JUMP_SLOT && type != LM_IP_R_GLOB_DAT) || !symi)
        continue;
      const char *name = lm_ip_sym_name(&d, symi);
      int idx = lm_ip_name_index(name);
      if (idx < 0) continue;
      uintptr_t *slot = (uintptr_t *)(w->base + rel->r_offset);
      uintptr_t cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
      if (lm_ip_is_ours(idx, cur)) continue;
      if (idx < LM_CURL_VT_COUNT && !hooks_ready) {
        lm_ip_fail("interpose: hooks not registered yet; %s of %s unpatched",
                   name, w->name[0] ? w->name : "main program");
        continue;
      }
      if (!resolved[idx]) {
        target[idx] = dlsym(h, name);
        resolved[idx] = 1;
      }
      void *tgt = target[idx];
      uintptr_t val;
      if (!tgt) continue; /* unresolvable (weak) import: leave it */
      /* Rewrite only a slot bound straight to that target or still holding
       * its own lazy PLT stub; anything else belongs to someone else. */
      if (cur != (uintptr_t)tgt && (cur < w->lo || cur >= w->hi)) continue;
      if (idx == LM_IP_DLOPEN_INDEX) {
        /* Only redirect slots that would reach libc's dlopen. */
        if (tgt != (void *)lm_ip_real_dlopen()) continue;
        val = (uintptr_t)&lm_ip_dlopen_self;
      } else {
        if (tgt == lm_ip_vt_get(&g_exports, idx)) continue; /* binds to us */
        int k = lm_ip_instance_registering_locked(tgt);
        if (k < 0) {
          lm_ip_fail("interpose: %s of %s resolves outside any libcurl", name,
                     w->name[0] ? w->name : "main program");
          continue;
        }
        val = (uintptr_t)lm_ip_vt_get(&g_hooks[k], idx);
        if (!val) continue;
      }
      if (lm_ip_write_slot(slot, val, &relro) != 0) continue;
      if (rec && !rec->sentinel) {
        rec->sentinel = slot;
        rec->sentinel_value = val;
      }
    }
  }
  (void)dlerror();
}

/* ---- scanning --------------------------------------------------------- */

static void lm_ip_scan_state_init_locked(void) {
  if (g_scan_ready) return;
  Dl_info info;
  struct link_map *self = NULL;
  if (dladdr1((void *)&lm_interpose_init, &info, (void **)&self,
              RTLD_DL_LINKMAP) &&
      self)
    g_self_base = self->l_addr;
  g_ldso_base = (uintptr_t)getauxval(AT_BASE);
  g_vdso_lo = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
  g_scan_ready = 1;
}

static struct lm_ip_module *lm_ip_module_find(uintptr_t base) {
  for (int i = 0; i < g_nmods; i++)
    if (g_mods[i].base == base) return &g_mods[i];
  return NULL;
}

static struct lm_ip_module *lm_ip_module_add(uintptr_t base, uintptr_t fp) {
  if (g_nmods == LM_IP_MAX_MODULES) return NULL; /* stays "new": idempotent */
  struct lm_ip_module *m = &g_mods[g_nmods++];
  memset(m, 0, sizeof *m);
  m->base = base;
  m->fingerprint = fp;
  m->alive = 1;
  return m;
}

struct lm_ip_scan {
  int nwork;
  int more;         /* work did not fit: another pass needed */
  int want_dlopen;  /* patch dlopen slots too */
  unsigned long long adds, subs;
};

static int lm_ip_scan_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  struct lm_ip_scan *s = arg;
  (void)size;
  s->adds = info->dlpi_adds;
  s->subs = info->dlpi_subs;
  uintptr_t base = info->dlpi_addr, lo, hi;
  lm_ip_phdr_span(base, info->dlpi_phdr, info->dlpi_phnum, &lo, &hi);
  if (base == g_self_base || (g_ldso_base && base == g_ldso_base) ||
      (g_vdso_lo && lo == g_vdso_lo))
    return 0;
  const ElfW(Dyn) *dyn = lm_ip_phdr_dynamic(base, info->dlpi_phdr,
                                            info->dlpi_phnum);
  if (!dyn) return 0;
  uintptr_t fp = lm_ip_fingerprint(info->dlpi_name, dyn);
  struct lm_ip_module *m = lm_ip_module_find(base);
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
  struct lm_ip_dyn d;
  int is_curl = 0, imports = 0;
  if (lm_ip_dyn_parse(base, dyn, &d) == 0) {
    is_curl = lm_ip_defines(&d, "curl_easy_perform");
    imports = !is_curl && lm_ip_imports(&d, s->want_dlopen);
  }
  if (!is_curl && !imports) {
    if (!m) lm_ip_module_add(base, fp);
    return 0;
  }
  if (s->nwork == LM_IP_MAX_WORK) {
    if (m) m->fingerprint = 0; /* force a look next pass */
    s->more = 1;
    return 0;
  }
  struct lm_ip_work *w = &g_work[s->nwork++];
  w->base = base;
  w->fingerprint = fp;
  w->lo = lo;
  w->hi = hi;
  w->phdr = info->dlpi_phdr;
  w->phnum = info->dlpi_phnum;
  w->is_curl = is_curl;
  w->imports = imports;
  snprintf(w->name, sizeof w->name, "%s", info->dlpi_name ? info->dlpi_name : "");
  return 0;
}

/* libcurl calls some of its own exported functions through its PLT
 * (curl_easy_perform -> curl_multi_add_handle, curl_multi_perform, ...).
 * Where that libcurl sits in the global scope those slots bind to our
 * exports, so the hook layer would see libcurl's internal calls as if the
 * program made them. Point such slots back at the instance's own real
 * functions. Only slots holding our export or an unresolved lazy stub are
 * touched. */
static void lm_ip_unhook_self_locked(int k, const struct lm_ip_work *w) {
  const ElfW(Dyn) *dyn = lm_ip_phdr_dynamic(w->base, w->phdr, w->phnum);
  struct lm_ip_dyn d;
  if (k < 0 || !dyn || lm_ip_dyn_parse(w->base, dyn, &d) != 0) return;
  struct lm_ip_relro relro = lm_ip_relro_of(w->base, w->phdr, w->phnum);
  const ElfW(Rela) *tabs[2] = {d.jmprel, d.rela};
  size_t ns[2] = {d.jmprel_n, d.rela_n};
  for (int t = 0; t < 2; t++) {
    for (size_t r = 0; r < ns[t]; r++) {
      const ElfW(Rela) *rel = &tabs[t][r];
      unsigned type = (unsigned)ELF64_R_TYPE(rel->r_info);
      size_t symi = ELF64_R_SYM(rel->r_info);
      if ((type != LM_IP_R_JUMP_SLOT && type != LM_IP_R_GLOB_DAT) || !symi)
        continue;
      int idx = lm_ip_name_index(lm_ip_sym_name(&d, symi));
      if (idx < 0 || idx >= LM_CURL_VT_COUNT) continue;
      uintptr_t real = (uintptr_t)lm_ip_vt_get(&g_inst[k].vt, idx);
      uintptr_t *slot = (uintptr_t *)(w->base + rel->r_offset);
      uintptr_t cur = __atomic_load_n(slot, __ATOMIC_RELAXED);
      if (!real || cur == real) continue;
      if (lm_ip_is_ours(idx, cur) || (cur >= w->lo && cur < w->hi))
        (void)lm_ip_write_slot(slot, real, &relro);
    }
  }
}

static void lm_ip_process_locked(struct lm_ip_work *w) {
  struct lm_ip_module *rec = lm_ip_module_find(w->base);
  if (!rec) rec = lm_ip_module_add(w->base, w->fingerprint);
  if (w->is_curl) {
    int k = lm_ip_register_locked(w);
    if (__atomic_load_n(&g_hooks_ready, __ATOMIC_ACQUIRE))
      lm_ip_unhook_self_locked(k, w);
    return;
  }
  lm_ip_dlopen_fn real = lm_ip_real_dlopen();
  if (!real) return;
  void *h = w->name[0] ? real(w->name, RTLD_LAZY | RTLD_NOLOAD)
                       : real(NULL, RTLD_LAZY);
  struct link_map *lm = NULL;
  if (!h) {
    (void)dlerror();
    lm_ip_fail("interpose: cannot reopen %s to patch it", w->name);
    return;
  }
  if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || !lm || lm->l_addr != w->base) {
    /* Another namespace (dlmopen) or a race with dlclose: leave it. */
    lm_ip_fail("interpose: %s is not the object scanned; left unpatched",
               w->name[0] ? w->name : "main program");
  } else {
    lm_ip_patch_locked(h, w, rec);
  }
  dlclose(h);
  (void)dlerror();
}

/* Scan every object the loader knows; process the new ones. Under g_lock,
 * with t_in_dlopen set so our own dlopen calls pass straight through. */
static void lm_ip_scan_locked(void) {
  lm_ip_scan_state_init_locked();
  struct lm_ip_counters c = lm_ip_counters_now();
  if (g_scanned && c.adds == g_scan_adds && c.subs == g_scan_subs) return;
  int dropped_any = g_scanned && c.subs != g_scan_subs;
  if (dropped_any)
    for (int i = 0; i < g_nmods; i++) g_mods[i].alive = 0;
  struct lm_ip_scan s;
  for (int pass = 0; pass < LM_IP_MAX_PASSES; pass++) {
    memset(&s, 0, sizeof s);
    s.want_dlopen = 1;
    dl_iterate_phdr(lm_ip_scan_cb, &s);
    for (int i = 0; i < s.nwork; i++) lm_ip_process_locked(&g_work[i]);
    if (!s.more) break;
  }
  if (dropped_any) { /* forget objects that are gone */
    int j = 0;
    for (int i = 0; i < g_nmods; i++)
      if (g_mods[i].alive) g_mods[j++] = g_mods[i];
    g_nmods = j;
  }
  g_scan_adds = s.adds;
  g_scan_subs = s.subs;
  g_scanned = 1;
}

/* ---- public entry points ---------------------------------------------- */

void lm_interpose_init(const struct lm_curl_vt hooks[LM_MAX_CURL_INSTANCES],
                       const struct lm_curl_vt *exports) {
  if (__atomic_load_n(&g_hooks_ready, __ATOMIC_ACQUIRE)) return;
  int saved = t_in_dlopen;
  t_in_dlopen = 1;
  pthread_mutex_lock(&g_lock);
  if (!g_hooks_ready) {
    if (hooks) memcpy(g_hooks, hooks, sizeof g_hooks);
    if (exports) g_exports = *exports;
    __atomic_store_n(&g_hooks_ready, 1, __ATOMIC_RELEASE);
    /* Modules seen before the hooks were known kept their curl slots:
     * forget them so this scan looks at everything again. */
    g_nmods = 0;
    g_scanned = 0;
    lm_ip_scan_locked();
  }
  pthread_mutex_unlock(&g_lock);
  t_in_dlopen = saved;
}

int lm_interpose_instance_for_caller(const void *retaddr, const char *name) {
  Dl_info info;
  struct link_map *lm = NULL;
  int k = -1;
  if (!name) return -1;
  if (!dladdr1(retaddr, &info, (void **)&lm, RTLD_DL_LINKMAP)) lm = NULL;
  int saved = t_in_dlopen;
  /* Inside a dlopen on this thread (a module constructor calling curl),
   * the loader's lock may be held; a scanning thread holding g_lock may be
   * waiting for it. Do not wait in turn: answer without the cache. */
  if (saved && pthread_mutex_trylock(&g_lock) != 0)
    return lm_interpose_count() == 1 ? 0 : -1;
  t_in_dlopen = 1;
  if (!saved) pthread_mutex_lock(&g_lock);
  lm_ip_scan_locked(); /* no-op unless the loader's counters moved */
  unsigned long long adds = g_scan_adds;
  for (int i = 0; lm && i < g_ncallers; i++) {
    struct lm_ip_caller *c = &g_callers[i];
    if (c->map == (uintptr_t)lm && c->base == lm->l_addr &&
        (c->k >= 0 || c->adds == adds)) {
      k = c->k;
      goto out;
    }
  }
  if (lm && lm->l_addr != g_self_base) {
    lm_ip_dlopen_fn real = lm_ip_real_dlopen();
    void *h = !real              ? NULL
              : lm->l_name[0]    ? real(lm->l_name, RTLD_LAZY | RTLD_NOLOAD)
                                 : real(NULL, RTLD_LAZY);
    if (h) {
      void *p = dlsym(h, name);
      int idx = lm_ip_name_index(name);
      if (p && !(idx >= 0 && idx < LM_CURL_VT_COUNT &&
                 p == lm_ip_vt_get(&g_exports, idx)))
        k = lm_ip_instance_registering_locked(p);
      dlclose(h);
    }
  }
  if (k < 0) k = lm_ip_instance_registering_locked(dlsym(RTLD_NEXT, name));
  if (k < 0 && lm_interpose_count() == 1) k = 0;
  (void)dlerror();
  if (lm) {
    struct lm_ip_caller *c = NULL;
    for (int i = 0; i < g_ncallers && !c; i++)
      if (g_callers[i].map == (uintptr_t)lm) c = &g_callers[i];
    if (!c && g_ncallers < LM_IP_MAX_CALLERS) c = &g_callers[g_ncallers++];
    if (!c) c = &g_callers[(uintptr_t)lm / 64 % LM_IP_MAX_CALLERS];
    c->map = (uintptr_t)lm;
    c->base = lm->l_addr;
    c->adds = adds;
    c->k = k;
  }
out:
  pthread_mutex_unlock(&g_lock);
  t_in_dlopen = saved;
  return k;
}

/* ---- the dlopen wrapper ----------------------------------------------- */

struct lm_ip_newest {
  unsigned long long skip; /* objects before the newly added ones */
  unsigned long long seen;
  int imports_curl;
};

static int lm_ip_count_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)info;
  (void)size;
  ((struct lm_ip_newest *)arg)->seen++;
  return 0;
}

static int lm_ip_newest_cb(struct dl_phdr_info *info, size_t size, void *arg) {
  struct lm_ip_newest *n = arg;
  (void)size;
  if (n->seen++ < n->skip) return 0;
  const ElfW(Dyn) *dyn = lm_ip_phdr_dynamic(info->dlpi_addr, info->dlpi_phdr,
                                            info->dlpi_phnum);
  struct lm_ip_dyn d;
  if (dyn && lm_ip_dyn_parse(info->dlpi_addr, dyn, &d) == 0 &&
      !lm_ip_defines(&d, "curl_easy_perform") && lm_ip_imports(&d, 0)) {
    n->imports_curl = 1;
    return 1;
  }
  return 0;
}

/* Did the last `added` objects of the link chain bring curl imports? New
 * objects are appended, so they are the tail of dl_iterate_phdr's order. */
static int lm_ip_new_objects_import_curl(unsigned long long added) {
  struct lm_ip_newest n = {0, 0, 0};
  dl_iterate_phdr(lm_ip_count_cb, &n);
  n.skip = n.seen > added ? n.seen - added : 0;
  n.seen = 0;
  dl_iterate_phdr(lm_ip_newest_cb, &n);
  return n.imports_curl;
}

static void lm_ip_after_dlopen(struct lm_ip_counters before, int mode) {
  struct lm_ip_counters now = lm_ip_counters_now();
  if (now.adds == before.adds) return; /* nothing new was mapped */
  if (!__atomic_load_n(&g_hooks_ready, __ATOMIC_ACQUIRE)) {
    int curl = lm_ip_new_objects_import_curl(now.adds - before.adds);
    if (!curl && !(mode & RTLD_DEEPBIND)) return;
    if (curl && lm_hook_ensure_init) {
      lm_hook_ensure_init(); /* calls lm_interpose_init: a full scan */
      if (__atomic_load_n(&g_hooks_ready, __ATOMIC_ACQUIRE)) return;
    }
  }
  pthread_mutex_lock(&g_lock);
  lm_ip_scan_locked();
  pthread_mutex_unlock(&g_lock);
}

static int lm_ip_has_search_path(const struct link_map *lm) {
  for (const ElfW(Dyn) *d = lm->l_ld; d && d->d_tag != DT_NULL; d++)
    if (d->d_tag == DT_RPATH || d->d_tag == DT_RUNPATH) return 1;
  return 0;
}

/* glibc resolves a bare file name with the DT_RPATH/DT_RUNPATH of the
 * object that called dlopen, and through this wrapper that caller is us.
 * When the real caller has its own search path, search it the way the
 * loader would (dlinfo RTLD_DI_SERINFO on the caller) and open the first
 * match by path; an object already loaded under that name wins, as in
 * glibc. */
static void *lm_ip_dlopen_as(lm_ip_dlopen_fn real, const char *file,
                             int mode, const void *caller) {
  Dl_info info;
  struct link_map *lm = NULL;
  if (!file || !file[0] || strchr(file, '/') ||
      !dladdr1(caller, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm ||
      !lm_ip_has_search_path(lm))
    return real(file, mode);
  void *h = real(file, RTLD_LAZY | RTLD_NOLOAD);
  if (h) {
    dlclose(h);
    return real(file, mode);
  }
  void *ch = lm->l_name[0] ? real(lm->l_name, RTLD_LAZY | RTLD_NOLOAD)
                           : real(NULL, RTLD_LAZY);
  union {
    Dl_serinfo si;
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
  if (ch) dlclose(ch);
  return h ? h : real(file, mode);
}

void *dlopen(const char *file, int mode) {
  lm_ip_dlopen_fn real = lm_ip_real_dlopen();
  if (!real) return NULL;
  if (t_in_dlopen) return real(file, mode);
  t_in_dlopen = 1;
  struct lm_ip_counters before = lm_ip_counters_now();
  void *h = lm_ip_dlopen_as(real, file, mode, __builtin_return_address(0));
  if (h) {
    lm_ip_after_dlopen(before, mode);
    (void)dlerror(); /* a successful dlopen leaves no error behind */
  }
  t_in_dlopen = 0;
  return h;
}
