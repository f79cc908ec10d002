// Copying a disk image from the primary's host to the backup's, in chunks over any
// transport: the sender reads the image and hashes what it sends; the receiver writes a
// temporary file next to the replica's path, hashes what it wrote, and only when size and
// sha256 match the sender's does it fsync and rename it into place. A copy that fails or is
// abandoned leaves no replica behind.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ft/disk/image_digest.h"
#include "ft/status.h"

namespace ft::disk {

class ImageReader {
 public:
  static Result<std::unique_ptr<ImageReader>> Open(const std::string& path);
  ~ImageReader();
  uint64_t size() const { return size_; }
  uint64_t offset() const { return offset_; }
  bool done() const { return offset_ >= size_; }
  // The next up to `max` bytes (empty at the end).
  Result<std::string> Next(size_t max);
  // The digest of everything read; valid once done().
  ImageDigest digest() const;

 private:
  struct Hash;
  ImageReader(int fd, uint64_t size, std::string path);
  int fd_;
  uint64_t size_, offset_ = 0;
  std::string path_;
  std::unique_ptr<Hash> hash_;
  std::string sha256_;
};

class ReplicaWriter {
 public:
  // Writes to `path`.ftd-partial (replacing a stale one); `path` itself is untouched until
  // Finish. kFailedPrecondition when `path` exists and `overwrite` is false.
  static Result<std::unique_ptr<ReplicaWriter>> Create(const std::string& path, uint64_t size,
                                                       bool overwrite);
  ~ReplicaWriter();  // removes the partial file unless Finish succeeded
  // Chunks must come in order; kInvalidArgument otherwise or past `size`; ENOSPC and other
  // write errors name the path.
  Status Append(uint64_t offset, std::string_view data);
  // Checks size and sha256 against the sender's, then fsyncs and renames into place.
  // kDataLoss naming both digests when they differ (the partial file is removed).
  Status Finish(const ImageDigest& expected);
  uint64_t written() const { return written_; }

 private:
  struct Hash;
  ReplicaWriter(int fd, std::string path, uint64_t size);
  int fd_;
  std::string path_, partial_;
  uint64_t size_, written_ = 0;
  std::unique_ptr<Hash> hash_;
  bool finished_ = false;
};

}  // namespace ft::disk
