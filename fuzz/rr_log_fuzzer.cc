// QEMU 7.2's record log read by its two readers, differentially: the C++ parser that feeds the
// backup (replay/src/rr_log.cc) and the flush shim's C scanner inside the recording QEMU
// (replay/shim/rr_log_scan.c). Pacing holds the primary where the scanner counts and the
// backup replays to where the parser counts: after every piece of any split of any stream they
// must agree on failure, end, events, bytes consumed and instruction count. Also: the parser's
// events tile the consumed bytes and its icount only grows.
#include <string>
#include <vector>

#include "ft/replay/rr_log.h"
#include "fuzz_support.h"
#include "rr_log_scan.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto [sizes, stream] = ft::fuzz::TakeSplits(data, size);
  ft::replay::RrLogParser parser;
  ftd_rr_scan scan;
  ftd_rr_scan_init(&scan);
  bool parser_failed = false;
  std::vector<ft::replay::RrEvent> events;
  uint64_t next_offset = 0, icount = 0;

  for (std::string_view piece : ft::fuzz::Split(stream, sizes)) {
    if (!parser_failed) parser_failed = !parser.Feed(piece, &events).ok();
    const bool scan_failed = ftd_rr_scan_feed(&scan, piece.data(), piece.size()) != 0;

    FT_FUZZ_CHECK(scan_failed == parser_failed);
    if (parser_failed) break;  // both stopped for good; counts past a failure mean nothing
    FT_FUZZ_CHECK((scan.ended != 0) == parser.ended());
    FT_FUZZ_CHECK(scan.events == parser.events());
    FT_FUZZ_CHECK(scan.consumed == parser.consumed());
    FT_FUZZ_CHECK(scan.icount == parser.icount());

    for (const auto& e : events) {
      FT_FUZZ_CHECK(e.offset == next_offset);
      FT_FUZZ_CHECK(e.size >= 1);
      FT_FUZZ_CHECK(e.icount_after >= icount);
      next_offset += e.size;
      icount = e.icount_after;
    }
    events.clear();
    FT_FUZZ_CHECK(next_offset == parser.consumed());
    FT_FUZZ_CHECK(icount == parser.icount());
  }
  return 0;
}
