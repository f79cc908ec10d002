/*
 * libftd-rrshim.so: LD_PRELOADed into a recording QEMU 7.2 so its record/replay log leaves
 * the process within a fraction of a millisecond instead of in 4 KiB stdio chunks.
 *
 * QEMU opens the log with fopen(path, "wb") and writes it with putc/fwrite and never
 * flushes. This shim intercepts fopen/fopen64 for FTD_RR_PATH only and returns a
 * fopencookie stream with stdio buffering off, so every byte QEMU writes reaches the shim at
 * once: the shim knows exactly how many log bytes QEMU has produced at any moment. A thread
 * writes them to the real file descriptor (a FIFO read by ftd) every FTD_RR_FLUSH_US
 * microseconds (default 2000: each flush is a FIFO write here, a read, a frame and an ack in
 * ftd, and a FIFO write and read on the backup, on the cores the two QEMUs run on). The shim's
 * buffer is bounded (FTD_RR_MAX_BUFFER): when ftd reads slowly, QEMU's writes block, which is how
 * ftd paces a primary whose backup lags.
 *
 * The counters (docs/formats/rr-shim-counters.md) are published in a shared file
 * (FTD_RR_COUNTERS): produced = bytes QEMU has written, flushed = bytes handed to the fd,
 * icount = instructions in the complete events QEMU has written (rr_log_scan.c scans every
 * byte). ftd paces the primary through icount_limit: a vCPU that has logged past it waits
 * at its next event, so the limit is kept on what QEMU wrote, not on what ftd has read.
 *
 * Sends: ftd holds each frame the guest sends until the backup has the log event that
 * starts at or after it, normally written microseconds after the send (e1000's TX-done
 * interrupt). QEMU's netdev stream sends frames with sendmsg(); the shim intercepts it and
 * wakes the flush thread as soon as that next event is complete, so the frame's wait in
 * ftd's output gate no longer includes up to FTD_RR_FLUSH_US of this buffer.
 *
 * Seeks: QEMU seeks to 12 at start (past the file header) and back to 0 at exit to write
 * the header. On a pipe neither can work; the shim accepts the first (so nothing is
 * written) and, at the second, discards everything after it (QEMU's 4-byte header would
 * otherwise land after the END event).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "rr_log_scan.h"

#define COUNTERS_MAGIC 0x6674647272736832ULL /* "ftdrrsh2": layout version 2 */

struct counters {
  uint64_t magic;
  _Atomic uint64_t produced;     /* bytes QEMU wrote into the log */
  _Atomic uint64_t flushed;      /* bytes written to the fd */
  _Atomic uint64_t write_errors; /* failed write() calls (reader gone) */
  _Atomic uint64_t blocked_ns;   /* time QEMU spent blocked on a full buffer */
  _Atomic uint64_t finished;     /* 1 once QEMU closed the log */
  _Atomic uint64_t icount_limit; /* set by ftd (0 = none): pacing, see cookie_write */
  _Atomic uint64_t icount;       /* instructions in the complete events written */
  _Atomic uint64_t scan_errors;  /* 1 once the log did not scan: icount_limit is ignored */
  _Atomic uint64_t held;         /* writers waiting for icount_limit right now */
};

struct shim {
  int fd;
  pthread_mutex_t mu;
  pthread_cond_t space; /* signalled when the buffer drained */
  pthread_cond_t work;  /* signalled when the buffer passed the wake threshold or on close */
  char* buf;
  size_t len, cap, max_buffer;
  int closing, discard, broken;
  uint64_t seek_pos;
  long flush_us;
  pthread_t thread;
  struct counters* ctr;
  struct counters local;
  struct ftd_rr_scan scan; /* under mu: the stream as QEMU wrote it */
  int flush_requested;     /* under mu: a writer asked for a flush before the period ends */
  int wake_armed;          /* under mu: a send happened; flush once the next event is whole */
  uint64_t wake_after;     /* under mu: produced at that send */
};

/* The log QEMU writes (one per process), for sendmsg(). Never freed once set: a send on
 * another thread may still hold it while QEMU closes the log at exit. */
static struct shim* _Atomic g_log;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int is_main_thread(void) { return (pid_t)syscall(SYS_gettid) == getpid(); }

/* Called with mu held. A log that did not scan is never held: a wrong icount could hold the
 * vCPU for good, and ftd still reads and checks every byte it forwards. */
static int over_icount_limit(struct shim* s) {
  uint64_t limit = atomic_load(&s->ctr->icount_limit);
  return limit != 0 && !s->scan.failed && s->scan.icount > limit;
}

/* Called with mu held. The flag, not only the signal: a signal sent while the flusher is not
 * yet waiting (its thread just started) would be lost, and the flush would wait a period. */
static void request_flush(struct shim* s) {
  s->flush_requested = 1;
  pthread_cond_signal(&s->work);
}

static void drain(struct shim* s) {
  /* Called with mu held; writes the buffer without holding it. */
  while (s->len > 0) {
    char* chunk = s->buf;
    size_t n = s->len;
    s->buf = NULL;
    s->len = 0;
    s->cap = 0;
    pthread_cond_broadcast(&s->space);
    pthread_mutex_unlock(&s->mu);
    size_t off = 0;
    while (off < n && !s->broken) {
      ssize_t w = write(s->fd, chunk + off, n - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        atomic_fetch_add(&s->ctr->write_errors, 1);
        s->broken = 1; /* reader gone: drop from here on; QEMU keeps running */
        break;
      }
      off += (size_t)w;
      atomic_fetch_add(&s->ctr->flushed, (uint64_t)w);
    }
    free(chunk);
    pthread_mutex_lock(&s->mu);
  }
}

static void* flusher(void* arg) {
  struct shim* s = arg;
  pthread_mutex_lock(&s->mu);
  while (!s->closing) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += s->flush_us * 1000;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec += until.tv_nsec / 1000000000L;
      until.tv_nsec %= 1000000000L;
    }
    if (!s->flush_requested) pthread_cond_timedwait(&s->work, &s->mu, &until);
    s->flush_requested = 0;
    /* Writers do not signal each byte: what arrives during one period goes out together. */
    drain(s);
  }
  drain(s);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static ssize_t cookie_write(void* c, const char* data, size_t size) {
  struct shim* s = c;
  pthread_mutex_lock(&s->mu);
  if (s->discard || s->broken) {
    pthread_mutex_unlock(&s->mu);
    return (ssize_t)size; /* QEMU must not see an error: it would only print and go on */
  }
  if (s->scan.pos == 0 && over_icount_limit(s) && !is_main_thread()) {
    /* Pacing: QEMU has logged past the icount the backup may lag to. The vCPU waits here,
     * before the first byte of its next event, until ftd raises the limit; the log written
     * so far is whole events and still flows, so the backup can replay all of it. The main
     * thread is never held: its timers are what interrupt a busy vCPU, and a vCPU that is
     * not interrupted runs on without writing. */
    uint64_t t0 = now_ns();
    atomic_fetch_add(&s->ctr->held, 1);
    request_flush(s);
    while (over_icount_limit(s) && !s->broken && !s->closing) {
      pthread_mutex_unlock(&s->mu);
      struct timespec pause = {0, 200 * 1000};
      nanosleep(&pause, NULL);
      pthread_mutex_lock(&s->mu);
    }
    atomic_fetch_sub(&s->ctr->held, 1);
    atomic_fetch_add(&s->ctr->blocked_ns, now_ns() - t0);
  }
  if (s->len + size > s->max_buffer) {
    uint64_t t0 = now_ns();
    request_flush(s);
    while (s->len + size > s->max_buffer && s->len > 0 && !s->broken) {
      pthread_cond_wait(&s->space, &s->mu);
    }
    atomic_fetch_add(&s->ctr->blocked_ns, now_ns() - t0);
  }
  if (s->len + size > s->cap) {
    size_t cap = s->cap ? s->cap : 65536;
    while (cap < s->len + size) cap *= 2;
    char* nb = realloc(s->buf, cap);
    if (!nb) {
      pthread_mutex_unlock(&s->mu);
      errno = ENOMEM;
      return -1;
    }
    s->buf = nb;
    s->cap = cap;
  }
  memcpy(s->buf + s->len, data, size);
  s->len += size;
  if (!s->scan.failed) {
    if (ftd_rr_scan_feed(&s->scan, data, size) != 0) atomic_store(&s->ctr->scan_errors, 1);
    atomic_store(&s->ctr->icount, s->scan.icount);
  }
  uint64_t produced = atomic_fetch_add(&s->ctr->produced, (uint64_t)size) + size;
  if (s->wake_armed && produced > s->wake_after && (s->scan.failed || s->scan.pos == 0)) {
    s->wake_armed = 0; /* an event that starts at or after the send is complete */
    request_flush(s);
  }
  pthread_mutex_unlock(&s->mu);
  return (ssize_t)size;
}

typedef ssize_t (*sendmsg_fn)(int, const struct msghdr*, int);

ssize_t sendmsg(int fd, const struct msghdr* msg, int flags) {
  static sendmsg_fn real;
  if (!real) real = (sendmsg_fn)dlsym(RTLD_NEXT, "sendmsg");
  struct shim* s = atomic_load(&g_log);
  if (s) {
    pthread_mutex_lock(&s->mu);
    if (!s->closing) {
      s->wake_armed = 1;
      s->wake_after = atomic_load(&s->ctr->produced);
    }
    pthread_mutex_unlock(&s->mu);
  }
  return real(fd, msg, flags);
}

static int cookie_seek(void* c, off64_t* offset, int whence) {
  struct shim* s = c;
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  if (whence == SEEK_SET && *offset == 12 && atomic_load(&s->ctr->produced) == 0) {
    s->seek_pos = 12; /* QEMU skipping the header at start: the stream has none */
  } else if (whence == SEEK_SET && *offset == 0) {
    s->discard = 1; /* QEMU rewinding to write the header at exit: drop it */
    s->seek_pos = 0;
  } else if (whence == SEEK_CUR && *offset == 0) {
    *offset = (off64_t)(s->seek_pos + atomic_load(&s->ctr->produced));
  } else {
    errno = ESPIPE;
    rc = -1;
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int cookie_close(void* c) {
  struct shim* s = c;
  pthread_mutex_lock(&s->mu);
  s->closing = 1;
  pthread_cond_signal(&s->work);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  atomic_store(&s->ctr->finished, 1);
  int rc = close(s->fd);
  free(s->buf);
  s->buf = NULL;
  if (atomic_load(&g_log) == s) {
    /* A send may still hold s: it stays, with its counters redirected to local ones. */
    pthread_mutex_lock(&s->mu);
    if (s->ctr != &s->local) munmap(s->ctr, sizeof(struct counters));
    s->ctr = &s->local;
    pthread_mutex_unlock(&s->mu);
    return rc;
  }
  if (s->ctr != &s->local) munmap(s->ctr, sizeof(struct counters));
  free(s);
  return rc;
}

static struct counters* map_counters(void) {
  const char* path = getenv("FTD_RR_COUNTERS");
  if (!path || !*path) return NULL;
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return NULL;
  if (ftruncate(fd, 4096) != 0) {
    close(fd);
    return NULL;
  }
  void* p = mmap(NULL, sizeof(struct counters), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) return NULL;
  struct counters* c = p;
  memset(c, 0, sizeof *c);
  c->magic = COUNTERS_MAGIC;
  return c;
}

typedef FILE* (*fopen_fn)(const char*, const char*);

static FILE* wrap(const char* path, const char* mode, const char* symbol) {
  fopen_fn real = (fopen_fn)dlsym(RTLD_NEXT, symbol);
  const char* target = getenv("FTD_RR_PATH");
  if (!target || !path || strcmp(path, target) != 0 || mode[0] != 'w') return real(path, mode);

  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return NULL;
  struct shim* s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return NULL;
  }
  s->fd = fd;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->space, NULL);
  pthread_cond_init(&s->work, NULL);
  const char* us = getenv("FTD_RR_FLUSH_US");
  s->flush_us = us ? atol(us) : 2000;
  if (s->flush_us < 50) s->flush_us = 50;
  if (s->flush_us > 100000) s->flush_us = 100000;
  const char* mb = getenv("FTD_RR_MAX_BUFFER");
  s->max_buffer = mb ? (size_t)atol(mb) : (size_t)1 << 20;
  if (s->max_buffer < 4096) s->max_buffer = 4096;
  s->ctr = map_counters();
  if (!s->ctr) s->ctr = &s->local;
  s->local.magic = COUNTERS_MAGIC;
  ftd_rr_scan_init(&s->scan);

  cookie_io_functions_t io = {NULL, cookie_write, cookie_seek, cookie_close};
  FILE* f = fopencookie(s, "w", io);
  if (!f) {
    close(fd);
    free(s);
    return NULL;
  }
  setvbuf(f, NULL, _IONBF, 0); /* every putc reaches cookie_write: exact produced count */
  pthread_create(&s->thread, NULL, flusher, s);
  struct shim* none = NULL;
  atomic_compare_exchange_strong(&g_log, &none, s);
  return f;
}

FILE* fopen(const char* path, const char* mode) { return wrap(path, mode, "fopen"); }
FILE* fopen64(const char* path, const char* mode) { return wrap(path, mode, "fopen64"); }
