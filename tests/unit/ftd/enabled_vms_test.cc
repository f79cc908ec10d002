// VMs turned on at run time are kept in the state dir: saved atomically, loaded back in
// their roles, forgotten on disable; a damaged record is an error naming its file.
#include "enabled_vms.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;

class EnabledVmsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "ftd-enabled-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    node_.name = "hostB";
    node_.state_dir = dir_ / "state";
  }
  void TearDown() override { fs::remove_all(dir_); }

  static replay::VmSpec Spec(const std::string& name) {
    replay::VmSpec spec;
    spec.name = name;
    spec.kernel = "/guest/vmlinux";
    spec.initrd = "/guest/initrd.img";
    spec.cmdline = "console=ttyS0 ftguest.ip=10.77.0.10/24";
    replay::NicSpec nic;
    nic.backend = replay::NicBackend::kBridge;
    nic.bridge = "br0";
    spec.nic = nic;
    return spec;
  }

  fs::path dir_;
  NodeConfig node_;
};

TEST_F(EnabledVmsTest, SavedVmsLoadBackInTheirRolesSortedByName) {
  ASSERT_TRUE(SaveEnabledVm(node_, {Spec("web2"), FtRole::kBackup, "libvirt domain 'web2'"}).ok());
  ASSERT_TRUE(SaveEnabledVm(node_, {Spec("db1"), FtRole::kPrimary, "libvirt domain 'db1'"}).ok());
  auto loaded = LoadEnabledVms(node_).vms;
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[0].spec.name, "db1");
  EXPECT_EQ(loaded[0].role, FtRole::kPrimary);
  EXPECT_EQ(loaded[1].spec.name, "web2");
  EXPECT_EQ(loaded[1].role, FtRole::kBackup);
  EXPECT_EQ(loaded[1].source, "libvirt domain 'web2'");
  EXPECT_EQ(FormatVmSection(loaded[1].spec), FormatVmSection(Spec("web2")));
  EXPECT_FALSE(fs::exists(node_.state_dir + "/vms/web2/enabled.conf.tmp"));

  // The backup went live here: it is the primary now, and a restart runs it as such.
  ASSERT_TRUE(PromoteEnabledVm(node_, "web2").ok());
  ASSERT_TRUE(PromoteEnabledVm(node_, "nosuch").ok());  // no record: nothing to do
  ASSERT_TRUE(ForgetEnabledVm(node_, "db1").ok());
  ASSERT_TRUE(ForgetEnabledVm(node_, "db1").ok());  // already gone: fine
  loaded = LoadEnabledVms(node_).vms;
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(loaded[0].spec.name, "web2");
  EXPECT_EQ(loaded[0].role, FtRole::kPrimary);
  EXPECT_EQ(loaded[0].source, "libvirt domain 'web2'");
}

TEST_F(EnabledVmsTest, NoStateDirMeansNoVms) {
  auto loaded = LoadEnabledVms(node_);
  EXPECT_TRUE(loaded.vms.empty());
  EXPECT_TRUE(loaded.damaged.empty());
}

// A damaged record is reported naming its file and does not keep the others from running.
TEST_F(EnabledVmsTest, DamagedRecordIsReportedNamingTheFileAndOthersStillLoad) {
  ASSERT_TRUE(SaveEnabledVm(node_, {Spec("web1"), FtRole::kPrimary, "test"}).ok());
  ASSERT_TRUE(SaveEnabledVm(node_, {Spec("web3"), FtRole::kBackup, "test"}).ok());
  std::string path = node_.state_dir + "/vms/web1/enabled.conf";
  auto damaged_with = [&](const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
    auto loaded = LoadEnabledVms(node_);
    EXPECT_EQ(loaded.vms.size(), 1u);
    if (!loaded.vms.empty()) {
      EXPECT_EQ(loaded.vms[0].spec.name, "web3");
    }
    return loaded.damaged.size() == 1 ? loaded.damaged[0] : Internal("not reported");
  };
  Status bad_value = damaged_with("# role: primary\n[vm web1]\nmemory_mib = many\n");
  EXPECT_EQ(bad_value.code(), StatusCode::kDataLoss);
  EXPECT_NE(bad_value.message().find(path), std::string::npos) << bad_value.message();
  Status no_role = damaged_with("[vm web1]\nkernel = /k\n");
  EXPECT_NE(no_role.message().find("no '# role: ' line"), std::string::npos) << no_role.message();
  Status empty = damaged_with("");
  EXPECT_NE(empty.message().find(path), std::string::npos) << empty.message();

  // A record in another VM's directory.
  std::ofstream(path, std::ios::trunc) << "# role: backup\n[vm web9]\nkernel = /k\n";
  auto loaded = LoadEnabledVms(node_);
  ASSERT_EQ(loaded.damaged.size(), 1u);
  EXPECT_NE(loaded.damaged[0].message().find("defines vm 'web9', not 'web1'"), std::string::npos)
      << loaded.damaged[0].message();
}

}  // namespace
}  // namespace ft::daemon
