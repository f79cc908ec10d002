// A record log QEMU wrote to a regular file (header, then events), parsed whole. For tests
// that record with real QEMU and look at what went into the log.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ft/replay/rr_log.h"
#include "ft/status.h"

namespace ft::testing {

struct RecordLogFile {
  std::vector<replay::RrEvent> events;  // every complete event, in order
  uint64_t icount = 0;                  // instructions in them
  bool ended = false;                   // the log's END is among them
};

// DataLoss if the file is shorter than a header or an event does not parse. A log cut by a
// signal may end inside an event: that part is left out.
Result<RecordLogFile> ReadRecordLogFile(const std::string& path);

}  // namespace ft::testing
