#include "guest_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "ft/crc32.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

Status SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("send", errno);
    }
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// Reads one '\n'-terminated line (without it) from fd, buffering the rest.
// `received_at`, if given, is set to the time of every recv() that returned data.
Status ReadLineFrom(int fd, std::string& buffer, std::string& line, Clock::time_point deadline,
                    Clock::time_point* received_at = nullptr) {
  while (true) {
    auto nl = buffer.find('\n');
    if (nl != std::string::npos) {
      line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return Status::Ok();
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, RemainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus("poll", errno);
    if (r == 0) return Timeout("no complete line from the guest in time");
    char chunk[4096];
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("recv", errno);
    if (n == 0) return Aborted("the guest closed the connection");
    if (received_at) *received_at = Clock::now();
    buffer.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace

Result<int> ConnectTcp(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return InvalidArgument(fmt::format("'{}' is not an IPv4 address", host));
  }
  auto deadline = Clock::now() + timeout;
  int last_errno = 0;
  while (Clock::now() < deadline) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoStatus("socket", errno);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return fd;
    }
    last_errno = errno;
    close(fd);
    std::this_thread::sleep_for(100ms);
  }
  return ErrnoStatus(
      fmt::format("connect {}:{} (gave up after {} ms)", host, port, timeout.count()),
      last_errno ? last_errno : ETIMEDOUT);
}

Result<int> ConnectUnix(const std::string& path, std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) {
    return InvalidArgument(fmt::format("unix socket path too long: '{}'", path));
  }
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  auto deadline = Clock::now() + timeout;
  int last_errno = 0;
  while (Clock::now() < deadline) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return ErrnoStatus("socket", errno);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    last_errno = errno;
    close(fd);
    std::this_thread::sleep_for(20ms);
  }
  return ErrnoStatus(fmt::format("connect {} (gave up after {} ms)", path, timeout.count()),
                     last_errno ? last_errno : ETIMEDOUT);
}

StreamClient::~StreamClient() { Close(); }

void StreamClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Status StreamClient::Connect(const std::string& host, uint16_t port,
                             std::chrono::milliseconds timeout) {
  // slirp accepts on the host side even before the guest listens, then closes: retry until
  // the first stream line arrives.
  auto deadline = Clock::now() + timeout;
  Status last = Timeout("not tried");
  while (Clock::now() < deadline) {
    auto fd = ConnectTcp(host, port, std::chrono::milliseconds(RemainingMs(deadline)));
    if (!fd.ok()) return fd.status();
    fd_ = *fd;
    buffer_.clear();
    last = ReadStream(1, std::min<std::chrono::milliseconds>(
                             5s, std::chrono::milliseconds(RemainingMs(deadline))));
    if (last.ok()) return last;
    Close();
    last_seq_ = 0;
    stream_lines_ = 0;
    std::this_thread::sleep_for(200ms);
  }
  return last.WithContext(fmt::format("stream service {}:{}", host, port));
}

Status StreamClient::SendEcho(const std::string& text) {
  pending_echoes_.push_back(text);
  return SendAll(fd_, text + "\n");
}

Status StreamClient::ReadLine(std::string& line, Clock::time_point deadline) {
  return ReadLineFrom(fd_, buffer_, line, deadline, &last_received_at_);
}

Status StreamClient::HandleLine(const std::string& line) {
  if (line.rfind("E ", 0) == 0) {
    std::string echoed = line.substr(2);
    if (pending_echoes_.empty()) {
      return DataLoss(fmt::format("unexpected echo '{}' (nothing was sent)", echoed));
    }
    if (echoed != pending_echoes_.front()) {
      return DataLoss(fmt::format("echo '{}' but expected '{}'", echoed, pending_echoes_.front()));
    }
    pending_echoes_.erase(pending_echoes_.begin());
    ++echoes_matched_;
    return Status::Ok();
  }
  unsigned long long seq = 0;
  char crc_text[16] = {};
  if (std::sscanf(line.c_str(), "S %llu %8s", &seq, crc_text) != 2) {
    return DataLoss(fmt::format("malformed stream line '{}'", line));
  }
  uint32_t expected_crc = Crc32(fmt::format("S {}", seq));
  if (fmt::format("{:08x}", expected_crc) != crc_text) {
    return DataLoss(fmt::format("line '{}' has a bad CRC (expected {:08x})", line, expected_crc));
  }
  if (last_seq_ != 0 && seq != last_seq_ + 1) {
    return DataLoss(fmt::format("sequence jumped from {} to {} ({})", last_seq_, seq,
                                seq > last_seq_ ? "gap" : "duplicate"));
  }
  last_seq_ = seq;
  ++stream_lines_;
  return Status::Ok();
}

Status StreamClient::ReadStream(int lines, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  uint64_t target = stream_lines_ + static_cast<uint64_t>(lines);
  std::string line;
  while (stream_lines_ < target) {
    FT_RETURN_IF_ERROR(ReadLine(line, deadline));
    FT_RETURN_IF_ERROR(HandleLine(line));
  }
  return Status::Ok();
}

Status StreamClient::AwaitEchoes(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string line;
  while (!pending_echoes_.empty()) {
    FT_RETURN_IF_ERROR(ReadLine(line, deadline));
    FT_RETURN_IF_ERROR(HandleLine(line));
  }
  return Status::Ok();
}

RecordClient::~RecordClient() { Close(); }

void RecordClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

Status RecordClient::Connect(const std::string& host, uint16_t port,
                             std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  Status last = Timeout("not tried");
  while (Clock::now() < deadline) {
    auto fd = ConnectTcp(host, port, std::chrono::milliseconds(RemainingMs(deadline)));
    if (!fd.ok()) return fd.status();
    fd_ = *fd;
    buffer_.clear();
    auto probe = VerifyAll(5s);  // a request proves the service (not just slirp) is there
    if (probe.ok()) return Status::Ok();
    last = probe.status();
    Close();
    std::this_thread::sleep_for(200ms);
  }
  return last.WithContext(fmt::format("records service {}:{}", host, port));
}

Result<std::string> RecordClient::Request(const std::string& line,
                                          std::chrono::milliseconds timeout) {
  FT_RETURN_IF_ERROR(SendAll(fd_, line + "\n"));
  std::string reply;
  FT_RETURN_IF_ERROR(ReadLineFrom(fd_, buffer_, reply, Clock::now() + timeout));
  return reply;
}

Status RecordClient::Append(uint64_t n, const std::string& payload,
                            std::chrono::milliseconds timeout) {
  FT_ASSIGN_OR_RETURN(std::string reply, Request(fmt::format("W {} {}", n, payload), timeout));
  if (reply != fmt::format("A {}", n)) {
    return DataLoss(fmt::format("record {}: expected 'A {}', got '{}'", n, n, reply));
  }
  return Status::Ok();
}

Result<RecordClient::Verify> RecordClient::VerifyAll(std::chrono::milliseconds timeout) {
  FT_ASSIGN_OR_RETURN(std::string reply, Request("V", timeout));
  Verify v;
  unsigned long long c, t, l;
  if (std::sscanf(reply.c_str(), "V %llu %llu %llu", &c, &t, &l) != 3) {
    return DataLoss(fmt::format("bad verify reply '{}'", reply));
  }
  v.count = c;
  v.torn = t;
  v.last = l;
  return v;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool WaitForFileContaining(const std::string& path, const std::string& needle,
                           std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (ReadFile(path).find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

}  // namespace ft::testing
