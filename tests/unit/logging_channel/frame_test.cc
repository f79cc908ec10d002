// The frame codec and the handshake's pure pieces, byte by byte.
#include "frame.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ft/proto/channel.pb.h"
#include "handshake.h"

namespace ft::channel {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> DecodeAll(FrameDecoder& d) {
  std::vector<std::string> out;
  while (true) {
    auto next = d.Next();
    EXPECT_TRUE(next.ok()) << next.status().ToString();
    if (!next.ok() || !next->has_value()) return out;
    out.emplace_back(**next);
  }
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(FrameCodec, RoundTrip) {
  const std::vector<std::string> payloads = {"a", std::string(1, '\0'), RandomBytes(1000, 1),
                                             RandomBytes(70000, 2), "last"};
  std::string wire;
  for (const auto& p : payloads) wire += EncodeFrame(p);
  FrameDecoder d(1 << 20, "peer");
  d.Append(wire);
  EXPECT_EQ(DecodeAll(d), payloads);
  EXPECT_EQ(d.frames_decoded(), payloads.size());
  EXPECT_EQ(d.buffered_bytes(), 0u);
}

// fuzz/corpus/channel_frame/empty-append: UBSan saw memcpy to a null buffer.
TEST(FrameCodec, AppendingNothingToAFreshDecoderIsANoOp) {
  FrameDecoder d(4096, "test");
  d.Append("");
  EXPECT_EQ(d.buffered_bytes(), 0u);
  auto next = d.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  d.Append(EncodeFrame("x"));
  d.Append("");
  EXPECT_EQ(DecodeAll(d), std::vector<std::string>{"x"});
}

TEST(FrameCodec, HeaderIsBigEndianLengthAndCrc) {
  const std::string wire = EncodeFrame("123456789");
  ASSERT_EQ(wire.size(), 8u + 9u);
  EXPECT_EQ(wire.substr(0, 4), std::string("\0\0\0\x09", 4));
  // CRC-32 check value of "123456789" is 0xcbf43926.
  EXPECT_EQ(wire.substr(4, 4), std::string("\xcb\xf4\x39\x26", 4));
}

TEST(FrameCodec, SplitReadsAtEveryByte) {
  const std::vector<std::string> payloads = {RandomBytes(300, 3), "x", RandomBytes(17, 4)};
  std::string wire;
  for (const auto& p : payloads) wire += EncodeFrame(p);
  // Two reads, split at every position.
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    FrameDecoder d(1 << 20, "peer");
    d.Append(wire.substr(0, cut));
    auto got = DecodeAll(d);
    d.Append(wire.substr(cut));
    auto rest = DecodeAll(d);
    got.insert(got.end(), rest.begin(), rest.end());
    ASSERT_EQ(got, payloads) << "cut at " << cut;
  }
  // One byte per read, through Prepare/Commit as the session reads.
  FrameDecoder d(1 << 20, "peer");
  std::vector<std::string> got;
  for (char c : wire) {
    auto [p, n] = d.Prepare(1);
    ASSERT_GE(n, 1u);
    *p = c;
    d.Commit(1);
    auto more = DecodeAll(d);
    got.insert(got.end(), more.begin(), more.end());
  }
  EXPECT_EQ(got, payloads);
}

TEST(FrameCodec, OversizedLengthIsProtocolError) {
  std::string wire = EncodeFrame("ok") + EncodeFrame(std::string(101, 'x'));
  FrameDecoder d(100, "10.0.0.2:7000");
  d.Append(wire.substr(0, 10 + 8));  // first frame and only the second's header
  auto first = d.Next();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(**first, "ok");
  auto second = d.Next();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kProtocol);
  EXPECT_THAT(second.status().message(), HasSubstr("frame 2 from 10.0.0.2:7000"));
  EXPECT_THAT(second.status().message(), HasSubstr("length 101 bytes exceeds the limit of 100"));
}

// Issue 19: 400 connections each announcing 4 MiB took 1 GiB because the decoder made room
// for the announced length at once. It may hold only what has arrived.
TEST(FrameCodec, AnnouncedLengthIsNotAllocatedBeforeItsBytesArrive) {
  const std::string payload = RandomBytes(4u << 20, 6);
  const std::string wire = EncodeFrame(payload);
  FrameDecoder d(4u << 20, "peer");
  d.Append(wire.substr(0, 8));  // a header announcing 4 MiB, and nothing more
  auto none = d.Next();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_LT(d.capacity_bytes(), 4096u);
  // As the session reads (Prepare/Commit, 64 KiB at a time), it grows with what arrived.
  size_t fed = 8;
  while (fed < wire.size()) {
    auto [p, n] = d.Prepare(64 * 1024);
    const size_t take = std::min(n, wire.size() - fed);
    std::memcpy(p, wire.data() + fed, take);
    d.Commit(take);
    fed += take;
    if (fed < wire.size()) {
      auto partial = d.Next();
      ASSERT_TRUE(partial.ok());
      ASSERT_FALSE(partial->has_value());
      ASSERT_LE(d.capacity_bytes(), 2 * (fed + 64 * 1024)) << "after " << fed << " bytes";
    }
  }
  auto whole = d.Next();
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  ASSERT_TRUE(whole->has_value());
  EXPECT_TRUE(**whole == payload);
}

TEST(FrameCodec, LimitIsRaisedOnceThePeerIsAuthenticated) {
  const std::string hello(300, 'h'), log(100000, 'l');
  FrameDecoder d(4u << 20, "10.0.0.1:41234");
  d.SetMaxFrameBytes(4096, "before authentication");
  d.Append(EncodeFrame(hello));
  auto first = d.Next();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(**first, hello);
  EXPECT_EQ(d.max_frame_bytes(), 4096u);
  d.SetMaxFrameBytes(4u << 20);
  d.Append(EncodeFrame(log));
  auto second = d.Next();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->value().size(), log.size());

  FrameDecoder early(4096, "10.0.0.1:41234", "before authentication");
  early.Append(EncodeFrame(log).substr(0, 8));
  auto r = early.Next();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kProtocol);
  EXPECT_THAT(r.status().message(),
              HasSubstr("frame 1 from 10.0.0.1:41234: length 100000 bytes exceeds the limit of "
                        "4096 before authentication"));
}

TEST(FrameCodec, ZeroLengthIsProtocolError) {
  FrameDecoder d(100, "peer");
  d.Append(std::string(8, '\0'));
  auto r = d.Next();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kProtocol);
  EXPECT_THAT(r.status().message(), HasSubstr("zero length"));
}

TEST(FrameCodec, AnyFlippedBitIsDataLossAndSticky) {
  const std::string payload = RandomBytes(64, 5);
  const std::string good = EncodeFrame("first");
  const std::string frame = EncodeFrame(payload);
  // Flip one bit in every byte of the CRC field and the payload (the length field changes
  // the framing instead and is covered above).
  for (size_t i = 4; i < frame.size(); ++i) {
    std::string bad = frame;
    bad[i] ^= 0x10;
    FrameDecoder d(1 << 20, "peer:1");
    d.Append(good + bad + good);
    auto first = d.Next();
    ASSERT_TRUE(first.ok());
    auto r = d.Next();
    ASSERT_FALSE(r.ok()) << "flip at " << i;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
    EXPECT_THAT(r.status().message(), HasSubstr("frame 2 from peer:1: CRC mismatch"));
    // The stream cannot be trusted after that: the good frame behind it is not delivered.
    EXPECT_FALSE(d.Next().ok());
  }
}

TEST(Handshake, MacBindsKeyRoleNoncesAndHellos) {
  const std::string n1(32, 'a'), n2(32, 'b');
  const std::string base = HandshakeMac("key", Role::kConnector, n1, n2, "hello1", "hello2");
  EXPECT_EQ(base.size(), kMacBytes);
  EXPECT_EQ(base, HandshakeMac("key", Role::kConnector, n1, n2, "hello1", "hello2"));
  EXPECT_NE(base, HandshakeMac("kez", Role::kConnector, n1, n2, "hello1", "hello2"));
  EXPECT_NE(base, HandshakeMac("key", Role::kAcceptor, n1, n2, "hello1", "hello2"));
  EXPECT_NE(base, HandshakeMac("key", Role::kConnector, n2, n1, "hello1", "hello2"));
  EXPECT_NE(base, HandshakeMac("key", Role::kConnector, n1, n2, "hello2", "hello1"));
  // Moving a byte from one hello to the other changes the mac (length-prefixed fields).
  EXPECT_NE(base, HandshakeMac("key", Role::kConnector, n1, n2, "hello", "1hello2"));
  EXPECT_TRUE(MacMatches(base, base));
  EXPECT_FALSE(MacMatches(base, base.substr(1)));
}

TEST(Handshake, NoncesAreFresh) {
  auto a = MakeNonce(), b = MakeNonce();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), kNonceBytes);
  EXPECT_NE(*a, *b);
}

constexpr char kStoreA[] = "5f0c1a2b3c4d5e6f708192a3b4c5d6e7";
constexpr char kStoreB[] = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b";

TEST(Handshake, FillHelloAndIdentityOfRoundTrip) {
  const Identity a{"hostA", "web1", "3fa2c81d09e4b7a65f01aa", 0x00e0200c, 3, "9c1e0b7d44aa",
                   true,    kStoreA};
  proto::Hello hello;
  FillHello(a, std::string(kNonceBytes, 'n'), &hello);
  EXPECT_TRUE(hello.failover());
  EXPECT_EQ(hello.store_id(), kStoreA);
  const Identity back = IdentityOf(hello);
  EXPECT_EQ(back.node, a.node);
  EXPECT_EQ(back.vm, a.vm);
  EXPECT_EQ(back.config_digest, a.config_digest);
  EXPECT_EQ(back.rr_version, a.rr_version);
  EXPECT_EQ(back.epoch, a.epoch);
  EXPECT_EQ(back.replica_digest, a.replica_digest);
  EXPECT_EQ(back.failover, a.failover);
  EXPECT_EQ(back.store_id, a.store_id);
}

TEST(Handshake, IdentityMismatchNamesFieldNodesAndValues) {
  Identity a{"hostA", "web1", "3fa2c81d09e4b7a65f01aa", 0x00e0200c, 3, "9c1e0b7d44aa",
             true,    kStoreA};
  Identity b = a;
  b.node = "hostB";
  EXPECT_TRUE(CompareIdentities(a, b).ok());

  Identity d = b;
  d.config_digest = "9c01ffee12345678abcdef";
  Status s = CompareIdentities(a, d);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "vm 'web1': config digest differs: peer 'hostB' has 9c01ffee1234… but this host "
            "'hostA' has 3fa2c81d09e4…; the two hosts' VM definitions differ");

  Identity r = b;
  r.rr_version = 0x00e0200d;
  EXPECT_THAT(CompareIdentities(a, r).message(),
              HasSubstr("rr log version differs: peer 'hostB' has 0x00e0200d but this host "
                        "'hostA' has 0x00e0200c"));

  Identity e = b;
  e.epoch = 4;
  EXPECT_THAT(CompareIdentities(a, e).message(),
              HasSubstr("epoch differs: peer 'hostB' is at epoch 4 but this host 'hostA' is at "
                        "epoch 3"));

  // A backup replica that is not the primary's image as it was at start: replay would
  // diverge at the first read of a differing block.
  Identity disk = b;
  disk.replica_digest = "51ab03e2f9c0";
  EXPECT_THAT(CompareIdentities(a, disk).message(),
              HasSubstr("disk replicas differ: peer 'hostB' has 51ab03e2f9c0 but this host "
                        "'hostA' has 9c1e0b7d44aa"));

  Identity v = b;
  v.vm = "db1";
  EXPECT_THAT(CompareIdentities(a, v).message(), HasSubstr("'db1'"));

  // Two hosts of one name would both win the same failover claim (it names the winner).
  EXPECT_THAT(CompareIdentities(a, a).message(),
              HasSubstr("the peer is also named 'hostA'; the two hosts' node names must differ"));
}

// Two hosts deciding failovers on two stores, or one host alone, could both go live.
TEST(Handshake, APairOnTwoClaimStoresIsRefusedNamingBothStores) {
  Identity a{"hostA", "web1", "3fa2c81d09e4b7a65f01aa", 0x00e0200c, 3, "", true, kStoreA};
  Identity b = a;
  b.node = "hostB";
  EXPECT_TRUE(CompareIdentities(a, b).ok());  // one store: fine

  Identity other = b;
  other.store_id = kStoreB;
  Status s = CompareIdentities(a, other);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "vm 'web1': claim store differs: peer 'hostB' uses claim store 9e8d7c6b5a4f… but "
            "this host 'hostA' uses 5f0c1a2b3c4d…; the two hosts must mount the same shared "
            "storage (is it mounted on both? 'ftctl init-storage' prints a store's id)");
  EXPECT_THAT(CompareIdentities(other, a).message(),
              HasSubstr("claim store differs: peer 'hostA' uses claim store 5f0c1a2b3c4d… but "
                        "this host 'hostB' uses 9e8d7c6b5a4f…"));
  // Checked before the VM's own fields: the store is the first thing to fix.
  other.config_digest = "9c01ffee12345678abcdef";
  EXPECT_THAT(CompareIdentities(a, other).message(), HasSubstr("claim store differs"));

  // A side with failover on that has not read its store matches no store.
  Identity unread = b;
  unread.store_id = "";
  EXPECT_THAT(CompareIdentities(a, unread).message(),
              HasSubstr("claim store differs: peer 'hostB' uses claim store (id unknown: not "
                        "read) but this host 'hostA' uses 5f0c1a2b3c4d…"));

  Identity off = b;
  off.failover = false;
  off.store_id = "";
  s = CompareIdentities(a, off);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "vm 'web1': failover differs: peer 'hostB' has no claim store (no [node] "
            "shared_storage) but this host 'hostA' uses claim store 5f0c1a2b3c4d…; both hosts "
            "must set shared_storage to the same mounted claim store, or neither");
  EXPECT_THAT(CompareIdentities(off, a).message(),
              HasSubstr("failover differs: peer 'hostA' uses claim store 5f0c1a2b3c4d… but this "
                        "host 'hostB' has no claim store (no [node] shared_storage)"));

  // Neither host decides failovers: nothing to compare.
  Identity a_off = a;
  a_off.failover = false;
  a_off.store_id = "";
  EXPECT_TRUE(CompareIdentities(a_off, off).ok());
}

// The daemons' own session states failover from the node config but reads no store.
TEST(Handshake, PeerControlComparesFailoverButNotTheStore) {
  const Identity a{"hostA", "", "", 0, 0, "", true, "", Service::kPeerControl};
  Identity b{"hostB", "", "", 0, 0, "", true, "", Service::kPeerControl};
  EXPECT_TRUE(CompareIdentities(a, b).ok());
  b.store_id = kStoreB;
  EXPECT_TRUE(CompareIdentities(a, b).ok());
  b.failover = false;
  b.store_id = "";
  Status s = CompareIdentities(a, b);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      s.message(),
      "peer control: failover differs: peer 'hostB' has no claim store (no [node] shared_storage) "
      "but this host 'hostA' uses a claim store; both hosts must set shared_storage to the "
      "same mounted claim store, or neither");
}

// A VM's log session and the daemons' own are different services: neither is taken for the
// other, whatever the vm name says.
TEST(Handshake, TheServiceMustMatch) {
  const Identity control{"hostA", "", "", 0, 0, "", true, "", Service::kPeerControl};
  Identity log{"hostB", "", "", 0, 0, "", true, ""};
  Status s = CompareIdentities(control, log);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "service differs: peer 'hostB' asks for a VM's log but this host 'hostA' serves peer "
            "control");
}

TEST(Handshake, AnIdentityHelloNamesAVmExactlyForAVmsLog) {
  proto::Hello hello;
  hello.set_service(proto::SERVICE_VM_LOG);
  hello.set_vm("web1");
  EXPECT_TRUE(CheckHelloService(hello).ok());
  hello.set_vm("");
  EXPECT_THAT(CheckHelloService(hello).message(),
              ::testing::HasSubstr("a hello for a VM's log that names no vm"));
  hello.set_service(proto::SERVICE_PEER_CONTROL);
  EXPECT_TRUE(CheckHelloService(hello).ok());
  hello.set_vm("web1");
  EXPECT_THAT(CheckHelloService(hello).message(),
              ::testing::HasSubstr("a peer-control hello that names vm 'web1'"));
  hello.set_service(proto::SERVICE_UNSPECIFIED);
  hello.set_vm("web1");
  EXPECT_THAT(CheckHelloService(hello).message(),
              ::testing::HasSubstr("a hello for service 0, not one this host serves"));
  hello.set_service(static_cast<proto::Service>(7));  // a newer peer's
  EXPECT_FALSE(CheckHelloService(hello).ok());
}

}  // namespace
}  // namespace ft::channel
