// ftd reads VM definitions from a real libvirtd (qemu:///system): a compatible domain and an
// incompatible one are defined with virsh, read back through ft::libvirt::Connection and
// imported. libvirt never runs them. libvirtd is started by scripts/libvirtd.sh when none
// answers, and stopped afterwards only if this test started it; the domains (prefix
// ftt<pid>-) are undefined whatever happens. Needs root; skips without it.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ft/libvirt/connection.h"
#include "ft/libvirt/domain_spec.h"
#include "ftd_instance.h"
#include "lab.h"
#include "libvirt_domains.h"

namespace ft::libvirt {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::string& kPrefix = ft::testing::TestDomainPrefix();
using ft::testing::DefinedDomain;

std::string DomainXml(const std::string& name, const fs::path& dir, const std::string& vcpus,
                      const std::string& interfaces) {
  return fmt::format(R"(<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{dir}/vmlinuz</kernel>
    <initrd>{dir}/initrd.img</initrd>
    <cmdline>console=ttyS0 nohz=off ftguest.ip=10.77.0.10/24</cmdline>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{dir}/{name}.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    {interfaces}
    <serial type='pty'/>
  </devices>
</domain>
)",
                     fmt::arg("name", name), fmt::arg("vcpus", vcpus),
                     fmt::arg("dir", dir.string()), fmt::arg("interfaces", interfaces));
}

class LibvirtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { libvirt_ = ft::testing::LibvirtdForSuite::Start(); }

  static void TearDownTestSuite() { libvirt_ = {}; }

  void SetUp() override {
    if (!libvirt_.skip.empty()) FT_SKIP_OR_FAIL_IN_CI(libvirt_.skip);
    ASSERT_TRUE(libvirt_.error.empty()) << libvirt_.error;
    std::string templ = (fs::temp_directory_path() / (kPrefix + "XXXXXX")).string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    // libvirt does not open the kernel, initrd or image at define time; they exist anyway.
    for (const char* file : {"vmlinuz", "initrd.img"}) std::ofstream(dir_ / file) << file;
  }

  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  static ft::testing::LibvirtdForSuite libvirt_;
  fs::path dir_;
};

ft::testing::LibvirtdForSuite LibvirtTest::libvirt_;

TEST_F(LibvirtTest, CompatibleDomainImportsAndIncompatibleIsRefusedByName) {
  const std::string good = kPrefix + "good";
  const std::string bad = kPrefix + "bad";
  auto good_domain =
      DefinedDomain::Define(good,
                            DomainXml(good, dir_, "1",
                                      "<interface type='bridge'><mac address='52:54:00:f7:00:01'/>"
                                      "<source bridge='ftbr0'/><model type='e1000'/></interface>"),
                            dir_);
  ASSERT_TRUE(good_domain.ok()) << good_domain.status().ToString();
  // Two vCPUs, virtio-net, and a NIC without <model> (libvirt fills in its default).
  auto bad_domain =
      DefinedDomain::Define(bad,
                            DomainXml(bad, dir_, "2",
                                      "<interface type='bridge'><mac address='52:54:00:f7:00:02'/>"
                                      "<source bridge='ftbr0'/><model type='virtio'/></interface>"
                                      "<interface type='bridge'><mac address='52:54:00:f7:00:03'/>"
                                      "<source bridge='ftbr0'/></interface>"),
                            dir_);
  ASSERT_TRUE(bad_domain.ok()) << bad_domain.status().ToString();

  auto conn = Connection::Open();
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();

  auto domains = (*conn)->ListDomains();
  ASSERT_TRUE(domains.ok()) << domains.status().ToString();
  int seen = 0;
  for (const auto& d : *domains) {
    if (d.name != good && d.name != bad) continue;
    ++seen;
    EXPECT_FALSE(d.active) << d.name;
    EXPECT_TRUE(d.persistent) << d.name;
    EXPECT_EQ(d.uuid.size(), 36u) << d.name;
  }
  EXPECT_EQ(seen, 2);

  ImportDefaults defaults;
  defaults.qemu_binary = "/usr/lib/ftd/qemu/bin/qemu-system-x86_64";
  auto good_xml = (*conn)->DomainXml(good);
  ASSERT_TRUE(good_xml.ok()) << good_xml.status().ToString();
  auto imported = ImportDomain(*good_xml, defaults);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString() << "\n" << *good_xml;
  const auto& spec = imported->spec;
  EXPECT_EQ(spec.name, good);
  EXPECT_EQ(spec.qemu_binary, defaults.qemu_binary);
  EXPECT_EQ(spec.memory_mib, 256u);
  EXPECT_EQ(spec.kernel, (dir_ / "vmlinuz").string());
  EXPECT_EQ(spec.initrd, (dir_ / "initrd.img").string());
  EXPECT_EQ(spec.cmdline, "console=ttyS0 nohz=off ftguest.ip=10.77.0.10/24");
  ASSERT_EQ(spec.disks.size(), 1u);
  EXPECT_EQ(spec.disks[0].id, "vda");
  EXPECT_EQ(spec.disks[0].path, (dir_ / (good + ".qcow2")).string());
  EXPECT_EQ(spec.disks[0].format, "qcow2");
  EXPECT_EQ(spec.disks[0].bus, domain::DiskBus::kVirtio);
  ASSERT_TRUE(spec.nic.has_value());
  EXPECT_EQ(spec.nic->backend, domain::NicBackend::kBridge);
  EXPECT_EQ(spec.nic->bridge, "ftbr0");
  EXPECT_EQ(spec.nic->mac, "52:54:00:f7:00:01");
  // Everything libvirt adds on define (usb controller, balloon, ps2 input, qemu64, machine
  // pc-i440fx-*, boot dev hd, console) passes without a warning.
  EXPECT_THAT(imported->warnings, IsEmpty()) << *good_xml;

  auto bad_xml = (*conn)->DomainXml(bad);
  ASSERT_TRUE(bad_xml.ok()) << bad_xml.status().ToString();
  auto refused = ImportDomain(*bad_xml, defaults);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  const std::string& message = refused.status().message();
  EXPECT_THAT(message, HasSubstr(fmt::format("domain '{}': 4 problems:", bad)));
  EXPECT_THAT(message, HasSubstr("more than one vCPU (<vcpu>2</vcpu>): record/replay runs one "
                                 "vCPU; set <vcpu>1</vcpu>"));
  EXPECT_THAT(message, HasSubstr("interface 52:54:00:f7:00:02 uses model virtio: virtio-net "
                                 "hangs in replay on QEMU 7.2; use <model type='e1000'/>"));
  EXPECT_THAT(message, HasSubstr("interface 52:54:00:f7:00:03 uses model 'rtl8139'"));
  EXPECT_THAT(message, HasSubstr("2 interfaces"));
}

TEST_F(LibvirtTest, MissingDomainIsNotFoundNamingUriAndDomain) {
  auto conn = Connection::Open();
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  auto xml = (*conn)->DomainXml(kPrefix + "missing");
  ASSERT_FALSE(xml.ok());
  EXPECT_EQ(xml.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(xml.status().message(),
            fmt::format("libvirt at qemu:///system has no domain '{}missing'", kPrefix));
}

}  // namespace
}  // namespace ft::libvirt
