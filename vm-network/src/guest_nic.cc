#include "ft/net/guest_nic.h"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <asio.hpp>
#include <cstdio>
#include <deque>

#include <fmt/format.h>

#include "ft/log.h"
#include "ft/net/announce.h"
#include "ft/net/frame_hash.h"
#include "ft/net/stream_framing.h"
#include "ft/net/tap_device.h"

namespace ft::net {
namespace {

using local = asio::local::stream_protocol;
// Frames waiting to be written, per direction; more are dropped (the guest's TCP and the
// client's resend, like on a full NIC ring).
constexpr size_t kMaxQueuedFrames = 1024;

int64_t MonotonicNs(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

const char* OutboundName(Outbound mode) {
  switch (mode) {
    case Outbound::kGated:
      return "gated";
    case Outbound::kOpen:
      return "open";
    case Outbound::kDrop:
      return "drop";
  }
  return "?";
}

struct GuestNic::Impl : std::enable_shared_from_this<GuestNic::Impl> {
  Impl(asio::io_context& io, GuestNicOptions o)
      : options(std::move(o)),
        acceptor(io),
        guest(io),
        tap(io),
        announce_timer(io),
        log(Logger("net")),
        gate([this](GatedFrame&& f) { Released(std::move(f)); }, options.gate_limits) {
    if (options.outbound == Outbound::kOpen) gate.Open(Clock::now());
  }

  GuestNicOptions options;
  local::acceptor acceptor;
  local::socket guest;
  asio::posix::stream_descriptor tap;
  asio::steady_timer announce_timer;
  std::shared_ptr<spdlog::logger> log;
  std::optional<MacAddress> mac;
  OutputGate gate;
  NicStats stats;
  bool closed = false;
  FILE* trace = nullptr;

  // guest -> ftd
  StreamFrameParser parser;
  std::array<char, 64 * 1024> guest_buffer{};
  // ftd -> guest
  std::deque<std::string> to_guest;
  bool writing_guest = false;
  // TAP
  std::array<char, kMaxFrameSize> tap_buffer{};
  std::deque<std::string> to_tap;
  bool writing_tap = false;

  Status Open() {
    if (!options.mac.empty()) {
      mac = ParseMac(options.mac);
      if (!mac) {
        return InvalidArgument(
            fmt::format("vm '{}': NIC MAC '{}' is malformed", options.vm, options.mac));
      }
    }
    if (options.guest_ipv4) stats.guest_ipv4 = Ipv4ToString(*options.guest_ipv4);
    std::string path = options.socket_path;
    unlink(path.c_str());
    std::error_code ec;
    acceptor.open(local(), ec);
    if (!ec) acceptor.bind(local::endpoint(path), ec);
    if (!ec) acceptor.listen(1, ec);
    if (ec) {
      return Unavailable(fmt::format("vm '{}': cannot listen on the NIC socket '{}': {}",
                                     options.vm, path, ec.message()));
    }
    chmod(path.c_str(), 0600);
    if (!options.bridge.empty()) {
      FT_ASSIGN_OR_RETURN(OpenedTap t, CreateTap(TapNameFor(options.vm), options.bridge));
      tap.assign(t.fd);
      stats.tap = t.name;
      if (Status s = SetLinkUp(t.name, true); !s.ok()) return s;
      log->info("vm '{}': NIC on TAP '{}' (bridge '{}'), outbound {}", options.vm, t.name,
                options.bridge, OutboundName(options.outbound));
    }
    if (!options.trace_path.empty()) trace = std::fopen(options.trace_path.c_str(), "we");
    Accept();
    ReadTap();
    return Status::Ok();
  }

  void Accept() {
    acceptor.async_accept([self = shared_from_this()](const std::error_code& ec, local::socket s) {
      if (self->closed || ec == asio::error::operation_aborted) return;
      if (ec) {
        self->log->warn("vm '{}': NIC socket accept: {}", self->options.vm, ec.message());
        return;
      }
      if (self->guest.is_open()) {
        // One QEMU per VM: a second connection is not ours to serve.
        self->log->warn("vm '{}': refused a second connection on the NIC socket", self->options.vm);
        return self->Accept();
      }
      self->guest = std::move(s);
      self->stats.guest_connected = true;
      self->parser = StreamFrameParser();
      self->ReadGuest();
    });
  }

  // ---- guest -> host
  void ReadGuest() {
    guest.async_read_some(asio::buffer(guest_buffer),
                          [self = shared_from_this()](const std::error_code& ec, size_t n) {
                            if (self->closed) return;
                            if (n > 0)
                              self->FromGuest(std::string_view(self->guest_buffer.data(), n));
                            if (ec) return self->GuestGone(ec);
                            self->ReadGuest();
                          });
  }

  void GuestGone(const std::error_code& ec) {
    if (ec != asio::error::eof && ec != asio::error::operation_aborted) {
      log->warn("vm '{}': NIC socket: {}", options.vm, ec.message());
    }
    std::error_code ignored;
    guest.close(ignored);
    stats.guest_connected = false;
    to_guest.clear();
    Accept();  // a restarted QEMU connects again
  }

  void FromGuest(std::string_view bytes) {
    std::vector<std::string> frames;
    parser.Feed(bytes, &frames);
    const auto& c = parser.counters();
    stats.dropped_malformed = c.runts + c.oversized;
    for (auto& f : frames) FromGuestFrame(std::move(f));
  }

  void FromGuestFrame(std::string frame) {
    LearnGuestAddress(frame);
    switch (options.outbound) {
      case Outbound::kDrop:
        ++stats.dropped_backup;
        return;
      case Outbound::kOpen:
        gate.Submit(std::move(frame), 0, Clock::now());
        return;
      case Outbound::kGated:
        break;
    }
    Result<uint64_t> position = options.log_position
                                    ? options.log_position()
                                    : Result<uint64_t>(Internal("no log position"));
    if (!position.ok()) {
      // Without the log position nothing says when the frame would be safe: never early.
      if (stats.dropped_no_log_position++ == 0) {
        log->error("vm '{}': dropping outbound frames: {}", options.vm,
                   position.status().ToString());
      }
      return;
    }
    if (!gate.Submit(std::move(frame), *position, Clock::now()) && gate.stats().dropped_full == 1) {
      log->warn("vm '{}': output gate full ({} frames held); dropping outbound frames", options.vm,
                gate.stats().held_frames);
    }
  }

  void LearnGuestAddress(std::string_view frame) {
    if (!mac) return;
    auto ip = GuestIpv4From(frame, *mac);
    if (!ip || ip == options.guest_ipv4) return;
    options.guest_ipv4 = ip;
    stats.guest_ipv4 = Ipv4ToString(*ip);
    log->debug("vm '{}': guest uses IPv4 address {}", options.vm, stats.guest_ipv4);
  }

  // ---- announce (go-live)
  void Announce(int round) {
    if (closed || !tap.is_open() || !mac) return;
    std::string frame =
        options.guest_ipv4 ? GratuitousArp(*mac, *options.guest_ipv4) : RarpAnnounce(*mac);
    if (round == 0) {
      log->info("vm '{}': announcing {} on TAP '{}' ({})", options.vm, options.mac, stats.tap,
                options.guest_ipv4 ? "gratuitous ARP for " + stats.guest_ipv4
                                   : std::string("RARP: the guest's address is not known"));
    }
    ++stats.announcements;
    QueueToTap(std::move(frame));
    if (round >= 2) return;
    announce_timer.expires_after(std::chrono::milliseconds(100 * (round + 1)));
    announce_timer.async_wait([self = shared_from_this(), round](const std::error_code& ec) {
      if (!ec) self->Announce(round + 1);
    });
  }

  void QueueToTap(std::string frame) {
    if (to_tap.size() >= kMaxQueuedFrames + options.gate_limits.max_frames) {
      ++stats.dropped_queue_full;
      return;
    }
    to_tap.push_back(std::move(frame));
    WriteTap();
  }

  void Released(GatedFrame&& f) {
    if (trace) {
      std::fprintf(trace, "%llu %016llx %llu %llu %llu %lld %lld %d\n",
                   static_cast<unsigned long long>(f.seq),
                   static_cast<unsigned long long>(FrameHash(f.bytes)),
                   static_cast<unsigned long long>(f.produced),
                   static_cast<unsigned long long>(f.covering_end),
                   static_cast<unsigned long long>(f.acked_at_release),
                   static_cast<long long>(MonotonicNs(f.held_at)),
                   static_cast<long long>(MonotonicNs(f.released_at)), f.released_open ? 1 : 0);
      std::fflush(trace);
    }
    if (!tap.is_open()) return;
    // A gate that opens releases everything it held at once: the queue has room for all of it.
    if (to_tap.size() >= kMaxQueuedFrames + options.gate_limits.max_frames) {
      ++stats.dropped_queue_full;
      return;
    }
    ++stats.frames_out;
    stats.bytes_out += f.bytes.size();
    QueueToTap(std::move(f.bytes));
  }

  void WriteTap() {
    if (writing_tap || to_tap.empty() || closed) return;
    writing_tap = true;
    tap.async_write_some(asio::buffer(to_tap.front()),
                         [self = shared_from_this()](const std::error_code& ec, size_t) {
                           self->writing_tap = false;
                           if (self->closed) return;
                           if (ec) ++self->stats.dropped_tap_errors;  // e.g. link down
                           self->to_tap.pop_front();
                           self->WriteTap();
                         });
  }

  // ---- host -> guest
  void ReadTap() {
    if (!tap.is_open() || closed) return;
    tap.async_read_some(asio::buffer(tap_buffer),
                        [self = shared_from_this()](const std::error_code& ec, size_t n) {
                          if (self->closed || ec == asio::error::operation_aborted) return;
                          if (ec) {
                            self->log->error("vm '{}': reading TAP '{}': {}", self->options.vm,
                                             self->stats.tap, ec.message());
                            return;
                          }
                          self->Inbound(std::string_view(self->tap_buffer.data(), n));
                          self->ReadTap();
                        });
  }

  void Inbound(std::string_view frame) {
    if (frame.size() < kMinFrameSize) {
      ++stats.dropped_host_runts;
      return;
    }
    if (!guest.is_open()) {
      ++stats.dropped_no_guest;
      return;
    }
    if (to_guest.size() >= kMaxQueuedFrames) {
      ++stats.dropped_queue_full;
      return;
    }
    ++stats.frames_in;
    stats.bytes_in += frame.size();
    to_guest.push_back(EncodeStreamFrame(frame));
    WriteGuest();
  }

  void WriteGuest() {
    if (writing_guest || to_guest.empty() || !guest.is_open()) return;
    writing_guest = true;
    asio::async_write(guest, asio::buffer(to_guest.front()),
                      [self = shared_from_this()](const std::error_code& ec, size_t) {
                        self->writing_guest = false;
                        if (self->closed || ec) return;  // the read side notices a gone QEMU
                        self->to_guest.pop_front();
                        self->WriteGuest();
                      });
  }

  void Close() {
    if (closed) return;
    closed = true;
    announce_timer.cancel();
    std::error_code ec;
    acceptor.close(ec);
    guest.close(ec);
    tap.close(ec);
    if (trace) {
      std::fclose(trace);
      trace = nullptr;
    }
    unlink(options.socket_path.c_str());
  }
};

Result<std::shared_ptr<GuestNic>> GuestNic::Create(asio::io_context& io, GuestNicOptions options) {
  auto impl = std::make_shared<Impl>(io, std::move(options));
  if (Status s = impl->Open(); !s.ok()) {
    impl->Close();
    return s;
  }
  return std::shared_ptr<GuestNic>(new GuestNic(std::move(impl)));
}

GuestNic::~GuestNic() { impl_->Close(); }

void GuestNic::OnLogEvents(const std::vector<replay::RrEvent>& events) {
  if (impl_->options.outbound == Outbound::kGated) impl_->gate.OnLogEvents(events);
}

void GuestNic::OnAcked(uint64_t acked_log_bytes) {
  impl_->gate.OnAcked(acked_log_bytes, Clock::now());
}

void GuestNic::OpenGate() {
  if (impl_->options.outbound != Outbound::kGated) return;
  impl_->options.outbound = Outbound::kOpen;
  impl_->gate.Open(Clock::now());
}

void GuestNic::Announce() { impl_->Announce(0); }

std::optional<uint32_t> GuestNic::guest_ipv4() const { return impl_->options.guest_ipv4; }

void GuestNic::Close() { impl_->Close(); }

NicStats GuestNic::stats() const {
  NicStats s = impl_->stats;
  s.outbound = impl_->options.outbound;
  s.gate = impl_->gate.stats();
  return s;
}

}  // namespace ft::net
