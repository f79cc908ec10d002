// Disk replicas: digests, the in-use probe against a real OFD lock, and a replica copied in
// chunks that lands only when size and sha256 match.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "ft/disk/image_digest.h"
#include "ft/disk/image_use.h"
#include "ft/disk/replica_copy.h"

namespace ft::disk {
namespace {

namespace fs = std::filesystem;

class ReplicaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "ftd-replica-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    image_ = (dir_ / "web1-vda.qcow2").string();
    std::string bytes(300000, '\0');
    for (uint32_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 7919u) % 251u);
    std::ofstream(image_, std::ios::binary) << bytes;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Copies `image_` to `to` in `chunk`-byte pieces, as the channel would.
  Status Copy(const std::string& to, size_t chunk, bool corrupt = false) {
    FT_ASSIGN_OR_RETURN(auto reader, ImageReader::Open(image_));
    FT_ASSIGN_OR_RETURN(auto writer, ReplicaWriter::Create(to, reader->size(), false));
    while (!reader->done()) {
      uint64_t at = reader->offset();
      FT_ASSIGN_OR_RETURN(std::string data, reader->Next(chunk));
      if (corrupt && at == 0) data[17] ^= 1;
      FT_RETURN_IF_ERROR(writer->Append(at, data));
    }
    return writer->Finish(reader->digest());
  }

  fs::path dir_;
  std::string image_;
};

TEST_F(ReplicaTest, DigestNamesSizeAndContent) {
  auto d = DigestImage("web1", "vda", image_);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->size, 300000u);
  EXPECT_EQ(d->sha256.size(), 64u);
  std::fstream(image_, std::ios::in | std::ios::out | std::ios::binary).put('x');
  auto changed = DigestImage("web1", "vda", image_);
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(changed->sha256, d->sha256);
  auto missing = DigestImage("web1", "vdb", (dir_ / "nope.qcow2").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("vm 'web1': disk.vdb"), std::string::npos);
}

TEST_F(ReplicaTest, SetDigestIsEmptyWithoutDisksAndFollowsEveryDisk) {
  domain::VmSpec spec;
  spec.name = "web1";
  auto none = ReplicaSetDigest(spec);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, "");
  spec.disks.push_back({"vda", image_, "qcow2", domain::DiskBus::kVirtio});
  auto one = ReplicaSetDigest(spec);
  ASSERT_TRUE(one.ok());
  std::string copy = (dir_ / "copy.qcow2").string();
  fs::copy_file(image_, copy);
  spec.disks[0].path = copy;  // another path, the same bytes: the same digest
  EXPECT_EQ(*ReplicaSetDigest(spec), *one);
  std::ofstream(copy, std::ios::app) << "more";
  EXPECT_NE(*ReplicaSetDigest(spec), *one);
}

TEST_F(ReplicaTest, ImageLockedByAnotherOpenFileIsInUse) {
  EXPECT_TRUE(CheckImageNotInUse("web1", "vda", image_).ok());
  // What QEMU does to an image it writes: an OFD lock on single bytes.
  int fd = open(image_.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  struct flock lock {};
  lock.l_type = F_RDLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 100;
  lock.l_len = 1;
  ASSERT_EQ(fcntl(fd, F_OFD_SETLK, &lock), 0);
  Status s = CheckImageNotInUse("web1", "vda", image_);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("vm 'web1': disk.vda '" + image_ + "' is in use by another process"),
            std::string::npos)
      << s.message();
  close(fd);
  EXPECT_TRUE(CheckImageNotInUse("web1", "vda", image_).ok());
  EXPECT_EQ(CheckImageNotInUse("web1", "vda", image_ + ".gone").code(), StatusCode::kNotFound);
}

TEST_F(ReplicaTest, CopyLandsOnlyWhenItsDigestMatches) {
  std::string replica = (dir_ / "replica.qcow2").string();
  ASSERT_TRUE(Copy(replica, 65536).ok());
  EXPECT_EQ(DigestImage("web1", "vda", replica)->sha256,
            DigestImage("web1", "vda", image_)->sha256);
  EXPECT_FALSE(fs::exists(replica + ".ftd-partial"));

  // A replica that exists is not overwritten unless asked.
  Status again = Copy(replica, 65536);
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition) << again.ToString();

  // A byte flipped on the way: refused, nothing left behind.
  std::string bad = (dir_ / "bad.qcow2").string();
  Status corrupt = Copy(bad, 4096, /*corrupt=*/true);
  EXPECT_EQ(corrupt.code(), StatusCode::kDataLoss) << corrupt.ToString();
  EXPECT_NE(corrupt.message().find("differs from the primary's image"), std::string::npos);
  EXPECT_FALSE(fs::exists(bad));
  EXPECT_FALSE(fs::exists(bad + ".ftd-partial"));
}

TEST_F(ReplicaTest, ChunksOutOfOrderOrPastTheEndAreRefused) {
  auto writer = ReplicaWriter::Create((dir_ / "r.qcow2").string(), 10, false);
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->Append(5, "abc").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*writer)->Append(0, "0123456789").ok());
  EXPECT_EQ((*writer)->Append(10, "x").code(), StatusCode::kInvalidArgument);
  ImageDigest short_one{11, "00"};
  EXPECT_EQ((*writer)->Finish(short_one).code(), StatusCode::kDataLoss);
}

// A full disk on the receiving host: the error names the file and the cause, and no
// replica is left behind. Needs root for a small tmpfs.
TEST_F(ReplicaTest, FullDiskIsAnErrorNamingTheReplicaAndLeavesNothing) {
  fs::path mnt = dir_ / "small";
  fs::create_directories(mnt);
  if (geteuid() != 0 ||
      std::system(("mount -t tmpfs -o size=64k ftd-test-small " + mnt.string()).c_str()) != 0) {
    GTEST_SKIP() << "needs root to mount a 64 KiB tmpfs";
  }
  std::string replica = (mnt / "replica-vda.qcow2").string();
  Status s = Copy(replica, 16384);
  std::string left = fs::exists(replica + ".ftd-partial") ? "partial" : "";
  if (fs::exists(replica)) left += " replica";
  std::system(("umount " + mnt.string()).c_str());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(replica + ".ftd-partial"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.message();
  EXPECT_EQ(left, "") << "left behind after the failed copy";
}

}  // namespace
}  // namespace ft::disk
