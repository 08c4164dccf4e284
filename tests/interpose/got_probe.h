/* got_probe.h — test-side look at a loaded module's GOT slots.
 *
 * Independent of src/interpose.c on purpose: the fixtures check what the
 * interposer did with their own reading of the ELF structures. Given a
 * loaded object, finds the JUMP_SLOT/GLOB_DAT slot of a symbol, says
 * whether the slot lies in the object's PT_GNU_RELRO range and what
 * protection /proc/self/maps shows for its page. Header-only, static.
 */
#ifndef LM_GOT_PROBE_H
#define LM_GOT_PROBE_H

#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct got_probe_obj {
  uintptr_t base;
  const ElfW(Phdr) *phdr;
  int phnum;
};

static inline const void *got_probe_ptr(uintptr_t base, ElfW(Addr) v) {
  return (const void *)(v < base ? base + v : v);
}

/* Calls fn(slot, name, arg) for every JUMP_SLOT/GLOB_DAT slot whose symbol
 * name starts with prefix. */
static inline void got_probe_each(const struct got_probe_obj *o,
                                  const char *prefix,
                                  void (*fn)(uintptr_t *, const char *, void *),
                                  void *arg) {
  const ElfW(Dyn) *dyn = NULL;
  for (int i = 0; i < o->phnum; i++)
    if (o->phdr[i].p_type == PT_DYNAMIC)
      dyn = (const ElfW(Dyn) *)(o->base + o->phdr[i].p_vaddr);
  if (!dyn)
    return;
  const ElfW(Sym) *symtab = NULL;
  const char *strtab = NULL;
  const ElfW(Rela) *tabs[2] = {NULL, NULL};
  size_t sizes[2] = {0, 0};
  for (; dyn->d_tag != DT_NULL; dyn++) {
    switch (dyn->d_tag) {
    case DT_SYMTAB:
      symtab = got_probe_ptr(o->base, dyn->d_un.d_ptr);
      break;
    case DT_STRTAB:
      strtab = got_probe_ptr(o->base, dyn->d_un.d_ptr);
      break;
    case DT_JMPREL:
      tabs[0] = got_probe_ptr(o->base, dyn->d_un.d_ptr);
      break;
    case DT_PLTRELSZ:
      sizes[0] = dyn->d_un.d_val;
      break;
    case DT_RELA:
      tabs[1] = got_probe_ptr(o->base, dyn->d_un.d_ptr);
      break;
    case DT_RELASZ:
      sizes[1] = dyn->d_un.d_val;
      break;
    default:
      break;
    }
  }
  if (!symtab || !strtab)
    return;
  for (int t = 0; t < 2; t++) {
    if (!tabs[t])
      continue;
    for (size_t r = 0; r < sizes[t] / sizeof(ElfW(Rela)); r++) {
      unsigned type = (unsigned)ELF64_R_TYPE(tabs[t][r].r_info);
      size_t symi = ELF64_R_SYM(tabs[t][r].r_info);
      if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT) || !symi)
        continue;
      const char *name = strtab + symtab[symi].st_name;
      if (strncmp(name, prefix, strlen(prefix)) == 0)
        fn((uintptr_t *)(o->base + tabs[t][r].r_offset), name, arg);
    }
  }
}

static inline int got_probe_in_relro(const struct got_probe_obj *o,
                                     uintptr_t a) {
  uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
  for (int i = 0; i < o->phnum; i++) {
    if (o->phdr[i].p_type != PT_GNU_RELRO)
      continue;
    uintptr_t lo = (o->base + o->phdr[i].p_vaddr) & ~(pg - 1);
    uintptr_t hi = (o->base + o->phdr[i].p_vaddr + o->phdr[i].p_memsz) &
                   ~(pg - 1);
    if (a >= lo && a < hi)
      return 1;
  }
  return 0;
}

/* perms of the mapping holding a, e.g. "r--p"; "????" if not found. */
static inline void got_probe_perms(uintptr_t a, char perms[5]) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  memcpy(perms, "????", 5);
  if (!f)
    return;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    char p[5];
    if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && a >= lo && a < hi) {
      memcpy(perms, p, 5);
      break;
    }
  }
  fclose(f);
}

struct got_probe_find {
  uintptr_t base;
  struct got_probe_obj *o;
  int found;
};

static inline int got_probe_find_cb(struct dl_phdr_info *info, size_t size,
                                    void *arg) {
  struct got_probe_find *f = arg;
  (void)size;
  if (info->dlpi_addr != f->base)
    return 0;
  f->o->base = info->dlpi_addr;
  f->o->phdr = info->dlpi_phdr;
  f->o->phnum = info->dlpi_phnum;
  f->found = 1;
  return 1;
}

/* Fill o for the loaded object whose load bias is base. 0 on success. */
static inline int got_probe_obj_at(uintptr_t base, struct got_probe_obj *o) {
  struct got_probe_find f = {base, o, 0};
  dl_iterate_phdr(got_probe_find_cb, &f);
  return f.found ? 0 : -1;
}

#endif
