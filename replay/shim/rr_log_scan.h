/*
 * The flush shim's view of a QEMU 7.2 record log: a byte-at-a-time scanner that keeps the
 * instruction count of the complete events written so far. Pure (bytes in, counts out), no
 * allocation, so it can run inside QEMU's log writes. It must agree with the C++ parser
 * (replay/src/rr_log.cc, docs/formats/rr-log.md); tests/unit/replay/rr_shim_test.cc feeds
 * both the same bytes.
 */
#ifndef FTD_RR_LOG_SCAN_H
#define FTD_RR_LOG_SCAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Hidden: the shim is preloaded into QEMU and must export nothing but fopen/fopen64. */
#define FTD_RR_SCAN_API __attribute__((visibility("hidden")))

/* The head of an event holds every byte needed to learn its size (at most 17: AUDIO_IN). */
#define FTD_RR_SCAN_HEAD 24
/* Arrays longer than this are corruption (the C++ parser's RrLogParser::kMaxArray). */
#define FTD_RR_SCAN_MAX_ARRAY (16u * 1024 * 1024)

struct ftd_rr_scan {
  uint64_t icount;   /* sum of INSTRUCTION counts of the complete events */
  uint64_t events;   /* complete events */
  uint64_t consumed; /* stream offset of the end of the last complete event */
  uint64_t size;     /* bytes of the current event, 0 while not known yet */
  uint64_t pos;      /* bytes of the current event seen so far; 0 = at an event boundary */
  uint8_t head[FTD_RR_SCAN_HEAD];
  int ended;  /* END seen */
  int failed; /* bytes that are no QEMU 7.2 log: scanning stopped for good */
};

FTD_RR_SCAN_API void ftd_rr_scan_init(struct ftd_rr_scan* s);
/* Consumes `n` bytes (any split of the stream). Returns 0, or -1 once failed. */
FTD_RR_SCAN_API int ftd_rr_scan_feed(struct ftd_rr_scan* s, const void* bytes, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* FTD_RR_LOG_SCAN_H */
