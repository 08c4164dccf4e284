/* elf_got.c — a loaded object's dynamic section and GOT (see elf_got.h).
 *
 * Everything here reads structures ld.so has already mapped and relocated;
 * no file is read but /proc/self/maps. A slot on a read-only page (full
 * RELRO, as pycurl, WWW::Curl and PHP's curl.so are built on Debian) is
 * written as interposition.md recommends: mprotect the page RW, one
 * aligned word store, mprotect it back at once, never leaving it writable
 * as GOTCHA does.
 *
 * The protection to restore comes from /proc/self/maps. It is read once
 * for a batch of writes into one object and kept for that object's
 * mappings, since every patched slot of libcurl or a module sits on the
 * same few pages: re-reading the file per slot cost ~160 sscanf calls a
 * slot (~1,400 for one libcurl). The kept protections stay true for the
 * batch: the caller holds the object loaded, ld.so protects an object's
 * RELRO only while it loads it, and our own writes give each page its
 * protection back; if that fails, the kept ones are dropped and each page
 * is looked up alone again, as is any page they do not cover.
 */
#include "elf_got.h"

#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#define RELOC_JUMP_SLOT R_X86_64_JUMP_SLOT
#define RELOC_GLOB_DAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define RELOC_JUMP_SLOT R_AARCH64_JUMP_SLOT
#define RELOC_GLOB_DAT R_AARCH64_GLOB_DAT
#else
#error "elf_got.c: relocation types known for x86_64 and aarch64 only"
#endif

/* ---- the dynamic section ---------------------------------------------- */

/* Dynamic-section pointers are relocated in place by ld.so for most
 * objects, but not for read-only dynamic sections (the vdso). */
static const void *dyn_ptr(uintptr_t base, ElfW(Addr) v) {
  return (const void *)(v < base ? base + v : v);
}

const ElfW(Dyn) *lm_elf_dynamic(uintptr_t base, const ElfW(Phdr) *ph, int n) {
  for (int i = 0; i < n; i++)
    if (ph[i].p_type == PT_DYNAMIC)
      return (const ElfW(Dyn) *)(base + ph[i].p_vaddr);
  return NULL;
}

void lm_elf_span(uintptr_t base, const ElfW(Phdr) *ph, int n, uintptr_t *lo,
                 uintptr_t *hi) {
  uintptr_t l = UINTPTR_MAX, h = 0;
  for (int i = 0; i < n; i++) {
    if (ph[i].p_type != PT_LOAD)
      continue;
    if (ph[i].p_vaddr < l)
      l = ph[i].p_vaddr;
    if (ph[i].p_vaddr + ph[i].p_memsz > h)
      h = ph[i].p_vaddr + ph[i].p_memsz;
  }
  *lo = l == UINTPTR_MAX ? 0 : base + l;
  *hi = base + h;
}

int lm_elf_dyn_parse(uintptr_t base, const ElfW(Dyn) *dyn,
                     struct lm_elf_dyn *d) {
  size_t jmprel_sz = 0, rela_sz = 0, relaent = sizeof(ElfW(Rela));
  long pltrel = DT_RELA;
  memset(d, 0, sizeof *d);
  d->base = base;
  for (; dyn->d_tag != DT_NULL; dyn++) {
    switch (dyn->d_tag) {
    case DT_SYMTAB:
      d->symtab = dyn_ptr(base, dyn->d_un.d_ptr);
      break;
    case DT_STRTAB:
      d->strtab = dyn_ptr(base, dyn->d_un.d_ptr);
      break;
    case DT_STRSZ:
      d->strsz = dyn->d_un.d_val;
      break;
    case DT_JMPREL:
      d->jmprel = dyn_ptr(base, dyn->d_un.d_ptr);
      break;
    case DT_PLTRELSZ:
      jmprel_sz = dyn->d_un.d_val;
      break;
    case DT_PLTREL:
      pltrel = (long)dyn->d_un.d_val;
      break;
    case DT_RELA:
      d->rela = dyn_ptr(base, dyn->d_un.d_ptr);
      break;
    case DT_RELASZ:
      rela_sz = dyn->d_un.d_val;
      break;
    case DT_RELAENT:
      relaent = dyn->d_un.d_val;
      break;
    case DT_GNU_HASH:
      d->gnu_hash = dyn_ptr(base, dyn->d_un.d_ptr);
      break;
    case DT_HASH:
      d->sysv_hash = dyn_ptr(base, dyn->d_un.d_ptr);
      break;
    default:
      break;
    }
  }
  if (!d->symtab || !d->strtab || relaent != sizeof(ElfW(Rela)))
    return -1;
  if (pltrel != DT_RELA)
    d->jmprel = NULL; /* REL-style PLT: not on our ABIs */
  d->jmprel_n = d->jmprel ? jmprel_sz / sizeof(ElfW(Rela)) : 0;
  d->rela_n = d->rela ? rela_sz / sizeof(ElfW(Rela)) : 0;
  return 0;
}

int lm_elf_dyn_of(uintptr_t base, const ElfW(Phdr) *ph, int n,
                  struct lm_elf_dyn *d) {
  const ElfW(Dyn) *dyn = lm_elf_dynamic(base, ph, n);
  return dyn ? lm_elf_dyn_parse(base, dyn, d) : -1;
}

static const char *sym_name(const struct lm_elf_dyn *d, size_t symi) {
  ElfW(Word) off = d->symtab[symi].st_name;
  if (d->strsz && off >= d->strsz)
    return "";
  return d->strtab + off;
}

/* ---- symbol lookup ---------------------------------------------------- */

static uint32_t gnu_hash_of(const char *s) {
  uint32_t h = 5381;
  for (; *s; s++)
    h = h * 33 + (unsigned char)*s;
  return h;
}

static unsigned long sysv_hash_of(const char *s) {
  unsigned long h = 0, g;
  for (; *s; s++) {
    h = (h << 4) + (unsigned char)*s;
    g = h & 0xf0000000UL;
    if (g)
      h ^= g >> 24;
    h &= ~g;
  }
  return h;
}

/* A symbol found by name counts only if this object gives it a value: an
 * undefined entry is an import of the same name. */
static int is_definition(const struct lm_elf_dyn *d, uint32_t i) {
  return d->symtab[i].st_shndx != SHN_UNDEF && d->symtab[i].st_value;
}

static int gnu_defines(const struct lm_elf_dyn *d, const char *name) {
  const uint32_t *ht = d->gnu_hash;
  uint32_t nbuckets = ht[0], symoffset = ht[1], bloom_size = ht[2];
  const ElfW(Addr) *bloom = (const ElfW(Addr) *)(const void *)&ht[4];
  const uint32_t *buckets = (const uint32_t *)(const void *)&bloom[bloom_size];
  const uint32_t *chain = &buckets[nbuckets];
  uint32_t h = gnu_hash_of(name);
  if (nbuckets == 0)
    return 0;
  for (uint32_t i = buckets[h % nbuckets]; i >= symoffset && i != 0; i++) {
    uint32_t h2 = chain[i - symoffset];
    if ((h | 1) == (h2 | 1) && strcmp(name, sym_name(d, i)) == 0)
      return is_definition(d, i);
    if (h2 & 1)
      break;
  }
  return 0;
}

static int sysv_defines(const struct lm_elf_dyn *d, const char *name) {
  const uint32_t *ht = d->sysv_hash;
  uint32_t nbucket = ht[0];
  const uint32_t *bucket = &ht[2], *chain = &bucket[nbucket];
  if (nbucket == 0)
    return 0;
  for (uint32_t i = bucket[sysv_hash_of(name) % nbucket]; i != STN_UNDEF;
       i = chain[i])
    if (strcmp(name, sym_name(d, i)) == 0)
      return is_definition(d, i);
  return 0;
}

/* The GNU table wins where both exist, as in ld.so. */
int lm_elf_defines(const struct lm_elf_dyn *d, const char *name) {
  if (d->gnu_hash)
    return gnu_defines(d, name);
  if (d->sysv_hash)
    return sysv_defines(d, name);
  return 0;
}

/* ---- the slots -------------------------------------------------------- */

void lm_elf_slots_begin(struct lm_elf_slots *it, const struct lm_elf_dyn *d) {
  it->d = d;
  it->table = 0;
  it->next = 0;
}

int lm_elf_slots_next(struct lm_elf_slots *it, const char **name,
                      uintptr_t **slot) {
  const struct lm_elf_dyn *d = it->d;
  for (; it->table < 2; it->table++, it->next = 0) {
    const ElfW(Rela) *tab = it->table == 0 ? d->jmprel : d->rela;
    size_t n = it->table == 0 ? d->jmprel_n : d->rela_n;
    /* Most relocations are of other types (RELATIVE above all): skip them
     * in locals, touching the walk's state only for a slot. */
    for (size_t r = it->next; r < n; r++) {
      unsigned type = (unsigned)ELF64_R_TYPE(tab[r].r_info);
      if (type != RELOC_JUMP_SLOT && type != RELOC_GLOB_DAT)
        continue;
      size_t symi = ELF64_R_SYM(tab[r].r_info);
      if (!symi)
        continue;
      it->next = r + 1;
      *name = sym_name(d, symi);
      *slot = (uintptr_t *)(d->base + tab[r].r_offset);
      return 1;
    }
  }
  return 0;
}

int lm_elf_imports(const struct lm_elf_dyn *d,
                   int (*wanted)(const char *name, void *arg), void *arg) {
  struct lm_elf_slots it;
  const char *name;
  uintptr_t *slot;
  lm_elf_slots_begin(&it, d);
  while (lm_elf_slots_next(&it, &name, &slot))
    if (wanted(name, arg))
      return 1;
  return 0;
}

/* ---- page protections and writing ------------------------------------- */

/* The mappings of /proc/self/maps that overlap [lo, hi), in address order,
 * at most max of them: how many were kept, or -1 if the file cannot be
 * opened. The file lists mappings in address order, so reading stops at
 * the first one past hi. Reads with raw syscalls into a stack buffer. */
static int maps_read(uintptr_t lo, uintptr_t hi, struct lm_elf_map *out,
                     int max) {
  char buf[4096];
  size_t have = 0;
  int n = 0;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  for (;;) {
    ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
    if (r <= 0)
      break;
    have += (size_t)r;
    buf[have] = '\0';
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
      unsigned long l, h;
      char perms[5];
      *nl = '\0';
      if (sscanf(line, "%lx-%lx %4s", &l, &h, perms) == 3) {
        if (l >= hi)
          goto done;
        if (h > lo) {
          out[n].lo = l;
          out[n].hi = h;
          out[n].prot = (perms[0] == 'r' ? PROT_READ : 0) |
                        (perms[1] == 'w' ? PROT_WRITE : 0) |
                        (perms[2] == 'x' ? PROT_EXEC : 0);
          if (++n == max)
            goto done;
        }
      }
      line = nl + 1;
    }
    have = (size_t)(buf + have - line);
    memmove(buf, line, have);
    if (have == sizeof buf - 1)
      have = 0; /* absurd line: drop it */
  }
done:
  close(fd);
  return n;
}

/* Protection of the mapping holding page, -1 if /proc/self/maps cannot
 * tell. The object's mappings are read at the first call of a batch; a page
 * they do not cover (a failed read, more mappings than we keep) is looked
 * up alone. */
static int page_prot(struct lm_elf_got *g, uintptr_t page) {
  if (g->nmaps < 0) {
    int n = maps_read(g->lo, g->hi, g->maps, LM_ELF_MAX_MAPS);
    g->nmaps = n < 0 ? 0 : n;
  }
  for (int i = 0; i < g->nmaps; i++)
    if (page >= g->maps[i].lo && page < g->maps[i].hi)
      return g->maps[i].prot;
  struct lm_elf_map one;
  return maps_read(page, page + 1, &one, 1) == 1 ? one.prot : -1;
}

void lm_elf_got_init(struct lm_elf_got *g, uintptr_t base, const ElfW(Phdr) *ph,
                     int n) {
  uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
  g->pagesize = pg;
  lm_elf_span(base, ph, n, &g->lo, &g->hi);
  g->relro_lo = g->relro_hi = 0;
  for (int i = 0; i < n; i++) {
    if (ph[i].p_type != PT_GNU_RELRO)
      continue;
    g->relro_lo = (base + ph[i].p_vaddr) & ~(pg - 1);
    g->relro_hi = (base + ph[i].p_vaddr + ph[i].p_memsz) & ~(pg - 1);
  }
  g->nmaps = -1;
}

int lm_elf_got_write(struct lm_elf_got *g, uintptr_t *slot, uintptr_t val,
                     char *err, size_t errlen) {
  uintptr_t pg = g->pagesize;
  uintptr_t page = (uintptr_t)slot & ~(pg - 1);
  if ((uintptr_t)slot % sizeof(uintptr_t)) {
    snprintf(err, errlen, "misaligned GOT slot %p", (void *)slot);
    return -1;
  }
  /* Without /proc/self/maps, RELRO pages are the read-only ones. */
  int prot = page_prot(g, page);
  if (prot < 0)
    prot = page >= g->relro_lo && page < g->relro_hi ? PROT_READ
                                                     : PROT_READ | PROT_WRITE;
  if (!(prot & PROT_WRITE) &&
      mprotect((void *)page, pg, prot | PROT_WRITE) != 0) {
    snprintf(err, errlen, "mprotect RW of GOT page %p failed", (void *)page);
    return -1;
  }
  __atomic_store_n(slot, val, __ATOMIC_RELEASE);
  if (!(prot & PROT_WRITE) && mprotect((void *)page, pg, prot) != 0) {
    g->nmaps = 0; /* the page kept RW: what we read is no longer true */
    snprintf(err, errlen, "could not restore protection of GOT page %p",
             (void *)page);
    return -1;
  }
  return 0;
}
