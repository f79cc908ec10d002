#include "ft/shared_disk/mount_point.h"

#include <gtest/gtest.h>

#include "test_dirs.h"

namespace ft::shared_disk {
namespace {

// From a host with an NFS claim store mounted at a path with a space in it.
constexpr std::string_view kMountInfo =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "25 22 0:22 / /proc rw,nosuid shared:5 - proc proc rw\n"
    "41 22 0:40 / /mnt/ftd\\040claims rw,relatime shared:20 - nfs4 nas:/claims rw,vers=4.2\n"
    "42 22 8:1 /srv/data /srv/bound rw,relatime shared:1 - ext4 /dev/sda1 rw";  // bind, no \n

TEST(MountPointTest, MountInfoListsMountPointsWithEscapesUndone) {
  EXPECT_TRUE(MountInfoListsMountPoint(kMountInfo, "/"));
  EXPECT_TRUE(MountInfoListsMountPoint(kMountInfo, "/mnt/ftd claims"));
  EXPECT_TRUE(MountInfoListsMountPoint(kMountInfo, "/srv/bound"));
  EXPECT_FALSE(MountInfoListsMountPoint(kMountInfo, "/mnt/ftd\\040claims"));
  EXPECT_FALSE(MountInfoListsMountPoint(kMountInfo, "/mnt"));
  EXPECT_FALSE(MountInfoListsMountPoint(kMountInfo, "/srv/data"));  // the bind's source
  EXPECT_FALSE(MountInfoListsMountPoint(kMountInfo, "/dev/sda1"));
  EXPECT_FALSE(MountInfoListsMountPoint("", "/"));
}

TEST(MountPointTest, RootIsAndAPlainDirectoryIsNot) {
  testing::ScratchDir scratch;
  Result<bool> root = IsMountPoint("/");
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  EXPECT_TRUE(*root);
  Result<bool> plain = IsMountPoint(scratch.path());
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_FALSE(*plain);
  Result<bool> missing = IsMountPoint(scratch.path() + "/nothing");
  EXPECT_EQ(missing.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(missing.status().message().find(scratch.path() + "/nothing"), std::string::npos);
}

}  // namespace
}  // namespace ft::shared_disk
