#include "qmp_line_client.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "guest_client.h"

namespace ft::testing {

QmpLineClient::~QmpLineClient() { Close(); }

void QmpLineClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buffer_.clear();
}

Status QmpLineClient::Connect(const std::string& socket, std::chrono::milliseconds timeout,
                              std::chrono::milliseconds read_timeout) {
  Close();
  auto fd = ConnectUnix(socket, timeout);
  if (!fd.ok()) return fd.status();
  fd_ = *fd;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(read_timeout).count();
  timeval tv{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string greeting = ReadLine();
  if (greeting.find("\"QMP\"") == std::string::npos) {
    return Unavailable("no QMP greeting on " + socket + ": '" + greeting + "'");
  }
  auto negotiated = Execute(R"({"execute":"qmp_capabilities"})");
  if (!negotiated.ok()) return negotiated.status();
  if (negotiated->find("\"return\"") == std::string::npos) {
    return Internal("qmp_capabilities on " + socket + ": " + *negotiated);
  }
  return Status::Ok();
}

Status QmpLineClient::Send(const std::string& text) {
  if (fd_ < 0) return FailedPrecondition("QMP client not connected");
  std::string bytes = text + "\r\n";
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Unavailable(std::string("writing to QMP: ") + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
  return Status::Ok();
}

std::string QmpLineClient::ReadLine() {
  while (fd_ >= 0) {
    if (size_t nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    char chunk[4096];
    ssize_t n = read(fd_, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    buffer_.append(chunk, static_cast<size_t>(n));
  }
  return "";
}

Result<std::string> QmpLineClient::Execute(const std::string& command) {
  FT_RETURN_IF_ERROR(Send(command));
  while (true) {
    std::string line = ReadLine();
    if (line.empty()) return Unavailable("no QMP answer to " + command);
    if (line.find("\"event\"") != std::string::npos) continue;
    return line;
  }
}

Result<std::string> QmpLineClient::WaitForEvent(const std::string& event) {
  const std::string wanted = "\"event\": \"" + event + "\"";
  while (true) {
    std::string line = ReadLine();
    if (line.empty()) return Unavailable("no QMP event " + event);
    if (line.find(wanted) != std::string::npos) return line;
  }
}

}  // namespace ft::testing
