// The flush shim's log scan and its pacing limit. The scan (replay/shim/rr_log_scan.c) must
// count the same instructions as the C++ parser that feeds the backup, or pacing would hold
// the primary at the wrong place; the limit must hold a vCPU-like writer thread, never the
// main thread, and let it go when raised. The last tests LD_PRELOAD the built shim into a
// writer that fopen()s FTD_RR_PATH and writes like QEMU 7.2.
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "ft/replay/process.h"
#include "ft/replay/rr_log.h"
#include "ft/replay/rr_stream.h"
#include "rr_bytes.h"
#include "rr_log_scan.h"

namespace ft::replay {
namespace {

using namespace ::ft::replay::testing;  // U32, U64, Z, K, EveryKind
using namespace std::chrono_literals;

// ---- the scan against the C++ parser

struct Both {
  RrLogParser parser;
  ftd_rr_scan scan;
  bool parser_failed = false;
  Both() { ftd_rr_scan_init(&scan); }

  void Feed(std::string_view bytes) {
    if (!parser_failed) parser_failed = !parser.Feed(bytes, nullptr).ok();
    ftd_rr_scan_feed(&scan, bytes.data(), bytes.size());
  }
  // The scan knows what the parser knows after the same bytes.
  void ExpectAgree(const std::string& where) const {
    EXPECT_EQ(scan.failed != 0, parser_failed) << where;
    EXPECT_EQ(scan.icount, parser.icount()) << where;
    EXPECT_EQ(scan.consumed, parser.consumed()) << where;
    EXPECT_EQ(scan.events, parser.events()) << where;
    EXPECT_EQ(scan.ended != 0, parser.ended()) << where;
  }
};

void ExpectAgreeAtEverySplit(const std::string& log, const std::string& what) {
  for (size_t chunk :
       {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{7}, size_t{64}, log.size()}) {
    Both b;
    for (size_t at = 0; at < log.size(); at += chunk) {
      b.Feed(std::string_view(log).substr(at, chunk));
      b.ExpectAgree(what + ", chunk " + std::to_string(chunk) + " at " + std::to_string(at));
      if (::testing::Test::HasFailure()) return;
    }
  }
}

// A log like a recording's: mostly INSTRUCTION + CHECKPOINT pairs, with every other kind,
// inbound frames and long arrays in between. Ends with END.
std::string RecordingLike(size_t events, uint32_t seed) {
  std::mt19937 rng(seed);
  auto every = EveryKind();
  every.pop_back();  // END goes last
  std::string log;
  for (size_t i = 0; i < events; ++i) {
    uint32_t pick = rng() % 100;
    if (pick < 80) {
      log += EncodeInstructionEvent(1 + rng() % 200000);
      log += K(rr::kCheckpoint + rng() % 9);
    } else if (pick < 90) {
      log += every[rng() % every.size()];
    } else if (pick < 97) {
      std::string frame(60 + rng() % 1500, static_cast<char>(rng()));
      log += K(rr::kAsyncNet) + Z() + U32(0) + U32(static_cast<uint32_t>(frame.size())) + frame;
    } else {
      std::string bytes(20000 + rng() % 20000, '\x27');  // bytes that look like kinds
      log += K(rr::kCharReadAll) + U32(static_cast<uint32_t>(bytes.size())) + bytes;
    }
  }
  return log + K(rr::kEnd);
}

TEST(RrLogScanTest, AgreesWithTheParserOnEveryKindAtEverySplit) {
  std::string log;
  for (const auto& e : EveryKind()) log += e;
  ExpectAgreeAtEverySplit(log, "every kind");
}

TEST(RrLogScanTest, AgreesWithTheParserOnARecordingLikeLogFedInRandomPieces) {
  std::string log = RecordingLike(5000, 7);
  std::mt19937 rng(11);
  Both b;
  for (size_t at = 0; at < log.size();) {
    size_t n = std::min<size_t>(log.size() - at, rng() % 9000 == 0 ? 100000 : 1 + rng() % 300);
    b.Feed(std::string_view(log).substr(at, n));
    at += n;
    b.ExpectAgree("at " + std::to_string(at));
    if (HasFailure()) return;
  }
  EXPECT_TRUE(b.parser.ended());
  EXPECT_GT(b.scan.icount, 1'000'000u);
}

TEST(RrLogScanTest, StopsWhereTheParserDoesOnBytesThatAreNoLog) {
  std::string start = EncodeInstructionEvent(10) + K(rr::kCheckpoint);
  const std::pair<const char*, std::string> bad[] = {
      {"unknown kind", K(208)},
      {"oversized array", K(rr::kAsyncNet) + Z() + U32(0) + U32(0x7fffffff)},
      {"oversized char-read", K(rr::kAsyncCharRead) + Z() + U32(16 * 1024 * 1024 + 1)},
      {"unknown input type", K(rr::kAsyncInput) + U32(9)},
      {"unknown key type", K(rr::kAsyncInput) + U32(0) + U32(7)},
      {"oversized audio-in", K(rr::kAudioIn) + U64(uint64_t{1} << 40) + U64(0)},
      {"bytes after the end", K(rr::kEnd) + EncodeInstructionEvent(5)},
  };
  for (const auto& [what, tail] : bad) {
    std::string log = start + tail + EncodeInstructionEvent(1000);
    ExpectAgreeAtEverySplit(log, what);
    Both b;
    b.Feed(log);
    EXPECT_TRUE(b.scan.failed) << what;
    EXPECT_EQ(b.scan.icount, 10u) << what;
    b.Feed(EncodeInstructionEvent(1));  // failed for good
    EXPECT_EQ(b.scan.icount, 10u) << what;
  }
}

TEST(RrLogScanTest, AnEventBoundaryIsWhereNoEventIsHalfWritten) {
  ftd_rr_scan scan;
  ftd_rr_scan_init(&scan);
  std::string net = K(rr::kAsyncNet) + Z() + U32(0) + U32(40) + std::string(40, 'x');
  for (size_t i = 0; i < net.size(); ++i) {
    EXPECT_EQ(scan.pos == 0, i == 0) << i;
    ftd_rr_scan_feed(&scan, net.data() + i, 1);
  }
  EXPECT_EQ(scan.pos, 0u);
  EXPECT_EQ(scan.events, 1u);
}

TEST(RrShimCountersTest, RefusesAnotherLayoutVersionByName) {
  std::string path = (std::filesystem::temp_directory_path() / "ft-rr-counters-v1-XXXXXX").string();
  int fd = mkstemp(path.data());
  ASSERT_GE(fd, 0);
  uint64_t words[512] = {0x6674647272736831ULL};  // "ftdrrsh1": the layout with `hold`
  ASSERT_EQ(write(fd, words, sizeof words), static_cast<ssize_t>(sizeof words));
  close(fd);
  auto c = RrShimCounters::Open(path);
  std::filesystem::remove(path);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(c.status().message().find("layout '1', this ftd reads '2'"), std::string::npos)
      << c.status().message();
}

// ---- the shim, preloaded into a writer

class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "ft-rrshim-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// One run of rr_shim_writer under the shim: the log it writes, where, and its counters.
struct ShimWriter {
  ScratchDir dir;
  std::string log_path = dir.path() + "/rr.log";
  std::string counters_path = dir.path() + "/rr-counters";
  std::string go_path = dir.path() + "/go";
  std::unique_ptr<ChildProcess> process;

  Status Start(const std::string& log, const char* mode, const char* thread, bool wait_for_go,
               std::vector<std::string> env = {"FTD_RR_FLUSH_US=200"}) {
    std::string input = dir.path() + "/input.bin";
    std::ofstream(input, std::ios::binary) << log;
    SpawnOptions options;
    options.output_path = dir.path() + "/writer.out";
    options.extra_env = {"LD_PRELOAD=" FT_RR_SHIM_PATH, "FTD_RR_PATH=" + log_path,
                         "FTD_RR_COUNTERS=" + counters_path};
    for (auto& e : env) options.extra_env.push_back(std::move(e));
    std::vector<std::string> argv = {FT_RR_SHIM_WRITER, input, mode, thread};
    if (wait_for_go) argv.push_back(go_path);
    FT_ASSIGN_OR_RETURN(process, ChildProcess::Spawn(argv, options));
    return Status::Ok();
  }
  void Go() { std::ofstream(go_path) << "go"; }

  // The counters, once the shim has made them (at the writer's fopen).
  Result<RrShimCounters> Counters(bool writable) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
      auto c = RrShimCounters::Open(counters_path, writable);
      if (c.ok() || std::chrono::steady_clock::now() > deadline) return c;
      std::this_thread::sleep_for(1ms);
    }
  }

  ExitStatus Finish() {
    auto exit = process->WaitFor(10s);
    if (!exit) return process->Terminate(100ms);
    return *exit;
  }
  std::string Output() { return ReadAll(dir.path() + "/writer.out"); }
};

template <typename Fn>
bool Eventually(Fn fn, std::chrono::milliseconds within = 5s) {
  auto deadline = std::chrono::steady_clock::now() + within;
  while (!fn()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

class ShimIcountTest : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(ShimIcountTest, PublishedIcountIsTheParsers) {
  auto [mode, thread] = GetParam();
  std::string log = RecordingLike(3000, 3);
  RrLogParser parser;
  ASSERT_TRUE(parser.Feed(log, nullptr).ok());
  ShimWriter w;
  ASSERT_TRUE(w.Start(log, mode, thread, false).ok());
  ExitStatus exit = w.Finish();
  ASSERT_TRUE(exit.clean()) << exit.Describe() << ": " << w.Output();
  auto c = w.Counters(false);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(c->scan_failed());
  EXPECT_EQ(c->icount(), parser.icount());
  EXPECT_EQ(c->produced(), log.size());
  EXPECT_EQ(c->flushed(), log.size());
  EXPECT_TRUE(c->finished());
  EXPECT_TRUE(ReadAll(w.log_path) == log) << "the stream is the events, without the header";
}

INSTANTIATE_TEST_SUITE_P(WriteStyles, ShimIcountTest,
                         ::testing::Combine(::testing::Values("bytes", "chunks"),
                                            ::testing::Values("main", "worker")),
                         [](const auto& style) {
                           return std::string(std::get<0>(style.param)) + "_" +
                                  std::get<1>(style.param);
                         });

// 100 spans of 1000 instructions, each followed by a checkpoint: 6 bytes a pair.
std::string Spans() {
  std::string log;
  for (int i = 0; i < 100; ++i) log += EncodeInstructionEvent(1000) + K(rr::kCheckpoint);
  return log;
}

TEST(ShimPacingTest, LimitHoldsAWorkerAtTheNextEventAndRaisingItLetsGo) {
  ShimWriter w;
  ASSERT_TRUE(w.Start(Spans(), "bytes", "worker", true).ok());
  auto c = w.Counters(true);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  c->SetIcountLimit(10'500);
  w.Go();

  // Over the limit after the 11th span: held before the checkpoint that follows it.
  ASSERT_TRUE(Eventually([&] { return c->held() == 1; })) << "icount " << c->icount();
  EXPECT_EQ(c->icount(), 11'000u);
  EXPECT_EQ(c->produced(), 10 * 6 + 5u);
  EXPECT_TRUE(Eventually([&] { return c->flushed() == c->produced(); }))
      << "what was written before the hold must still flow";
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(c->held(), 1);
  EXPECT_EQ(c->produced(), 10 * 6 + 5u) << "a held writer wrote on";

  c->SetIcountLimit(50'500);
  ASSERT_TRUE(Eventually([&] { return c->icount() == 51'000u && c->held() == 1; }))
      << "icount " << c->icount();
  EXPECT_EQ(c->produced(), 50 * 6 + 5u);

  c->SetIcountLimit(0);  // no limit
  ExitStatus exit = w.Finish();
  ASSERT_TRUE(exit.clean()) << exit.Describe() << ": " << w.Output();
  EXPECT_EQ(c->icount(), 100'000u);
  EXPECT_EQ(c->held(), 0);
  EXPECT_GE(c->blocked(), 200ms);
}

// A frame QEMU sends is covered by the log event that starts at or after it; the shim
// flushes as soon as that event is whole instead of at its next period (100 ms here).
TEST(ShimSendTest, ASendFlushesOnceTheNextEventIsWholeNotAtThePeriod) {
  ShimWriter w;
  // The send comes after 5 spans (30 bytes); the event after it ends at byte 35.
  ASSERT_TRUE(
      w.Start(Spans(), "bytes", "worker", true,
              {"FTD_RR_FLUSH_US=100000", "FT_WRITER_SEND_AT=30", "FT_WRITER_LINGER_MS=1000"})
          .ok());
  auto c = w.Counters(false);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto go = std::chrono::steady_clock::now();
  w.Go();
  ASSERT_TRUE(Eventually([&] { return c->flushed() >= 35; }, 2s)) << "flushed " << c->flushed();
  auto took = std::chrono::steady_clock::now() - go;
  EXPECT_LT(took, 50ms) << "the covering event waited for the flush period";
  ExitStatus exit = w.Finish();
  ASSERT_TRUE(exit.clean()) << exit.Describe() << ": " << w.Output();
  EXPECT_EQ(c->flushed(), Spans().size()) << "everything goes out at the close";
}

TEST(ShimPacingTest, MainThreadIsNeverHeld) {
  ShimWriter w;
  ASSERT_TRUE(w.Start(Spans(), "bytes", "main", true).ok());
  auto c = w.Counters(true);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  c->SetIcountLimit(10'500);
  w.Go();
  ExitStatus exit = w.Finish();
  ASSERT_TRUE(exit.clean()) << exit.Describe() << ": " << w.Output();
  EXPECT_EQ(c->icount(), 100'000u);
  EXPECT_EQ(c->blocked(), 0ns);
}

TEST(ShimPacingTest, ALogThatDoesNotScanIsNeverHeld) {
  std::string log = EncodeInstructionEvent(5) + K(208) + Spans();
  ShimWriter w;
  ASSERT_TRUE(w.Start(log, "bytes", "worker", true).ok());
  auto c = w.Counters(true);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  c->SetIcountLimit(10);
  w.Go();
  ExitStatus exit = w.Finish();
  ASSERT_TRUE(exit.clean()) << exit.Describe() << ": " << w.Output();
  EXPECT_TRUE(c->scan_failed());
  EXPECT_EQ(c->icount(), 5u);
  EXPECT_EQ(c->produced(), log.size()) << "QEMU's bytes still go out";
  EXPECT_EQ(c->blocked(), 0ns);
}

}  // namespace
}  // namespace ft::replay
