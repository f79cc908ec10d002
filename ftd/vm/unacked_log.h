// The log a primary holds until its backup acknowledges it: bytes [base(), end()) of the
// record log. It is what a backup that (re)connects is sent from the start, and what the
// primary's memory bound (max_unacked_mib) counts. Appends and acks cost the bytes appended
// or dropped, not the bytes held: the log is kept as the chunks it was read in, and an ack
// drops whole chunks and trims the first (a single buffer erased from its front moved every
// held byte on every ack).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

namespace ft::daemon {

class UnackedLog {
 public:
  // The log's next bytes, read at offset end().
  void Append(std::string_view bytes);

  // The backup has received the log up to `received`: the bytes before it are dropped.
  // An ack at or before base() changes nothing; one past end() drops everything held (the
  // base never moves past what was appended). Returns how many bytes were dropped.
  uint64_t Ack(uint64_t received);

  // No backup to hold it for any more: everything held is dropped, base() moves to end().
  void Clear();

  uint64_t base() const { return base_; }
  uint64_t end() const { return base_ + size_; }
  uint64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Every held byte in order, as (offset in the log, bytes) runs: what a connecting backup
  // is sent.
  void ForEachRun(const std::function<void(uint64_t offset, std::string_view bytes)>& fn) const;

 private:
  std::deque<std::string> chunks_;
  size_t front_skip_ = 0;  // bytes of chunks_.front() already acked
  uint64_t base_ = 0;
  uint64_t size_ = 0;
};

}  // namespace ft::daemon
