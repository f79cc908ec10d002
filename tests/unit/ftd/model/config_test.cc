#include "ft/daemon/config.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;

constexpr const char* kGood = R"(# ftd test config
[node]
name = hostA
state_dir = state
run_dir = /tmp/ftd-run
log_level = debug

[vm web1]
memory_mib = 256
kernel = img/vmlinuz
initrd = img/initrd.img
cmdline = console=ttyS0 ftguest.ip=10.0.2.15/24
disk.vda = img/data.qcow2
nic = user
mac = 52:54:00:ab:cd:ef
forward = 127.0.0.1:17000 -> 7000
forward = 127.0.0.1:17001 -> 7001
)";

std::string ErrorOf(const std::string& text) {
  auto r = ParseConfig(text, "ftd.conf", "/etc/ftd");
  return r.ok() ? "(parsed)" : r.status().message();
}

TEST(ConfigParseTest, ParsesNodeAndVm) {
  auto r = ParseConfig(kGood, "ftd.conf", "/etc/ftd");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->node.name, "hostA");
  EXPECT_EQ(r->node.state_dir, "/etc/ftd/state");  // relative to the config file
  EXPECT_EQ(r->node.run_dir, "/tmp/ftd-run");
  ASSERT_EQ(r->vms.size(), 1u);
  const auto& vm = r->vms[0];
  EXPECT_EQ(vm.name, "web1");
  EXPECT_EQ(vm.kernel, "/etc/ftd/img/vmlinuz");
  EXPECT_EQ(vm.cmdline, "console=ttyS0 ftguest.ip=10.0.2.15/24");
  ASSERT_EQ(vm.disks.size(), 1u);
  EXPECT_EQ(vm.disks[0].id, "vda");
  EXPECT_EQ(vm.disks[0].path, "/etc/ftd/img/data.qcow2");
  ASSERT_TRUE(vm.nic.has_value());
  EXPECT_EQ(vm.nic->mac, "52:54:00:ab:cd:ef");
  ASSERT_EQ(vm.nic->forwards.size(), 2u);
  EXPECT_EQ(vm.nic->forwards[1].host_port, 17001);
  EXPECT_EQ(vm.nic->forwards[1].guest_port, 7001);
}

TEST(ConfigParseTest, UnknownKeyIsNamedWithLineAndSection) {
  std::string text = std::string(kGood) + "memroy_mib = 512\n";
  EXPECT_EQ(ErrorOf(text).rfind("ftd.conf:18: [vm web1] memroy_mib: unknown key", 0), 0u)
      << ErrorOf(text);
  EXPECT_NE(ErrorOf("[node]\nnmae = a\n").find("[node] nmae: unknown key"), std::string::npos);
}

TEST(ConfigParseTest, ReprotectIsAutoByDefaultOrManual) {
  auto r = ParseConfig("[node]\nname = a\n", "ftd.conf", "/etc/ftd");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->node.reprotect_auto);
  r = ParseConfig("[node]\nname = a\nreprotect = manual\n", "ftd.conf", "/etc/ftd");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->node.reprotect_auto);
  EXPECT_NE(ErrorOf("[node]\nreprotect = sometimes\n")
                .find("[node] reprotect: 'sometimes' is not one of auto, manual"),
            std::string::npos)
      << ErrorOf("[node]\nreprotect = sometimes\n");
}

TEST(ConfigParseTest, BadAddressIsNamed) {
  std::string text = R"([vm a]
kernel = /k
forward = 127.0.0.300:17000 -> 7000
)";
  EXPECT_NE(ErrorOf(text).find("ftd.conf:3: [vm a] forward: '127.0.0.300' is not a numeric IPv4"),
            std::string::npos)
      << ErrorOf(text);
  EXPECT_NE(
      ErrorOf("[vm a]\nkernel=/k\nforward = 127.0.0.1:99999 -> 7000\n").find("host port '99999'"),
      std::string::npos);
  EXPECT_NE(
      ErrorOf("[vm a]\nkernel=/k\nforward = 127.0.0.1:80\n").find("HOST_IP:PORT -> GUEST_PORT"),
      std::string::npos);
}

TEST(ConfigParseTest, StructuralErrors) {
  EXPECT_NE(ErrorOf("name = x\n").find("outside a section"), std::string::npos);
  EXPECT_NE(ErrorOf("[vmm a]\n").find("unknown section '[vmm a]'"), std::string::npos);
  EXPECT_NE(ErrorOf("[vm a]\nkernel=/k\n[vm a]\n").find("[vm a] appears twice"), std::string::npos);
  EXPECT_NE(ErrorOf("[vm a]\nkernel=/k\nkernel=/j\n").find("kernel: set twice (first on line 2)"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[vm a]\nkernel\n").find("expected 'key = value'"), std::string::npos);
  EXPECT_NE(ErrorOf("[vm a]\nmemory_mib = lots\n").find("memory_mib: 'lots' is not a number"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[vm a]\n").find("vm 'a': kernel is required"), std::string::npos);
  EXPECT_NE(ErrorOf("[vm a]\nkernel=/k\ndisk.vda.bus = scsi\n").find("bus 'scsi'"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[vm a]\nkernel=/k\nnic_model = virtio-net-pci\n").find("use e1000"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[vm a]\nkernel=/k\ndisk.vda.format = qcow2\n")
                .find("disk.vda: image path is missing"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[node]\nlog_level = loud\n").find("'loud' is not one of"), std::string::npos);
}

class ConfigFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ft-config-" + std::to_string(getpid()));
    fs::create_directories(dir_ / "img");
    Write("img/vmlinuz", "kernel");
    Write("img/initrd.img", "initrd");
    Write("img/data.qcow2", std::string("QFI\xfb", 4) + "rest");
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& rel, const std::string& content) {
    std::ofstream(dir_ / rel, std::ios::binary) << content;
  }
  Result<Config> Load(const std::string& text) {
    Write("ftd.conf", text);
    return LoadConfig((dir_ / "ftd.conf").string());
  }
  fs::path dir_;
};

TEST_F(ConfigFilesTest, GoodConfigLoads) {
  auto r = Load(kGood);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
}

TEST_F(ConfigFilesTest, MissingKernelIsNamed) {
  fs::remove(dir_ / "img/vmlinuz");
  auto r = Load(kGood);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("vm 'web1': kernel '" + (dir_ / "img/vmlinuz").string() +
                                      "' does not exist"),
            std::string::npos)
      << r.status().message();
}

TEST_F(ConfigFilesTest, UnreadableOrWrongImageIsNamed) {
  Write("img/data.qcow2", "this is not qcow2");
  auto r = Load(kGood);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("disk.vda '" + (dir_ / "img/data.qcow2").string() +
                                      "' is not a qcow2 image"),
            std::string::npos)
      << r.status().message();
  fs::remove(dir_ / "img/data.qcow2");
  fs::create_directory(dir_ / "img/data.qcow2");
  r = Load(kGood);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is not a regular file"), std::string::npos);
  if (geteuid() != 0) {  // root reads anything; the mode check only bites for other users
    fs::remove(dir_ / "img/data.qcow2");
    Write("img/data.qcow2", std::string("QFI\xfb", 4));
    fs::permissions(dir_ / "img/data.qcow2", fs::perms::none);
    r = Load(kGood);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("is not readable"), std::string::npos);
  }
}

TEST_F(ConfigFilesTest, MissingQemuIsNamed) {
  auto r = Load(std::string(kGood) + "qemu = /nonexistent/qemu-system-x86_64\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(
      r.status().message().find("qemu '/nonexistent/qemu-system-x86_64' is not an executable"),
      std::string::npos);
}

TEST_F(ConfigFilesTest, MissingConfigFileIsNamed) {
  auto r = LoadConfig((dir_ / "nope.conf").string());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot read config '" + (dir_ / "nope.conf").string() + "'"),
            std::string::npos);
}

}  // namespace
}  // namespace ft::daemon

namespace ft::daemon {
namespace {

TEST(ConfigParseTest, FaultToleranceRolesNeedTheirChannelSettings) {
  auto r = ParseConfig(
      "[node]\npeer = 10.0.0.2:7400\nchannel_key_file = key\nheartbeat_timeout_ms = 800\n"
      "max_lag_ms = 500\n[vm a]\nkernel = /k\nft = primary\n",
      "ftd.conf", "/etc/ftd");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->RoleOf("a"), FtRole::kPrimary);
  EXPECT_EQ(r->RoleOf("other"), FtRole::kOff);
  EXPECT_EQ(r->node.channel.peer_host, "10.0.0.2");
  EXPECT_EQ(r->node.channel.peer_port, 7400);
  EXPECT_EQ(r->node.channel.key_file, "/etc/ftd/key");
  EXPECT_EQ(r->node.channel.heartbeat_timeout_ms, 800);
  EXPECT_EQ(r->node.channel.max_lag_ms, 500);

  EXPECT_NE(ErrorOf("[vm a]\nkernel=/k\nft = primary\n").find("needs [node] channel_key_file"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[node]\nchannel_key_file = k\n[vm a]\nkernel=/k\nft = primary\n")
                .find("ft = primary needs [node] peer"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[node]\nchannel_key_file = k\n[vm a]\nkernel=/k\nft = backup\n")
                .find("ft = backup needs [node] listen"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[vm a]\nkernel=/k\nft = yes\n").find("'yes' is not one of off, primary"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[node]\npeer = 10.0.0.2\n").find("not of the form ADDRESS:PORT"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[node]\nheartbeat_timeout_ms = 100\nheartbeat_interval_ms = 200\n")
                .find("must be larger than heartbeat_interval_ms"),
            std::string::npos);
  EXPECT_NE(ErrorOf("[node]\nmax_lag_ms = 0\n").find("not a number in 10..600000"),
            std::string::npos);
}

TEST_F(ConfigFilesTest, ChannelKeyMustBePrivateAndLongEnough) {
  std::string text = std::string(kGood) + "ft = backup\n";
  text.replace(text.find("log_level = debug"), 17,
               "log_level = debug\nlisten = 127.0.0.1:7400\nchannel_key_file = channel.key");
  Write("channel.key", "0123456789abcdef0123456789abcdef\n");
  fs::permissions(dir_ / "channel.key", fs::perms::owner_read | fs::perms::owner_write);
  auto r = Load(text);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->node.channel.key, "0123456789abcdef0123456789abcdef");

  fs::permissions(dir_ / "channel.key", fs::perms::group_read, fs::perm_options::add);
  r = Load(text);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("readable by group or others"), std::string::npos)
      << r.status().message();

  Write("channel.key", "short\n");
  fs::permissions(dir_ / "channel.key", fs::perms::owner_read | fs::perms::owner_write);
  r = Load(text);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("use at least 16 random bytes"), std::string::npos)
      << r.status().message();

  fs::remove(dir_ / "channel.key");
  r = Load(text);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("channel_key_file"), std::string::npos);

  // A link to a key elsewhere, or a key another user owns (and so could change), is refused.
  Write("real.key", "0123456789abcdef0123456789abcdef\n");
  fs::permissions(dir_ / "real.key", fs::perms::owner_read | fs::perms::owner_write);
  fs::create_symlink(dir_ / "real.key", dir_ / "channel.key");
  r = Load(text);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("is a symbolic link"), std::string::npos)
      << r.status().message();
  fs::remove(dir_ / "channel.key");
  fs::rename(dir_ / "real.key", dir_ / "channel.key");
  if (geteuid() == 0) {  // only root can give a file away
    ASSERT_EQ(chown((dir_ / "channel.key").c_str(), 4242, 4242), 0);
    r = Load(text);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("is owned by uid 4242, not by ftd's user (uid 0) or root"),
              std::string::npos)
        << r.status().message();
  }
}

TEST(ConfigParseTest, ProtectedVmsNeedQcow2Disks) {
  std::string node = "[node]\nname = hostA\npeer = 10.0.0.2:7400\nchannel_key_file = /k\n";
  std::string vm = "[vm web1]\nkernel = /k\ndisk.vda = /d.img\ndisk.vda.format = raw\n";
  EXPECT_NE(ErrorOf(node + vm + "ft = primary\n")
                .find("disk.vda: a protected VM's disks must be qcow2 (raw cannot hold the "
                      "snapshot a backup goes live from)"),
            std::string::npos)
      << ErrorOf(node + vm + "ft = primary\n");
  EXPECT_EQ(ErrorOf(node + vm), "(parsed)");  // an unprotected VM may run from raw
}

// A VM turned on with ftctl travels and is kept as its [vm] section: every field survives.
TEST(VmSectionTest, FormatThenParseGivesTheSameSpec) {
  auto r = ParseConfig(kGood, "ftd.conf", "/etc/ftd");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  domain::VmSpec spec = r->vms[0];
  spec.disks[0].bus = domain::DiskBus::kIde;
  spec.icount_shift = 6;
  std::string text = FormatVmSection(spec);
  auto back = ParseVmSection(text, "enable request");
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(FormatVmSection(*back), text);
  EXPECT_EQ(back->name, "web1");
  EXPECT_EQ(back->kernel, "/etc/ftd/img/vmlinuz");
  EXPECT_EQ(back->icount_shift, 6);
  ASSERT_EQ(back->disks.size(), 1u);
  EXPECT_EQ(back->disks[0].bus, domain::DiskBus::kIde);
  ASSERT_TRUE(back->nic.has_value());
  EXPECT_EQ(back->nic->mac, "52:54:00:ab:cd:ef");
  ASSERT_EQ(back->nic->forwards.size(), 2u);
  EXPECT_EQ(back->nic->forwards[1].host_port, 17001);
  EXPECT_EQ(back->nic->forwards[1].guest_port, 7001);

  spec.nic.reset();
  auto none = ParseVmSection(FormatVmSection(spec), "enable request");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_FALSE(none->nic.has_value());
}

TEST(VmSectionTest, RefusesARoleTwoVmsAndBadValuesNamingTheSource) {
  std::string vm = "[vm web1]\nkernel = /k\n";
  auto with_role = ParseVmSection(vm + "ft = primary\n", "enable request");
  ASSERT_FALSE(with_role.ok());
  EXPECT_NE(with_role.status().message().find("enable request"), std::string::npos);
  EXPECT_NE(with_role.status().message().find("sets ft"), std::string::npos)
      << with_role.status().message();
  auto two = ParseVmSection(vm + "[vm web2]\nkernel = /k\n", "enable request");
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("expected one [vm NAME] section, found 2"),
            std::string::npos)
      << two.status().message();
  auto bad = ParseVmSection("[vm web1]\nmemory_mib = lots\n", "enable request");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("memory_mib"), std::string::npos);
}

TEST(VmSectionTest, AValueWithANewlineIsRefusedNamingTheKey) {
  domain::VmSpec spec;
  spec.name = "web1";
  spec.kernel = "/k";
  spec.cmdline = "console=ttyS0\n# role: primary";
  Status s = domain::ValidateVmSpec(spec);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("vm 'web1': cmdline has a control character (\\x0a at byte 13)"),
            std::string::npos)
      << s.message();
  spec.cmdline = "console=ttyS0";
  spec.disks.push_back({"vda", "/srv/web1\n.qcow2", "qcow2"});
  s = domain::ValidateVmSpec(spec);
  EXPECT_NE(s.message().find("disk.vda has a control character"), std::string::npos) << s.message();
}

// fuzz_vm_section found it (CI, 2026-12-06): "qemu = " parsed to an empty binary that the
// formatter leaves out, so the section the peer received named the default QEMU instead.
TEST(ConfigParseTest, AnEmptyQemuIsRefusedNamingTheKey) {
  auto vm = ParseVmSection("[vm web1]\nkernel = /k\nqemu = \n", "enable request");
  ASSERT_FALSE(vm.ok());
  EXPECT_NE(vm.status().message().find("qemu"), std::string::npos) << vm.status().message();
  EXPECT_NE(vm.status().message().find("is empty"), std::string::npos) << vm.status().message();
  auto node = ParseConfig("[node]\nqemu =\n", "ftd.conf", "/etc/ftd");
  ASSERT_FALSE(node.ok());
  EXPECT_NE(node.status().message().find("is empty"), std::string::npos) << node.status().message();
  domain::VmSpec spec;
  spec.name = "web1";
  spec.kernel = "/k";
  spec.qemu_binary = "";
  EXPECT_NE(domain::ValidateVmSpec(spec).message().find("qemu is required"), std::string::npos);
}

TEST(ConfigParseTest, NodeQemuIsTheQemuForVmsTurnedOnAtRunTime) {
  auto r = ParseConfig("[node]\nqemu = /usr/lib/ftd/qemu/bin/qemu-system-x86_64\n", "ftd.conf",
                       "/etc/ftd");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->node.qemu, "/usr/lib/ftd/qemu/bin/qemu-system-x86_64");
  auto d = ParseConfig("[node]\n", "ftd.conf", "/etc/ftd");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->node.qemu, "qemu-system-x86_64");
}

}  // namespace
}  // namespace ft::daemon
