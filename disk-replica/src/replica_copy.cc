#include "ft/disk/replica_copy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "sha256.h"

namespace ft::disk {

struct ImageReader::Hash : Sha256 {};
struct ReplicaWriter::Hash : Sha256 {};

ImageReader::ImageReader(int fd, uint64_t size, std::string path)
    : fd_(fd), size_(size), path_(std::move(path)), hash_(std::make_unique<Hash>()) {}

ImageReader::~ImageReader() { close(fd_); }

Result<std::unique_ptr<ImageReader>> ImageReader::Open(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return NotFound(fmt::format("image '{}' does not exist", path));
    return ErrnoStatus(fmt::format("cannot open image '{}'", path), err);
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return InvalidArgument(fmt::format("image '{}' is not a regular file", path));
  }
  return std::unique_ptr<ImageReader>(new ImageReader(fd, static_cast<uint64_t>(st.st_size), path));
}

Result<std::string> ImageReader::Next(size_t max) {
  std::string out(std::min<uint64_t>(max, size_ - offset_), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = pread(fd_, out.data() + got, out.size() - got, static_cast<off_t>(offset_ + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(fmt::format("reading image '{}'", path_), errno);
    if (n == 0) {
      return DataLoss(fmt::format("image '{}' shrank to {} bytes while being read (it was {})",
                                  path_, offset_ + got, size_));
    }
    got += static_cast<size_t>(n);
  }
  offset_ += got;
  hash_->Update(out);
  if (done() && sha256_.empty()) sha256_ = hash_->Hex();
  return out;
}

ImageDigest ImageReader::digest() const {
  ImageDigest d;
  d.size = size_;
  d.sha256 = sha256_.empty() && size_ == 0 ? Sha256().Hex() : sha256_;
  return d;
}

ReplicaWriter::ReplicaWriter(int fd, std::string path, uint64_t size)
    : fd_(fd),
      path_(std::move(path)),
      partial_(path_ + ".ftd-partial"),
      size_(size),
      hash_(std::make_unique<Hash>()) {}

ReplicaWriter::~ReplicaWriter() {
  if (fd_ >= 0) close(fd_);
  if (!finished_) unlink(partial_.c_str());
}

Result<std::unique_ptr<ReplicaWriter>> ReplicaWriter::Create(const std::string& path, uint64_t size,
                                                             bool overwrite) {
  if (!overwrite && access(path.c_str(), F_OK) == 0) {
    return FailedPrecondition(
        fmt::format("replica '{}' exists already; remove it or let ftd replace it", path));
  }
  std::string partial = path + ".ftd-partial";
  int fd = open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(fmt::format("cannot create replica '{}'", partial), errno);
  return std::unique_ptr<ReplicaWriter>(new ReplicaWriter(fd, path, size));
}

Status ReplicaWriter::Append(uint64_t offset, std::string_view data) {
  if (offset != written_) {
    return InvalidArgument(fmt::format("replica '{}': chunk at offset {} but {} bytes written",
                                       path_, offset, written_));
  }
  if (written_ + data.size() > size_) {
    return InvalidArgument(fmt::format("replica '{}': chunk ends at {} past the image's {} bytes",
                                       path_, written_ + data.size(), size_));
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd_, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return ErrnoStatus(
          fmt::format("writing replica '{}' at offset {}", partial_, written_ + done), errno);
    }
    done += static_cast<size_t>(n);
  }
  hash_->Update(data);
  written_ += data.size();
  return Status::Ok();
}

Status ReplicaWriter::Finish(const ImageDigest& expected) {
  if (written_ != size_ || expected.size != size_) {
    return DataLoss(fmt::format("replica '{}': {} bytes written, the primary's image has {}", path_,
                                written_, expected.size));
  }
  std::string got = hash_->Hex();
  if (got != expected.sha256) {
    return DataLoss(fmt::format(
        "replica '{}': sha256 {} of what was written differs from the primary's image {}; "
        "the copy is discarded",
        path_, got, expected.sha256));
  }
  if (fsync(fd_) != 0) return ErrnoStatus(fmt::format("fsync of replica '{}'", partial_), errno);
  close(fd_);
  fd_ = -1;
  if (std::rename(partial_.c_str(), path_.c_str()) != 0) {
    return ErrnoStatus(fmt::format("cannot rename '{}' to '{}'", partial_, path_), errno);
  }
  finished_ = true;
  return Status::Ok();
}

}  // namespace ft::disk
