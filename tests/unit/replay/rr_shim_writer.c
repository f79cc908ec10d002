/*
 * Writes a record log the way QEMU 7.2 does, for tests that LD_PRELOAD libftd-rrshim.so into
 * it: fopen(FTD_RR_PATH, "wb"), a seek past the file header, the events, a seek back to 0
 * and the header at exit (which the shim drops), fclose.
 *
 *   rr_shim_writer LOG_BYTES_FILE bytes|chunks main|worker [GO_FILE]
 *
 * bytes: one putc per byte, as QEMU writes integers; chunks: fwrite of 1..4099-byte pieces
 * that ignore event boundaries. worker: the writes come from a second thread (the shim
 * holds only those; QEMU's vCPU is one). GO_FILE: after the fopen, wait until it exists, so
 * a test can set the counters up before the first byte. Exit 0 when everything was written.
 * FT_WRITER_SEND_AT=N: after the first N bytes, send one byte with sendmsg() on a socket
 * pair, as QEMU's netdev stream sends a guest's frame. FT_WRITER_LINGER_MS=N: wait that
 * long after the last byte before closing the log.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

struct job {
  FILE* log;
  const unsigned char* bytes;
  size_t size;
  int chunks;
  int failed;
};

static void send_frame(void) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) return;
  char byte = 'f';
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (sendmsg(pair[0], &msg, 0) != 1) perror("sendmsg");
  close(pair[0]);
  close(pair[1]);
}

static void* write_log(void* arg) {
  struct job* j = arg;
  size_t at = 0;
  unsigned piece = 1;
  const char* send_env = getenv("FT_WRITER_SEND_AT");
  long send_at = send_env ? atol(send_env) : -1;
  while (at < j->size) {
    if ((long)at == send_at) send_frame();
    if (!j->chunks) {
      if (putc(j->bytes[at], j->log) == EOF) j->failed = 1;
      at++;
      continue;
    }
    piece = (piece * 1103515245u + 12345u) % 4099u + 1u; /* 1..4099, the same every run */
    size_t n = j->size - at < piece ? j->size - at : piece;
    if (fwrite(j->bytes + at, 1, n, j->log) != n) j->failed = 1;
    at += n;
  }
  return NULL;
}

static unsigned char* read_all(const char* path, size_t* size) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  size_t cap = 1 << 16, len = 0;
  unsigned char* buf = malloc(cap);
  for (;;) {
    if (len == cap) buf = realloc(buf, cap *= 2);
    ssize_t n = read(fd, buf + len, cap - len);
    if (n <= 0) break;
    len += (size_t)n;
  }
  close(fd);
  *size = len;
  return buf;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s LOG_BYTES_FILE bytes|chunks main|worker [GO_FILE]\n", argv[0]);
    return 2;
  }
  const char* target = getenv("FTD_RR_PATH");
  struct job j = {0};
  j.bytes = read_all(argv[1], &j.size);
  j.chunks = strcmp(argv[2], "chunks") == 0;
  if (!target || !j.bytes) {
    fprintf(stderr, "no FTD_RR_PATH or cannot read %s\n", argv[1]);
    return 2;
  }
  j.log = fopen(target, "wb");
  if (!j.log) {
    perror("fopen");
    return 1;
  }
  fseek(j.log, 12, SEEK_SET); /* QEMU: room for the header */
  if (argc > 4) {
    struct timespec ms = {0, 1000 * 1000};
    while (access(argv[4], F_OK) != 0) nanosleep(&ms, NULL);
  }
  if (strcmp(argv[3], "worker") == 0) {
    pthread_t t;
    pthread_create(&t, NULL, write_log, &j);
    pthread_join(t, NULL);
  } else {
    write_log(&j);
  }
  const char* linger = getenv("FT_WRITER_LINGER_MS");
  if (linger) {
    struct timespec t = {atol(linger) / 1000, (atol(linger) % 1000) * 1000000L};
    nanosleep(&t, NULL);
  }
  /* QEMU at exit: the header at offset 0 (the shim discards it on a stream). */
  fseek(j.log, 0, SEEK_SET);
  static const unsigned char header[12] = {0x00, 0xe0, 0x20, 0x0c};
  fwrite(header, 1, sizeof header, j.log);
  if (fclose(j.log) != 0) j.failed = 1;
  free((void*)j.bytes);
  return j.failed ? 1 : 0;
}
