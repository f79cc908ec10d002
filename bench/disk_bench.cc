// ftd-bench-disk: what FT costs a VM's disk (issue 7), side by side in one run:
//
//   1. fsync'd writes: the guest's records service (port 7001, one record appended and
//      fsync'd on its virtio-blk data disk per request, acknowledged over TCP) driven by a
//      client in the network lab's client namespace, N sequential appends after a warm-up:
//        - without FT: the guest on plain QEMU under one ftd in host A (`ft = off`, the same
//          ftd-served NIC with its gate open, no icount), as ftd-bench-output-commit runs it;
//        - with FT: a protected pair (A records, B replays), every ack held in the primary's
//          output gate until B acknowledged the log that covers it.
//      Prints records/s, the per-record latency p50/p99 (and a histogram), the rate ratio,
//      and the block requests one record costs (QEMU's query-blockstats on the VM's monitor),
//      for each core layout asked for (--cores, core_layout.h: the hosts sharing every CPU,
//      or host A's ftd and QEMU on one half of the CPUs and host B's on the other, the VM
//      without FT on host A's), then the layouts side by side. Both hosts' copies of the
//      data disk share this machine's filesystem unless --backup-storage puts host B's on
//      another: then the backup's replayed flushes no longer queue behind the primary's.
//   2. creating a backup's disk replica: a qcow2 image with `--replica-gib` GiB written,
//      copied to the peer by `EnableRequest` on two real ftds on loopback (read, sha256,
//      1 MiB chunks over the channel, written, sha256 again, fsync'd, renamed), against a
//      manual copy and check on the same filesystem (cp, fsync of the copy, sha256sum).
//      Prints seconds per GiB for both and the ratio; after `DisableRequest` the replica on
//      the peer must be gone.
//
// Every wait is bounded; processes die with their RAII owners; the big images live in a
// temp dir removed on every path (and what a run killed by a signal left, its scratch dir
// and its own ftds' dirs, is removed by the next: a lock file serialises runs).
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core_layout.h"
#include "ft/daemon/config.h"
#include "ft/daemon/control_socket.h"
#include "ft/proto/control.pb.h"
#include "guest_client.h"
#include "lab.h"
#include "lab_pair.h"
#include "lockstep_pair.h"
#include "stats.h"

namespace ft::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kChannelKey = "ftd-bench-disk-channel-key-0123456789abcdef";
constexpr const char* kReplicaVm = "diskbench";
constexpr const char* kScratchPrefix = "ftd-bench-disk-";  // /tmp/ftd-bench-disk-<pid>-XXXXXX
constexpr const char* kInstanceLabel = "bench-disk";       // FtdInstance dirs: ftd-test-bench-disk*
constexpr double kGiB = 1024.0 * 1024 * 1024;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// ---------------------------------------------------------------------------------------
// 1. fsync'd record appends

struct RecordFigures {
  int records = 0;
  double seconds = 0;
  std::vector<double> latency_ms;
  double rate() const { return seconds > 0 ? records / seconds : 0; }
};

// The guest disk's request counters from QEMU (query-blockstats on the VM's QMP monitor):
// how many writes and flushes one fsync'd record costs.
struct BlockCounters {
  uint64_t writes = 0, flushes = 0, bytes = 0;
};

Result<BlockCounters> QueryBlockstats(const std::string& socket_path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("socket", errno);
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) return InvalidArgument("socket path too long");
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return ErrnoStatus("connect " + socket_path, errno);
  }
  std::string buffer;
  // Reads lines until one answers a command ("return" or "error"); events are skipped.
  auto answer = [&]() -> Result<nlohmann::json> {
    auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      auto nl = buffer.find('\n');
      if (nl != std::string::npos) {
        auto j = nlohmann::json::parse(buffer.substr(0, nl), nullptr, false);
        buffer.erase(0, nl + 1);
        if (!j.is_discarded() &&
            (j.contains("return") || j.contains("error") || j.contains("QMP"))) {
          return j;
        }
        continue;
      }
      char chunk[4096];
      ssize_t n = read(fd, chunk, sizeof chunk);
      if (n <= 0) return Unavailable("QMP monitor closed or timed out");
      buffer.append(chunk, static_cast<size_t>(n));
    }
    return Timeout("no QMP answer");
  };
  auto send = [&](const std::string& line) -> Status {
    if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      return ErrnoStatus("write to QMP", errno);
    }
    return Status::Ok();
  };
  FT_RETURN_IF_ERROR(answer().status());  // the greeting
  FT_RETURN_IF_ERROR(send("{\"execute\":\"qmp_capabilities\"}\n"));
  FT_RETURN_IF_ERROR(answer().status());
  FT_RETURN_IF_ERROR(send("{\"execute\":\"query-blockstats\"}\n"));
  FT_ASSIGN_OR_RETURN(auto reply, answer());
  if (!reply.contains("return") || !reply["return"].is_array()) {
    return RemoteError("query-blockstats: " + reply.dump());
  }
  // The backend the guest's virtio-blk device uses (record mode stacks blkreplay on the
  // image; the device's backend is the one with the guest's requests): the busiest one.
  BlockCounters best;
  for (const auto& dev : reply["return"]) {
    const auto& st = dev.value("stats", nlohmann::json::object());
    BlockCounters c{st.value("wr_operations", uint64_t{0}),
                    st.value("flush_operations", uint64_t{0}), st.value("wr_bytes", uint64_t{0})};
    if (c.writes + c.flushes > best.writes + best.flushes) best = c;
  }
  return best;
}

std::string PerRecord(const Result<BlockCounters>& before, const Result<BlockCounters>& after,
                      int records) {
  if (!before.ok() || !after.ok()) {
    return "block requests: unknown (" +
           (before.ok() ? after.status() : before.status()).ToString() + ")";
  }
  double n = records;
  return fmt::format("block requests per record: {:.2f} writes ({:.0f} bytes), {:.2f} flushes",
                     double(after->writes - before->writes) / n,
                     double(after->bytes - before->bytes) / n,
                     double(after->flushes - before->flushes) / n);
}

std::string Payload(uint64_t n) { return fmt::format("record-{}-{}", n, n * 2654435761u % 100000); }

// `timed_start` runs after the warm-up, right before the timed appends.
Result<RecordFigures> MeasureRecords(Lab& lab, int warmup, int count,
                                     const std::function<void()>& timed_start = {}) {
  RecordClient client;
  Status connected;
  FT_RETURN_IF_ERROR(
      RunInNetns(lab.ns_client(), [&] { connected = client.Connect(lab.vm_ip(), 7001, 120s); }));
  FT_RETURN_IF_ERROR(connected);
  uint64_t n = 0;
  for (int i = 0; i < warmup; ++i) {
    ++n;
    FT_RETURN_IF_ERROR(client.Append(n, Payload(n), 20s).WithContext("warm-up"));
  }
  if (timed_start) timed_start();
  RecordFigures f;
  f.records = count;
  auto start = Clock::now();
  for (int i = 0; i < count; ++i) {
    ++n;
    auto t0 = Clock::now();
    FT_RETURN_IF_ERROR(client.Append(n, Payload(n), 20s));
    f.latency_ms.push_back(Ms(Clock::now() - t0));
  }
  f.seconds = Seconds(Clock::now() - start);
  // Everything acknowledged is on the guest's disk, none torn.
  FT_ASSIGN_OR_RETURN(auto verify, client.VerifyAll(60s));
  if (verify.count != n || verify.torn != 0 || verify.last != n) {
    return DataLoss(fmt::format("the guest's disk holds {} records ({} torn, last {}), {} acked",
                                verify.count, verify.torn, verify.last, n));
  }
  return f;
}

// Counts per 2 ms of latency up to 40 ms (the last bin: everything above).
std::string Histogram(const std::vector<double>& ms) {
  std::vector<int> bins(21, 0);
  for (double v : ms) ++bins[std::min<size_t>(20, static_cast<size_t>(v / 2))];
  std::string out;
  for (size_t i = 0; i < bins.size(); ++i) {
    if (bins[i] == 0) continue;
    out += i < 20 ? fmt::format(" {}-{}:{}", 2 * i, 2 * i + 2, bins[i])
                  : fmt::format(" >40:{}", bins[i]);
  }
  return out;
}

void PrintRecords(const char* label, const RecordFigures& f) {
  std::printf(
      "%-11s %8.1f records/s (%d in %.2f s) | latency p50 %.3f ms p99 %.3f ms max %.3f ms\n", label,
      f.rate(), f.records, f.seconds, Percentile(f.latency_ms, 0.5), Percentile(f.latency_ms, 0.99),
      Percentile(f.latency_ms, 1.0));
  std::printf("            latency histogram (ms: count):%s\n", Histogram(f.latency_ms).c_str());
}

// What one layout's record runs came to, for the side-by-side table.
struct RecordsSummary {
  double rate_ratio = 0, added_p50_ms = 0;
};

int RunRecords(int warmup, int count, const std::string& guest_args, const HostCpus& cpus,
               const std::string& backup_storage, RecordsSummary* summary) {
  auto lab = Lab::Create();
  if (!lab.ok()) {
    std::fprintf(stderr, "lab: %s\n", lab.status().ToString().c_str());
    return 1;
  }
  GuestVmOptions vm;
  vm.workload = "none";
  vm.data_disk = true;  // each instance gets its own copy of build/guest/data.qcow2
  vm.bridge = (*lab)->bridge();
  vm.lab_ip = (*lab)->vm_ip() + "/24";
  // The guest's kernel is tickless unless told otherwise (--guest-args): the project's QEMU
  // wakes an idle recording guest for a frame or a disk completion, so FT needs no nohz=off.
  vm.extra_cmdline = guest_args;
  std::printf(
      "fsync'd record appends: %d after a warm-up of %d, one at a time, client in the "
      "lab's client namespace; guest kernel arguments added: '%s'\n",
      count, warmup, guest_args.c_str());
  std::fflush(stdout);

  RecordFigures plain;
  std::string plain_io, ft_io;
  {
    auto ftd = FtdInstance::Create(std::string(kInstanceLabel) + "-plain");
    if (!ftd.ok()) return 1;
    (*ftd)->set_cpus(cpus.a);
    if (!(*ftd)->WriteConfig((*ftd)->GuestVmConfig(vm)).ok() ||
        !(*ftd)->Start({}, {}, (*lab)->ns_a()).ok()) {
      std::fprintf(stderr, "without FT: ftd did not start\n");
      return 1;
    }
    std::string monitor = (*ftd)->monitor_socket(vm.name);
    Result<BlockCounters> io_before = Unavailable("not read");
    auto f = MeasureRecords(**lab, warmup, count, [&] { io_before = QueryBlockstats(monitor); });
    plain_io = PerRecord(io_before, QueryBlockstats(monitor), count);
    if (!f.ok()) {
      std::fprintf(stderr, "without FT: %s\n%s\nconsole:\n%s", f.status().ToString().c_str(),
                   ReadFile((*ftd)->ftd_log()).c_str(),
                   ReadFile((*ftd)->console_log(vm.name)).c_str());
      return 1;
    }
    plain = *f;
  }
  PrintRecords("without FT:", plain);
  std::printf("            %s\n", plain_io.c_str());
  std::fflush(stdout);

  RecordFigures ft;
  std::string primary_note;
  {
    LockstepOptions options;
    options.vm = vm;
    options.lab = lab->get();
    options.primary_cpus = cpus.a;
    options.backup_cpus = cpus.b;
    options.backup_parent_dir = backup_storage;
    auto pair = StartProtected(options);  // the primary's ftd log is in the error
    if (!pair.ok()) {
      std::fprintf(stderr, "with FT: %s\n", pair.status().ToString().c_str());
      return 1;
    }
    auto& p = **pair;
    uint64_t paced_before = 0;
    std::string monitor = p.primary().monitor_socket(p.vm());
    Result<BlockCounters> io_before = Unavailable("not read");
    auto f = MeasureRecords(**lab, warmup, count, [&] {
      auto before = p.Status(p.primary());
      paced_before = before.ok() ? U64(*before, "paced_ms") : 0;
      io_before = QueryBlockstats(monitor);
    });
    ft_io = PerRecord(io_before, QueryBlockstats(monitor), count);
    if (!f.ok()) {
      std::fprintf(stderr, "with FT: %s\nprimary's ftd:\n%s", f.status().ToString().c_str(),
                   ReadFile(p.primary().ftd_log()).c_str());
      return 1;
    }
    ft = *f;
    auto st = p.Status(p.primary());
    if (st.ok()) {
      const auto& n = (*st)["nic"];
      primary_note = fmt::format(
          "primary {} at the end: gate hold p50 {:.3f} ms p99 {:.3f} ms ({} frames), paced {} ms "
          "during the timed appends, channel RTT {} us, log {:.0f} KiB/s {}",
          st->value("ft_state", "?"), n.value("gate_delay_p50_us", 0.0) / 1000,
          n.value("gate_delay_p99_us", 0.0) / 1000, U64(n, "gate_released"),
          U64(*st, "paced_ms") - paced_before, U64(*st, "channel_rtt_us"),
          st->value("log_bytes_per_sec", 0.0) / 1024, st->value("ft_note", ""));
    }
  }
  PrintRecords("with FT:", ft);
  std::printf("            %s (the primary's QEMU)\n", ft_io.c_str());
  std::printf("%s\n", primary_note.c_str());
  summary->rate_ratio = plain.rate() > 0 ? ft.rate() / plain.rate() : 0.0;
  summary->added_p50_ms = Percentile(ft.latency_ms, 0.5) - Percentile(plain.latency_ms, 0.5);
  std::printf("records/s FT/no-FT: %.3f   added latency p50 %+.3f ms p99 %+.3f ms\n",
              summary->rate_ratio, summary->added_p50_ms,
              Percentile(ft.latency_ms, 0.99) - Percentile(plain.latency_ms, 0.99));
  std::fflush(stdout);
  return 0;
}

// ---------------------------------------------------------------------------------------
// 2. creating a backup's disk replica

// A directory under /tmp removed with everything in it when this goes.
class ScratchDir {
 public:
  static Result<std::unique_ptr<ScratchDir>> Create() {
    std::string templ =
        (fs::temp_directory_path() / fmt::format("{}{}-XXXXXX", kScratchPrefix, getpid())).string();
    if (!mkdtemp(templ.data())) return ErrnoStatus("mkdtemp", errno);
    return std::unique_ptr<ScratchDir>(new ScratchDir(templ));
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const std::string& dir() const { return dir_; }

 private:
  explicit ScratchDir(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// One run at a time (flock); with the lock held, whatever a killed earlier run left in /tmp
// (its scratch dir with the big images, its ftds' dirs with a replica) is removed.
class RunLock {
 public:
  ~RunLock() {
    if (fd_ >= 0) close(fd_);
  }
  Status Acquire() {
    std::string path = (fs::temp_directory_path() / "ftd-bench-disk.lock").string();
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) return ErrnoStatus("open " + path, errno);
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      return FailedPrecondition("another ftd-bench-disk is running (" + path + " is locked)");
    }
    std::error_code ec;
    std::string instance_prefix = std::string("ftd-test-") + kInstanceLabel;
    for (const auto& e : fs::directory_iterator(fs::temp_directory_path(), ec)) {
      std::string name = e.path().filename().string();
      if (name.rfind(kScratchPrefix, 0) == 0 || name.rfind(instance_prefix, 0) == 0) {
        std::printf("removing what an earlier run left: %s\n", e.path().c_str());
        fs::remove_all(e.path(), ec);
      }
    }
    return Status::Ok();
  }

 private:
  int fd_ = -1;
};

double FreeGiB(const std::string& path) {
  struct statvfs s {};
  if (statvfs(path.c_str(), &s) != 0) return 0;
  return double(s.f_bavail) * double(s.f_frsize) / kGiB;
}

Result<double> TimedCommand(const std::vector<std::string>& argv,
                            std::chrono::milliseconds timeout) {
  auto start = Clock::now();
  auto out = RunCommand(argv, timeout);
  double s = Seconds(Clock::now() - start);
  if (out.exit_code != 0) {
    return Internal(fmt::format("{} exited {}: {}", argv[0], out.exit_code, out.output));
  }
  return s;
}

std::string NodeConfig(FtdInstance& side, uint16_t listen_port, uint16_t peer_port) {
  return fmt::format(
      "[node]\nname = {}\nstate_dir = {}\nrun_dir = {}\nlog_level = info\nqemu = {}\n"
      "channel_key_file = {}/channel.key\nlisten = 127.0.0.1:{}\npeer = 127.0.0.1:{}\n"
      "heartbeat_interval_ms = 100\nheartbeat_timeout_ms = 1000\n",
      side.node_name(), side.state_dir(), side.run_dir(), QemuBinary(), side.dir(), listen_port,
      peer_port);
}

Status WriteKey(FtdInstance& side) {
  std::string path = side.dir() + "/channel.key";
  {
    std::ofstream out(path);
    out << kChannelKey << "\n";
    if (!out) return Internal("cannot write " + path);
  }
  std::error_code ec;
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write, ec);
  return ec ? Internal("chmod " + path + ": " + ec.message()) : Status::Ok();
}

Result<proto::ControlResponse> Control(FtdInstance& side, const proto::ControlRequest& request,
                                       std::chrono::milliseconds timeout) {
  FT_ASSIGN_OR_RETURN(
      std::string reply,
      daemon::CallControlSocket(side.control_socket(), request.SerializeAsString(), timeout));
  proto::ControlResponse response;
  if (!response.ParseFromString(reply)) return ProtocolError("ftd's answer does not parse");
  if (response.code() != proto::ControlResponse::OK) {
    return RemoteError(fmt::format("ftd answered {}: {}",
                                   proto::ControlResponse::Code_Name(response.code()),
                                   response.error()));
  }
  return response;
}

std::string FtState(FtdInstance& side) {
  auto st = side.StatusJson(kReplicaVm);
  return st.ok() ? st->value("ft_state", "") : "";
}

struct ReplicaFigures {
  double image_gib = 0;  // the image file's size (what both copies move)
  double cp_s = 0, fsync_s = 0, sha_s = 0;
  double log_mib = 0, log_s = 0, log_mib_per_s = 0;  // ftd A's log line
  double enable_s = 0;      // the EnableRequest's round trip: replica + backup and primary started
  double protected_s = -1;  // enable sent -> primary `protected` (-1: not reached)
  bool replica_removed = false;
  double baseline_s() const { return cp_s + fsync_s + sha_s; }
};

Status MeasureReplica(int gib, ReplicaFigures& f) {
  FT_ASSIGN_OR_RETURN(auto scratch, ScratchDir::Create());
  std::string image = scratch->dir() + "/vda.qcow2";
  std::string copy = scratch->dir() + "/vda-copy.qcow2";
  FT_ASSIGN_OR_RETURN(double created, TimedCommand({"qemu-img", "create", "-q", "-f", "qcow2",
                                                    image, fmt::format("{}G", 2 * gib)},
                                                   60s));
  FT_ASSIGN_OR_RETURN(double written, TimedCommand({"qemu-io", "-f", "qcow2", "-c",
                                                    fmt::format("write -P 0xa5 0 {}G", gib), image},
                                                   std::chrono::seconds(120 * gib)));
  // Its dirty pages out now, so no writeback of the image runs during what is timed.
  FT_RETURN_IF_ERROR(TimedCommand({"sync", image}, std::chrono::seconds(120 * gib)).status());
  f.image_gib = double(fs::file_size(image)) / kGiB;
  std::printf("image: %d GiB written with qemu-io (%.1f s), file %.3f GiB, %.1f GiB free in %s\n",
              gib, created + written, f.image_gib, FreeGiB(scratch->dir()), scratch->dir().c_str());
  std::fflush(stdout);

  // Baseline: a manual copy and check on the same filesystem; the copy goes before the
  // replica is made (at most two images' worth on disk at once).
  FT_ASSIGN_OR_RETURN(f.cp_s, TimedCommand({"cp", image, copy}, std::chrono::seconds(300 * gib)));
  FT_ASSIGN_OR_RETURN(f.fsync_s, TimedCommand({"sync", copy}, std::chrono::seconds(300 * gib)));
  FT_ASSIGN_OR_RETURN(f.sha_s, TimedCommand({"sha256sum", copy}, std::chrono::seconds(300 * gib)));
  fs::remove(copy);

  // Two ftds on loopback, no VM in their configs.
  FT_ASSIGN_OR_RETURN(auto a, FtdInstance::Create(std::string(kInstanceLabel) + "-a"));
  FT_ASSIGN_OR_RETURN(auto b, FtdInstance::Create(std::string(kInstanceLabel) + "-b"));
  uint16_t port_a = FreeLoopbackPort(), port_b = FreeLoopbackPort();
  for (int i = 0; i < 20 && port_b == port_a; ++i) port_b = FreeLoopbackPort();
  FT_RETURN_IF_ERROR(WriteKey(*a));
  FT_RETURN_IF_ERROR(WriteKey(*b));
  FT_RETURN_IF_ERROR(a->WriteConfig(NodeConfig(*a, port_a, port_b)));
  FT_RETURN_IF_ERROR(b->WriteConfig(NodeConfig(*b, port_b, port_a)));
  for (FtdInstance* side : {b.get(), a.get()}) {
    FT_RETURN_IF_ERROR(side->Start());
    if (!WaitForFileContaining(side->ftd_log(), "logging channel: listening", 30s)) {
      return Unavailable(side->node_name() + "'s ftd did not start:\n" + ReadFile(side->ftd_log()));
    }
  }
  auto logs = [&] {
    return "\nA's ftd:\n" + ReadFile(a->ftd_log()) + "\nB's ftd:\n" + ReadFile(b->ftd_log());
  };

  domain::VmSpec spec;
  spec.name = kReplicaVm;
  spec.qemu_binary = QemuBinary();
  spec.memory_mib = 256;
  spec.kernel = GuestKernel();
  spec.initrd = GuestDir() + "/initrd.img";
  spec.cmdline = "console=ttyS0 ftguest.workload=none nohz=off";
  spec.disks.push_back({"vda", image, "qcow2", domain::DiskBus::kVirtio});
  spec.nic.reset();
  proto::ControlRequest enable;
  enable.set_version(daemon::kControlVersion);
  enable.mutable_enable()->set_vm_config(daemon::FormatVmSection(spec));
  enable.mutable_enable()->set_source("ftd-bench-disk");
  auto sent = Clock::now();
  auto enabled = Control(*a, enable, std::chrono::seconds(300 * gib));
  f.enable_s = Seconds(Clock::now() - sent);
  if (!enabled.ok()) return enabled.status().WithContext("enable" + logs());

  static const std::regex kLine(
      R"(disk\.vda: replica created on the peer: ([0-9.]+) MiB in ([0-9.]+) s \(([0-9.]+) MiB/s\))");
  std::smatch m;
  std::string log_a = ReadFile(a->ftd_log());
  if (!std::regex_search(log_a, m, kLine)) {
    return Internal("no 'replica created on the peer' line in A's log" + logs());
  }
  f.log_mib = std::stod(m[1]);
  f.log_s = std::stod(m[2]);
  f.log_mib_per_s = std::stod(m[3]);
  std::string replica = b->state_dir() + "/vms/" + kReplicaVm + "/replica-vda.qcow2";
  if (!fs::exists(replica)) return Internal("no replica at " + replica + logs());

  // For the record: how long until the pair is protected (both QEMUs boot the guest, the
  // handshake compares the replicas' sha256).
  auto deadline = Clock::now() + 120s;
  while (Clock::now() < deadline) {
    if (FtState(*a) == ProtoName(proto::VM_FT_STATE_PROTECTED)) {
      f.protected_s = Seconds(Clock::now() - sent);
      break;
    }
    std::this_thread::sleep_for(100ms);
  }

  proto::ControlRequest disable;
  disable.set_version(daemon::kControlVersion);
  disable.mutable_disable()->set_vm(kReplicaVm);
  auto disabled = Control(*a, disable, 60s);
  if (!disabled.ok()) return disabled.status().WithContext("disable" + logs());
  deadline = Clock::now() + 10s;
  while (Clock::now() < deadline && fs::exists(replica)) std::this_thread::sleep_for(50ms);
  f.replica_removed = !fs::exists(replica) && !fs::exists(replica + ".ftd-partial");
  for (FtdInstance* side : {a.get(), b.get()}) {
    auto exit = side->Stop(30s);
    if (!exit.ok() || !exit->clean()) {
      std::printf("note: %s's ftd ended %s\n", side->node_name().c_str(),
                  exit.ok() ? exit->Describe().c_str() : exit.status().ToString().c_str());
    }
  }
  return Status::Ok();
}

int RunReplica(int gib) {
  std::printf(
      "backup replica: a qcow2 image with %d GiB written, enabled on ftd A (loopback "
      "channel to ftd B)\n",
      gib);
  double need = 2.0 * gib + 1;
  double free_gib = FreeGiB(fs::temp_directory_path().string());
  std::printf("%s: %.1f GiB free, this part needs %.0f GiB at most (the image and one copy)\n",
              fs::temp_directory_path().c_str(), free_gib, 2.0 * gib);
  if (free_gib < need) {
    std::fprintf(stderr, "not enough space: %.1f GiB free, want %.0f\n", free_gib, need);
    return 1;
  }
  std::fflush(stdout);
  ReplicaFigures f;
  Status s = MeasureReplica(gib, f);
  if (!s.ok()) {
    std::fprintf(stderr, "replica: %s\n", s.ToString().c_str());
    return 1;
  }
  double per = f.image_gib > 0 ? 1 / f.image_gib : 0;
  std::printf(
      "manual copy + check: cp %.2f s + fsync %.2f s + sha256sum %.2f s = %.2f s -> %.2f s/GiB\n",
      f.cp_s, f.fsync_s, f.sha_s, f.baseline_s(), f.baseline_s() * per);
  std::printf("ftd replica (A's log): %.1f MiB in %.2f s (%.0f MiB/s) -> %.2f s/GiB\n", f.log_mib,
              f.log_s, f.log_mib_per_s, f.log_mib > 0 ? f.log_s / (f.log_mib / 1024) : 0);
  std::printf(
      "enable request: %.2f s (replica, then the backup and the primary started) -> "
      "%.2f s/GiB; protected %s\n",
      f.enable_s, f.enable_s * per,
      f.protected_s >= 0 ? fmt::format("{:.2f} s after the request", f.protected_s).c_str()
                         : "not within 120 s");
  std::printf("replica time / manual copy+check: %.3f\n",
              f.baseline_s() > 0 ? f.log_s / f.baseline_s() : 0.0);
  std::printf("replica on B removed after disable: %s\n", f.replica_removed ? "yes" : "NO");
  return f.replica_removed ? 0 : 1;
}

}  // namespace
}  // namespace ft::testing

int main(int argc, char** argv) {
  CLI::App app{"ftd-bench-disk - fsync'd writes and replica creation with FT vs without"};
  int records = 500, warmup = 20, replica_gib = 1;
  bool skip_records = false, skip_replica = false;
  std::string guest_args = "nohz=on";  // tickless, the kernel's default (said explicitly: the
                                       // lab pair adds nohz=off to an empty command line)
  app.add_option("--records", records, "timed record appends per side")
      ->check(CLI::Range(10, 100000))
      ->capture_default_str();
  app.add_option("--warmup", warmup, "record appends before timing")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  app.add_option("--replica-gib", replica_gib, "GiB written into the replicated image")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  app.add_option("--guest-args", guest_args, "extra guest kernel arguments (records measure)")
      ->capture_default_str();
  std::string cores = "both";
  std::string backup_storage;
  app.add_option("--backup-storage", backup_storage,
                 "a directory on another filesystem for host B's copy of the data disk "
                 "(default: beside host A's, on one disk)")
      ->check(CLI::ExistingDirectory);
  app.add_option("--cores", cores, "core layouts for the record measure: shared, per-host or both")
      ->capture_default_str();
  app.add_flag("--skip-records", skip_records, "only the replica measure");
  app.add_flag("--skip-replica", skip_replica, "only the record measure");
  CLI11_PARSE(app, argc, argv);
  setvbuf(stdout, nullptr, _IOLBF, 0);  // progress as it happens, also into a file
  auto layouts = ft::testing::LayoutsToRun(cores);
  if (!layouts.ok()) {
    std::fprintf(stderr, "%s\n", layouts.status().ToString().c_str());
    return 1;
  }
  if (ft::testing::GuestDir().empty()) {
    std::fprintf(stderr, "guest not built: run scripts/build.sh first\n");
    return 1;
  }
  ft::testing::RunLock lock;
  if (auto s = lock.Acquire(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("%u CPUs, QEMU %s\n", std::thread::hardware_concurrency(),
              ft::testing::QemuBinary().c_str());
  std::printf("host B's disk copy in %s\n", backup_storage.empty()
                                                ? std::filesystem::temp_directory_path().c_str()
                                                : backup_storage.c_str());
  int rc = 0;
  if (!skip_records) {
    std::vector<std::pair<ft::testing::CoreLayout, ft::testing::RecordsSummary>> rows;
    for (const auto& [layout, cpus] : *layouts) {
      std::printf("\n== cores %s\n", ft::testing::Describe(layout, cpus).c_str());
      ft::testing::RecordsSummary summary;
      int run_rc =
          ft::testing::RunRecords(warmup, records, guest_args, cpus, backup_storage, &summary);
      rc |= run_rc;
      if (run_rc == 0) rows.emplace_back(layout, summary);
    }
    std::printf("\n%-28s", "side by side");
    for (const auto& [layout, r] : rows) std::printf(" %10s", ft::testing::CoreLayoutName(layout));
    std::printf("\n%-28s", "fsync'd records/s FT/no-FT");
    for (const auto& [layout, r] : rows) std::printf(" %10.3f", r.rate_ratio);
    std::printf("\n%-28s", "added latency p50 ms");
    for (const auto& [layout, r] : rows) std::printf(" %+10.3f", r.added_p50_ms);
    std::printf("\n\n");
  }
  if (!skip_replica) rc |= ft::testing::RunReplica(replica_gib);
  return rc;
}
