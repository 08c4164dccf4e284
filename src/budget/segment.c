/* segment.c — create, attach, validate and remove budget segments.
 *
 * Owns every shm_open/mmap of a budget. A segment is created with
 * O_EXCL and mode 0600, sized, initialised and only then stamped with its
 * magic (release store), so an attacher never sees a half-built segment as
 * valid. Attaching refuses anything whose owner, permissions, size, magic,
 * version or layout size is not exactly ours. Never prints: errors are
 * returned as codes with a one-line text in the caller's buffer.
 */
#include "segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void seg_err(char *err, size_t len, const char *fmt, const char *name,
                    const char *detail) {
  if (err && len)
    snprintf(err, len, fmt, name, detail ? detail : "");
}

void lm_segment_default_name(char *out, size_t size) {
  snprintf(out, size, "llmmeter-%u", (unsigned)getuid());
}

int lm_segment_name_valid(const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0 || n >= LM_BUDGET_NAME_MAX || name[0] == '.')
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

static size_t seg_size(void) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  return (sizeof(struct lm_segment) + page - 1) / page * page;
}

static void init_counters(struct lm_counters *c, int64_t window) {
  memset(c, 0, sizeof(*c));
  atomic_store(&c->window, window);
}

static int init_lock(struct lm_segment *s) {
  pthread_mutexattr_t a;
  if (pthread_mutexattr_init(&a))
    return -1;
  int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) ||
           pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) ||
           pthread_mutex_init(&s->lock, &a);
  pthread_mutexattr_destroy(&a);
  return rc ? -1 : 0;
}

static void init_segment(struct lm_segment *s, const char *name, size_t size) {
  /* ftruncate gave us zeroed memory; set what is not zero. */
  s->version = LM_SEG_VERSION;
  s->header_size = (uint32_t)sizeof(struct lm_segment);
  s->total_size = size;
  s->owner_uid = (uint32_t)getuid();
  s->row_count = LM_ROWS;
  s->rule_count = LM_RULES;
  s->lease_count = LM_LEASES;
  s->created_at = (int64_t)time(NULL);
  snprintf(s->name, sizeof(s->name), "%s", name);
  atomic_store(&s->limits.hard_pusd, -1);
  atomic_store(&s->limits.soft_pusd, -1);
  atomic_store(&s->limits.tokens, -1);
  atomic_store(&s->limits.requests, -1);
  atomic_store(&s->limits.max_call_pusd, -1);
  atomic_store(&s->limits.max_call_input_tokens, -1);
  atomic_store(&s->limits.max_call_output_tokens, -1);
  atomic_store(&s->limits.rpm, -1);
  atomic_store(&s->limits.tpm, -1);
  atomic_store(&s->limits.itpm, -1);
  atomic_store(&s->limits.otpm, -1);
  atomic_store(&s->limits.deadline, -1);
  atomic_store(&s->limits.max_llm_ns, -1);
  init_counters(&s->total, 0);
  /* The overflow rows exist from the start: a full table never drops. */
  snprintf(s->models[LM_ROW_OTHER].name, LM_NAME_MAX, "(other)");
  snprintf(s->agents[LM_ROW_OTHER].name, LM_NAME_MAX, "(other)");
  atomic_store(&s->models[LM_ROW_OTHER].state, LM_ROW_READY);
  atomic_store(&s->agents[LM_ROW_OTHER].state, LM_ROW_READY);
}

static int map_fd(int fd, size_t size, struct lm_segment_map *m) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return -1;
  m->seg = p;
  m->size = size;
  return 0;
}

int lm_segment_create(const char *name, int force, struct lm_segment_map *m,
                      char *err, size_t errlen) {
  memset(m, 0, sizeof(*m));
  if (!lm_segment_name_valid(name)) {
    seg_err(err, errlen, "invalid budget name '%s'%s", name ? name : "", NULL);
    return LM_SEG_ENAME;
  }
  snprintf(m->name, sizeof(m->name), "/%s", name);
  if (force) {
    /* Replace only a segment we own; someone else's stays put. */
    int ofd = shm_open(m->name, O_RDONLY, 0);
    if (ofd >= 0) {
      struct stat st;
      int ours = fstat(ofd, &st) == 0 && st.st_uid == getuid();
      close(ofd);
      if (!ours) {
        seg_err(
            err, errlen,
            "budget '%s' is owned by another user; refusing to replace it%s",
            name, NULL);
        return LM_SEG_EOWNER;
      }
      shm_unlink(m->name);
    }
  }
  int fd = shm_open(m->name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      seg_err(err, errlen,
              "budget '%s' already exists (use --force to replace it)%s", name,
              NULL);
      return LM_SEG_EEXIST;
    }
    seg_err(err, errlen, "cannot create budget '%s': %s", name,
            strerror(errno));
    return LM_SEG_ESYS;
  }
  size_t size = seg_size();
  if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)size) != 0 ||
      map_fd(fd, size, m) != 0) {
    int e = errno;
    close(fd);
    shm_unlink(m->name);
    seg_err(err, errlen, "cannot create budget '%s': %s", name, strerror(e));
    return LM_SEG_ESYS;
  }
  close(fd);
  init_segment(m->seg, name, size);
  if (init_lock(m->seg) != 0) {
    lm_segment_detach(m);
    shm_unlink(m->name);
    seg_err(err, errlen, "cannot create budget '%s': mutex init failed%s", name,
            NULL);
    return LM_SEG_ESYS;
  }
  atomic_store_explicit(&m->seg->magic, LM_SEG_MAGIC, memory_order_release);
  return LM_SEG_OK;
}

/* Waits (briefly, for a concurrent creator) until the magic is stamped. */
static uint64_t wait_magic(struct lm_segment *s) {
  for (int i = 0; i < 200; i++) {
    uint64_t v = atomic_load_explicit(&s->magic, memory_order_acquire);
    if (v != 0)
      return v;
    struct timespec ts = {0, 1000000}; /* 1 ms: creation takes microseconds */
    nanosleep(&ts, NULL);
  }
  return 0;
}

int lm_segment_attach(const char *name, struct lm_segment_map *m, char *err,
                      size_t errlen) {
  memset(m, 0, sizeof(*m));
  if (!lm_segment_name_valid(name)) {
    seg_err(err, errlen, "invalid budget name '%s'%s", name ? name : "", NULL);
    return LM_SEG_ENAME;
  }
  snprintf(m->name, sizeof(m->name), "/%s", name);
  int fd = shm_open(m->name, O_RDWR, 0);
  if (fd < 0) {
    if (errno == ENOENT) {
      seg_err(err, errlen, "budget '%s' does not exist%s", name, NULL);
      return LM_SEG_ENOENT;
    }
    if (errno == EACCES) {
      seg_err(err, errlen,
              "budget '%s' is not accessible (owned by another user?)%s", name,
              NULL);
      return LM_SEG_EOWNER;
    }
    seg_err(err, errlen, "cannot open budget '%s': %s", name, strerror(errno));
    return LM_SEG_ESYS;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    seg_err(err, errlen, "cannot stat budget '%s': %s", name, strerror(errno));
    return LM_SEG_ESYS;
  }
  if (st.st_uid != getuid() || (st.st_mode & 077) != 0) {
    close(fd);
    seg_err(err, errlen,
            "budget '%s' is owned by another user or accessible to others; "
            "refusing to use it%s",
            name, NULL);
    return LM_SEG_EOWNER;
  }
  size_t size = seg_size();
  if ((size_t)st.st_size != size) {
    close(fd);
    seg_err(err, errlen,
            "budget '%s' has an unexpected size (another llmmeter version or "
            "corrupt)%s",
            name, NULL);
    return LM_SEG_EFORMAT;
  }
  if (map_fd(fd, size, m) != 0) {
    close(fd);
    seg_err(err, errlen, "cannot map budget '%s': %s", name, strerror(errno));
    return LM_SEG_ESYS;
  }
  close(fd);
  struct lm_segment *s = m->seg;
  if (wait_magic(s) != LM_SEG_MAGIC || s->version != LM_SEG_VERSION ||
      s->header_size != sizeof(struct lm_segment) || s->total_size != size ||
      s->owner_uid != (uint32_t)getuid() || s->row_count != LM_ROWS ||
      s->rule_count != LM_RULES || s->lease_count != LM_LEASES ||
      atomic_load(&s->limits.window_kind) >= LM_WINDOW_KINDS ||
      atomic_load(&s->limits.mode) > LM_MODE_STRICT) {
    int older = atomic_load(&s->magic) == LM_SEG_MAGIC &&
                s->version != LM_SEG_VERSION;
    lm_segment_detach(m);
    seg_err(err, errlen,
            older ? "budget '%s' has another layout version; remove it with "
                    "'llmmeter rm' and init again%s"
                  : "budget '%s' is corrupt or not an llmmeter budget%s",
            name, NULL);
    return LM_SEG_EFORMAT;
  }
  return LM_SEG_OK;
}

void lm_segment_detach(struct lm_segment_map *m) {
  if (m && m->seg) {
    munmap(m->seg, m->size);
    m->seg = NULL;
  }
}

int lm_segment_remove(const char *name, char *err, size_t errlen) {
  char path[LM_BUDGET_NAME_MAX + 2];
  if (!lm_segment_name_valid(name)) {
    seg_err(err, errlen, "invalid budget name '%s'%s", name ? name : "", NULL);
    return LM_SEG_ENAME;
  }
  snprintf(path, sizeof(path), "/%s", name);
  int fd = shm_open(path, O_RDONLY, 0);
  if (fd < 0) {
    if (errno == ENOENT) {
      seg_err(err, errlen, "budget '%s' does not exist%s", name, NULL);
      return LM_SEG_ENOENT;
    }
  } else {
    struct stat st;
    int ours = fstat(fd, &st) == 0 && st.st_uid == getuid();
    close(fd);
    if (!ours) {
      seg_err(err, errlen, "budget '%s' is owned by another user%s", name,
              NULL);
      return LM_SEG_EOWNER;
    }
  }
  if (shm_unlink(path) != 0) {
    seg_err(err, errlen, "cannot remove budget '%s': %s", name,
            strerror(errno));
    return LM_SEG_ESYS;
  }
  return LM_SEG_OK;
}

int lm_segment_list(void (*fn)(const char *name, void *ctx), void *ctx) {
  DIR *d = opendir("/dev/shm");
  if (!d)
    return -1;
  struct dirent *e;
  uid_t me = getuid();
  while ((e = readdir(d)) != NULL) {
    if (!lm_segment_name_valid(e->d_name))
      continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode) || st.st_uid != me ||
        (size_t)st.st_size != seg_size())
      continue;
    fn(e->d_name, ctx);
  }
  closedir(d);
  return 0;
}

int lm_segment_lock(struct lm_segment *s) {
  int rc = pthread_mutex_trylock(&s->lock); /* the common case: no clock */
  if (rc == EBUSY) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 2;
    rc = pthread_mutex_timedlock(&s->lock, &dl);
  }
  if (rc == EOWNERDEAD) {
    /* The holder died mid-change; the caller repairs what it left (the
     * kernel keeps the memory it wrote), then it is consistent again. */
    pthread_mutex_consistent(&s->lock);
    return 1;
  }
  return rc == 0 ? 0 : -1;
}

void lm_segment_unlock(struct lm_segment *s) { pthread_mutex_unlock(&s->lock); }
