#include "unacked_log.h"

#include <algorithm>

namespace ft::daemon {

void UnackedLog::Append(std::string_view bytes) {
  if (bytes.empty()) return;
  chunks_.emplace_back(bytes);
  size_ += bytes.size();
}

uint64_t UnackedLog::Ack(uint64_t received) {
  if (received <= base_) return 0;
  uint64_t drop = std::min<uint64_t>(received - base_, size_);
  uint64_t left = drop;
  while (left > 0) {
    std::string& front = chunks_.front();
    uint64_t in_front = front.size() - front_skip_;
    if (left < in_front) {
      front_skip_ += static_cast<size_t>(left);
      left = 0;
    } else {
      left -= in_front;
      chunks_.pop_front();
      front_skip_ = 0;
    }
  }
  base_ += drop;
  size_ -= drop;
  return drop;
}

void UnackedLog::Clear() {
  base_ += size_;
  size_ = 0;
  chunks_.clear();
  front_skip_ = 0;
}

void UnackedLog::ForEachRun(
    const std::function<void(uint64_t offset, std::string_view bytes)>& fn) const {
  uint64_t offset = base_;
  size_t skip = front_skip_;
  for (const std::string& chunk : chunks_) {
    std::string_view run(chunk);
    run.remove_prefix(skip);
    skip = 0;
    fn(offset, run);
    offset += run.size();
  }
}

}  // namespace ft::daemon
