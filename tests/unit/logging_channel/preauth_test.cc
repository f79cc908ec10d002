// What the channel allows a peer before it has authenticated, as pure functions: the checks on a
// Hello's strings, the cap on handshakes in progress and the once-per-interval report of dropped
// connections (fake time). The printable-text rule itself: tests/unit/common/names_test.cc.
#include "preauth.h"

#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ft/proto/channel.pb.h"
#include "handshake.h"

namespace ft::channel {
namespace {

using ::testing::HasSubstr;

TEST(Handshake, HelloStringsMustBePrintableAndBounded) {
  proto::Hello hello;
  hello.set_node("hostA");
  hello.set_vm("web1");
  hello.set_config_digest(std::string(64, 'a'));
  hello.set_replica_digest(std::string(64, 'b'));
  hello.set_store_id(std::string(32, 'c'));
  EXPECT_TRUE(CheckHelloText(hello).ok());
  hello.set_vm("");  // peer control
  EXPECT_TRUE(CheckHelloText(hello).ok());

  struct Case {
    const char* field;
    void (*set)(proto::Hello&);
    const char* shown;
  } cases[] = {
      {"node name", [](proto::Hello& h) { h.set_node("a\nb"); }, "'a\\x0ab'"},
      {"node name", [](proto::Hello& h) { h.set_node(std::string(65, 'n')); }, "…(65 bytes)'"},
      {"vm name", [](proto::Hello& h) { h.set_vm("\x1b]0;owned\x07"); }, "'\\x1b]0;owned\\x07'"},
      {"config digest", [](proto::Hello& h) { h.set_config_digest(std::string(129, 'd')); },
       "…(129 bytes)'"},
      {"replica digest", [](proto::Hello& h) { h.set_replica_digest("\xff"); }, "'\\xff'"},
      {"store id", [](proto::Hello& h) { h.set_store_id("id\r"); }, "'id\\x0d'"},
  };
  for (const auto& c : cases) {
    proto::Hello bad = hello;
    c.set(bad);
    Status s = CheckHelloText(bad);
    ASSERT_FALSE(s.ok()) << c.field;
    EXPECT_EQ(s.code(), StatusCode::kProtocol);
    EXPECT_THAT(s.message(), HasSubstr(std::string("sent a hello whose ") + c.field +
                                       " is not printable text of at most"));
    EXPECT_THAT(s.message(), HasSubstr(c.shown));
  }
}

using Verdict = HandshakeSlots::Verdict;

TEST(HandshakeSlots, CapsTotalAndPerAddress) {
  HandshakeSlots slots({4, 2});
  EXPECT_EQ(slots.Admit(1, "10.0.0.9").verdict, Verdict::kAdmitted);
  EXPECT_EQ(slots.Admit(2, "10.0.0.9").verdict, Verdict::kAdmitted);
  auto third = slots.Admit(3, "10.0.0.9");
  EXPECT_EQ(third.verdict, Verdict::kTooManyFromAddress);
  EXPECT_FALSE(third.evicted);
  EXPECT_EQ(slots.from("10.0.0.9"), 2u);
  EXPECT_EQ(slots.Admit(4, "10.0.0.7").verdict, Verdict::kAdmitted);
  EXPECT_EQ(slots.Admit(5, "10.0.0.6").verdict, Verdict::kAdmitted);
  EXPECT_EQ(slots.in_progress(), 4u);
  // Full: a newcomer evicts only from an address that would still hold as many as it.
  auto evicting = slots.Admit(6, "10.0.0.5");
  EXPECT_EQ(evicting.verdict, Verdict::kAdmitted);
  EXPECT_EQ(evicting.evicted, std::optional<uint64_t>(1));
  auto full = slots.Admit(7, "10.0.0.4");
  EXPECT_EQ(full.verdict, Verdict::kFull) << "four addresses, one handshake each";
  EXPECT_FALSE(full.evicted);
  // A handshake that ends gives its slot back; unknown or repeated releases do nothing.
  slots.Release(2);
  slots.Release(2);
  slots.Release(99);
  EXPECT_EQ(slots.in_progress(), 3u);
  EXPECT_EQ(slots.from("10.0.0.9"), 0u);
  EXPECT_EQ(slots.Admit(8, "10.0.0.4").verdict, Verdict::kAdmitted);
}

TEST(HandshakeSlots, AFullListenerEvictsTheOldestOfTheBusiestAddress) {
  HandshakeSlots slots({4, 4});
  for (uint64_t id = 1; id <= 3; ++id) {
    ASSERT_EQ(slots.Admit(id, "flood").verdict, Verdict::kAdmitted);
  }
  ASSERT_EQ(slots.Admit(4, "other").verdict, Verdict::kAdmitted);
  // The real peer's address holds none; the flood's holds 3: its oldest goes.
  auto d = slots.Admit(5, "peer");
  EXPECT_EQ(d.verdict, Verdict::kAdmitted);
  ASSERT_TRUE(d.evicted);
  EXPECT_EQ(*d.evicted, 1u);
  EXPECT_EQ(slots.from("flood"), 2u);
  EXPECT_EQ(slots.in_progress(), 4u);
  // The flood cannot win its slot back by reconnecting: it holds the most.
  auto again = slots.Admit(6, "flood");
  EXPECT_EQ(again.verdict, Verdict::kFull);
  EXPECT_FALSE(again.evicted);
  // Released after eviction (the evicted connection closing): nothing happens twice.
  slots.Release(1);
  EXPECT_EQ(slots.in_progress(), 4u);
}

TEST(HandshakeSlots, HundredsOfConnectionsFromFewAddressesStayWithinTheCaps) {
  HandshakeSlots slots({64, 8});
  size_t admitted = 0;
  for (uint64_t id = 1; id <= 400; ++id) {
    auto d = slots.Admit(id, "127.0.1." + std::to_string(id % 20));
    if (d.verdict == Verdict::kAdmitted) ++admitted;
    ASSERT_LE(slots.in_progress(), 64u);
    for (int a = 0; a < 20; ++a) ASSERT_LE(slots.from("127.0.1." + std::to_string(a)), 8u);
  }
  EXPECT_EQ(slots.in_progress(), 64u);
  EXPECT_GE(admitted, 64u);
  // ... and a real peer from elsewhere still gets a slot.
  auto d = slots.Admit(401, "10.0.0.1");
  EXPECT_EQ(d.verdict, Verdict::kAdmitted);
  EXPECT_TRUE(d.evicted);
}

TEST(DroppedPeerReport, FirstLineAtOnceThenOneSummaryPerInterval) {
  using namespace std::chrono_literals;
  DroppedPeerReport report(10s);
  const auto t0 = DroppedPeerReport::Clock::time_point() + 1h;
  auto first = report.Note(t0, "timed out in the handshake", "refused channel peer a: timeout");
  ASSERT_TRUE(first.line_now);
  EXPECT_EQ(*first.line_now, "refused channel peer a: timeout");
  EXPECT_FALSE(first.summary_due);
  // A flood in the same interval: nothing now, one summary due at the interval's end.
  auto second = report.Note(t0 + 1s, "sent a bad frame", "refused channel peer b: length");
  EXPECT_FALSE(second.line_now);
  ASSERT_TRUE(second.summary_due);
  EXPECT_EQ(*second.summary_due, t0 + 10s);
  for (int i = 0; i < 398; ++i) {
    auto n = report.Note(t0 + 2s, i % 2 ? "sent a bad frame" : "over the cap per address",
                         "refused channel peer c" + std::to_string(i) + ": x");
    EXPECT_FALSE(n.line_now);
    EXPECT_FALSE(n.summary_due) << "one summary is already due";
  }
  auto summary = report.Summary(t0 + 10s);
  ASSERT_TRUE(summary);
  EXPECT_EQ(*summary,
            "399 more connections dropped before authenticating in the last 10.0 s (199 over the "
            "cap per address, 200 sent a bad frame); the last: refused channel peer c397: x");
  EXPECT_EQ(report.total_dropped(), 400u);
  // The flood goes on: still counted, summed up one interval later.
  auto later = report.Note(t0 + 11s, "hung up", "refused channel peer d: eof");
  EXPECT_FALSE(later.line_now);
  ASSERT_TRUE(later.summary_due);
  EXPECT_EQ(*later.summary_due, t0 + 20s);
  EXPECT_EQ(*report.Summary(t0 + 20s),
            "1 more connection dropped before authenticating in the last 10.0 s (1 hung up); the "
            "last: refused channel peer d: eof");
  // Nothing counted: no summary. After a quiet interval the next one is logged at once.
  EXPECT_FALSE(report.Summary(t0 + 25s));
  auto quiet = report.Note(t0 + 31s, "hung up", "refused channel peer e: eof");
  ASSERT_TRUE(quiet.line_now);
  EXPECT_EQ(*quiet.line_now, "refused channel peer e: eof");
}

}  // namespace
}  // namespace ft::channel
