// The epoch record (docs/formats/state-files.md): what is written reads back, damage of any
// one byte is refused rather than read as some other epoch, an older ftd's bare number is
// still read, and a failed write leaves the old record and no temp file.
#include "vm_records.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ft/crc32.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;

// The example in docs/formats/state-files.md.
constexpr std::string_view kGolden =
    "ftd-epoch 1\n"
    "vm web1\n"
    "epoch 2\n"
    "crc32 ";

bool Contains(const Status& s, std::string_view text) {
  return s.message().find(text) != std::string::npos;
}

TEST(EpochRecordTest, EncodesTheDocumentedTextAndDecodesItBack) {
  std::string bytes = EncodeEpochRecord("web1", 2);
  ASSERT_EQ(bytes.substr(0, kGolden.size()), kGolden);
  std::string content = bytes.substr(0, bytes.find("crc32 "));
  EXPECT_EQ(bytes.substr(content.size()), fmt::format("crc32 {:08x}\n", Crc32(content)));
  Result<uint64_t> epoch = DecodeEpochRecord(bytes, "web1");
  ASSERT_TRUE(epoch.ok()) << epoch.status().ToString();
  EXPECT_EQ(*epoch, 2u);

  std::string longest = EncodeEpochRecord(std::string(64, 'v'), UINT64_MAX);
  EXPECT_LE(longest.size(), kMaxEpochRecordBytes);
  EXPECT_EQ(*DecodeEpochRecord(longest, std::string(64, 'v')), UINT64_MAX);
}

TEST(EpochRecordTest, EverySingleByteCorruptionIsDataLoss) {
  const std::string good = EncodeEpochRecord("web1", 2);
  for (size_t i = 0; i < good.size(); ++i) {
    for (int mask = 1; mask < 256; ++mask) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      Result<uint64_t> r = DecodeEpochRecord(bad, "web1");
      ASSERT_FALSE(r.ok()) << "byte " << i << " ^ " << mask << " read as epoch " << *r;
      ASSERT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
    }
  }
}

TEST(EpochRecordTest, EveryTruncationAndTrailingGarbageIsDataLoss) {
  const std::string good = EncodeEpochRecord("web1", 2);
  for (size_t n = 0; n < good.size(); ++n) {
    Result<uint64_t> r = DecodeEpochRecord(std::string_view(good).substr(0, n), "web1");
    ASSERT_FALSE(r.ok()) << n << " bytes read as epoch " << *r;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
  }
  EXPECT_TRUE(Contains(DecodeEpochRecord("", "web1").status(), "truncated"));
  EXPECT_EQ(DecodeEpochRecord(good + "x", "web1").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeEpochRecord(good + "\n", "web1").status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(DecodeEpochRecord(std::string(kMaxEpochRecordBytes + 1, '1'), "web1").status().code(),
            StatusCode::kDataLoss);
}

TEST(EpochRecordTest, CrcMismatchSaysSo) {
  std::string bad = EncodeEpochRecord("web1", 2);
  bad[bad.find("epoch 2") + 6] = '3';
  Status s = DecodeEpochRecord(bad, "web1").status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  // As in the docs/formats/state-files.md example.
  EXPECT_EQ(s.message(),
            "CRC mismatch (record says dc684626, its 28 bytes of content have c5737767): corrupt");
}

// What an ftd before the versioned record wrote: the number and a newline.
TEST(EpochRecordTest, ALegacyNumberIsThatEpoch) {
  EXPECT_EQ(*DecodeEpochRecord("7\n", "web1"), 7u);
  EXPECT_EQ(*DecodeEpochRecord("7", "web1"), 7u);
  EXPECT_EQ(*DecodeEpochRecord("18446744073709551615\n", "web1"), UINT64_MAX);
  for (std::string_view bad : {"0\n", "\n", "7\n\n", " 7\n", "7 \n", "+7\n", "-7\n", "7x\n",
                               "0x7\n", "18446744073709551616\n"}) {
    Result<uint64_t> r = DecodeEpochRecord(bad, "web1");
    EXPECT_FALSE(r.ok()) << "'" << bad << "' read as " << *r;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().ToString();
  }
}

TEST(EpochRecordTest, ANewerVersionWithAGoodCrcIsRefusedNotMisread) {
  std::string v2 = AppendCrcLine("ftd-epoch 2\nvm web1\nepoch 3\nterm 9\n", "");
  Status s = DecodeEpochRecord(v2, "web1").status();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_TRUE(Contains(s, "version 2, written by a newer ftd")) << s.ToString();
  EXPECT_TRUE(Contains(s, "reads version 1 only")) << s.ToString();
}

TEST(EpochRecordTest, AnotherVmsRecordIsDataLoss) {
  Status s = DecodeEpochRecord(EncodeEpochRecord("web2", 3), "web1").status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_TRUE(Contains(s, "record of vm 'web2', not 'web1'")) << s.ToString();
}

TEST(EpochRecordTest, WellSealedButMalformedContentIsDataLoss) {
  for (std::string_view content :
       {"", "\n", "ftd-epoch\nvm web1\nepoch 2\n", "ftd-epoch x\nvm web1\nepoch 2\n",
        "ftd-epoch 01\nvm web1\nepoch 2\n", "ftd-epoch 1\nepoch 2\nvm web1\n",
        "ftd-epoch 1\nvm web1\n", "ftd-epoch 1\nvm web1\nepoch 2\nextra 1\n",
        "ftd-epoch 1\nvm web1\nepoch 0\n", "ftd-epoch 1\nvm web1\nepoch 02\n",
        "ftd-epoch 1\nvm web1\nepoch -2\n", "ftd-epoch 1\nvm web1\nepoch 2 \n",
        "ftd-epoch 1\nvm  web1\nepoch 2\n", "ftd-epoch 1\nvm web1\nepoch 18446744073709551616\n",
        "ftd-claim-record 1\nvm web1\nepoch 2\n"}) {
    Result<uint64_t> r = DecodeEpochRecord(AppendCrcLine(std::string(content), ""), "web1");
    EXPECT_FALSE(r.ok()) << "'" << content << "' read as " << *r;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << content << ": " << r.status().ToString();
  }
}

class EpochFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "ftd-records-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    node_.name = "hostB";
    node_.state_dir = (dir_ / "state").string();
    path_ = node_.state_dir + "/vms/web1/epoch";
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string ReadAll(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  static void WriteAll(const std::string& path, std::string_view text) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::trunc) << text;
  }
  // The names in the record's directory: a failed write leaves no temp file among them.
  std::vector<std::string> Names() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(fs::path(path_).parent_path())) {
      names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
  NodeConfig node_;
  std::string path_;
};

TEST_F(EpochFileTest, NoRecordIsEpochZeroAndAWrittenOneReadsBack) {
  Result<uint64_t> none = ReadEpochRecord(node_, "web1");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(*none, 0u);
  EXPECT_FALSE(fs::exists(node_.state_dir)) << "reading created something";

  ASSERT_TRUE(WriteEpochRecord(node_, "web1", 1).ok());  // creates the state dirs
  ASSERT_TRUE(WriteEpochRecord(node_, "web1", 5).ok());
  EXPECT_EQ(*ReadEpochRecord(node_, "web1"), 5u);
  EXPECT_EQ(ReadAll(path_), EncodeEpochRecord("web1", 5));
  EXPECT_EQ(Names(), std::vector<std::string>{"epoch"});
  EXPECT_EQ(fs::status(path_).permissions() & fs::perms::others_write, fs::perms::none);
}

TEST_F(EpochFileTest, ALegacyFileIsReadAndTheNextWriteUsesTheCurrentFormat) {
  WriteAll(path_, "4\n");
  EXPECT_EQ(*ReadEpochRecord(node_, "web1"), 4u);
  ASSERT_TRUE(WriteEpochRecord(node_, "web1", 5).ok());
  EXPECT_EQ(ReadAll(path_), EncodeEpochRecord("web1", 5));
}

TEST_F(EpochFileTest, ADamagedRecordIsAnErrorNamingTheFile) {
  for (std::string_view text : {"", "4\n\n", "ftd-epoch 1\nvm web1\nepoch 4\ncrc32 00000000\n"}) {
    WriteAll(path_, text);
    Status s = ReadEpochRecord(node_, "web1").status();
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
    EXPECT_TRUE(Contains(s, "vm 'web1': epoch record '" + path_ + "'")) << s.ToString();
  }
  WriteAll(path_, EncodeEpochRecord("db1", 4));  // copied from another VM's directory
  Status s = ReadEpochRecord(node_, "web1").status();
  EXPECT_TRUE(Contains(s, path_)) << s.ToString();
  EXPECT_TRUE(Contains(s, "record of vm 'db1', not 'web1'")) << s.ToString();

  WriteAll(path_, std::string(kMaxEpochRecordBytes + 1, '1'));
  s = ReadEpochRecord(node_, "web1").status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.ToString();
  EXPECT_TRUE(Contains(s, path_)) << s.ToString();

  fs::remove(path_);
  fs::create_directory(path_);
  s = ReadEpochRecord(node_, "web1").status();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, path_)) << s.ToString();
}

TEST_F(EpochFileTest, AWriteWhereNoDirectoryCanBeIsAnErrorNamingThePath) {
  WriteAll((dir_ / "state").string(), "a file where the state dir should be");
  Status s = WriteEpochRecord(node_, "web1", 2);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, "cannot write '" + path_ + "'")) << s.ToString();
  EXPECT_TRUE(Contains(s, "Not a directory")) << s.ToString();
  Status r = ReadEpochRecord(node_, "web1").status();
  EXPECT_TRUE(Contains(r, path_)) << r.ToString();
}

TEST_F(EpochFileTest, AFailedWriteLeavesTheOldRecord) {
  ASSERT_TRUE(WriteEpochRecord(node_, "web1", 3).ok());
  fs::create_directory(path_ + ".tmp");  // the temp file cannot be opened for writing
  Status s = WriteEpochRecord(node_, "web1", 4);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, "cannot write '" + path_ + "': open '" + path_ + ".tmp'"))
      << s.ToString();
  EXPECT_TRUE(Contains(s, "Is a directory")) << s.ToString();
  EXPECT_EQ(*ReadEpochRecord(node_, "web1"), 3u);
}

TEST_F(EpochFileTest, NoEpochZeroAndNoInvalidVmName) {
  EXPECT_EQ(WriteEpochRecord(node_, "web1", 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(WriteEpochRecord(node_, "../web1", 2).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(node_.state_dir));
}

// ENOSPC, EIO: faults a test cannot provoke on a real filesystem without root, so they come
// through the write and fsync seams.
TEST_F(EpochFileTest, AFullDiskOrAFailedSyncLeavesTheOldRecordAndNoTempFile) {
  ASSERT_TRUE(WriteEpochRecord(node_, "web1", 3).ok());
  const std::string old = ReadAll(path_);
  DurableWriteHooks full;
  full.write = [](int fd, const void* data, size_t size) -> ssize_t {
    if (size > 4) return ::write(fd, data, 4);  // a partial write first, then the disk is full
    errno = ENOSPC;
    return -1;
  };
  Status s = WriteFileDurably(path_, EncodeEpochRecord("web1", 4), 0644, full);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, "cannot write '" + path_ + "': write '" + path_ + ".tmp'"))
      << s.ToString();
  EXPECT_TRUE(Contains(s, "No space left on device")) << s.ToString();
  EXPECT_EQ(ReadAll(path_), old);
  EXPECT_EQ(Names(), std::vector<std::string>{"epoch"});

  DurableWriteHooks sync_fails;
  sync_fails.fsync = [](int) {
    errno = EIO;
    return -1;
  };
  s = WriteFileDurably(path_, EncodeEpochRecord("web1", 4), 0644, sync_fails);
  EXPECT_TRUE(Contains(s, "sync '" + path_ + ".tmp'")) << s.ToString();
  EXPECT_TRUE(Contains(s, "Input/output error")) << s.ToString();
  EXPECT_EQ(ReadAll(path_), old);
  EXPECT_EQ(Names(), std::vector<std::string>{"epoch"});
}

// The rename happened, so the new record is what a reader sees; the caller still learns that
// it may not survive a power cut.
TEST_F(EpochFileTest, AFailedDirectorySyncIsReportedAfterTheRename) {
  ASSERT_TRUE(WriteEpochRecord(node_, "web1", 3).ok());
  int syncs = 0;
  DurableWriteHooks dir_sync_fails;
  dir_sync_fails.fsync = [&syncs](int fd) {
    if (++syncs == 1) return ::fsync(fd);  // the temp file
    errno = EIO;
    return -1;
  };
  Status s = WriteFileDurably(path_, EncodeEpochRecord("web1", 4), 0644, dir_sync_fails);
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(Contains(s, "may not survive a power cut")) << s.ToString();
  EXPECT_TRUE(Contains(s, "cannot sync directory")) << s.ToString();
  EXPECT_EQ(*ReadEpochRecord(node_, "web1"), 4u);
  EXPECT_EQ(Names(), std::vector<std::string>{"epoch"});
}

// Every directory it creates is synced into its parent, or the record could vanish with it.
TEST_F(EpochFileTest, NewDirectoriesAreSyncedIntoTheirParents) {
  std::vector<std::string> synced_dirs;
  DurableWriteHooks record;
  record.fsync = [&synced_dirs](int fd) {
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n > 0 && fs::is_directory(std::string(target, static_cast<size_t>(n)))) {
      synced_dirs.emplace_back(target, static_cast<size_t>(n));
    }
    return ::fsync(fd);
  };
  ASSERT_TRUE(WriteFileDurably(path_, EncodeEpochRecord("web1", 2), 0644, record).ok());
  std::vector<std::string> expected = {dir_.string(), node_.state_dir, node_.state_dir + "/vms",
                                       node_.state_dir + "/vms/web1"};
  EXPECT_EQ(synced_dirs, expected);
}

}  // namespace
}  // namespace ft::daemon
