#include "ft/libvirt/domain_spec.h"

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ft::libvirt {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

std::string Fixture(const std::string& name) {
  std::ifstream in(std::string(FT_LIBVIRT_FIXTURES) + "/" + name);
  EXPECT_TRUE(in.good()) << "missing fixture " << name;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ImportDefaults Defaults() {
  ImportDefaults d;
  d.qemu_binary = "/usr/lib/ftd/qemu/bin/qemu-system-x86_64";
  return d;
}

// A small compatible domain with `devices` and `top` (top-level elements) spliced in.
std::string Domain(const std::string& devices, const std::string& top = "",
                   const std::string& memory = "<memory unit='MiB'>256</memory>") {
  return fmt::format(R"(<domain type='qemu'>
  <name>web1</name>
  {}
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>/srv/vmlinuz</kernel>
    <initrd>/srv/initrd.img</initrd>
    <cmdline>console=ttyS0 nohz=off</cmdline>
  </os>
  {}
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/web1.qcow2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    {}
  </devices>
</domain>)",
                     memory, top, devices);
}

std::string ErrorOf(const std::string& xml) {
  auto r = ImportDomain(xml, Defaults());
  if (r.ok()) return "(imported)";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

std::vector<std::string> WarningsOf(const std::string& xml) {
  auto r = ImportDomain(xml, Defaults());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r->warnings : std::vector<std::string>{};
}

TEST(ImportDomainTest, CompatibleDomainBecomesItsVmSpec) {
  auto r = ImportDomain(Fixture("web1.xml"), Defaults());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const auto& spec = r->spec;
  EXPECT_EQ(spec.name, "web1");
  EXPECT_EQ(spec.qemu_binary, "/usr/lib/ftd/qemu/bin/qemu-system-x86_64");  // not <emulator>
  EXPECT_EQ(spec.memory_mib, 512u);
  EXPECT_EQ(spec.icount_shift, 5);
  EXPECT_EQ(spec.kernel, "/srv/guest/vmlinuz");
  EXPECT_EQ(spec.initrd, "/srv/guest/initrd.img");
  EXPECT_EQ(spec.cmdline, "console=ttyS0 nohz=off ftguest.ip=10.0.0.15/24");
  ASSERT_EQ(spec.disks.size(), 2u);
  EXPECT_EQ(spec.disks[0].id, "vda");
  EXPECT_EQ(spec.disks[0].path, "/var/lib/libvirt/images/web1.qcow2");
  EXPECT_EQ(spec.disks[0].format, "qcow2");
  EXPECT_EQ(spec.disks[0].bus, domain::DiskBus::kVirtio);
  EXPECT_EQ(spec.disks[1].id, "hda");
  EXPECT_EQ(spec.disks[1].format, "raw");
  EXPECT_EQ(spec.disks[1].bus, domain::DiskBus::kIde);
  ASSERT_TRUE(spec.nic.has_value());
  EXPECT_EQ(spec.nic->backend, domain::NicBackend::kBridge);
  EXPECT_EQ(spec.nic->bridge, "br0");
  EXPECT_EQ(spec.nic->mac, "52:54:00:6b:3c:01");
  EXPECT_TRUE(domain::ValidateVmSpec(spec).ok());

  // What ftd does differently, and only that: libvirt's own defaults (usb controller, ps2
  // input, balloon, audio none, qemu64, utc) pass silently.
  EXPECT_THAT(r->warnings,
              ElementsAre(HasSubstr("type='kvm' ignored"), HasSubstr("graphics 'vnc' ignored"),
                          HasSubstr("video 'cirrus' ignored")));
}

TEST(ImportDomainTest, DomainWithoutNicOrDisksImports) {
  std::string xml = Domain("");
  auto r = ImportDomain(xml, Defaults());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->spec.nic.has_value());
  EXPECT_THAT(r->warnings, IsEmpty());
}

TEST(ImportDomainTest, ImportDefaultsFillWhatXmlDoesNotSay) {
  ImportDefaults d;
  d.qemu_binary = "/opt/qemu";
  d.icount_shift = 3;
  auto r = ImportDomain(Domain(""), d);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->spec.qemu_binary, "/opt/qemu");
  EXPECT_EQ(r->spec.icount_shift, 3);
}

TEST(ImportDomainTest, DiskBootIsRefusedWithTheWayToDirectKernelBoot) {
  std::string error = ErrorOf(Fixture("bios-boot.xml"));
  EXPECT_THAT(error, HasSubstr("domain 'db1': boots from 'hd' through the BIOS"));
  EXPECT_THAT(error, HasSubstr("set <kernel>, <initrd> and <cmdline> under <os>"));
}

struct MemoryCase {
  std::string name;
  std::string element;
  uint32_t mib;
  bool warns;  // not a whole number of MiB
};

// ctest lists parameterized tests with their printed parameter: keep it short.
void PrintTo(const MemoryCase& c, std::ostream* os) { *os << c.name; }

class MemoryUnitTest : public ::testing::TestWithParam<MemoryCase> {};

TEST_P(MemoryUnitTest, UnitsScaleToMib) {
  auto r = ImportDomain(Domain("", "", GetParam().element), Defaults());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->spec.memory_mib, GetParam().mib);
  if (GetParam().warns) {
    EXPECT_THAT(r->warnings, Contains(HasSubstr("not a whole number of MiB")));
  } else {
    EXPECT_THAT(r->warnings, IsEmpty());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Units, MemoryUnitTest,
    ::testing::Values(
        MemoryCase{"NoUnitIsKiB", "<memory>262144</memory>", 256, false},  // KiB by default
        MemoryCase{"KiB", "<memory unit='KiB'>262144</memory>", 256, false},
        MemoryCase{"k", "<memory unit='k'>131072</memory>", 128, false},
        MemoryCase{"MiB", "<memory unit='MiB'>384</memory>", 384, false},
        MemoryCase{"M", "<memory unit='M'>384</memory>", 384, false},
        MemoryCase{"GiB", "<memory unit='GiB'>2</memory>", 2048, false},
        MemoryCase{"G", "<memory unit='G'>1</memory>", 1024, false},
        MemoryCase{"b", "<memory unit='b'>268435456</memory>", 256, false},
        MemoryCase{"bytes", "<memory unit='bytes'>134217728</memory>", 128, false},
        // Decimal units: 512 MB = 488.3 MiB, rounded up.
        MemoryCase{"MB", "<memory unit='MB'>512</memory>", 489, true},
        MemoryCase{"KiBNotWholeMiB", "<memory unit='KiB'>262145</memory>", 257, true}),
    [](const ::testing::TestParamInfo<MemoryCase>& param) { return param.param.name; });

TEST(ImportDomainTest, MemoryOutOfRangeOrBadUnitIsRefused) {
  EXPECT_THAT(ErrorOf(Domain("", "", "<memory unit='MiB'>32</memory>")),
              HasSubstr("memory 32 MiB is outside 64..65536 MiB"));
  EXPECT_THAT(ErrorOf(Domain("", "", "<memory unit='TiB'>1</memory>")),
              HasSubstr("memory 1 TiB is outside 64..65536 MiB"));
  EXPECT_THAT(ErrorOf(Domain("", "", "<memory unit='parsecs'>1</memory>")),
              HasSubstr("<memory> has unknown unit 'parsecs'"));
  EXPECT_THAT(ErrorOf(Domain("", "", "<memory unit='EiB'>99999</memory>")),
              HasSubstr("<memory> 99999 EiB is too large"));
  EXPECT_THAT(ErrorOf(Domain("", "", "")), HasSubstr("has no <memory>"));
}

TEST(ImportDomainTest, SmallerCurrentMemoryIsAWarning) {
  auto warnings = WarningsOf(Domain("", "<currentMemory unit='MiB'>128</currentMemory>"));
  EXPECT_THAT(warnings, ElementsAre(HasSubstr("<currentMemory> 128 MiB ignored")));
}

// One refusal each: the message names the domain and the device, and says what to use.
struct RefusalCase {
  std::string name;
  std::string devices;
  std::string top;
  std::vector<std::string> expected;
};

void PrintTo(const RefusalCase& c, std::ostream* os) { *os << c.name; }

class RefusalTest : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(RefusalTest, NamesDeviceAndAlternative) {
  std::string error = ErrorOf(Domain(GetParam().devices, GetParam().top));
  EXPECT_THAT(error, HasSubstr("domain 'web1': "));
  for (const auto& part : GetParam().expected) EXPECT_THAT(error, HasSubstr(part));
  EXPECT_THAT(error, Not(HasSubstr("problems:"))) << "exactly one refusal expected";
}

constexpr const char* kE1000 = "<model type='e1000'/>";

std::string Bridge(const std::string& mac, const std::string& inner) {
  return fmt::format(
      "<interface type='bridge'><mac address='{}'/><source bridge='br0'/>{}</interface>", mac,
      inner);
}

std::string FileDisk(const std::string& dev, const std::string& bus, const std::string& extra = "",
                     const std::string& device = "disk") {
  return fmt::format(
      "<disk type='file' device='{}'><driver name='qemu' type='raw'/>"
      "<source file='/srv/{}.img'/><target dev='{}' bus='{}'/>{}</disk>",
      device, dev, dev, bus, extra);
}

INSTANTIATE_TEST_SUITE_P(
    Devices, RefusalTest,
    ::testing::Values(
        RefusalCase{"VirtioNet",
                    Bridge("52:54:00:12:34:01", "<model type='virtio'/>"),
                    "",
                    {"interface 52:54:00:12:34:01 uses model virtio: virtio-net hangs in replay "
                     "on QEMU 7.2; use <model type='e1000'/>"}},
        RefusalCase{"NoNicModel",
                    Bridge("52:54:00:12:34:01", ""),
                    "",
                    {"interface 52:54:00:12:34:01 has no <model>: libvirt gives it rtl8139",
                     "use <model type='e1000'/>"}},
        RefusalCase{"Rtl8139",
                    Bridge("52:54:00:12:34:01", "<model type='rtl8139'/>"),
                    "",
                    {"uses model 'rtl8139'", "use <model type='e1000'/>"}},
        RefusalCase{
            "NetworkNic",
            "<interface type='network'><mac address='52:54:00:12:34:01'/>"
            "<source network='default'/><model type='e1000'/></interface>",
            "",
            {"interface 52:54:00:12:34:01 has type 'network'", "use <interface type='bridge'>"}},
        RefusalCase{"UserNic",
                    "<interface type='user'><mac address='52:54:00:12:34:01'/>"
                    "<model type='e1000'/></interface>",
                    "",
                    {"has type 'user'", "use <interface type='bridge'>"}},
        RefusalCase{"DirectNic",
                    "<interface type='direct'><mac address='52:54:00:12:34:01'/>"
                    "<source dev='eth0' mode='bridge'/><model type='e1000'/></interface>",
                    "",
                    {"has type 'direct'", "use <interface type='bridge'>"}},
        RefusalCase{"HostdevNic",
                    "<interface type='hostdev'><mac address='52:54:00:12:34:01'/></interface>",
                    "",
                    {"interface 52:54:00:12:34:01 passes a host NIC through"}},
        RefusalCase{"NoBridgeSource",
                    "<interface type='bridge'><mac address='52:54:00:12:34:01'/>"
                    "<model type='e1000'/></interface>",
                    "",
                    {"has no <source bridge=...>"}},
        RefusalCase{"NoMac",
                    "<interface type='bridge'><source bridge='br0'/><model type='e1000'/>"
                    "</interface>",
                    "",
                    {"interface (no MAC) has no <mac address>"}},
        RefusalCase{
            "Openvswitch",
            Bridge("52:54:00:12:34:01", std::string(kE1000) + "<virtualport type='openvswitch'/>"),
            "",
            {"<virtualport type='openvswitch'>", "use a Linux bridge"}},
        RefusalCase{
            "Vlan",
            Bridge("52:54:00:12:34:01", std::string(kE1000) + "<vlan><tag id='100'/></vlan>"),
            "",
            {"has a <vlan> tag", "put the VLAN on the bridge"}},
        RefusalCase{"Nwfilter",
                    Bridge("52:54:00:12:34:01",
                           std::string(kE1000) + "<filterref filter='clean-traffic'/>"),
                    "",
                    {"uses nwfilter 'clean-traffic'"}},
        RefusalCase{"TwoNics",
                    Bridge("52:54:00:12:34:01", kE1000) + Bridge("52:54:00:12:34:02", kE1000),
                    "",
                    {"2 interfaces (52:54:00:12:34:01, 52:54:00:12:34:02): ftd protects one NIC",
                     "keep one <interface type='bridge'>"}},
        RefusalCase{"SataDisk",
                    FileDisk("sdb", "sata"),
                    "",
                    {"disk sdb uses bus 'sata'", "use bus='virtio' or bus='ide'"}},
        RefusalCase{"ScsiDisk", FileDisk("sdb", "scsi"), "", {"disk sdb uses bus 'scsi'"}},
        RefusalCase{"UsbDisk", FileDisk("sdb", "usb"), "", {"disk sdb uses bus 'usb'"}},
        RefusalCase{"SdDisk", FileDisk("mmcblk0", "sd"), "", {"disk mmcblk0 uses bus 'sd'"}},
        RefusalCase{"ImplicitScsiBus",
                    "<disk type='file' device='disk'><driver type='raw'/>"
                    "<source file='/srv/x.img'/><target dev='sdb'/></disk>",
                    "",
                    {"disk sdb uses bus 'scsi'"}},
        RefusalCase{"Cdrom",
                    FileDisk("hdc", "ide", "<readonly/>", "cdrom"),
                    "",
                    {"cdrom hdc: ftd attaches only disks", "device='disk'"}},
        RefusalCase{"Floppy", FileDisk("fda", "fdc", "", "floppy"), "", {"floppy fda:"}},
        RefusalCase{"Lun",
                    "<disk type='block' device='lun'><source dev='/dev/sdx'/>"
                    "<target dev='sdb' bus='scsi'/></disk>",
                    "",
                    {"lun sdb: SCSI LUN passthrough"}},
        RefusalCase{"NetworkDisk",
                    "<disk type='network' device='disk'><driver type='raw'/>"
                    "<source protocol='rbd' name='pool/img'/><target dev='vdb' bus='virtio'/>"
                    "</disk>",
                    "",
                    {"disk vdb is a network disk (protocol 'rbd')", "use <disk type='file'>"}},
        RefusalCase{"BlockDisk",
                    "<disk type='block' device='disk'><driver type='raw'/>"
                    "<source dev='/dev/vg0/web1'/><target dev='vdb' bus='virtio'/></disk>",
                    "",
                    {"disk vdb has type 'block'", "use <disk type='file'>"}},
        RefusalCase{"VmdkDisk",
                    "<disk type='file' device='disk'><driver type='vmdk'/>"
                    "<source file='/srv/x.vmdk'/><target dev='vdb' bus='virtio'/></disk>",
                    "",
                    {"disk vdb has format 'vmdk': ftd supports qcow2 and raw"}},
        RefusalCase{"ReadonlyDisk",
                    FileDisk("vdb", "virtio", "<readonly/>"),
                    "",
                    {"disk vdb is <readonly/>"}},
        RefusalCase{"ShareableDisk",
                    FileDisk("vdb", "virtio", "<shareable/>"),
                    "",
                    {"disk vdb is <shareable/>"}},
        RefusalCase{"FiveIdeDisks",
                    FileDisk("hda", "ide") + FileDisk("hdb", "ide") + FileDisk("hdc", "ide") +
                        FileDisk("hdd", "ide") + FileDisk("hde", "ide"),
                    "",
                    {"5 IDE disks (hda, hdb, hdc, hdd, hde)", "use bus='virtio'"}},
        RefusalCase{"PciPassthrough",
                    "<hostdev mode='subsystem' type='pci' managed='yes'><source>"
                    "<address domain='0x0000' bus='0x03' slot='0x00' function='0x1'/>"
                    "</source></hostdev>",
                    "",
                    {"PCI passthrough of 0000:03:00.1 (<hostdev>)", "remove it"}},
        RefusalCase{"UsbPassthrough",
                    "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/>"
                    "<product id='0xbeef'/></source></hostdev>",
                    "",
                    {"USB passthrough of 0x1234:0xbeef"}},
        RefusalCase{"UsbRedirection",
                    "<redirdev bus='usb' type='spicevmc'/>",
                    "",
                    {"USB redirection (<redirdev type='spicevmc'>)", "remove it"}},
        RefusalCase{"Smartcard",
                    "<smartcard mode='passthrough' type='spicevmc'/>",
                    "",
                    {"smartcard (<smartcard mode='passthrough'>)"}},
        RefusalCase{"TwoSerials",
                    "<serial type='pty'><target port='0'/></serial>"
                    "<serial type='pty'><target port='1'/></serial>",
                    "",
                    {"2 <serial> ports", "keep one <serial>"}},
        RefusalCase{"VirtioConsole",
                    "<console type='pty'><target type='virtio'/></console>",
                    "",
                    {"console 'virtio' (hvc0)", "<target type='serial'/>"}},
        RefusalCase{"Parallel", "<parallel type='pty'/>", "", {"parallel port (<parallel>)"}},
        RefusalCase{"Tpm", "<tpm model='tpm-crb'/>", "", {"TPM (<tpm model='tpm-crb'>)"}},
        RefusalCase{"Virtiofs",
                    "<filesystem type='mount'><source dir='/srv/share'/>"
                    "<target dir='share'/></filesystem>",
                    "",
                    {"filesystem 'share'", "put the data on a disk image"}},
        RefusalCase{"Shmem", "<shmem name='ivshmem0'/>", "", {"shared memory 'ivshmem0'"}},
        RefusalCase{"Vsock", "<vsock model='virtio'><cid auto='yes'/></vsock>", "", {"vsock"}},
        RefusalCase{"DimmHotplug",
                    "<memory model='dimm'><target><size unit='MiB'>128</size></target></memory>",
                    "",
                    {"memory device (<memory model='dimm'>)"}},
        RefusalCase{"UnknownDevice", "<teleporter/>", "", {"device <teleporter> is not known"}},
        RefusalCase{"MaxMemory",
                    "",
                    "<maxMemory slots='4' unit='GiB'>8</maxMemory>",
                    {"<maxMemory> enables memory hotplug"}},
        RefusalCase{"QemuCommandline",
                    "",
                    "<qemu:commandline xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
                    "<qemu:arg value='-no-hpet'/></qemu:commandline>",
                    {"<qemu:commandline> passes raw arguments to QEMU"}},
        RefusalCase{"Sev",
                    "",
                    "<launchSecurity type='sev'/>",
                    {"<launchSecurity type='sev'> encrypts guest memory"}}),
    [](const ::testing::TestParamInfo<RefusalCase>& param) { return param.param.name; });

TEST(ImportDomainTest, MoreThanOneVcpuIsRefused) {
  std::string xml = Domain("");
  xml.replace(xml.find("<vcpu>1</vcpu>"), 14, "<vcpu placement='static'>2</vcpu>");
  EXPECT_EQ(ErrorOf(xml),
            "domain 'web1': more than one vCPU (<vcpu>2</vcpu>): record/replay runs one vCPU; "
            "set <vcpu>1</vcpu>");
}

TEST(ImportDomainTest, UefiFirmwareIsRefused) {
  std::string xml = Domain("");
  xml.replace(xml.find("<os>"), 4,
              "<os firmware='efi'><loader readonly='yes' type='pflash'>/usr/share/OVMF/"
              "OVMF_CODE.fd</loader>");
  EXPECT_THAT(ErrorOf(xml), HasSubstr("boots UEFI firmware"));
}

TEST(ImportDomainTest, OtherArchitecturesAndDomainTypesAreRefused) {
  std::string arm = Domain("");
  arm.replace(arm.find("arch='x86_64' machine='pc'"), 26, "arch='aarch64' machine='virt'");
  EXPECT_THAT(ErrorOf(arm), HasSubstr("arch 'aarch64': ftd runs x86_64 guests only"));
  std::string xen = Domain("");
  xen.replace(xen.find("type='qemu'"), 11, "type='xen'");
  EXPECT_THAT(ErrorOf(xen), HasSubstr("type 'xen' is not a QEMU domain"));
}

// Its [vm] section would read the path against '/' on the peer and in enabled.conf, a
// different file (fuzz/corpus/domain_xml/relative-disk-path.xml).
TEST(ImportDomainTest, RelativeDiskImageIsRefusedLikeARelativeKernel) {
  std::string xml = Domain("");
  xml.replace(xml.find("/srv/web1.qcow2"), 15, "srv/web1.qcow2");
  EXPECT_THAT(ErrorOf(xml), HasSubstr("image 'srv/web1.qcow2' is not an absolute path"));
}

TEST(ImportDomainTest, NameUnusableByFtdIsRefused) {
  std::string xml = Domain("");
  xml.replace(xml.find("<name>web1</name>"), 17, "<name>my web</name>");
  EXPECT_THAT(ErrorOf(xml), HasSubstr("domain 'my web': name 'my web' is not usable by ftd"));
}

TEST(ImportDomainTest, AControlCharacterInKernelInitrdOrCmdlineIsRefusedNamingTheElement) {
  // ftd writes the command line as one line of a [vm] section and of enabled.conf: a newline
  // there once added a "# role: primary" line of its own.
  std::string xml = Domain("");
  xml.replace(xml.find("console=ttyS0 nohz=off"), 22, "console=ttyS0\n# role: primary");
  EXPECT_THAT(ErrorOf(xml), HasSubstr("<os><cmdline> has a control character (\\x0a at byte 13)"));
  xml = Domain("");
  xml.replace(xml.find("/srv/initrd.img"), 15, "/srv/initrd&#13;.img");  // XML keeps a CR only so
  EXPECT_THAT(ErrorOf(xml), HasSubstr("<os><initrd> has a control character (\\x0d at byte 11)"));
}

TEST(ImportDomainTest, EveryRefusalIsReportedInOneMessage) {
  std::string error = ErrorOf(Fixture("everything-wrong.xml"));
  EXPECT_THAT(error, HasSubstr("domain 'lab9': 16 problems:\n  - "));
  EXPECT_THAT(
      error,
      AllOf(HasSubstr("more than one vCPU (<vcpu>4</vcpu>)"),
            HasSubstr("<maxMemory> enables memory hotplug"), HasSubstr("boots UEFI firmware"),
            HasSubstr("boots from 'hd' through the BIOS"), HasSubstr("disk sda uses bus 'sata'"),
            HasSubstr("disk vdb is a network disk (protocol 'rbd')"),
            HasSubstr("cdrom sdc: ftd attaches only disks"),
            HasSubstr("2 interfaces (52:54:00:aa:00:01, 52:54:00:aa:00:02)"),
            HasSubstr("interface 52:54:00:aa:00:01 has type 'network'"),
            HasSubstr("interface 52:54:00:aa:00:02 uses model virtio")));
  EXPECT_THAT(error,
              AllOf(HasSubstr("PCI passthrough of 0000:03:00.1"), HasSubstr("USB redirection"),
                    HasSubstr("smartcard"), HasSubstr("2 <serial> ports"), HasSubstr("TPM"),
                    HasSubstr("<qemu:commandline>")));
}

TEST(ImportDomainTest, IgnoredThingsAreWarnings) {
  std::string devices =
      "<graphics type='spice' autoport='yes'/>"
      "<video><model type='qxl'/></video>"
      "<input type='tablet' bus='usb'/>"
      "<sound model='ich9'/>"
      "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
      "<watchdog model='i6300esb' action='reset'/>"
      "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"
      "<serial type='tcp'><source mode='bind' host='0.0.0.0' service='4555'/></serial>"
      "<disk type='file' device='disk'><source file='/srv/d.img'/>"
      "<target dev='vdb' bus='virtio'/><iotune><total_iops_sec>100</total_iops_sec></iotune>"
      "</disk>";
  std::string top =
      "<cpu mode='host-passthrough'/><clock offset='localtime'/>"
      "<features><acpi/><hyperv><relaxed state='on'/></hyperv></features>";
  auto warnings = WarningsOf(Domain(devices, top));
  EXPECT_THAT(warnings, AllOf(Contains(HasSubstr("graphics 'spice' ignored")),
                              Contains(HasSubstr("video 'qxl' ignored")),
                              Contains(HasSubstr("input 'tablet' (usb) ignored")),
                              Contains(HasSubstr("sound 'ich9' ignored")),
                              Contains(HasSubstr("channel 'org.qemu.guest_agent.0' ignored")),
                              Contains(HasSubstr("watchdog 'i6300esb' ignored")),
                              Contains(HasSubstr("rng 'virtio' ignored")),
                              Contains(HasSubstr("<serial type='tcp'> ignored"))));
  EXPECT_THAT(warnings, AllOf(Contains(HasSubstr("disk vdb has no <driver type>: taken as raw")),
                              Contains(HasSubstr("disk vdb <iotune> ignored")),
                              Contains(HasSubstr("<cpu mode='host-passthrough'> ignored")),
                              Contains(HasSubstr("<clock offset='localtime'> ignored")),
                              Contains(HasSubstr("<features> <hyperv> ignored"))));
}

TEST(ImportDomainTest, CmdlineWithoutSerialConsoleOrNohzOffWarns) {
  std::string xml = Domain("");
  xml.replace(xml.find("console=ttyS0 nohz=off"), 22, "quiet");
  EXPECT_THAT(WarningsOf(xml), ElementsAre(HasSubstr("<cmdline> has no console=ttyS0"),
                                           HasSubstr("<cmdline> lacks nohz=off")));
}

TEST(ImportDomainTest, BrokenXmlIsRefusedWithTheParserMessage) {
  auto r = ImportDomain("<domain type='kvm'><name>x</name>", Defaults());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("domain XML does not parse: line 1:"));

  r = ImportDomain("<network><name>default</name></network>", Defaults());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "domain XML has root <network>, not <domain>");
}

}  // namespace
}  // namespace ft::libvirt
