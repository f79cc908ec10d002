/*
 * ftguest-svc -- the test guest's services and workloads (one static binary).
 *
 * Built by scripts/build-guest.sh with `gcc -static -O2` and installed in the
 * guest's initramfs as /bin/ftguest-svc; started by guest/init.
 *
 *   ftguest-svc stream  [-d] [PORT]        stream+echo server     (default 7000)
 *   ftguest-svc records [-d] [PORT] [DIR]  durable record server  (7000+1, /data)
 *   ftguest-svc cpu     [ROUNDS]           CPU-bound deterministic hashing
 *   ftguest-svc timer                      sleeps, clock reads, file I/O, forks
 *   ftguest-svc chaos                      nondeterministic console output
 *   ftguest-svc crc32   STRING             print CRC-32 of STRING (a self-check)
 *
 * -d: bind and listen first, then fork; the parent exits 0 only once the port
 * accepts connections, so guest/init can print its banner right after.
 *
 * The wire protocols and the record layout are specified in docs/guest.md.
 * Every output line (console or socket) is produced whole by a single write
 * into a buffer, so lines never interleave inside one another.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* CRC-32 (IEEE 802.3 / zlib: reflected polynomial 0xEDB88320, init and final
 * xor 0xFFFFFFFF). crc32("123456789") == 0xcbf43926. */

static uint32_t crc_table[256];

static void crc32_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

static uint32_t crc32_update(uint32_t crc, const void* data, size_t len) {
  const unsigned char* p = data;
  crc = ~crc;
  while (len--) crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

static uint32_t crc32_buf(const void* data, size_t len) { return crc32_update(0, data, len); }

/* ------------------------------------------------------------------------ */
/* small helpers */

static const char* prog = "ftguest-svc";

static int64_t now_ns(clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t mono_ns(void) { return now_ns(CLOCK_MONOTONIC); }

/* Write all of buf to fd (blocking fd), retrying on EINTR/short writes. */
static int write_all(int fd, const void* buf, size_t len) {
  const char* p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Print one whole line to stdout (the console) with a single write(). */
__attribute__((format(printf, 1, 2))) static void say(const char* fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 2) n = (int)sizeof line - 2;
  line[n++] = '\n';
  (void)write_all(STDOUT_FILENO, line, (size_t)n);
}

static void die(const char* what) {
  say("%s: %s: %s", prog, what, strerror(errno));
  exit(1);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

static int parse_u64(const char* s, size_t len, uint64_t* out) {
  uint64_t v = 0;
  if (len == 0 || len > 20) return -1;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

static int parse_port(const char* s, int dflt) {
  uint64_t v;
  if (!s) return dflt;
  if (parse_u64(s, strlen(s), &v) < 0 || v == 0 || v > 65535) {
    say("%s: bad port '%s'", prog, s);
    exit(2);
  }
  return (int)v;
}

/* ------------------------------------------------------------------------ */
/* Generic non-blocking line server: per-connection input/output buffers,
 * poll() loop, whole lines only. */

#define MAX_LINE 1024 /* longest client line (without '\n') */
#define MAX_CONNS 256
#define OUT_READ_LIMIT (1u << 20) /* stop reading a client above this backlog */

struct conn {
  int fd;
  char in[MAX_LINE + 1];
  size_t inlen;
  char* out;
  size_t outoff, outlen, outcap;
  int dead;
  int eof; /* peer half-closed: send what is queued, then close */
  /* stream server state */
  uint64_t seq;
  long rate_ms;
  int64_t next_due;
};

static struct conn* conns[MAX_CONNS];
static int nconns;

static size_t out_pending(const struct conn* c) { return c->outlen - c->outoff; }

static void out_append(struct conn* c, const char* data, size_t len) {
  if (c->dead) return;
  if (c->outoff > 0 && c->outoff == c->outlen) {
    c->outoff = c->outlen = 0;
  }
  if (c->outlen + len > c->outcap) {
    /* compact first */
    if (c->outoff > 0) {
      memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
      c->outlen -= c->outoff;
      c->outoff = 0;
    }
    if (c->outlen + len > c->outcap) {
      size_t cap = c->outcap ? c->outcap : 4096;
      while (cap < c->outlen + len) cap *= 2;
      char* p = realloc(c->out, cap);
      if (!p) {
        c->dead = 1;
        return;
      }
      c->out = p;
      c->outcap = cap;
    }
  }
  memcpy(c->out + c->outlen, data, len);
  c->outlen += len;
}

__attribute__((format(printf, 2, 3))) static void out_printf(struct conn* c, const char* fmt, ...) {
  char line[MAX_LINE + 64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
  out_append(c, line, (size_t)n);
}

static void conn_flush(struct conn* c) {
  while (!c->dead && out_pending(c) > 0) {
    ssize_t n = send(c->fd, c->out + c->outoff, out_pending(c), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) c->dead = 1;
      return;
    }
    c->outoff += (size_t)n;
  }
  if (out_pending(c) == 0) c->outoff = c->outlen = 0;
}

static void conn_free(struct conn* c) {
  close(c->fd);
  free(c->out);
  free(c);
}

static int make_listener(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  sa.sin_port = htons((uint16_t)port);
  if (bind(fd, (struct sockaddr*)&sa, sizeof sa) < 0) die("bind");
  if (listen(fd, 64) < 0) die("listen");
  return fd;
}

static void maybe_daemonize(int daemonize) {
  if (!daemonize) return;
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid > 0) _exit(0); /* the listener is already bound: clients can connect */
  setsid();
}

struct server_ops {
  void (*on_open)(struct conn* c);
  void (*on_line)(struct conn* c, char* line, size_t len);
  /* before poll: produce timed output, return poll timeout in ms (-1 = none) */
  int (*tick)(struct conn* c, int64_t now);
  /* whether the connection wants POLLOUT even with nothing buffered */
  int (*wants_more)(struct conn* c);
};

static void accept_all(int lfd, const struct server_ops* ops) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR) continue;
      return; /* EAGAIN or a transient error (ECONNABORTED, EMFILE...) */
    }
    if (nconns >= MAX_CONNS) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn* c = calloc(1, sizeof *c);
    if (!c) {
      close(fd);
      continue;
    }
    c->fd = fd;
    conns[nconns++] = c;
    if (ops->on_open) ops->on_open(c);
  }
}

static void conn_read(struct conn* c, const struct server_ops* ops) {
  for (;;) {
    if (c->dead || c->eof || out_pending(c) >= OUT_READ_LIMIT) return;
    ssize_t n = recv(c->fd, c->in + c->inlen, MAX_LINE + 1 - c->inlen, MSG_DONTWAIT);
    if (n == 0) {
      /* peer closed its side: an unterminated partial line is dropped,
       * replies already queued are still sent */
      c->eof = 1;
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) c->dead = 1;
      return;
    }
    c->inlen += (size_t)n;
    /* split complete lines */
    size_t start = 0;
    for (size_t i = 0; i < c->inlen; i++) {
      if (c->in[i] == '\n') {
        c->in[i] = '\0';
        ops->on_line(c, c->in + start, i - start);
        start = i + 1;
      }
    }
    if (start > 0) {
      memmove(c->in, c->in + start, c->inlen - start);
      c->inlen -= start;
    }
    if (c->inlen > MAX_LINE) {
      /* over-long line: handle the first MAX_LINE bytes as a line */
      char keep = c->in[MAX_LINE];
      c->in[MAX_LINE] = '\0';
      ops->on_line(c, c->in, MAX_LINE);
      c->in[0] = keep;
      c->inlen = 1;
    }
  }
}

static void serve(int lfd, const struct server_ops* ops) {
  struct pollfd pfds[MAX_CONNS + 1];
  for (;;) {
    int64_t now = mono_ns();
    int timeout = -1;
    for (int i = 0; i < nconns; i++) {
      struct conn* c = conns[i];
      if (ops->tick && !c->dead && !c->eof) {
        int t = ops->tick(c, now);
        if (t >= 0 && (timeout < 0 || t < timeout)) timeout = t;
      }
      conn_flush(c);
      if (c->eof && out_pending(c) == 0) c->dead = 1;
    }
    /* reap dead connections */
    for (int i = 0; i < nconns;) {
      if (conns[i]->dead) {
        conn_free(conns[i]);
        conns[i] = conns[--nconns];
      } else {
        i++;
      }
    }
    pfds[0].fd = lfd;
    pfds[0].events = nconns < MAX_CONNS ? POLLIN : 0;
    pfds[0].revents = 0;
    for (int i = 0; i < nconns; i++) {
      struct conn* c = conns[i];
      short ev = 0;
      if (!c->eof && out_pending(c) < OUT_READ_LIMIT) ev |= POLLIN;
      if (out_pending(c) > 0 || (!c->eof && ops->wants_more && ops->wants_more(c))) ev |= POLLOUT;
      pfds[i + 1].fd = c->fd;
      pfds[i + 1].events = ev;
      pfds[i + 1].revents = 0;
    }
    int n = poll(pfds, (nfds_t)nconns + 1, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    int count = nconns; /* accept_all may append; handle those next round */
    for (int i = 0; i < count; i++) {
      struct conn* c = conns[i];
      short re = pfds[i + 1].revents;
      if (re & (POLLIN | POLLHUP | POLLERR)) conn_read(c, ops);
      if (re & (POLLERR | POLLHUP | POLLNVAL)) c->dead = 1;
    }
    if (pfds[0].revents & POLLIN) accept_all(lfd, ops);
  }
}

/* ------------------------------------------------------------------------ */
/* (a) stream + echo server */

#define STREAM_DEFAULT_RATE_MS 20
#define STREAM_FAST_FILL 16384 /* RATE 0: keep this much queued */

static void stream_emit(struct conn* c) {
  char body[40];
  c->seq++;
  int n = snprintf(body, sizeof body, "S %" PRIu64, c->seq);
  out_printf(c, "%s %08x\n", body, crc32_buf(body, (size_t)n));
}

static void stream_open(struct conn* c) {
  c->rate_ms = STREAM_DEFAULT_RATE_MS;
  c->seq = 0;
  c->next_due = mono_ns(); /* first line at once */
}

static void stream_line(struct conn* c, char* line, size_t len) {
  out_append(c, "E ", 2);
  out_append(c, line, len);
  out_append(c, "\n", 1);
  if (len > 5 && memcmp(line, "RATE ", 5) == 0) {
    uint64_t v;
    size_t l = len - 5;
    if (l > 0 && line[5 + l - 1] == '\r') l--;
    if (parse_u64(line + 5, l, &v) == 0 && v <= 3600000) {
      c->rate_ms = (long)v;
      c->next_due = mono_ns() + (int64_t)v * 1000000LL;
    }
  }
}

static int stream_tick(struct conn* c, int64_t now) {
  if (c->rate_ms == 0) {
    while (!c->dead && out_pending(c) < STREAM_FAST_FILL) stream_emit(c);
    return -1; /* POLLOUT drives us */
  }
  if (now >= c->next_due) {
    /* never queue without bound for a client that does not read: the
     * sequence just pauses (lines stay consecutive) */
    if (out_pending(c) < 65536) stream_emit(c);
    int64_t step = (int64_t)c->rate_ms * 1000000LL;
    c->next_due += step;
    if (c->next_due <= now) /* fell behind: no bursts, restart the beat */
      c->next_due = now + step;
  }
  int64_t wait = c->next_due - now;
  return (int)((wait + 999999) / 1000000);
}

static int stream_wants_more(struct conn* c) { return c->rate_ms == 0; }

static int cmd_stream(int argc, char** argv) {
  int daemonize = 0, ai = 0;
  if (ai < argc && strcmp(argv[ai], "-d") == 0) {
    daemonize = 1;
    ai++;
  }
  int port = parse_port(ai < argc ? argv[ai] : NULL, 7000);
  int lfd = make_listener(port);
  say("svc: stream listening port=%d", port);
  maybe_daemonize(daemonize);
  static const struct server_ops ops = {stream_open, stream_line, stream_tick, stream_wants_more};
  serve(lfd, &ops);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* (b) records server */

#define REC_SIZE 256
#define REC_MAX_PAYLOAD 200
#define REC_PAYLOAD_FIELD 236 /* 256 - 4 magic - 8 n - 4 len - 4 crc */
#define REC_CRC_OFF 252

static const char* rec_dir = "/data";
static char rec_path[PATH_MAX];
static int rec_dir_synced;

static void put_le32(unsigned char* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const unsigned char* p) {
  return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* /data counts as mounted when it is a directory on another device than / */
static int disk_mounted(void) {
  struct stat d, r;
  if (stat(rec_dir, &d) < 0 || !S_ISDIR(d.st_mode)) return 0;
  if (stat("/", &r) < 0) return 0;
  return d.st_dev != r.st_dev;
}

static int rec_append(uint64_t n, const char* payload, size_t plen) {
  unsigned char rec[REC_SIZE];
  memset(rec, 0, sizeof rec);
  memcpy(rec, "FTRC", 4);
  put_le64(rec + 4, n);
  put_le32(rec + 12, (uint32_t)plen);
  memcpy(rec + 16, payload, plen);
  put_le32(rec + REC_CRC_OFF, crc32_buf(rec, REC_CRC_OFF));

  int fd = open(rec_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    close(fd);
    return -1;
  }
  /* a trailing partial record stays a (torn) slot of its own */
  off_t off = (st.st_size + REC_SIZE - 1) / REC_SIZE * REC_SIZE;
  size_t done = 0;
  while (done < REC_SIZE) {
    ssize_t w = pwrite(fd, rec + done, REC_SIZE - done, off + (off_t)done);
    if (w < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return -1;
    }
    done += (size_t)w;
  }
  if (fsync(fd) < 0) {
    close(fd);
    return -1;
  }
  close(fd);
  if (!rec_dir_synced) { /* make the file's directory entry durable too */
    int dfd = open(rec_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -1;
    int r = fsync(dfd);
    close(dfd);
    if (r < 0) return -1;
    rec_dir_synced = 1;
  }
  return 0;
}

static int rec_scan(uint64_t* count, uint64_t* torn, uint64_t* last_n) {
  *count = *torn = *last_n = 0;
  int fd = open(rec_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -1;
  unsigned char rec[REC_SIZE];
  for (;;) {
    size_t got = 0;
    while (got < REC_SIZE) {
      ssize_t r = read(fd, rec + got, REC_SIZE - got);
      if (r < 0) {
        if (errno == EINTR) continue;
        close(fd);
        return -1;
      }
      if (r == 0) break;
      got += (size_t)r;
    }
    if (got == 0) break;
    if (got < REC_SIZE) { /* trailing partial record */
      (*torn)++;
      break;
    }
    if (memcmp(rec, "FTRC", 4) == 0 && get_le32(rec + 12) <= REC_MAX_PAYLOAD &&
        get_le32(rec + REC_CRC_OFF) == crc32_buf(rec, REC_CRC_OFF)) {
      (*count)++;
      *last_n = get_le64(rec + 4);
    } else {
      (*torn)++;
    }
  }
  close(fd);
  return 0;
}

static void records_line(struct conn* c, char* line, size_t len) {
  if (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
  if (len >= 1 && line[0] == 'V' && (len == 1 || (len == 2 && line[1] == ' '))) {
    if (!disk_mounted()) {
      out_printf(c, "X no-disk\n");
      return;
    }
    uint64_t count, torn, last;
    if (rec_scan(&count, &torn, &last) < 0) {
      out_printf(c, "X io-error %s\n", strerror(errno));
      return;
    }
    out_printf(c, "V %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", count, torn, last);
    return;
  }
  if (len >= 3 && line[0] == 'W' && line[1] == ' ') {
    const char *p = line + 2, *end = line + len;
    const char* sp = memchr(p, ' ', (size_t)(end - p));
    const char* nend = sp ? sp : end;
    uint64_t n;
    if (parse_u64(p, (size_t)(nend - p), &n) < 0) {
      out_printf(c, "X bad-request\n");
      return;
    }
    const char* payload = sp ? sp + 1 : end;
    size_t plen = (size_t)(end - payload);
    if (plen > REC_MAX_PAYLOAD || memchr(payload, ' ', plen) != NULL) {
      out_printf(c, "X bad-request\n");
      return;
    }
    if (!disk_mounted()) {
      out_printf(c, "X no-disk\n");
      return;
    }
    if (rec_append(n, payload, plen) < 0) {
      out_printf(c, "X io-error %s\n", strerror(errno));
      return;
    }
    out_printf(c, "A %" PRIu64 "\n", n);
    return;
  }
  out_printf(c, "X bad-request\n");
}

static int cmd_records(int argc, char** argv) {
  int daemonize = 0, ai = 0;
  if (ai < argc && strcmp(argv[ai], "-d") == 0) {
    daemonize = 1;
    ai++;
  }
  int port = parse_port(ai < argc ? argv[ai] : NULL, 7001);
  if (ai + 1 < argc) rec_dir = argv[ai + 1];
  snprintf(rec_path, sizeof rec_path, "%s/records.log", rec_dir);
  int lfd = make_listener(port);
  say("svc: records listening port=%d file=%s", port, rec_path);
  maybe_daemonize(daemonize);
  static const struct server_ops ops = {NULL, records_line, NULL, NULL};
  serve(lfd, &ops);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* (c) workloads */

/* CPU: a fixed amount of hashing per round, chained across rounds; the
 * digest sequence is identical on every run. */
#define CPU_BUF 4096
#define CPU_PASSES 20000

static int cmd_cpu(int argc, char** argv) {
  uint64_t rounds = 0;
  if (argc > 0 && parse_u64(argv[0], strlen(argv[0]), &rounds) < 0) {
    say("%s: bad round count '%s'", prog, argv[0]);
    return 2;
  }
  static unsigned char buf[CPU_BUF];
  uint32_t digest = 0x6674677Bu; /* "ftg{" */
  for (uint64_t r = 1; rounds == 0 || r <= rounds; r++) {
    for (int pass = 0; pass < CPU_PASSES; pass++) {
      uint32_t x = digest ^ (uint32_t)pass ^ (uint32_t)r * 0x9E3779B9u;
      for (size_t i = 0; i < CPU_BUF; i += 4) { /* xorshift fill */
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        memcpy(buf + i, &x, 4);
      }
      digest = crc32_update(digest, buf, CPU_BUF);
    }
    say("cpu: round %" PRIu64 " digest %08x", r, digest);
  }
  say("cpu: done rounds=%" PRIu64 " digest %08x", rounds, digest);
  return 0;
}

/* TIMER: short sleeps, clock readings, small file writes+reads, forks. One
 * tick = 10 iterations (~0.3 s); one console line per tick. */
static int cmd_timer(int argc, char** argv) {
  (void)argc;
  (void)argv;
  char path[64];
  snprintf(path, sizeof path, "/tmp/ftguest-timer.%d", (int)getpid());
  uint64_t forks = 0, bytes = 0;
  uint32_t fcrc = 0;
  for (uint64_t tick = 1;; tick++) {
    int64_t slept = 0;
    for (int it = 0; it < 10; it++) {
      long ms = 10 + (long)((tick * 10 + (uint64_t)it) * 7 % 41); /* 10..50 ms */
      int64_t t0 = mono_ns();
      usleep((useconds_t)ms * 1000);
      slept += mono_ns() - t0;

      struct timeval tv;
      gettimeofday(&tv, NULL);
      char data[128];
      int n =
          snprintf(data, sizeof data, "tick %" PRIu64 " it %d mono %" PRId64 " wall %lld.%06ld\n",
                   tick, it, mono_ns(), (long long)tv.tv_sec, (long)tv.tv_usec);
      int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        if (write_all(fd, data, (size_t)n) == 0) {
          char back[128];
          ssize_t r = pread(fd, back, sizeof back, 0);
          if (r > 0) {
            fcrc = crc32_update(fcrc, back, (size_t)r);
            bytes += (uint64_t)r;
          }
        }
        close(fd);
      }
      if (it % 5 == 4) {
        pid_t pid = fork();
        if (pid == 0) {
          struct timespec ts;
          clock_gettime(CLOCK_REALTIME, &ts);
          _exit((int)(ts.tv_nsec & 0x7f));
        }
        if (pid > 0) {
          while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
          }
          forks++;
        }
      }
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    say("timer: tick %" PRIu64 " t=%" PRId64 " wall=%lld.%06ld slept_ms=%" PRId64 " forks=%" PRIu64
        " bytes=%" PRIu64 " file=%08x",
        tick, mono_ns(), (long long)tv.tv_sec, (long)tv.tv_usec, slept / 1000000, forks, bytes,
        fcrc);
  }
  return 0;
}

static uint64_t irq_total(void) {
  FILE* f = fopen("/proc/interrupts", "re");
  if (!f) return 0;
  char line[1024];
  uint64_t total = 0;
  int ncpu = -1;
  while (fgets(line, sizeof line, f)) {
    if (ncpu < 0) { /* header: "CPU0 CPU1 ..." */
      ncpu = 0;
      for (char* p = line; (p = strstr(p, "CPU")) != NULL; p += 3) ncpu++;
      continue;
    }
    char* p = strchr(line, ':');
    if (!p) continue;
    p++;
    for (int i = 0; i < ncpu; i++) {
      char* e;
      unsigned long long v = strtoull(p, &e, 10);
      if (e == p) break;
      total += v;
      p = e;
    }
  }
  fclose(f);
  return total;
}

/* CHAOS: nondeterministic output every ~0.5 s. */
static int cmd_chaos(int argc, char** argv) {
  (void)argc;
  (void)argv;
  int ufd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  for (uint64_t n = 1;; n++) {
    unsigned char rnd[16] = {0};
    if (ufd >= 0) {
      ssize_t r = read(ufd, rnd, sizeof rnd);
      (void)r;
    }
    say("chaos: %" PRIu64 " t=%" PRId64 " urandom=%08x irq=%" PRIu64, n, mono_ns(),
        crc32_buf(rnd, sizeof rnd), irq_total());
    sleep_ms(500);
  }
  return 0;
}

static int cmd_crc32(int argc, char** argv) {
  if (argc < 1) return 2;
  printf("%08x\n", crc32_buf(argv[0], strlen(argv[0])));
  return 0;
}

/* ------------------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr,
          "usage: ftguest-svc stream [-d] [PORT]\n"
          "       ftguest-svc records [-d] [PORT] [DIR]\n"
          "       ftguest-svc cpu [ROUNDS]   (0 = unlimited)\n"
          "       ftguest-svc timer\n"
          "       ftguest-svc chaos\n"
          "       ftguest-svc crc32 STRING\n");
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  crc32_init();
  if (argc < 2) {
    usage();
    return 2;
  }
  const char* cmd = argv[1];
  argc -= 2;
  argv += 2;
  if (strcmp(cmd, "stream") == 0) return cmd_stream(argc, argv);
  if (strcmp(cmd, "records") == 0) return cmd_records(argc, argv);
  if (strcmp(cmd, "cpu") == 0) return cmd_cpu(argc, argv);
  if (strcmp(cmd, "timer") == 0) return cmd_timer(argc, argv);
  if (strcmp(cmd, "chaos") == 0) return cmd_chaos(argc, argv);
  if (strcmp(cmd, "crc32") == 0) return cmd_crc32(argc, argv);
  usage();
  return 2;
}
