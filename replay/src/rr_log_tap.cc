#include "ft/replay/rr_log_tap.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <asio.hpp>

#include <fmt/format.h>

#include "ft/log.h"
#include "ft/replay/rr_log.h"

namespace ft::replay {
namespace {
using Clock = std::chrono::steady_clock;
constexpr int kPipeSize = 1 << 20;
// Before QEMU opens the FIFO's write end a read sees EOF; look again this often.
constexpr auto kWriterPoll = std::chrono::milliseconds(5);
}  // namespace

struct RrLogTap::Impl : std::enable_shared_from_this<RrLogTap::Impl> {
  Impl(asio::io_context& io, std::string name, int fd)
      : vm(std::move(name)), fifo(io, fd), retry(io), log(Logger("replay")) {}

  std::string vm;
  asio::posix::stream_descriptor fifo;
  asio::steady_timer retry;
  std::shared_ptr<spdlog::logger> log;
  RrLogParser parser;
  bool parse_failed = false;
  std::array<char, 256 * 1024> buffer{};
  DataFn on_data;
  std::function<void(Status)> on_end;
  uint64_t offset = 0;
  bool reading = false, paused = false, closed = false, ended = false, started = false;
  Clock::time_point paused_at{};
  Clock::duration paused_total{};

  void ReadNext() {
    if (reading || paused || closed || ended || !started) return;
    reading = true;
    fifo.async_read_some(
        asio::buffer(buffer), [self = shared_from_this()](const std::error_code& ec, size_t n) {
          self->reading = false;
          if (self->closed) return;
          if (n > 0) self->Deliver(std::string_view(self->buffer.data(), n));
          if (ec == asio::error::eof) return self->OnEof();
          if (ec && ec != asio::error::operation_aborted) {
            return self->End(Unavailable(
                fmt::format("vm '{}': reading the record log FIFO: {}", self->vm, ec.message())));
          }
          self->ReadNext();
        });
  }

  void Deliver(std::string_view bytes) {
    uint64_t at = offset;
    offset += bytes.size();
    completed.clear();
    if (!parse_failed) {
      Status s = parser.Feed(bytes, &completed);
      NoteSpans(completed);
      if (!s.ok()) {
        // Our parser disagrees with this QEMU: the backup will refuse the log too. Say so once.
        parse_failed = true;
        log->error("vm '{}': record log does not parse at the primary: {}", vm, s.ToString());
      }
    }
    if (on_data) on_data(at, bytes, completed);
  }
  std::vector<RrEvent> completed;  // events completed by the last read; reused

  // Longest span per 10 s window, this one and the one before.
  uint64_t span_max_now = 0, span_max_before = 0;
  Clock::time_point span_window_start = Clock::now();
  void NoteSpans(const std::vector<RrEvent>& events) {
    auto now = Clock::now();
    if (now - span_window_start > std::chrono::seconds(10)) {
      span_max_before = span_max_now;
      span_max_now = 0;
      span_window_start = now;
    }
    for (const auto& e : events) {
      if (e.kind == rr::kInstruction)
        span_max_now = std::max<uint64_t>(span_max_now, e.instructions);
    }
  }

  void OnEof() {
    if (offset > 0) return End(Status::Ok());  // QEMU closed the log
    retry.expires_after(kWriterPoll);          // QEMU has not opened it yet
    retry.async_wait([self = shared_from_this()](const std::error_code& ec) {
      if (!ec) self->ReadNext();
    });
  }

  void End(Status s) {
    if (ended) return;
    ended = true;
    if (auto fn = std::move(on_end)) fn(std::move(s));
  }

  void Close() {
    closed = true;
    on_data = nullptr;
    on_end = nullptr;
    retry.cancel();
    std::error_code ec;
    fifo.close(ec);
  }
};

Result<std::shared_ptr<RrLogTap>> RrLogTap::Create(asio::io_context& io, std::string vm_name,
                                                   const std::string& fifo_path) {
  unlink(fifo_path.c_str());
  if (mkfifo(fifo_path.c_str(), 0600) != 0) {
    return ErrnoStatus(
        fmt::format("vm '{}': cannot create the record log FIFO '{}'", vm_name, fifo_path), errno);
  }
  int fd = open(fifo_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return ErrnoStatus(
        fmt::format("vm '{}': cannot open the record log FIFO '{}'", vm_name, fifo_path), errno);
  }
  fcntl(fd, F_SETPIPE_SZ, kPipeSize);  // best effort: fewer wake-ups
  return std::shared_ptr<RrLogTap>(
      new RrLogTap(std::make_shared<Impl>(io, std::move(vm_name), fd)));
}

RrLogTap::~RrLogTap() { impl_->Close(); }

void RrLogTap::OnData(DataFn fn) { impl_->on_data = std::move(fn); }
void RrLogTap::OnEnd(std::function<void(Status)> fn) { impl_->on_end = std::move(fn); }
void RrLogTap::Start() {
  impl_->started = true;
  impl_->ReadNext();
}
void RrLogTap::Pause() {
  if (impl_->paused) return;
  impl_->paused = true;
  impl_->paused_at = Clock::now();
}
void RrLogTap::Resume() {
  if (!impl_->paused) return;
  impl_->paused = false;
  impl_->paused_total += Clock::now() - impl_->paused_at;
  impl_->ReadNext();
}
void RrLogTap::Close() { impl_->Close(); }
bool RrLogTap::paused() const { return impl_->paused; }
uint64_t RrLogTap::offset() const { return impl_->offset; }
uint64_t RrLogTap::icount() const { return impl_->parser.icount(); }
bool RrLogTap::ended() const { return impl_->parser.ended(); }
uint64_t RrLogTap::recent_max_span() const {
  return std::max(impl_->span_max_now, impl_->span_max_before);
}
std::chrono::nanoseconds RrLogTap::paused_time() const {
  auto total = impl_->paused_total;
  if (impl_->paused) total += Clock::now() - impl_->paused_at;
  return std::chrono::duration_cast<std::chrono::nanoseconds>(total);
}

}  // namespace ft::replay
