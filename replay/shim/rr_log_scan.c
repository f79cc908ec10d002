/*
 * Byte-at-a-time scanner of QEMU 7.2's record log (see rr_log_scan.h). Event kinds and
 * payloads as in replay/include/ft/replay/rr_log.h; QEMU writes each integer one putc at a
 * time, so an event's size is learnt from its head and the rest (arrays) is only counted.
 */
#include "rr_log_scan.h"

#include <string.h>

enum {
  KIND_INSTRUCTION = 0, /* u32 count */
  KIND_INTERRUPT = 1,
  KIND_EXCEPTION = 2,
  KIND_ASYNC_BH = 3,         /* u64 id */
  KIND_ASYNC_BH_ONESHOT = 4, /* u64 id */
  KIND_ASYNC_INPUT = 5,      /* typed payload */
  KIND_ASYNC_INPUT_SYNC = 6,
  KIND_ASYNC_CHAR_READ = 7, /* u8 chardev + array */
  KIND_ASYNC_BLOCK = 8,     /* u64 id */
  KIND_ASYNC_NET = 9,       /* u8 filter + u32 flags + array */
  KIND_SHUTDOWN = 10,       /* ..21 */
  KIND_SHUTDOWN_LAST = 21,
  KIND_CHAR_WRITE = 22,          /* u32 res + u32 offset */
  KIND_CHAR_READ_ALL = 23,       /* array */
  KIND_CHAR_READ_ALL_ERROR = 24, /* u32 */
  KIND_AUDIO_OUT = 25,           /* u64 */
  KIND_AUDIO_IN = 26,            /* u64 recorded + u64 wpos + recorded * (u64, u64) */
  KIND_RANDOM = 27,              /* u32 ret + array */
  KIND_CLOCK = 28,               /* ..29: u64 */
  KIND_CLOCK_LAST = 29,
  KIND_CHECKPOINT = 30, /* ..38 */
  KIND_CHECKPOINT_LAST = 38,
  KIND_END = 39,
};

static uint32_t big_endian32(const uint8_t* p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t big_endian64(const uint8_t* p) {
  return ((uint64_t)big_endian32(p) << 32) | big_endian32(p + 4);
}

/* Size of an array event whose u32 length starts at `at`: 0 = need more, -1 = corrupt. */
static int64_t array_event_size(const uint8_t* head, uint64_t len, uint64_t at) {
  if (len < at + 4) return 0;
  uint32_t n = big_endian32(head + at);
  if (n > FTD_RR_SCAN_MAX_ARRAY) return -1;
  return (int64_t)(at + 4 + n);
}

/* The whole size of the event whose first `len` bytes are `head`: 0 = need more bytes to
 * tell, -1 = not a QEMU 7.2 event. */
static int64_t event_size(const uint8_t* head, uint64_t len) {
  uint8_t kind = head[0];
  switch (kind) {
    case KIND_INSTRUCTION:
    case KIND_CHAR_READ_ALL_ERROR:
      return 1 + 4;
    case KIND_INTERRUPT:
    case KIND_EXCEPTION:
    case KIND_ASYNC_INPUT_SYNC:
    case KIND_END:
      return 1;
    case KIND_ASYNC_BH:
    case KIND_ASYNC_BH_ONESHOT:
    case KIND_ASYNC_BLOCK:
    case KIND_AUDIO_OUT:
    case KIND_CHAR_WRITE:
      return 1 + 8;
    case KIND_ASYNC_INPUT: {
      /* u32 type; KEY: u32 key type then NUMBER u64 + u8 | QCODE u32 + u8; BTN: u32 + u8;
       * REL, ABS: u32 axis + u64 (replay-input.c). */
      if (len < 1 + 4) return 0;
      switch (big_endian32(head + 1)) {
        case 0: {
          if (len < 1 + 8) return 0;
          uint32_t key_type = big_endian32(head + 5);
          if (key_type == 0) return 1 + 4 + 4 + 8 + 1;
          if (key_type == 1) return 1 + 4 + 4 + 4 + 1;
          return -1;
        }
        case 1:
          return 1 + 4 + 4 + 1;
        case 2:
        case 3:
          return 1 + 4 + 4 + 8;
        default:
          return -1;
      }
    }
    case KIND_ASYNC_CHAR_READ:
      return array_event_size(head, len, 1 + 1);
    case KIND_ASYNC_NET:
      return array_event_size(head, len, 1 + 1 + 4);
    case KIND_CHAR_READ_ALL:
      return array_event_size(head, len, 1);
    case KIND_RANDOM:
      return array_event_size(head, len, 1 + 4);
    case KIND_AUDIO_IN: {
      if (len < 1 + 16) return 0;
      uint64_t samples = big_endian64(head + 1);
      if (samples > FTD_RR_SCAN_MAX_ARRAY / 16) return -1;
      return (int64_t)(1 + 16 + 16 * samples);
    }
    default:
      break;
  }
  if ((kind >= KIND_SHUTDOWN && kind <= KIND_SHUTDOWN_LAST) ||
      (kind >= KIND_CHECKPOINT && kind <= KIND_CHECKPOINT_LAST)) {
    return 1;
  }
  if (kind >= KIND_CLOCK && kind <= KIND_CLOCK_LAST) return 1 + 8;
  return -1;
}

void ftd_rr_scan_init(struct ftd_rr_scan* s) { memset(s, 0, sizeof *s); }

static void complete_event(struct ftd_rr_scan* s) {
  if (s->head[0] == KIND_INSTRUCTION) s->icount += big_endian32(s->head + 1);
  if (s->head[0] == KIND_END) s->ended = 1;
  s->events++;
  s->consumed += s->size;
  s->size = 0;
  s->pos = 0;
}

int ftd_rr_scan_feed(struct ftd_rr_scan* s, const void* bytes, size_t n) {
  const uint8_t* p = bytes;
  while (n > 0 && !s->failed) {
    if (s->ended) {
      s->failed = 1; /* nothing may follow END */
      break;
    }
    if (s->pos < FTD_RR_SCAN_HEAD) {
      /* The head: kept, since the size and the instruction count are read from it. */
      s->head[s->pos++] = *p++;
      n--;
      if (s->size == 0) {
        int64_t size = event_size(s->head, s->pos);
        if (size < 0) {
          s->failed = 1;
          break;
        }
        s->size = (uint64_t)size;
      }
    } else if (s->size == 0) {
      s->failed = 1; /* cannot happen: every kind's size is known from 17 bytes */
      break;
    } else {
      /* Array payload past the head: only counted. */
      uint64_t take = s->size - s->pos;
      if (take > n) take = n;
      s->pos += take;
      p += take;
      n -= (size_t)take;
    }
    if (s->size != 0 && s->pos == s->size) complete_event(s);
  }
  return s->failed ? -1 : 0;
}
