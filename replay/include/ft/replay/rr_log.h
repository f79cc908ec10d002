// QEMU 7.2's record/replay log, parsed incrementally into events. Pure: bytes in, events out.
//
// The stream is the event part of the log: on a pipe QEMU writes no header, and the replayer
// reading a pipe wants a u32 version first (docs/formats/rr-log.md). Events are back to back,
// integers big-endian, arrays u32 length + bytes. The icount after an event is the sum of
// INSTRUCTION counts so far: what `replay-break` and `query-replay` speak.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ft/status.h"

namespace ft::replay {

// Event kind bytes of QEMU 7.2 (replay/replay-internal.h, REPLAY_VERSION 0xe0200c).
namespace rr {
constexpr uint8_t kInstruction = 0;  // u32 count
constexpr uint8_t kInterrupt = 1;
constexpr uint8_t kException = 2;
constexpr uint8_t kAsyncBh = 3;         // u64 id
constexpr uint8_t kAsyncBhOneshot = 4;  // u64 id
constexpr uint8_t kAsyncInput = 5;      // typed payload
constexpr uint8_t kAsyncInputSync = 6;
constexpr uint8_t kAsyncCharRead = 7;  // u8 chardev + array
constexpr uint8_t kAsyncBlock = 8;     // u64 id
constexpr uint8_t kAsyncNet = 9;       // u8 filter + u32 flags + array
constexpr uint8_t kShutdown = 10;      // ..21: SHUTDOWN + cause
constexpr uint8_t kShutdownLast = 21;
constexpr uint8_t kCharWrite = 22;         // u32 res + u32 offset
constexpr uint8_t kCharReadAll = 23;       // array
constexpr uint8_t kCharReadAllError = 24;  // u32
constexpr uint8_t kAudioOut = 25;          // u64
constexpr uint8_t kAudioIn = 26;           // u64 recorded + u64 wpos + recorded * (u64, u64)
constexpr uint8_t kRandom = 27;            // u32 ret + array
constexpr uint8_t kClock = 28;             // ..29: u64 value
constexpr uint8_t kClockLast = 29;
constexpr uint8_t kCheckpoint = 30;  // ..38
constexpr uint8_t kCheckpointLast = 38;
constexpr uint8_t kEnd = 39;

constexpr uint32_t kVersion = 0x00e0200c;  // REPLAY_VERSION of the QEMU 7.2 this targets
constexpr size_t kFileHeaderSize = 12;     // u32 version + u64 (zero) in a regular log file
// Larger instruction counts turn negative inside QEMU (int instruction_count).
constexpr uint32_t kMaxInstructionCount = 0x7fffffff;
}  // namespace rr

// "instruction", "async-net", "checkpoint", ...
std::string RrEventName(uint8_t kind);

struct RrEvent {
  uint8_t kind = 0;
  uint64_t offset = 0;        // stream offset of its first byte
  uint32_t size = 0;          // bytes, kind byte included
  uint32_t instructions = 0;  // kInstruction only
  uint64_t icount_after = 0;  // instructions executed once this event is consumed
};

// Bytes of a synthetic INSTRUCTION event (used to end a log at go-live).
std::string EncodeInstructionEvent(uint32_t count);

// The u32 log version (big-endian) a replayer reading a pipe wants before the events; a
// regular log file has it followed by 8 zero bytes (kFileHeaderSize).
std::string EncodeVersion(uint32_t version);

class RrLogParser {
 public:
  // Consumes `bytes` (any split), appending every event completed by them to `out`.
  // A byte that cannot start an event, or an array longer than `max_array`, is DataLoss
  // naming the offset and kind; after an error the parser stays failed.
  Status Feed(std::string_view bytes, std::vector<RrEvent>* out);

  uint64_t consumed() const { return consumed_; }  // end of the last complete event
  uint64_t received() const { return consumed_ + pending_.size(); }
  uint64_t icount() const { return icount_; }  // after the last complete event
  bool ended() const { return ended_; }
  uint64_t events() const { return events_; }

  static constexpr uint32_t kMaxArray = 16 * 1024 * 1024;

 private:
  // Size of the event at the start of `data`: 0 = need more bytes.
  Result<size_t> EventSize(std::string_view data) const;

  std::string pending_;
  uint64_t consumed_ = 0;
  uint64_t icount_ = 0;
  uint64_t events_ = 0;
  bool ended_ = false;
  Status failed_;
};

}  // namespace ft::replay
