/* elf_got.h — reading a loaded object's dynamic section and writing its
 * GOT slots.
 *
 * Owns: the parts of a dynamic section the interposer reads (symbols,
 * strings, hash tables, PLT and RELA relocations), whether an object
 * defines a symbol (GNU or SysV hash lookup), the one walk over its
 * JUMP_SLOT/GLOB_DAT slots, and writing a slot: a read-only (RELRO) page is
 * made writable for the store and given its protection back at once, with
 * the protections read from /proc/self/maps once per object, not per slot.
 *
 * Never: decides which slots to rewrite or with what (interpose.c does),
 * calls the dynamic loader (no dlopen, dlsym or dl_iterate_phdr: the caller
 * hands in the object), allocates, prints, or leaves a page with another
 * protection than the one it found. A failed write says why in the
 * caller's buffer.
 */
#ifndef LM_ELF_GOT_H
#define LM_ELF_GOT_H

#include <link.h>
#include <stddef.h>
#include <stdint.h>

/* The parts of a dynamic section we read. Pointers are into the loaded
 * object; base is its load bias (link_map l_addr). */
struct lm_elf_dyn {
  uintptr_t base;
  const ElfW(Sym) *symtab;
  const char *strtab;
  size_t strsz;
  const ElfW(Rela) *jmprel; /* PLT relocations (JUMP_SLOT) */
  size_t jmprel_n;
  const ElfW(Rela) *rela; /* the others (GLOB_DAT among them) */
  size_t rela_n;
  const uint32_t *gnu_hash;
  const uint32_t *sysv_hash;
};

/* The object's PT_DYNAMIC, or NULL if it has none. */
const ElfW(Dyn) *lm_elf_dynamic(uintptr_t base, const ElfW(Phdr) *ph, int n);

/* [*lo, *hi): the span of the object's PT_LOAD segments (lo is 0 when it
 * has none). */
void lm_elf_span(uintptr_t base, const ElfW(Phdr) *ph, int n, uintptr_t *lo,
                 uintptr_t *hi);

/* Fills d from the dynamic section dyn. 0, or -1 when the section lacks a
 * symbol or string table or has relocations of an unexpected size. */
int lm_elf_dyn_parse(uintptr_t base, const ElfW(Dyn) *dyn,
                     struct lm_elf_dyn *d);

/* lm_elf_dynamic and lm_elf_dyn_parse in one: 0, or -1 as above (and when
 * there is no PT_DYNAMIC). */
int lm_elf_dyn_of(uintptr_t base, const ElfW(Phdr) *ph, int n,
                  struct lm_elf_dyn *d);

/* Does the object itself define name (not merely import it)? */
int lm_elf_defines(const struct lm_elf_dyn *d, const char *name);

/* Does the object have a JUMP_SLOT/GLOB_DAT slot whose symbol name wanted()
 * accepts? Stops at the first. */
int lm_elf_imports(const struct lm_elf_dyn *d,
                   int (*wanted)(const char *name, void *arg), void *arg);

/* A walk over an object's JUMP_SLOT and GLOB_DAT slots that name a symbol:
 * the PLT relocations first, then the others, each in table order. The
 * members are the walk's own. */
struct lm_elf_slots {
  const struct lm_elf_dyn *d;
  int table; /* 0 jmprel, 1 rela, 2 done */
  size_t next;
};

void lm_elf_slots_begin(struct lm_elf_slots *it, const struct lm_elf_dyn *d);

/* The next slot: 1 with *name (its symbol) and *slot (its address) set, or
 * 0 at the end. */
int lm_elf_slots_next(struct lm_elf_slots *it, const char **name,
                      uintptr_t **slot);

#define LM_ELF_MAX_MAPS 16

/* One object's GOT as a writer sees it: its RELRO range and, once the
 * first write needs them, the protections of its mappings. Lives for one
 * batch of writes to one object, while the caller keeps the object loaded;
 * the members are the writer's own. */
struct lm_elf_got {
  uintptr_t pagesize;
  uintptr_t lo, hi;             /* the object's span */
  uintptr_t relro_lo, relro_hi; /* page-aligned, as ld.so protects it */
  int nmaps;                    /* -1: not read yet */
  struct lm_elf_map {
    uintptr_t lo, hi;
    int prot;
  } maps[LM_ELF_MAX_MAPS];
};

/* Prepares g for writes into the object; reads nothing yet. */
void lm_elf_got_init(struct lm_elf_got *g, uintptr_t base, const ElfW(Phdr) *ph,
                     int n);

/* Stores val into slot (an aligned word of the object), with a release
 * store. 0, or -1 with the reason in err (slot misaligned, or a page whose
 * protection could not be raised or restored). */
int lm_elf_got_write(struct lm_elf_got *g, uintptr_t *slot, uintptr_t val,
                     char *err, size_t errlen);

#endif
