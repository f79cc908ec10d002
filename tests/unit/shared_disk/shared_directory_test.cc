#include "ft/shared_disk/shared_directory.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ft/crc32.h"
#include "ft/shared_disk/claim_record.h"
#include "ft/shared_disk/store_marker.h"
#include "test_dirs.h"

namespace ft::shared_disk {
namespace {

using testing::HasTempFile;
using testing::Names;
using testing::ReadAll;
using testing::ScratchDir;
using testing::WriteAll;

bool Contains(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

class SharedDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(SharedDirectoryTestAndSet::Initialize(root_).ok()); }
  std::string RecordPath(const std::string& vm, uint64_t epoch) const {
    return fmt::format("{}/{}/{}", root_, vm, ClaimFileName(epoch));
  }

  ScratchDir scratch_;
  std::string root_ = scratch_.path();
  SharedDirectoryTestAndSet store_{root_};
};

TEST_F(SharedDirectoryTest, LayoutIsOneRecordFilePerEpochAndNoTempFiles) {
  ASSERT_TRUE(store_.Claim({"web1", 7, "hostB", "why"}).ok());
  EXPECT_EQ(Names(root_), (std::set<std::string>{"ftd-claim-store", "web1"}));
  EXPECT_EQ(Names(root_ + "/web1"), (std::set<std::string>{"epoch-00000000000000000007.claim"}));
  Result<ClaimRecord> decoded = DecodeClaimRecord(ReadAll(RecordPath("web1", 7)));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->winner, "hostB");
  // Losing and retrying leave nothing behind either.
  ASSERT_TRUE(store_.Claim({"web1", 7, "hostA", ""}).ok());
  ASSERT_TRUE(store_.Claim({"web1", 7, "hostB", ""}).ok());
  EXPECT_EQ(Names(root_ + "/web1").size(), 1u);
}

TEST_F(SharedDirectoryTest, InitializeIsIdempotentAndTrailingSlashesDoNotMatter) {
  EXPECT_TRUE(SharedDirectoryTestAndSet::Initialize(root_).ok());
  SharedDirectoryTestAndSet slashed(root_ + "//");
  EXPECT_TRUE(slashed.Claim({"web1", 1, "hostA", ""}).ok());
  EXPECT_TRUE(store_.Read("web1", 1).ok());
}

// The store's identity: what the two hosts compare in their handshake.
class StoreIdTest : public ::testing::Test {
 protected:
  std::string MarkerPath() const { return root_ + "/ftd-claim-store"; }

  ScratchDir scratch_;
  std::string root_ = scratch_.path();
  SharedDirectoryTestAndSet store_{root_};
};

TEST_F(StoreIdTest, InitializeWritesAVersionTwoMarkerWithARandomIdThatStoreIdReads) {
  Result<std::string> id = SharedDirectoryTestAndSet::Initialize(root_);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_TRUE(IsValidStoreId(*id)) << *id;
  EXPECT_EQ(ReadAll(MarkerPath()), EncodeStoreMarker(*id));
  EXPECT_EQ(Names(root_), (std::set<std::string>{"ftd-claim-store"}));  // no temp file left
  Result<std::string> read = store_.StoreId();
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(*read, *id);

  ScratchDir other;
  Result<std::string> other_id = SharedDirectoryTestAndSet::Initialize(other.path());
  ASSERT_TRUE(other_id.ok()) << other_id.status().ToString();
  EXPECT_NE(*other_id, *id);  // two stores, two ids
}

TEST_F(StoreIdTest, InitializeAgainKeepsTheId) {
  Result<std::string> first = SharedDirectoryTestAndSet::Initialize(root_);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  const std::string marker = ReadAll(MarkerPath());
  for (const std::string& spelled : {root_, root_ + "/", root_ + "//"}) {
    Result<std::string> again = SharedDirectoryTestAndSet::Initialize(spelled);
    ASSERT_TRUE(again.ok()) << again.status().ToString();
    EXPECT_EQ(*again, *first);
  }
  EXPECT_EQ(ReadAll(MarkerPath()), marker);
  EXPECT_EQ(Names(root_).size(), 1u);
}

// A store made by an older ftd: claims go on as before, StoreId says what to do, and
// init-storage gives it an id without disturbing its records.
TEST_F(StoreIdTest, AVersionOneStoreWorksHasNoIdAndInitializeUpgradesIt) {
  WriteAll(MarkerPath(), "ftd-claim-store 1\n");
  ASSERT_TRUE(store_.Claim({"web1", 1, "hostA", ""}).ok());
  Result<std::string> none = store_.StoreId();
  EXPECT_EQ(none.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(none.status().message(),
            fmt::format("claim store '{}' has no identity (made by an older ftd): run 'ftctl "
                        "init-storage {}' again",
                        root_, root_));

  Result<std::string> id = SharedDirectoryTestAndSet::Initialize(root_);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_TRUE(IsValidStoreId(*id)) << *id;
  EXPECT_EQ(ReadAll(MarkerPath()), EncodeStoreMarker(*id));
  EXPECT_EQ(*store_.StoreId(), *id);
  EXPECT_EQ(*SharedDirectoryTestAndSet::Initialize(root_), *id);
  EXPECT_EQ(Names(root_), (std::set<std::string>{"ftd-claim-store", "web1"}));
  EXPECT_EQ(store_.Read("web1", 1)->winner, "hostA");
}

TEST_F(StoreIdTest, EveryFlippedByteOfTheMarkerIsDataLossNamingItAndInitializeLeavesIt) {
  ASSERT_TRUE(SharedDirectoryTestAndSet::Initialize(root_).ok());
  const std::string good = ReadAll(MarkerPath());
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    WriteAll(MarkerPath(), bad);
    Result<std::string> id = store_.StoreId();
    ASSERT_FALSE(id.ok()) << "byte " << i << " flipped went unnoticed";
    EXPECT_EQ(id.status().code(), StatusCode::kDataLoss) << id.status().ToString();
    EXPECT_TRUE(Contains(id.status(), "claim store marker '" + MarkerPath() + "'"))
        << id.status().ToString();
    Result<std::string> init = SharedDirectoryTestAndSet::Initialize(root_);
    EXPECT_EQ(init.status().code(), StatusCode::kDataLoss) << "byte " << i;
    EXPECT_TRUE(Contains(init.status(), "remove it by hand")) << init.status().ToString();
    EXPECT_EQ(ReadAll(MarkerPath()), bad);  // evidence, never overwritten
  }
}

TEST_F(StoreIdTest, ANewerMarkerIsRefusedAndNotReplaced) {
  std::string content = "ftd-claim-store 3\nid 5f0c1a2b3c4d5e6f708192a3b4c5d6e7\n";
  content += fmt::format("crc32 {:08x}\n", Crc32(content));
  WriteAll(MarkerPath(), content);
  EXPECT_EQ(store_.StoreId().status().code(), StatusCode::kFailedPrecondition);
  Result<std::string> init = SharedDirectoryTestAndSet::Initialize(root_);
  EXPECT_EQ(init.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(Contains(init.status(), "version 3")) << init.status().ToString();
  EXPECT_EQ(ReadAll(MarkerPath()), content);
}

// The share did not mount and the operator runs init-storage on the empty mount point.
TEST_F(StoreIdTest, ExpectMountRefusesADirectoryThatIsNotAMountPoint) {
  Result<std::string> id = SharedDirectoryTestAndSet::Initialize(root_, {.expect_mount = true});
  EXPECT_EQ(id.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(id.status().message(),
            fmt::format("'{}' is not a mount point: is the shared storage mounted? "
                        "(--expect-mount)",
                        root_));
  EXPECT_TRUE(Names(root_).empty());
  // Even where a store was made by mistake earlier.
  ASSERT_TRUE(SharedDirectoryTestAndSet::Initialize(root_).ok());
  EXPECT_EQ(SharedDirectoryTestAndSet::Initialize(root_, {.expect_mount = true}).status().code(),
            StatusCode::kFailedPrecondition);
}

TEST_F(StoreIdTest, StoreIdOfADirectoryThatIsNoStoreIsUnavailable) {
  Result<std::string> id = store_.StoreId();
  EXPECT_EQ(id.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(id.status(), "is the shared storage mounted?")) << id.status().ToString();
  EXPECT_TRUE(Names(root_).empty());
}

// Two claimers at once, many times: exactly one winner per epoch, and everyone agrees who.
TEST_F(SharedDirectoryTest, RacingThreadsHaveExactlyOneWinnerPerEpoch) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::vector<std::vector<Result<ClaimOutcome>>> results(kThreads);
  std::barrier sync(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      SharedDirectoryTestAndSet own(root_);  // as a separate node would have
      for (int round = 1; round <= kRounds; ++round) {
        sync.arrive_and_wait();
        results[t].push_back(
            own.Claim({"web1", static_cast<uint64_t>(round), fmt::format("node{}", t), "race"}));
      }
    });
  }
  for (auto& th : threads) th.join();

  for (int round = 1; round <= kRounds; ++round) {
    Result<ClaimRecord> stored = store_.Read("web1", round);
    ASSERT_TRUE(stored.ok()) << stored.status().ToString();
    int winners = 0;
    for (int t = 0; t < kThreads; ++t) {
      const Result<ClaimOutcome>& r = results[t][round - 1];
      ASSERT_TRUE(r.ok()) << "round " << round << ": " << r.status().ToString();
      EXPECT_EQ(r->record, *stored) << "round " << round << " thread " << t;
      if (r->won()) {
        ++winners;
        EXPECT_EQ(stored->winner, fmt::format("node{}", t));
      }
    }
    EXPECT_EQ(winners, 1) << "round " << round;
  }
  EXPECT_FALSE(HasTempFile(root_ + "/web1"));
}

// The same across processes (separate address spaces, as two hosts are), in rounds kept in
// step by a process-shared barrier; each child reports W/L/E per round through a pipe.
TEST_F(SharedDirectoryTest, RacingProcessesHaveExactlyOneWinnerPerEpoch) {
  constexpr int kProcesses = 2;
  constexpr int kRounds = 200;
  void* shared = ::mmap(nullptr, sizeof(pthread_barrier_t), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(shared, MAP_FAILED);
  auto* barrier = static_cast<pthread_barrier_t*>(shared);
  pthread_barrierattr_t attr;
  pthread_barrierattr_init(&attr);
  pthread_barrierattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  ASSERT_EQ(pthread_barrier_init(barrier, &attr, kProcesses), 0);
  pthread_barrierattr_destroy(&attr);

  int report[kProcesses][2];
  std::vector<pid_t> children;
  for (int c = 0; c < kProcesses; ++c) {
    ASSERT_EQ(::pipe(report[c]), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      SharedDirectoryTestAndSet own(root_);
      std::string out;
      for (uint64_t e = 1; e <= kRounds; ++e) {
        pthread_barrier_wait(barrier);
        Result<ClaimOutcome> r = own.Claim({"web1", e, fmt::format("proc{}", c), "race"});
        out += !r.ok() ? 'E' : r->won() ? 'W' : 'L';
      }
      ::_exit(::write(report[c][1], out.data(), out.size()) == kRounds ? 0 : 4);
    }
    ::close(report[c][1]);
    children.push_back(pid);
  }

  std::string outcome[kProcesses];
  for (int c = 0; c < kProcesses; ++c) {
    char buf[kRounds];
    ssize_t n;
    while ((n = ::read(report[c][0], buf, sizeof buf)) > 0) outcome[c].append(buf, n);
    ::close(report[c][0]);
    int status = 0;
    ASSERT_EQ(::waitpid(children[c], &status, 0), children[c]);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    ASSERT_EQ(outcome[c].size(), static_cast<size_t>(kRounds));
  }
  pthread_barrier_destroy(barrier);
  ::munmap(shared, sizeof(pthread_barrier_t));

  for (int e = 1; e <= kRounds; ++e) {
    char a = outcome[0][e - 1], b = outcome[1][e - 1];
    ASSERT_TRUE(a != 'E' && b != 'E') << "epoch " << e;
    EXPECT_TRUE((a == 'W') != (b == 'W')) << "epoch " << e << ": " << a << b;
    Result<ClaimRecord> stored = store_.Read("web1", e);
    ASSERT_TRUE(stored.ok()) << stored.status().ToString();
    EXPECT_EQ(stored->winner, a == 'W' ? "proc0" : "proc1") << e;
  }
  EXPECT_FALSE(HasTempFile(root_ + "/web1"));
}

TEST_F(SharedDirectoryTest, AFlippedByteIsDataLossNamingTheFileNeverAWin) {
  ASSERT_TRUE(store_.Claim({"web1", 1, "hostA", "x"}).ok());
  const std::string path = RecordPath("web1", 1);
  std::string bytes = ReadAll(path);
  bytes[bytes.find("hostA")] ^= 0x01;  // hostA -> iostA
  WriteAll(path, bytes);

  Result<ClaimRecord> read = store_.Read("web1", 1);
  EXPECT_EQ(read.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(read.status(), path)) << read.status().ToString();
  EXPECT_TRUE(Contains(read.status(), "CRC mismatch")) << read.status().ToString();
  for (const char* node : {"hostA", "hostB", "iostA"}) {
    Result<ClaimOutcome> claim = store_.Claim({"web1", 1, node, ""});
    EXPECT_EQ(claim.status().code(), StatusCode::kDataLoss) << node;  // neither won nor lost
    EXPECT_TRUE(Contains(claim.status(), path)) << claim.status().ToString();
  }
  EXPECT_EQ(ReadAll(path), bytes);  // evidence is left for the operator
  EXPECT_FALSE(HasTempFile(root_ + "/web1"));
}

TEST_F(SharedDirectoryTest, ATruncatedOrEmptyRecordIsDataLossNamingTheFile) {
  ASSERT_TRUE(store_.Claim({"web1", 1, "hostA", "x"}).ok());
  const std::string path = RecordPath("web1", 1);
  const std::string bytes = ReadAll(path);
  for (size_t keep : {bytes.size() - 1, bytes.size() / 2, size_t{0}}) {
    WriteAll(path, bytes.substr(0, keep));
    Result<ClaimOutcome> claim = store_.Claim({"web1", 1, "hostB", ""});
    EXPECT_EQ(claim.status().code(), StatusCode::kDataLoss) << keep;
    EXPECT_TRUE(Contains(claim.status(), path)) << claim.status().ToString();
    EXPECT_TRUE(Contains(claim.status(), "truncated")) << claim.status().ToString();
  }
}

TEST_F(SharedDirectoryTest, ARecordInTheWrongPlaceIsDataLoss) {
  ASSERT_TRUE(store_.Claim({"web1", 1, "hostA", ""}).ok());
  std::filesystem::create_directories(root_ + "/db1");
  std::filesystem::copy_file(RecordPath("web1", 1), RecordPath("db1", 2));
  Result<ClaimOutcome> claim = store_.Claim({"db1", 2, "hostA", ""});
  EXPECT_EQ(claim.status().code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(claim.status(), "is for vm 'web1' epoch 1")) << claim.status().ToString();
}

void ExpectUnreachable(TestAndSet& store, const std::string& path_in_message) {
  Result<ClaimOutcome> claim = store.Claim({"web1", 1, "hostA", ""});
  ASSERT_FALSE(claim.ok()) << "won or lost on unreachable storage";
  EXPECT_EQ(claim.status().code(), StatusCode::kUnavailable) << claim.status().ToString();
  EXPECT_TRUE(Contains(claim.status(), path_in_message)) << claim.status().ToString();
  EXPECT_TRUE(Contains(claim.status(), "vm 'web1' epoch 1: claim by 'hostA' not decided"))
      << claim.status().ToString();
  EXPECT_EQ(store.Read("web1", 1).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store.LatestEpoch("web1").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store.Prune("web1", 1).code(), StatusCode::kUnavailable);
  EXPECT_EQ(store.StoreId().status().code(), StatusCode::kUnavailable);
}

TEST(SharedDirectoryUnreachableTest, MissingRootIsUnavailableAndNothingIsCreated) {
  ScratchDir scratch;
  const std::string root = scratch.path() + "/not-mounted-here";
  SharedDirectoryTestAndSet store(root);
  ExpectUnreachable(store, root);
  EXPECT_FALSE(std::filesystem::exists(root));
  EXPECT_EQ(SharedDirectoryTestAndSet::Initialize(root).status().code(), StatusCode::kUnavailable);
}

// Root ignores permission bits, so "cannot get at the directory" is made with a path through
// a regular file (ENOTDIR), which fails for root too.
TEST(SharedDirectoryUnreachableTest, RootUnderARegularFileIsUnavailable) {
  ScratchDir scratch;
  WriteAll(scratch.path() + "/file", "x");
  const std::string root = scratch.path() + "/file/claims";
  SharedDirectoryTestAndSet store(root);
  ExpectUnreachable(store, root);
  EXPECT_TRUE(Contains(store.LatestEpoch("web1").status(), "Not a directory"));
}

// The share failed to mount: the mount point is an empty local directory. Claiming there
// would let each host win on its own disk.
TEST(SharedDirectoryUnreachableTest, AnEmptyMountPointIsNotAStore) {
  ScratchDir scratch;
  SharedDirectoryTestAndSet store(scratch.path());
  ExpectUnreachable(store, "is the shared storage mounted?");
  EXPECT_TRUE(Names(scratch.path()).empty());
}

TEST_F(SharedDirectoryTest, AVmDirectoryThatIsAFileIsUnavailable) {
  WriteAll(root_ + "/web1", "x");
  Result<ClaimOutcome> claim = store_.Claim({"web1", 1, "hostA", ""});
  EXPECT_EQ(claim.status().code(), StatusCode::kUnavailable) << claim.status().ToString();
  EXPECT_EQ(store_.LatestEpoch("web1").status().code(), StatusCode::kUnavailable);
}

// ENOSPC and EIO injected through the backend's I/O seam: a full disk can also be made for
// real (RealFullTmpfs below), but only where mounting is permitted.
TEST(SharedDirectoryFaultTest, ANoSpaceWriteHalfWayIsUnavailableAndLeavesNothing) {
  ScratchDir scratch;
  ASSERT_TRUE(SharedDirectoryTestAndSet::Initialize(scratch.path()).ok());
  int writes = 0;
  SharedDirectoryOptions options;
  options.write = [&](int fd, const void* data, size_t size) -> ssize_t {
    if (++writes == 1) return ::write(fd, data, size / 2);  // a short write, then no space
    errno = ENOSPC;
    return -1;
  };
  SharedDirectoryTestAndSet full(scratch.path(), options);
  Result<ClaimOutcome> claim = full.Claim({"web1", 1, "hostA", ""});
  EXPECT_EQ(claim.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(claim.status(), "No space left on device")) << claim.status().ToString();
  EXPECT_TRUE(Contains(claim.status(), scratch.path() + "/web1/.tmp-"))
      << claim.status().ToString();
  EXPECT_TRUE(Names(scratch.path() + "/web1").empty());
  EXPECT_EQ(*full.LatestEpoch("web1"), 0u);

  // Space again: the next try wins.
  SharedDirectoryTestAndSet healthy(scratch.path());
  EXPECT_TRUE(healthy.Claim({"web1", 1, "hostA", ""})->won());
}

TEST(SharedDirectoryFaultTest, AnIoErrorOnTheRecordsSyncIsUnavailableAndLeavesNothing) {
  ScratchDir scratch;
  ASSERT_TRUE(SharedDirectoryTestAndSet::Initialize(scratch.path()).ok());
  SharedDirectoryOptions options;
  options.fsync = [](int) {
    errno = EIO;
    return -1;
  };
  SharedDirectoryTestAndSet failing(scratch.path(), options);
  Result<ClaimOutcome> claim = failing.Claim({"web1", 1, "hostA", ""});
  EXPECT_EQ(claim.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(claim.status(), "Input/output error")) << claim.status().ToString();
  EXPECT_TRUE(Names(scratch.path() + "/web1").empty());
}

// The record got its name but the directory sync failed: not a win yet (the name may not be
// durable), the other node still loses, and the winner's retry wins once storage is healthy.
TEST(SharedDirectoryFaultTest, AFailedDirectorySyncAfterTheLinkIsNotAWinUntilRetried) {
  ScratchDir scratch;
  ASSERT_TRUE(SharedDirectoryTestAndSet::Initialize(scratch.path()).ok());
  std::filesystem::create_directories(scratch.path() + "/web1");
  SharedDirectoryOptions options;
  options.fsync = [](int fd) {
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
      errno = EIO;
      return -1;
    }
    return ::fsync(fd);
  };
  SharedDirectoryTestAndSet failing(scratch.path(), options);
  Result<ClaimOutcome> claim = failing.Claim({"web1", 1, "hostA", ""});
  EXPECT_EQ(claim.status().code(), StatusCode::kUnavailable) << claim.status().ToString();
  EXPECT_TRUE(Contains(claim.status(), "cannot sync directory")) << claim.status().ToString();

  SharedDirectoryTestAndSet healthy(scratch.path());
  EXPECT_EQ(healthy.Claim({"web1", 1, "hostB", ""})->outcome, Outcome::kLost);
  EXPECT_EQ(healthy.Claim({"web1", 1, "hostA", ""})->outcome, Outcome::kWon);
  EXPECT_FALSE(HasTempFile(scratch.path() + "/web1"));
}

TEST_F(SharedDirectoryTest, PruneRemovesTempFilesOfDeadClaimsButNotFreshOnes) {
  ASSERT_TRUE(store_.Claim({"web1", 1, "hostA", ""}).ok());
  const std::string dir = root_ + "/web1";
  WriteAll(dir + "/.tmp-00000000000000000002-dead", "half a rec");
  WriteAll(dir + "/.tmp-00000000000000000002-live", "half a rec");
  struct timespec old[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (dir + "/.tmp-00000000000000000002-dead").c_str(), old, 0), 0);
  EXPECT_EQ(*store_.LatestEpoch("web1"), 1u);  // temp files are never records
  ASSERT_TRUE(store_.Prune("web1", 1).ok());
  EXPECT_EQ(Names(dir), (std::set<std::string>{".tmp-00000000000000000002-live",
                                               "epoch-00000000000000000001.claim"}));
}

TEST_F(SharedDirectoryTest, UnrelatedFilesAreIgnored) {
  ASSERT_TRUE(store_.Claim({"web1", 3, "hostA", ""}).ok());
  WriteAll(root_ + "/web1/epoch-9.claim", "x");
  WriteAll(root_ + "/web1/README", "x");
  EXPECT_EQ(*store_.LatestEpoch("web1"), 3u);
  ASSERT_TRUE(store_.Prune("web1", 10).ok());
  EXPECT_EQ(Names(root_ + "/web1").size(), 3u);
}

// Real filesystems that are full or read-only: a small tmpfs in a private mount namespace (so
// nothing leaks to the host, and it vanishes with the test process). Skipped where mounting
// is not permitted; the seam tests above cover the same paths.
class RealMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static bool private_ns = [] {
      return ::unshare(CLONE_NEWNS) == 0 &&
             ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
    }();
    if (!private_ns) GTEST_SKIP() << "no private mount namespace: " << std::strerror(errno);
    if (::mount("tmpfs", scratch_.path().c_str(), "tmpfs", 0, "size=64k,mode=0755") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
    }
    mounted_ = true;
    ASSERT_TRUE(SharedDirectoryTestAndSet::Initialize(root_).ok());
  }
  void TearDown() override {
    if (mounted_) ::umount2(scratch_.path().c_str(), MNT_DETACH);
  }

  ScratchDir scratch_;
  std::string root_ = scratch_.path();
  bool mounted_ = false;
};

TEST_F(RealMountTest, ExpectMountAcceptsAMountPoint) {
  Result<std::string> id = SharedDirectoryTestAndSet::Initialize(root_, {.expect_mount = true});
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*SharedDirectoryTestAndSet(root_).StoreId(), *id);
}

// A bind mount within one filesystem has its parent's st_dev: only mountinfo tells.
TEST_F(RealMountTest, ExpectMountAcceptsABindMountWithinOneFilesystem) {
  const std::string source = root_ + "/source", target = root_ + "/target";
  std::filesystem::create_directories(source);
  std::filesystem::create_directories(target);
  ASSERT_EQ(::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr), 0)
      << std::strerror(errno);
  EXPECT_TRUE(SharedDirectoryTestAndSet::Initialize(target, {.expect_mount = true}).ok());
  EXPECT_EQ(SharedDirectoryTestAndSet::Initialize(source, {.expect_mount = true}).status().code(),
            StatusCode::kFailedPrecondition);
  ::umount2(target.c_str(), MNT_DETACH);
}

TEST_F(RealMountTest, AFullDiskIsUnavailableLeavesNothingAndWinsOnceThereIsSpace) {
  SharedDirectoryTestAndSet store(root_);
  std::filesystem::create_directories(root_ + "/web1");
  {
    int fd = ::open((root_ + "/filler").c_str(), O_WRONLY | O_CREAT, 0644);
    ASSERT_GE(fd, 0);
    std::string block(4096, 'f');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    ASSERT_EQ(errno, ENOSPC);
    ::close(fd);
  }
  Result<ClaimOutcome> claim = store.Claim({"web1", 1, "hostA", ""});
  ASSERT_FALSE(claim.ok()) << "a claim on a full disk was decided";
  EXPECT_EQ(claim.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(Contains(claim.status(), "No space left on device")) << claim.status().ToString();
  EXPECT_TRUE(Names(root_ + "/web1").empty());

  std::filesystem::remove(root_ + "/filler");
  Result<ClaimOutcome> retry = store.Claim({"web1", 1, "hostA", ""});
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_TRUE(retry->won());
}

TEST_F(RealMountTest, AReadOnlyFilesystemIsUnavailableButExistingRecordsStillRead) {
  SharedDirectoryTestAndSet store(root_);
  Result<ClaimOutcome> first = store.Claim({"web1", 1, "hostA", ""});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(first->won());
  ASSERT_EQ(::mount(nullptr, root_.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr), 0)
      << std::strerror(errno);
  for (const char* vm : {"web1", "db1"}) {  // existing and new vm directory
    Result<ClaimOutcome> claim = store.Claim({vm, 2, "hostA", ""});
    EXPECT_EQ(claim.status().code(), StatusCode::kUnavailable) << vm;
    EXPECT_TRUE(Contains(claim.status(), "Read-only file system")) << claim.status().ToString();
  }
  // Losing needs no write: the record answers.
  EXPECT_EQ(store.Claim({"web1", 1, "hostB", ""})->outcome, Outcome::kLost);
  EXPECT_EQ(*store.LatestEpoch("web1"), 1u);
  EXPECT_FALSE(HasTempFile(root_ + "/web1"));
}

}  // namespace
}  // namespace ft::shared_disk
