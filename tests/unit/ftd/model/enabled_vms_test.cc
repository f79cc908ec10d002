// VMs turned on at run time are kept in the state dir: saved atomically, loaded back in
// their roles, forgotten on disable; a damaged record is an error naming its file, and
// nothing in a VM's definition can change the role it is run in.
#include "enabled_vms.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ft/crc32.h"
#include "vm_records.h"

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

  static domain::VmSpec Spec(const std::string& name) {
    domain::VmSpec spec;
    spec.name = name;
    spec.kernel = "/guest/vmlinux";
    spec.initrd = "/guest/initrd.img";
    spec.cmdline = "console=ttyS0 ftguest.ip=10.77.0.10/24";
    domain::NicSpec nic;
    nic.backend = domain::NicBackend::kBridge;
    nic.bridge = "br0";
    spec.nic = nic;
    return spec;
  }

  std::string PathOf(const std::string& vm) const {
    return node_.state_dir + "/vms/" + vm + "/enabled.conf";
  }
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

// docs/formats/state-files.md: a version line first, the role and source in the header, the
// section, and a CRC line over all of it last.
TEST_F(EnabledVmsTest, TheRecordIsVersionedAndSealedWithACrc) {
  ASSERT_TRUE(SaveEnabledVm(node_, {Spec("web1"), FtRole::kPrimary, "libvirt domain 'web1'"}).ok());
  std::string text = ReadAll(PathOf("web1"));
  EXPECT_EQ(text.rfind("# ftd-enabled-vm 1\n# ftd: ", 0), 0u) << text;
  EXPECT_NE(text.find("\n# role: primary\n# source: libvirt domain 'web1'\n" +
                      FormatVmSection(Spec("web1")) + "# crc32 "),
            std::string::npos)
      << text;
  std::string content = text.substr(0, text.rfind("# crc32 "));
  EXPECT_EQ(text.substr(content.size()), fmt::format("# crc32 {:08x}\n", Crc32(content)));
}

// The example in docs/formats/state-files.md, byte for byte.
TEST_F(EnabledVmsTest, TheDocumentedExampleIsWhatIsWritten) {
  domain::VmSpec spec = Spec("web1");
  spec.qemu_binary = "/usr/bin/qemu-system-x86_64";
  spec.kernel = "/srv/guest/vmlinuz";
  spec.initrd = "/srv/guest/initrd.img";
  spec.cmdline = "console=ttyS0 nohz=off";
  spec.disks.push_back({"vda", "/var/lib/ftd/web1-vda.qcow2", "qcow2", domain::DiskBus::kVirtio});
  ASSERT_TRUE(
      SaveEnabledVm(node_, {spec, FtRole::kPrimary, "libvirt domain 'web1' (qemu:///system)"})
          .ok());
  EXPECT_EQ(ReadAll(PathOf("web1")),
            "# ftd-enabled-vm 1\n"
            "# ftd: fault tolerance turned on at run time; 'ftctl disable web1' removes it. A "
            "CRC protects this file: do not edit it.\n"
            "# role: primary\n"
            "# source: libvirt domain 'web1' (qemu:///system)\n"
            "[vm web1]\n"
            "memory_mib = 256\n"
            "icount_shift = 5\n"
            "qemu = /usr/bin/qemu-system-x86_64\n"
            "kernel = /srv/guest/vmlinuz\n"
            "initrd = /srv/guest/initrd.img\n"
            "cmdline = console=ttyS0 nohz=off\n"
            "disk.vda = /var/lib/ftd/web1-vda.qcow2\n"
            "disk.vda.format = qcow2\n"
            "disk.vda.bus = virtio\n"
            "nic = bridge\n"
            "nic_model = e1000\n"
            "mac = 52:54:00:12:34:56\n"
            "bridge = br0\n"
            "# crc32 794ab131\n");
}

TEST_F(EnabledVmsTest, EveryCorruptedByteIsReportedNotRunInSomeOtherWay) {
  ASSERT_TRUE(SaveEnabledVm(node_, {Spec("web1"), FtRole::kBackup, "libvirt domain 'web1'"}).ok());
  const std::string good = ReadAll(PathOf("web1"));
  for (size_t i = 0; i < good.size(); ++i) {
    for (unsigned char mask : {0x01, 0x20, 0x80}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      WriteAll(PathOf("web1"), bad);
      auto loaded = LoadEnabledVms(node_);
      ASSERT_TRUE(loaded.vms.empty()) << "byte " << i << " ^ " << int(mask) << " went unnoticed";
      ASSERT_EQ(loaded.damaged.size(), 1u);
      ASSERT_EQ(loaded.damaged[0].code(), StatusCode::kDataLoss) << loaded.damaged[0].ToString();
      ASSERT_NE(loaded.damaged[0].message().find(PathOf("web1")), std::string::npos)
          << loaded.damaged[0].message();
    }
  }
  std::string bad = good;
  bad[bad.find("memory_mib = ") + 13] ^= 0x01;
  WriteAll(PathOf("web1"), bad);
  Status s = LoadEnabledVms(node_).damaged.at(0);
  EXPECT_NE(s.message().find("CRC mismatch"), std::string::npos) << s.message();
  // Cut short (a torn copy, a full disk under an editor): also reported.
  WriteAll(PathOf("web1"), good.substr(0, good.size() - 5));
  EXPECT_EQ(LoadEnabledVms(node_).damaged.size(), 1u);
  // A damaged record is not promoted (rewritten) either.
  EXPECT_EQ(PromoteEnabledVm(node_, "web1").code(), StatusCode::kDataLoss);
}

TEST_F(EnabledVmsTest, ANewerVersionIsRefusedNotMisread) {
  WriteAll(
      PathOf("web1"),
      AppendCrcLine("# ftd-enabled-vm 2\n# role: primary\n" + FormatVmSection(Spec("web1")), "# "));
  auto loaded = LoadEnabledVms(node_);
  ASSERT_EQ(loaded.damaged.size(), 1u);
  EXPECT_EQ(loaded.damaged[0].code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(loaded.damaged[0].message().find("version 2, written by a newer ftd"),
            std::string::npos)
      << loaded.damaged[0].message();
}

// A kernel cmdline or a source with a newline in it must not inject a role line.
TEST_F(EnabledVmsTest, NothingInTheDefinitionOrSourceCanChangeTheRole) {
  domain::VmSpec spec = Spec("web1");
  spec.cmdline = "console=ttyS0\n# role: backup\n";
  // A value of the definition with a newline is refused, naming the key; no record is left.
  Status refused = SaveEnabledVm(node_, {spec, FtRole::kPrimary, "domain 'web1'"});
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("cmdline has a control character"), std::string::npos)
      << refused.message();
  EXPECT_FALSE(fs::exists(PathOf("web1")));
  // A source's control characters become spaces: it is one header line.
  spec.cmdline = "console=ttyS0";
  ASSERT_TRUE(
      SaveEnabledVm(node_, {spec, FtRole::kPrimary, "domain 'web1'\n# role: backup\r\n"}).ok());
  auto loaded = LoadEnabledVms(node_);
  ASSERT_EQ(loaded.vms.size(), 1u);
  EXPECT_EQ(loaded.vms[0].role, FtRole::kPrimary);
  EXPECT_EQ(loaded.vms[0].source, "domain 'web1' # role: backup  ");

  // Even a well-sealed record (hand-made) takes its role from the header only.
  WriteAll(PathOf("web1"),
           AppendCrcLine("# ftd-enabled-vm 1\n# role: primary\n# source: x\n" +
                             FormatVmSection(Spec("web1")) + "# role: backup\n# source: y\n",
                         "# "));
  loaded = LoadEnabledVms(node_);
  ASSERT_EQ(loaded.vms.size(), 1u);
  EXPECT_EQ(loaded.vms[0].role, FtRole::kPrimary);
  EXPECT_EQ(loaded.vms[0].source, "x");
  // Two role lines in the header: nobody can tell which one is meant.
  WriteAll(PathOf("web1"), AppendCrcLine("# ftd-enabled-vm 1\n# role: primary\n# role: backup\n" +
                                             FormatVmSection(Spec("web1")),
                                         "# "));
  loaded = LoadEnabledVms(node_);
  ASSERT_EQ(loaded.damaged.size(), 1u);
  EXPECT_NE(loaded.damaged[0].message().find("two '# role: ' lines"), std::string::npos);
}

// What the previous ftd wrote (no version, no CRC) still loads, so an upgrade loses no VM;
// its role, too, comes from the header only. Promoting it rewrites it in the current format.
TEST_F(EnabledVmsTest, ALegacyRecordLoadsAndIsRewrittenWhenPromoted) {
  const std::string legacy =
      "# ftd: fault tolerance turned on at run time; 'ftctl disable web1' removes it. Do not "
      "edit while ftd runs.\n# role: backup\n# source: libvirt domain 'web1'\n" +
      FormatVmSection(Spec("web1")) + "# role: primary\n";
  WriteAll(PathOf("web1"), legacy);
  auto loaded = LoadEnabledVms(node_);
  ASSERT_TRUE(loaded.damaged.empty()) << loaded.damaged[0].ToString();
  ASSERT_EQ(loaded.vms.size(), 1u);
  EXPECT_EQ(loaded.vms[0].role, FtRole::kBackup);
  EXPECT_EQ(loaded.vms[0].source, "libvirt domain 'web1'");
  EXPECT_EQ(FormatVmSection(loaded.vms[0].spec), FormatVmSection(Spec("web1")));

  ASSERT_TRUE(PromoteEnabledVm(node_, "web1").ok());
  std::string text = ReadAll(PathOf("web1"));
  EXPECT_EQ(text.rfind("# ftd-enabled-vm 1\n", 0), 0u) << text;
  loaded = LoadEnabledVms(node_);
  ASSERT_EQ(loaded.vms.size(), 1u);
  EXPECT_EQ(loaded.vms[0].role, FtRole::kPrimary);
  EXPECT_EQ(loaded.vms[0].source, "libvirt domain 'web1'");
}

TEST_F(EnabledVmsTest, AFailedSaveLeavesTheOldRecord) {
  ASSERT_TRUE(SaveEnabledVm(node_, {Spec("web1"), FtRole::kBackup, "first"}).ok());
  fs::create_directory(PathOf("web1") + ".tmp");
  Status s = SaveEnabledVm(node_, {Spec("web1"), FtRole::kPrimary, "second"});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(PathOf("web1")), std::string::npos) << s.message();
  auto loaded = LoadEnabledVms(node_);
  ASSERT_EQ(loaded.vms.size(), 1u);
  EXPECT_EQ(loaded.vms[0].role, FtRole::kBackup);
  EXPECT_EQ(loaded.vms[0].source, "first");
}

}  // namespace
}  // namespace ft::daemon
