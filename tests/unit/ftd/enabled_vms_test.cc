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
  auto loaded = LoadEnabledVms(node_);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0].spec.name, "db1");
  EXPECT_EQ((*loaded)[0].role, FtRole::kPrimary);
  EXPECT_EQ((*loaded)[1].spec.name, "web2");
  EXPECT_EQ((*loaded)[1].role, FtRole::kBackup);
  EXPECT_EQ((*loaded)[1].source, "libvirt domain 'web2'");
  EXPECT_EQ(FormatVmSection((*loaded)[1].spec), FormatVmSection(Spec("web2")));
  EXPECT_FALSE(fs::exists(node_.state_dir + "/vms/web2/enabled.conf.tmp"));

  ASSERT_TRUE(ForgetEnabledVm(node_, "db1").ok());
  ASSERT_TRUE(ForgetEnabledVm(node_, "db1").ok());  // already gone: fine
  loaded = LoadEnabledVms(node_);
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->size(), 1u);
  EXPECT_EQ((*loaded)[0].spec.name, "web2");
}

TEST_F(EnabledVmsTest, NoStateDirMeansNoVms) {
  auto loaded = LoadEnabledVms(node_);
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(loaded->empty());
}

TEST_F(EnabledVmsTest, DamagedRecordIsAnErrorNamingTheFile) {
  ASSERT_TRUE(SaveEnabledVm(node_, {Spec("web1"), FtRole::kPrimary, "test"}).ok());
  std::string path = node_.state_dir + "/vms/web1/enabled.conf";
  std::ofstream(path, std::ios::trunc) << "# role: primary\n[vm web1]\nmemory_mib = many\n";
  auto loaded = LoadEnabledVms(node_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(loaded.status().message().find(path), std::string::npos) << loaded.status().message();

  std::ofstream(path, std::ios::trunc) << "[vm web1]\nkernel = /k\n";
  loaded = LoadEnabledVms(node_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("no '# role: ' line"), std::string::npos)
      << loaded.status().message();

  // A record in another VM's directory.
  fs::create_directories(node_.state_dir + "/vms/web9");
  std::ofstream(path, std::ios::trunc) << "# role: backup\n[vm web1]\nkernel = /k\n";
  fs::rename(path, node_.state_dir + "/vms/web9/enabled.conf");
  loaded = LoadEnabledVms(node_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("defines vm 'web1', not 'web9'"), std::string::npos)
      << loaded.status().message();
}

}  // namespace
}  // namespace ft::daemon
