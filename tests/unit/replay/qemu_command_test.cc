#include "ft/replay/qemu_command.h"

#include <algorithm>

#include <gtest/gtest.h>

namespace ft::replay {
namespace {

using domain::DiskBus;
using domain::DiskSpec;
using domain::HostForward;
using domain::NicBackend;
using domain::NicSpec;
using domain::ValidateVmSpec;
using domain::VmSpec;

VmSpec Spec() {
  VmSpec spec;
  spec.name = "web1";
  spec.memory_mib = 256;
  spec.kernel = "/img/vmlinuz";
  spec.initrd = "/img/initrd.img";
  spec.cmdline = "console=ttyS0 ftguest.ip=10.0.2.15/24";
  spec.disks.push_back({"vda", "/img/data,1.qcow2", "qcow2", DiskBus::kVirtio});
  NicSpec nic;
  nic.forwards.push_back({"127.0.0.1", 17000, 7000});
  spec.nic = nic;
  return spec;
}

LaunchPaths Paths() {
  return {"/run/ftd/web1/qmp.sock",
          "/var/lib/ftd/web1/console.log",
          "/tmp/rr.log",
          "",
          "/run/ftd/web1/nic.sock",
          ""};
}

LaunchOptions Opts(RunMode mode, bool plain_with_icount) {
  LaunchOptions o;
  o.mode = mode;
  o.plain_with_icount = plain_with_icount;
  return o;
}

// Value following `flag`, in order of appearance.
std::vector<std::string> Values(const std::vector<std::string>& argv, const std::string& flag) {
  std::vector<std::string> out;
  for (size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) out.push_back(argv[i + 1]);
  }
  return out;
}

bool Has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST(QemuCommandTest, PlainModeHasNoIcountAndDirectDrive) {
  auto argv = BuildQemuCommand(Spec(), Opts(RunMode::kPlain, false), Paths());
  EXPECT_EQ(argv[0], "qemu-system-x86_64");
  EXPECT_TRUE(Values(argv, "-icount").empty());
  EXPECT_EQ(Values(argv, "-m"), std::vector<std::string>{"256"});
  EXPECT_EQ(Values(argv, "-kernel"), std::vector<std::string>{"/img/vmlinuz"});
  EXPECT_EQ(Values(argv, "-append"),
            std::vector<std::string>{"console=ttyS0 ftguest.ip=10.0.2.15/24"});
  // A comma in a path is doubled, QEMU's escape.
  EXPECT_EQ(Values(argv, "-drive"),
            std::vector<std::string>{"file=/img/data,,1.qcow2,if=none,id=vda,format=qcow2"});
  EXPECT_TRUE(Has(Values(argv, "-device"), "virtio-blk-pci,drive=vda"));
  EXPECT_TRUE(Has(Values(argv, "-device"), "e1000,netdev=net0,mac=52:54:00:12:34:56"));
  EXPECT_EQ(Values(argv, "-netdev"),
            std::vector<std::string>{"user,id=net0,hostfwd=tcp:127.0.0.1:17000-:7000"});
  EXPECT_TRUE(Values(argv, "-object").empty());
  EXPECT_TRUE(Has(Values(argv, "-chardev"),
                  "socket,id=qmp0,path=/run/ftd/web1/qmp.sock,server=on,wait=off"));
  EXPECT_TRUE(Has(Values(argv, "-chardev"), "file,id=console0,path=/var/lib/ftd/web1/console.log"));
  EXPECT_TRUE(Has(argv, "-nodefaults"));
  EXPECT_TRUE(Has(argv, "-no-reboot"));
}

TEST(QemuCommandTest, PlainWithIcountUsesTheSameShiftAsRecord) {
  auto spec = Spec();
  spec.icount_shift = 7;
  auto argv = BuildQemuCommand(spec, Opts(RunMode::kPlain, true), Paths());
  EXPECT_EQ(Values(argv, "-icount"), std::vector<std::string>{"shift=7"});
}

TEST(QemuCommandTest, RecordModeWrapsDisksInBlkreplayAndFiltersTheNic) {
  auto argv = BuildQemuCommand(Spec(), Opts(RunMode::kRecord, false), Paths());
  EXPECT_EQ(Values(argv, "-icount"),
            std::vector<std::string>{"shift=5,rr=record,rrfile=/tmp/rr.log"});
  EXPECT_EQ(Values(argv, "-drive"),
            (std::vector<std::string>{
                "file=/img/data,,1.qcow2,if=none,id=vda-direct,format=qcow2,cache-clean-interval=0",
                "driver=blkreplay,if=none,image=vda-direct,id=vda"}));
  // The guest's disk requests are submitted at the instruction that queued them.
  EXPECT_TRUE(Has(Values(argv, "-device"), "virtio-blk-pci,drive=vda,ioeventfd=off"));
  EXPECT_EQ(Values(argv, "-object"),
            std::vector<std::string>{"filter-replay,id=net0-replay,netdev=net0"});
  EXPECT_EQ(Values(argv, "-netdev"),
            std::vector<std::string>{"user,id=net0,hostfwd=tcp:127.0.0.1:17000-:7000"});
}

// Every pass of a recorder's main loop with an RTC timer on the host clock is a log event
// only the replayer's main loop takes; on the virtual clock there is none.
TEST(QemuCommandTest, RrModesRunTheRtcOnTheVirtualClock) {
  for (RunMode mode : {RunMode::kRecord, RunMode::kReplay}) {
    EXPECT_EQ(Values(BuildQemuCommand(Spec(), Opts(mode, false), Paths()), "-rtc"),
              std::vector<std::string>{"clock=vm"})
        << RunModeName(mode);
  }
  EXPECT_TRUE(
      Values(BuildQemuCommand(Spec(), Opts(RunMode::kPlain, true), Paths()), "-rtc").empty());
}

// A qcow2 cache-clean timer wakes the main loop at every -icount clock notification
// (Qcow2Options). Record and replay must open the images alike; a raw image has no such
// option.
TEST(QemuCommandTest, RrModesOpenQcow2ImagesWithoutACacheCleanTimer) {
  auto spec = Spec();
  spec.disks.push_back({"vdb", "/img/raw.img", "raw", DiskBus::kVirtio});
  for (RunMode mode : {RunMode::kRecord, RunMode::kReplay}) {
    auto drives = Values(BuildQemuCommand(spec, Opts(mode, false), Paths()), "-drive");
    EXPECT_TRUE(Has(drives,
                    "file=/img/data,,1.qcow2,if=none,id=vda-direct,format=qcow2,"
                    "cache-clean-interval=0"))
        << RunModeName(mode);
    EXPECT_TRUE(Has(drives, "file=/img/raw.img,if=none,id=vdb-direct,format=raw"))
        << RunModeName(mode);
  }
  // Without record/replay the timer costs nothing worth a changed default.
  for (const auto& drive :
       Values(BuildQemuCommand(spec, Opts(RunMode::kPlain, false), Paths()), "-drive")) {
    EXPECT_EQ(drive.find("cache-clean-interval"), std::string::npos) << drive;
  }
}

TEST(QemuCommandTest, ReplayModeReadsTheLogAndNeverBindsForwardedPorts) {
  auto argv = BuildQemuCommand(Spec(), Opts(RunMode::kReplay, false), Paths());
  EXPECT_EQ(Values(argv, "-icount"),
            std::vector<std::string>{"shift=5,rr=replay,rrfile=/tmp/rr.log"});
  EXPECT_EQ(Values(argv, "-netdev"), std::vector<std::string>{"user,id=net0,restrict=on"});
  EXPECT_EQ(Values(argv, "-object"),
            std::vector<std::string>{"filter-replay,id=net0-replay,netdev=net0"});
}

TEST(QemuCommandTest, StartPausedAddsDashSOnlyWhenAsked) {
  EXPECT_FALSE(Has(BuildQemuCommand(Spec(), Opts(RunMode::kReplay, false), Paths()), "-S"));
  LaunchOptions paused = Opts(RunMode::kReplay, false);
  paused.start_paused = true;
  EXPECT_TRUE(Has(BuildQemuCommand(Spec(), paused, Paths()), "-S"));
}

TEST(QemuCommandTest, RecordAndReplayDifferOnlyInTheRrModeAndNetBackend) {
  auto spec = Spec();
  spec.nic->backend = NicBackend::kStream;
  spec.nic->forwards.clear();
  spec.nic->socket_path = "/run/ftd/web1/net.sock";
  auto rec = BuildQemuCommand(spec, Opts(RunMode::kRecord, false), Paths());
  auto rep = BuildQemuCommand(spec, Opts(RunMode::kReplay, false), Paths());
  ASSERT_EQ(rec.size(), rep.size());
  int differences = 0;
  for (size_t i = 0; i < rec.size(); ++i) differences += rec[i] != rep[i];
  EXPECT_EQ(differences, 1);  // only -icount ...rr=record vs rr=replay
  EXPECT_EQ(Values(rec, "-netdev"),
            std::vector<std::string>{
                "stream,id=net0,server=off,addr.type=unix,addr.path=/run/ftd/web1/net.sock"});
}

TEST(QemuCommandTest, BridgeNicConnectsToTheSocketFtdServes) {
  auto spec = Spec();
  spec.nic->backend = NicBackend::kBridge;
  spec.nic->forwards.clear();
  spec.nic->bridge = "br0";
  for (RunMode mode : {RunMode::kPlain, RunMode::kRecord, RunMode::kReplay}) {
    auto argv = BuildQemuCommand(spec, Opts(mode, false), Paths());
    EXPECT_EQ(Values(argv, "-netdev"),
              std::vector<std::string>{
                  "stream,id=net0,server=off,addr.type=unix,addr.path=/run/ftd/web1/nic.sock"})
        << RunModeName(mode);
    EXPECT_TRUE(Has(Values(argv, "-device"), "e1000,netdev=net0,mac=52:54:00:12:34:56"));
  }
  spec.nic->bridge = "";
  EXPECT_FALSE(ValidateVmSpec(spec).ok());
}

TEST(QemuCommandTest, IdeDisksGetBusAndUnit) {
  auto spec = Spec();
  spec.disks = {{"hda", "/a.qcow2", "qcow2", DiskBus::kIde},
                {"hdb", "/b.qcow2", "qcow2", DiskBus::kIde},
                {"hdc", "/c.qcow2", "qcow2", DiskBus::kIde}};
  auto argv = BuildQemuCommand(spec, Opts(RunMode::kPlain, false), Paths());
  auto devices = Values(argv, "-device");
  EXPECT_TRUE(Has(devices, "ide-hd,drive=hda,bus=ide.0,unit=0"));
  EXPECT_TRUE(Has(devices, "ide-hd,drive=hdb,bus=ide.0,unit=1"));
  EXPECT_TRUE(Has(devices, "ide-hd,drive=hdc,bus=ide.1,unit=0"));
}

TEST(QemuCommandTest, TapBackendAndNoNic) {
  auto spec = Spec();
  spec.nic->backend = NicBackend::kTap;
  spec.nic->forwards.clear();
  spec.nic->tap_name = "fttap0";
  auto argv = BuildQemuCommand(spec, Opts(RunMode::kPlain, false), Paths());
  EXPECT_EQ(Values(argv, "-netdev"),
            std::vector<std::string>{"tap,id=net0,ifname=fttap0,script=no,downscript=no"});
  spec.nic.reset();
  argv = BuildQemuCommand(spec, Opts(RunMode::kPlain, false), Paths());
  EXPECT_TRUE(Values(argv, "-netdev").empty());
}

TEST(QemuCommandTest, OperatorMonitorIsASecondQmpSocket) {
  auto paths = Paths();
  EXPECT_EQ(Values(BuildQemuCommand(Spec(), Opts(RunMode::kPlain, false), paths), "-mon").size(),
            1u);
  paths.operator_qmp_socket = "/run/ftd/web1/monitor.sock";
  auto argv = BuildQemuCommand(Spec(), Opts(RunMode::kPlain, false), paths);
  EXPECT_EQ(Values(argv, "-mon"),
            (std::vector<std::string>{"chardev=qmp0,mode=control", "chardev=qmp1,mode=control"}));
  EXPECT_TRUE(Has(Values(argv, "-chardev"),
                  "socket,id=qmp1,path=/run/ftd/web1/monitor.sock,server=on,wait=off"));
}

TEST(QemuCommandTest, VmStateDriveIsNoGuestDeviceAndOnlyInRrModes) {
  auto paths = Paths();
  paths.vm_state_drive = "/run/ftd/web1/vm-state.qcow2";
  const std::string drive =
      "if=none,id=ft-vmstate,file=/run/ftd/web1/vm-state.qcow2,format=qcow2,cache-clean-interval=0";
  for (RunMode mode : {RunMode::kRecord, RunMode::kReplay}) {
    auto argv = BuildQemuCommand(Spec(), Opts(mode, false), paths);
    EXPECT_TRUE(Has(Values(argv, "-drive"), drive)) << RunModeName(mode);
    for (const auto& device : Values(argv, "-device")) {
      EXPECT_EQ(device.find("ft-vmstate"), std::string::npos) << device;
    }
  }
  EXPECT_FALSE(
      Has(Values(BuildQemuCommand(Spec(), Opts(RunMode::kPlain, false), paths), "-drive"), drive));
}

TEST(QemuCommandTest, LoadvmStartsFromTheSnapshot) {
  auto paths = Paths();
  paths.vm_state_drive = "/run/ftd/web1/vm-state.qcow2";
  LaunchOptions options = Opts(RunMode::kRecord, false);
  EXPECT_TRUE(Values(BuildQemuCommand(Spec(), options, paths), "-loadvm").empty());
  EXPECT_TRUE(Has(Values(BuildQemuCommand(Spec(), options, paths), "-chardev"),
                  "file,id=console0,path=/var/lib/ftd/web1/console.log"));
  options.loadvm = "ft-golive";
  EXPECT_EQ(Values(BuildQemuCommand(Spec(), options, paths), "-loadvm"),
            std::vector<std::string>{"ft-golive"});
  // The same guest goes on: its console is appended to, not replaced.
  EXPECT_TRUE(Has(Values(BuildQemuCommand(Spec(), options, paths), "-chardev"),
                  "file,id=console0,path=/var/lib/ftd/web1/console.log,append=on"));
}

TEST(QemuCommandTest, GuestRamIsASharedMemoryFileUnderTheDefaultRamBlockName) {
  auto paths = Paths();
  paths.guest_ram = "/proc/self/fd/7";
  const std::string backend =
      "memory-backend-file,id=pc.ram,size=256M,mem-path=/proc/self/fd/7,share=on,"
      "x-use-canonical-path-for-ramblock-id=off";
  for (RunMode mode : {RunMode::kRecord, RunMode::kReplay}) {
    auto argv = BuildQemuCommand(Spec(), Opts(mode, false), paths);
    EXPECT_EQ(Values(argv, "-object")[0], backend) << RunModeName(mode);
    EXPECT_EQ(Values(argv, "-machine"), std::vector<std::string>{"pc,memory-backend=pc.ram"});
    EXPECT_EQ(Values(argv, "-m"), std::vector<std::string>{"256"});  // must match the backend
    EXPECT_TRUE(Values(argv, "-global").empty()) << "a snapshot with RAM loads as usual";
  }
  // Plain QEMU keeps its own RAM.
  auto plain = BuildQemuCommand(Spec(), Opts(RunMode::kPlain, false), paths);
  EXPECT_EQ(Values(plain, "-machine"), std::vector<std::string>{"pc"});
  EXPECT_FALSE(Has(Values(plain, "-object"), backend));
}

TEST(QemuCommandTest, LoadvmWithoutRamLoadsWithIgnoreShared) {
  auto paths = Paths();
  paths.vm_state_drive = "/run/ftd/web1/vm-state.qcow2";
  paths.guest_ram = "/proc/self/fd/7";
  LaunchOptions options = Opts(RunMode::kRecord, false);
  options.loadvm = "ft-golive";
  options.loadvm_without_ram = true;
  auto argv = BuildQemuCommand(Spec(), options, paths);
  EXPECT_EQ(Values(argv, "-global"), std::vector<std::string>{"migration.x-ignore-shared=on"});
  EXPECT_EQ(Values(argv, "-loadvm"), std::vector<std::string>{"ft-golive"});
  // Without the RAM file there is nothing to load the RAM from: no such start.
  paths.guest_ram.clear();
  EXPECT_TRUE(Values(BuildQemuCommand(Spec(), options, paths), "-global").empty());
}

TEST(QemuCommandTest, RrsnapshotNamesTheStartingPointOfARecordingOrAReplay) {
  auto paths = Paths();
  paths.vm_state_drive = "/run/ftd/web1/vm-state.qcow2";
  for (RunMode mode : {RunMode::kRecord, RunMode::kReplay}) {
    LaunchOptions options = Opts(mode, false);
    auto icount = Values(BuildQemuCommand(Spec(), options, paths), "-icount");
    ASSERT_EQ(icount.size(), 1u);
    EXPECT_EQ(icount[0].find("rrsnapshot"), std::string::npos) << icount[0];
    options.rrsnapshot = "ft-base";
    icount = Values(BuildQemuCommand(Spec(), options, paths), "-icount");
    ASSERT_EQ(icount.size(), 1u);
    EXPECT_NE(icount[0].find(",rrsnapshot=ft-base"), std::string::npos) << icount[0];
  }
}

TEST(QemuCommandTest, VmStateDriveComesBeforeTheDisks) {
  // savevm puts the VM state into the first writable qcow2: the VM-state drive, not a disk
  // the running VM keeps writing (a re-protection ships the drive while the VM runs).
  auto paths = Paths();
  paths.vm_state_drive = "/run/ftd/web1/vm-state.qcow2";
  auto spec = Spec();
  spec.disks.push_back({"data", "/var/lib/ftd/data.qcow2", "qcow2", DiskBus::kVirtio});
  auto drives = Values(BuildQemuCommand(spec, Opts(RunMode::kRecord, false), paths), "-drive");
  ASSERT_GE(drives.size(), 2u);
  EXPECT_NE(drives[0].find("id=ft-vmstate"), std::string::npos) << drives[0];
}

TEST(QemuCommandTest, JoinQuotesArgumentsWithSpaces) {
  EXPECT_EQ(JoinCommandLine({"qemu", "-append", "console=ttyS0 quiet", "it's"}),
            "qemu -append 'console=ttyS0 quiet' 'it'\\''s'");
}

TEST(VmSpecTest, ValidationNamesTheField) {
  auto spec = Spec();
  EXPECT_TRUE(ValidateVmSpec(spec).ok());
  spec.name = "bad name";
  EXPECT_NE(ValidateVmSpec(spec).message().find("vm name 'bad name'"), std::string::npos);
  spec = Spec();
  spec.memory_mib = 8;
  EXPECT_NE(ValidateVmSpec(spec).message().find("memory_mib 8"), std::string::npos);
  spec = Spec();
  spec.nic->mac = "01:00:5e:00:00:01";  // multicast
  EXPECT_NE(ValidateVmSpec(spec).message().find("mac '01:00:5e:00:00:01'"), std::string::npos);
  spec = Spec();
  spec.disks.push_back(spec.disks[0]);
  EXPECT_NE(ValidateVmSpec(spec).message().find("disk id 'vda' is used twice"), std::string::npos);
}

}  // namespace
}  // namespace ft::replay
