#include "preauth.h"

namespace ft::channel {

HandshakeSlots::Decision HandshakeSlots::Admit(uint64_t id, const std::string& address) {
  Decision d;
  const size_t mine = from(address);
  if (mine >= limits_.per_address) {
    d.verdict = Verdict::kTooManyFromAddress;
    return d;
  }
  if (in_progress() >= limits_.total) {
    // Evict from the busiest address, if it holds more than this one will.
    const std::set<uint64_t>* busiest = nullptr;
    for (const auto& [_, ids] : by_address_) {
      if (!busiest || ids.size() > busiest->size()) busiest = &ids;
    }
    if (!busiest || busiest->size() <= mine + 1) {
      d.verdict = Verdict::kFull;
      return d;
    }
    d.evicted = *busiest->begin();
    Release(*d.evicted);
  }
  address_of_.emplace(id, address);
  by_address_[address].insert(id);
  return d;
}

void HandshakeSlots::Release(uint64_t id) {
  auto it = address_of_.find(id);
  if (it == address_of_.end()) return;
  auto a = by_address_.find(it->second);
  a->second.erase(id);
  if (a->second.empty()) by_address_.erase(a);
  address_of_.erase(it);
}

size_t HandshakeSlots::from(const std::string& address) const {
  auto it = by_address_.find(address);
  return it == by_address_.end() ? 0 : it->second.size();
}

DroppedPeerReport::Noted DroppedPeerReport::Note(Clock::time_point now, const std::string& kind,
                                                 const std::string& line) {
  ++total_;
  Noted noted;
  if (!summary_pending_ && (!last_line_ || now - *last_line_ >= interval_)) {
    last_line_ = now;
    noted.line_now = line;
    return noted;
  }
  ++counts_[kind];
  ++suppressed_;
  last_ = line;
  if (!summary_pending_) {
    summary_pending_ = true;
    noted.summary_due = *last_line_ + interval_;
  }
  return noted;
}

std::optional<std::string> DroppedPeerReport::Summary(Clock::time_point now) {
  summary_pending_ = false;
  if (suppressed_ == 0) return std::nullopt;
  const auto seconds =
      std::chrono::duration_cast<std::chrono::milliseconds>(now - *last_line_).count() / 1000.0;
  char span[32];
  std::snprintf(span, sizeof span, "%.1f", seconds);
  std::string line = std::to_string(suppressed_) + " more connection" +
                     (suppressed_ == 1 ? "" : "s") + " dropped before authenticating in the last " +
                     span + " s (";
  bool first = true;
  for (const auto& [kind, n] : counts_) {
    line += (first ? "" : ", ") + std::to_string(n) + " " + kind;
    first = false;
  }
  line += "); the last: " + last_;
  counts_.clear();
  suppressed_ = 0;
  last_.clear();
  last_line_ = now;
  return line;
}

}  // namespace ft::channel
