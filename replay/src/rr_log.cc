#include "ft/replay/rr_log.h"

#include <fmt/format.h>

namespace ft::replay {
namespace {

uint32_t BigEndian32(std::string_view d, size_t at) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(d[at + i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

uint64_t BigEndian64(std::string_view d, size_t at) {
  return (static_cast<uint64_t>(BigEndian32(d, at)) << 32) | BigEndian32(d, at + 4);
}

// Input event payload (replay-input.c): u32 type, then per type.
// Returns bytes after the kind byte, 0 if incomplete, or -1 if the type is unknown.
long InputPayloadSize(std::string_view d) {
  if (d.size() < 1 + 4) return 0;
  uint32_t type = BigEndian32(d, 1);
  switch (type) {
    case 0: {  // KEY: u32 key type, then NUMBER u64 + u8 | QCODE u32 + u8
      if (d.size() < 1 + 8) return 0;
      uint32_t key_type = BigEndian32(d, 5);
      if (key_type == 0) return 4 + 4 + 8 + 1;
      if (key_type == 1) return 4 + 4 + 4 + 1;
      return -1;
    }
    case 1:
      return 4 + 4 + 1;  // BTN: u32 button + u8 down
    case 2:              // REL
    case 3:
      return 4 + 4 + 8;  // ABS: u32 axis + u64 value
    default:
      return -1;
  }
}

}  // namespace

std::string RrEventName(uint8_t kind) {
  switch (kind) {
    case rr::kInstruction:
      return "instruction";
    case rr::kInterrupt:
      return "interrupt";
    case rr::kException:
      return "exception";
    case rr::kAsyncBh:
      return "async-bh";
    case rr::kAsyncBhOneshot:
      return "async-bh-oneshot";
    case rr::kAsyncInput:
      return "async-input";
    case rr::kAsyncInputSync:
      return "async-input-sync";
    case rr::kAsyncCharRead:
      return "async-char-read";
    case rr::kAsyncBlock:
      return "async-block";
    case rr::kAsyncNet:
      return "async-net";
    case rr::kCharWrite:
      return "char-write";
    case rr::kCharReadAll:
      return "char-read-all";
    case rr::kCharReadAllError:
      return "char-read-all-error";
    case rr::kAudioOut:
      return "audio-out";
    case rr::kAudioIn:
      return "audio-in";
    case rr::kRandom:
      return "random";
    case rr::kEnd:
      return "end";
    default:
      break;
  }
  if (kind >= rr::kShutdown && kind <= rr::kShutdownLast)
    return fmt::format("shutdown-{}", kind - rr::kShutdown);
  if (kind >= rr::kClock && kind <= rr::kClockLast)
    return fmt::format("clock-{}", kind - rr::kClock);
  if (kind >= rr::kCheckpoint && kind <= rr::kCheckpointLast) {
    return fmt::format("checkpoint-{}", kind - rr::kCheckpoint);
  }
  return fmt::format("unknown-{}", kind);
}

std::string EncodeVersion(uint32_t version) {
  std::string e(4, '\0');
  for (int i = 0; i < 4; ++i) e[i] = static_cast<char>((version >> (24 - 8 * i)) & 0xff);
  return e;
}

std::string EncodeInstructionEvent(uint32_t count) {
  // An INSTRUCTION event is its kind byte and a big-endian u32, like the version word.
  return std::string(1, static_cast<char>(rr::kInstruction)) + EncodeVersion(count);
}

Result<size_t> RrLogParser::EventSize(std::string_view d) const {
  if (d.empty()) return size_t{0};
  uint8_t kind = static_cast<uint8_t>(d[0]);
  // Fixed sizes first; 0 below means "variable".
  auto need = [&](size_t n) -> size_t { return d.size() >= n ? n : 0; };
  auto array_at = [&](size_t header) -> Result<size_t> {
    if (d.size() < header + 4) return size_t{0};
    uint32_t len = BigEndian32(d, header);
    if (len > kMaxArray) {
      return DataLoss(fmt::format("rr log offset {}: {} event has a {}-byte array (limit {})",
                                  consumed_, RrEventName(kind), len, kMaxArray));
    }
    return need(header + 4 + len);
  };
  switch (kind) {
    case rr::kInstruction:
      return need(1 + 4);
    case rr::kInterrupt:
    case rr::kException:
    case rr::kAsyncInputSync:
    case rr::kEnd:
      return need(1);
    case rr::kAsyncBh:
    case rr::kAsyncBhOneshot:
    case rr::kAsyncBlock:
    case rr::kAudioOut:
      return need(1 + 8);
    case rr::kAsyncInput: {
      long payload = InputPayloadSize(d);
      if (payload < 0) {
        return DataLoss(fmt::format("rr log offset {}: async-input event of unknown type {}",
                                    consumed_, BigEndian32(d, 1)));
      }
      return payload == 0 ? 0 : need(1 + static_cast<size_t>(payload));
    }
    case rr::kAsyncCharRead:
      return array_at(1 + 1);
    case rr::kAsyncNet:
      return array_at(1 + 1 + 4);
    case rr::kCharWrite:
      return need(1 + 4 + 4);
    case rr::kCharReadAll:
      return array_at(1);
    case rr::kCharReadAllError:
      return need(1 + 4);
    case rr::kRandom:
      return array_at(1 + 4);
    case rr::kAudioIn: {
      if (d.size() < 1 + 16) return size_t{0};
      uint64_t samples = BigEndian64(d, 1);
      if (samples > kMaxArray / 16) {
        return DataLoss(
            fmt::format("rr log offset {}: audio-in event with {} samples", consumed_, samples));
      }
      return need(1 + 16 + 16 * samples);
    }
    default:
      break;
  }
  if ((kind >= rr::kShutdown && kind <= rr::kShutdownLast) ||
      (kind >= rr::kCheckpoint && kind <= rr::kCheckpointLast)) {
    return need(1);
  }
  if (kind >= rr::kClock && kind <= rr::kClockLast) return need(1 + 8);
  return DataLoss(fmt::format(
      "rr log offset {}: unknown event kind {} (not a QEMU 7.2 log, or corrupt)", consumed_, kind));
}

Status RrLogParser::Feed(std::string_view bytes, std::vector<RrEvent>* out) {
  if (!failed_.ok()) return failed_;
  if (ended_ && !bytes.empty()) {
    failed_ = DataLoss(
        fmt::format("rr log offset {}: {} bytes after the end event", consumed_, bytes.size()));
    return failed_;
  }
  pending_.append(bytes);
  size_t pos = 0;
  while (pos < pending_.size() && !ended_) {
    std::string_view rest(pending_.data() + pos, pending_.size() - pos);
    auto size = EventSize(rest);
    if (!size.ok()) {
      failed_ = size.status();
      pending_.erase(0, pos);
      return failed_;
    }
    if (*size == 0) break;
    RrEvent e;
    e.kind = static_cast<uint8_t>(rest[0]);
    e.offset = consumed_;
    e.size = static_cast<uint32_t>(*size);
    if (e.kind == rr::kInstruction) {
      e.instructions = BigEndian32(rest, 1);
      icount_ += e.instructions;
    }
    e.icount_after = icount_;
    if (e.kind == rr::kEnd) ended_ = true;
    consumed_ += *size;
    pos += *size;
    ++events_;
    if (out) out->push_back(e);
  }
  pending_.erase(0, pos);
  if (ended_ && !pending_.empty()) {
    failed_ = DataLoss(
        fmt::format("rr log offset {}: {} bytes after the end event", consumed_, pending_.size()));
    return failed_;
  }
  return Status::Ok();
}

}  // namespace ft::replay
