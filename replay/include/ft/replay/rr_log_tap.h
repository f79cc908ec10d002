// The primary's side of lockstep: reads the record log out of the FIFO a recording QEMU
// (with libftd-rrshim.so) writes, as it is written, and hands it on in order with its
// stream offset. Pausing the tap is how the primary is paced: the FIFO and then the shim's
// bounded buffer fill, and QEMU blocks in its next log write until the tap resumes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ft/replay/rr_log.h"
#include "ft/status.h"

namespace asio {
class io_context;
}

namespace ft::replay {

class RrLogTap : public std::enable_shared_from_this<RrLogTap> {
 public:
  // Creates the FIFO at `fifo_path` (0600; an old file there is replaced) and opens its read
  // end, so QEMU's open of the write end does not block. Call before spawning QEMU.
  static Result<std::shared_ptr<RrLogTap>> Create(asio::io_context& io, std::string vm_name,
                                                  const std::string& fifo_path);
  ~RrLogTap();

  // `bytes` continue the stream at `offset`; `events` are the events they completed (the
  // output gate needs event boundaries).
  using DataFn = std::function<void(uint64_t offset, std::string_view bytes,
                                    const std::vector<RrEvent>& events)>;
  void OnData(DataFn fn);
  // QEMU closed the log (EOF after data) or reading failed. Called once.
  void OnEnd(std::function<void(Status)> fn);

  void Start();   // begin reading
  void Pause();   // stop reading after the read in flight (pacing)
  void Resume();  // read again
  void Close();   // no callbacks after this

  bool paused() const;
  uint64_t offset() const;  // bytes read so far
  uint64_t icount() const;  // icount at the end of the last complete event read
  bool ended() const;       // END event seen
  // The longest INSTRUCTION span read in the last 10-20 s: QEMU writes a span's count only
  // when the next event comes, so this is how far the VM can run between two chances to
  // pace it.
  uint64_t recent_max_span() const;
  // Total time spent paused (pacing), for status and benchmarks.
  std::chrono::nanoseconds paused_time() const;

 private:
  struct Impl;
  explicit RrLogTap(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace ft::replay
