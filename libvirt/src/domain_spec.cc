#include "ft/libvirt/domain_spec.h"
#include "ft/names.h"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>

#include <fmt/format.h>

namespace ft::libvirt {
namespace {

using domain::DiskBus;
using domain::DiskSpec;
using domain::NicBackend;
using domain::NicSpec;
using domain::VmSpec;

constexpr const char* kQemuNamespace = "http://libvirt.org/schemas/domain/qemu/1.0";
constexpr uint64_t kMiB = 1024 * 1024;
constexpr uint32_t kMinMemoryMib = 64;  // domain::ValidateVmSpec's range
constexpr uint32_t kMaxMemoryMib = 65536;
constexpr int kIdeSlots = 4;  // 'pc' machine: ide.0 and ide.1, two units each
constexpr size_t kMaxBridgeName = 15;

// ---- Reading the tree ------------------------------------------------------------------

struct DocFree {
  void operator()(xmlDoc* doc) const { xmlFreeDoc(doc); }
};
struct ParserFree {
  void operator()(xmlParserCtxt* ctxt) const { xmlFreeParserCtxt(ctxt); }
};

std::string_view NameOf(const xmlNode* node) { return reinterpret_cast<const char*>(node->name); }

bool IsQemuNamespace(const xmlNode* node) {
  return node->ns != nullptr && node->ns->href != nullptr &&
         std::string_view(reinterpret_cast<const char*>(node->ns->href)) == kQemuNamespace;
}

std::vector<const xmlNode*> Elements(const xmlNode* parent) {
  std::vector<const xmlNode*> out;
  if (parent == nullptr) return out;
  for (const xmlNode* n = parent->children; n != nullptr; n = n->next) {
    if (n->type == XML_ELEMENT_NODE) out.push_back(n);
  }
  return out;
}

std::vector<const xmlNode*> Elements(const xmlNode* parent, std::string_view name) {
  std::vector<const xmlNode*> out;
  for (const xmlNode* n : Elements(parent)) {
    if (NameOf(n) == name && !IsQemuNamespace(n)) out.push_back(n);
  }
  return out;
}

const xmlNode* Element(const xmlNode* parent, std::string_view name) {
  auto all = Elements(parent, name);
  return all.empty() ? nullptr : all.front();
}

std::optional<std::string> Attr(const xmlNode* node, const char* name) {
  if (node == nullptr) return std::nullopt;
  xmlChar* value = xmlGetProp(node, reinterpret_cast<const xmlChar*>(name));
  if (value == nullptr) return std::nullopt;
  std::string out(reinterpret_cast<const char*>(value));
  xmlFree(value);
  return out;
}

std::string AttrOr(const xmlNode* node, const char* name, std::string fallback) {
  return Attr(node, name).value_or(std::move(fallback));
}

// An element's text with surrounding whitespace removed; "" for a missing element.
std::string Text(const xmlNode* node) {
  if (node == nullptr) return "";
  xmlChar* content = xmlNodeGetContent(node);
  if (content == nullptr) return "";
  std::string text(reinterpret_cast<const char*>(content));
  xmlFree(content);
  size_t b = text.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = text.find_last_not_of(" \t\r\n");
  return text.substr(b, e - b + 1);
}

template <typename T>
bool ParseNumber(const std::string& text, T& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && p == text.data() + text.size();
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// libvirt's memory units (formatdomain.html, "Memory Allocation"); no unit means KiB.
std::optional<uint64_t> UnitScale(const std::string& unit) {
  static const std::map<std::string, uint64_t> kScales = [] {
    std::map<std::string, uint64_t> m = {{"", 1024}, {"b", 1}, {"bytes", 1}};
    const char* prefixes = "kmgtpe";
    uint64_t binary = 1, decimal = 1;
    for (int i = 0; prefixes[i] != '\0'; ++i) {
      binary *= 1024;
      decimal *= 1000;
      std::string p(1, prefixes[i]);
      m[p] = binary;
      m[p + "ib"] = binary;
      m[p + "b"] = decimal;
    }
    return m;
  }();
  auto it = kScales.find(Lower(unit));
  if (it == kScales.end()) return std::nullopt;
  return it->second;
}

// ---- The import ------------------------------------------------------------------------

class Importer {
 public:
  explicit Importer(const ImportDefaults& defaults) {
    spec_.qemu_binary = defaults.qemu_binary;
    spec_.icount_shift = defaults.icount_shift;
  }

  Result<DomainImport> Run(const xmlNode* domain) {
    std::string name = Text(Element(domain, "name"));
    label_ = name.empty() ? "domain (no <name>)" : fmt::format("domain '{}'", name);
    DomainType(domain);
    Name(name);
    Memory(domain);
    Vcpus(domain);
    Os(Element(domain, "os"));
    TopLevel(domain);
    Devices(Element(domain, "devices"));
    if (refusals_.empty()) {
      // A safety net: everything ValidateVmSpec checks should have been refused above.
      Status valid = domain::ValidateVmSpec(spec_);
      if (!valid.ok()) {
        std::string message = valid.message();
        std::string prefix = fmt::format("vm '{}': ", spec_.name);
        if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
        Refuse(message);
      }
    }
    if (!refusals_.empty()) return InvalidArgument(RefusalMessage());
    return DomainImport{std::move(spec_), std::move(warnings_)};
  }

 private:
  void Refuse(std::string what) { refusals_.push_back(std::move(what)); }
  void Warn(std::string what) { warnings_.push_back(std::move(what)); }

  std::string RefusalMessage() const {
    if (refusals_.size() == 1) return fmt::format("{}: {}", label_, refusals_.front());
    std::string message = fmt::format("{}: {} problems:", label_, refusals_.size());
    for (const auto& r : refusals_) message += "\n  - " + r;
    return message;
  }

  void DomainType(const xmlNode* domain) {
    std::string type = AttrOr(domain, "type", "");
    if (type == "kvm") {
      Warn("type='kvm' ignored: ftd runs the guest under TCG, which record/replay needs");
    } else if (type != "qemu") {
      Refuse(
          fmt::format("type '{}' is not a QEMU domain: ftd protects domains of type 'kvm' "
                      "or 'qemu'",
                      type));
    }
  }

  void Name(const std::string& name) {
    if (name.empty()) {
      Refuse("has no <name>");
    } else if (!ft::IsValidName(name)) {
      Refuse(
          fmt::format("name '{}' is not usable by ftd: use 1-64 letters, digits, '_', '.', "
                      "'-', starting with a letter or digit (virsh domrename)",
                      name));
    }
    spec_.name = name;
  }

  // <memory unit='KiB'>262144</memory> -> bytes; errors name the element.
  std::optional<uint64_t> MemoryBytes(const xmlNode* node) {
    std::string element(NameOf(node));
    std::string text = Text(node);
    std::string unit = AttrOr(node, "unit", "");
    uint64_t value = 0;
    auto scale = UnitScale(unit);
    if (!ParseNumber(text, value)) {
      Refuse(fmt::format("<{}> '{}' is not a number", element, text));
      return std::nullopt;
    }
    uint64_t bytes = 0;
    if (!scale) {
      Refuse(fmt::format("<{}> has unknown unit '{}'; use KiB, MiB or GiB", element, unit));
      return std::nullopt;
    }
    if (__builtin_mul_overflow(value, *scale, &bytes)) {
      Refuse(fmt::format("<{}> {} {} is too large", element, text, unit));
      return std::nullopt;
    }
    return bytes;
  }

  void Memory(const xmlNode* domain) {
    const xmlNode* memory = Element(domain, "memory");
    if (memory == nullptr) {
      Refuse("has no <memory>: set <memory unit='MiB'>256</memory>");
      return;
    }
    auto bytes = MemoryBytes(memory);
    if (!bytes) return;
    uint64_t mib = (*bytes + kMiB - 1) / kMiB;
    std::string shown = fmt::format("{} {}", Text(memory), AttrOr(memory, "unit", "KiB"));
    if (mib < kMinMemoryMib || mib > kMaxMemoryMib) {
      Refuse(fmt::format("memory {} is outside {}..{} MiB; set <memory unit='MiB'> in that range",
                         shown, kMinMemoryMib, kMaxMemoryMib));
      return;
    }
    spec_.memory_mib = static_cast<uint32_t>(mib);
    if (*bytes % kMiB != 0) {
      Warn(
          fmt::format("memory {} is not a whole number of MiB; the guest gets {} MiB", shown, mib));
    }
    if (const xmlNode* current = Element(domain, "currentMemory")) {
      auto current_bytes = MemoryBytes(current);
      if (current_bytes && *current_bytes < *bytes) {
        Warn(
            fmt::format("<currentMemory> {} {} ignored: the guest has no balloon under ftd and "
                        "gets all {} MiB of <memory>",
                        Text(current), AttrOr(current, "unit", "KiB"), mib));
      }
    }
  }

  void Vcpus(const xmlNode* domain) {
    const xmlNode* vcpu = Element(domain, "vcpu");
    if (vcpu == nullptr) return;  // libvirt's default is one
    std::string text = Text(vcpu);
    unsigned count = 0;
    if (!ParseNumber(text, count)) {
      Refuse(fmt::format("<vcpu> '{}' is not a number; set <vcpu>1</vcpu>", text));
    } else if (count != 1) {
      Refuse(
          fmt::format("more than one vCPU (<vcpu>{}</vcpu>): record/replay runs one vCPU; "
                      "set <vcpu>1</vcpu>",
                      text));
    }
  }

  void Os(const xmlNode* os) {
    if (os == nullptr) {
      Refuse(
          "has no <os>: ftd needs direct kernel boot; set <kernel>, <initrd> and <cmdline> "
          "under <os>");
      return;
    }
    const xmlNode* type = Element(os, "type");
    std::string os_type = Text(type);
    if (!os_type.empty() && os_type != "hvm") {
      Refuse(fmt::format("<os><type> is '{}': ftd protects full virtual machines (hvm)", os_type));
    }
    std::string arch = AttrOr(type, "arch", "x86_64");
    if (arch != "x86_64") {
      Refuse(fmt::format("arch '{}': ftd runs x86_64 guests only (qemu-system-x86_64)", arch));
    }
    std::string machine = AttrOr(type, "machine", "pc");
    if (machine != "pc" && machine.rfind("pc-i440fx-", 0) != 0) {
      Warn(fmt::format("machine '{}' ignored: ftd runs QEMU's 'pc' (i440fx) machine", machine));
    }

    bool uefi = AttrOr(os, "firmware", "") == "efi" || Element(os, "loader") != nullptr ||
                Element(os, "nvram") != nullptr;
    if (uefi) {
      Refuse(
          "boots UEFI firmware (<loader>/<nvram> or firmware='efi'): ftd boots the kernel "
          "directly with QEMU's SeaBIOS; remove them and set <kernel>/<initrd>/<cmdline>");
    }

    std::string kernel = Text(Element(os, "kernel"));
    std::string initrd = Text(Element(os, "initrd"));
    if (kernel.empty()) {
      std::string from;
      for (const xmlNode* boot : Elements(os, "boot")) {
        from += (from.empty() ? "" : ", ") + AttrOr(boot, "dev", "?");
      }
      Refuse(
          fmt::format("boots from {} through the BIOS (no <os><kernel>): ftd needs direct "
                      "kernel boot; set <kernel>, <initrd> and <cmdline> under <os>",
                      from.empty() ? std::string("disk") : "'" + from + "'"));
    } else if (kernel.front() != '/') {
      Refuse(fmt::format("kernel '{}' is not an absolute path", kernel));
    }
    if (!initrd.empty() && initrd.front() != '/') {
      Refuse(fmt::format("initrd '{}' is not an absolute path", initrd));
    }
    spec_.kernel = kernel;
    spec_.initrd = initrd;
    spec_.cmdline = Text(Element(os, "cmdline"));
    // ftd writes these as one line each (a [vm] section, enabled.conf): a newline in one
    // could add a line of its own there.
    for (const auto& [element, value] :
         {std::pair<const char*, const std::string&>{"<os><kernel>", spec_.kernel},
          {"<os><initrd>", spec_.initrd},
          {"<os><cmdline>", spec_.cmdline}}) {
      if (size_t at = FindControlCharacter(value); at != std::string::npos) {
        Refuse(
            fmt::format("{} has a control character ({} at byte {}); it must be one line of "
                        "printable text",
                        element, PrintableText(value.substr(at, 1), 8), at));
      }
    }
    if (!kernel.empty()) CmdlineAdvice();

    static const std::set<std::string_view> kSilent = {
        "type", "kernel", "initrd", "cmdline", "boot", "bootmenu", "bios", "loader", "nvram"};
    for (const xmlNode* child : Elements(os)) {
      if (!kSilent.count(NameOf(child))) {
        Warn(fmt::format("<os><{}> ignored: ftd boots the kernel directly", NameOf(child)));
      }
    }
  }

  void CmdlineAdvice() {
    std::istringstream words(spec_.cmdline);
    bool serial_console = false, nohz_off = false;
    for (std::string word; words >> word;) {
      serial_console = serial_console || word.rfind("console=ttyS0", 0) == 0;
      nohz_off = nohz_off || word == "nohz=off";
    }
    if (!serial_console) {
      Warn(
          "<cmdline> has no console=ttyS0: ftd logs the guest's ttyS0, so its console log "
          "will stay empty");
    }
    if (!nohz_off) {
      Warn(
          "<cmdline> lacks nohz=off: a tickless guest sees arriving frames late when recorded "
          "(docs/design.md, output commit)");
    }
  }

  // Everything at the top level but name, memory, vcpu, os and devices.
  void TopLevel(const xmlNode* domain) {
    static const std::set<std::string_view> kHandled = {"name", "memory", "currentMemory",
                                                        "vcpu", "os",     "devices"};
    // Host-side placement, tuning, labels and lifecycle: nothing the guest sees. (on_reboot:
    // ftd runs QEMU with -no-reboot whatever it says; docs/operations.md.)
    static const std::set<std::string_view> kSilent = {
        "uuid",     "title",          "description", "metadata",      "memoryBacking",
        "memtune",  "blkiotune",      "iothreads",   "iothreadids",   "defaultiothread",
        "cputune",  "numatune",       "resource",    "on_poweroff",   "on_reboot",
        "on_crash", "on_lockfailure", "pm",          "perf",          "seclabel",
        "keywrap",  "idmap",          "vcpus",       "throttlegroups"};
    for (const xmlNode* child : Elements(domain)) {
      std::string_view name = NameOf(child);
      if (IsQemuNamespace(child)) {
        Refuse(
            fmt::format("<qemu:{}> passes raw arguments to QEMU that ftd cannot vet for "
                        "record/replay; remove it",
                        name));
      } else if (kHandled.count(name) || kSilent.count(name)) {
        continue;
      } else if (name == "maxMemory") {
        Refuse(
            "<maxMemory> enables memory hotplug, which ftd does not protect; remove it and "
            "size <memory> instead");
      } else if (name == "launchSecurity") {
        Refuse(
            fmt::format("<launchSecurity type='{}'> encrypts guest memory, which cannot be "
                        "recorded or replayed; remove it",
                        AttrOr(child, "type", "?")));
      } else if (name == "cpu") {
        Cpu(child);
      } else if (name == "features") {
        Features(child);
      } else if (name == "clock") {
        Clock(child);
      } else if (name == "sysinfo") {
        Warn("<sysinfo> ignored: the guest sees QEMU's default SMBIOS tables");
      } else if (name == "genid") {
        Warn("<genid> ignored: the guest has no VM generation ID under ftd");
      } else {
        Warn(fmt::format("<{}> ignored: ftd does not know it", name));
      }
    }
  }

  void Cpu(const xmlNode* cpu) {
    std::string mode = AttrOr(cpu, "mode", "custom");
    std::string model = Text(Element(cpu, "model"));
    if (mode != "custom") {
      Warn(
          fmt::format("<cpu mode='{}'> ignored: under TCG the guest sees QEMU's qemu64 CPU", mode));
    } else if (!model.empty() && model != "qemu64") {
      Warn(fmt::format("<cpu> model '{}' ignored: under TCG the guest sees QEMU's qemu64 CPU",
                       model));
    }
    if (Element(cpu, "numa") != nullptr) {
      Warn("<cpu><numa> ignored: the guest sees one NUMA node");
    }
  }

  void Features(const xmlNode* features) {
    static const std::set<std::string_view> kSilent = {"acpi",       "apic", "pae", "vmport",
                                                       "vmcoreinfo", "smm",  "pmu"};
    std::string ignored;
    for (const xmlNode* child : Elements(features)) {
      if (kSilent.count(NameOf(child))) continue;
      ignored += fmt::format("{}<{}>", ignored.empty() ? "" : ", ", NameOf(child));
    }
    if (!ignored.empty()) {
      Warn(fmt::format("<features> {} ignored: ftd runs a plain TCG 'pc' machine", ignored));
    }
  }

  void Clock(const xmlNode* clock) {
    std::string offset = AttrOr(clock, "offset", "utc");
    if (offset != "utc") {
      Warn(fmt::format("<clock offset='{}'> ignored: the guest's RTC runs in UTC under ftd",
                       offset));
    }
  }

  void Devices(const xmlNode* devices) {
    std::vector<const xmlNode*> interfaces, serials;
    std::vector<std::string> ide_disks;
    for (const xmlNode* device : Elements(devices)) {
      std::string_view kind = NameOf(device);
      if (kind == "disk") {
        Disk(device, ide_disks);
      } else if (kind == "interface") {
        interfaces.push_back(device);
      } else if (kind == "serial") {
        serials.push_back(device);
      } else {
        OtherDevice(device, kind);
      }
    }
    if (static_cast<int>(ide_disks.size()) > kIdeSlots) {
      Refuse(
          fmt::format("{} IDE disks ({}): the 'pc' machine has {} IDE slots; use "
                      "bus='virtio' for the others",
                      ide_disks.size(), fmt::join(ide_disks, ", "), kIdeSlots));
    }
    Serials(serials);
    Interfaces(interfaces);
  }

  void Disk(const xmlNode* disk, std::vector<std::string>& ide_disks) {
    const xmlNode* target = Element(disk, "target");
    std::string dev = AttrOr(target, "dev", "");
    std::string device = AttrOr(disk, "device", "disk");
    std::string type = AttrOr(disk, "type", "file");
    std::string what = fmt::format("{} {}", device, dev.empty() ? "(no target dev)" : dev);

    if (device == "cdrom" || device == "floppy") {
      Refuse(
          fmt::format("{}: ftd attaches only disks (device='disk'); remove the {}, or attach "
                      "its image as <disk type='file' device='disk'> with bus='virtio'",
                      what, device));
      return;
    }
    if (device == "lun") {
      Refuse(
          fmt::format("{}: SCSI LUN passthrough (device='lun') cannot be replayed; use <disk "
                      "type='file' device='disk'> with a qcow2 or raw image",
                      what));
      return;
    }
    if (device != "disk") {
      Refuse(fmt::format("{}: device '{}' is not a disk; use <disk type='file' device='disk'>",
                         what, device));
      return;
    }
    const xmlNode* source = Element(disk, "source");
    if (type == "network") {
      Refuse(
          fmt::format("{} is a network disk (protocol '{}'): ftd needs a local image file on "
                      "each host; use <disk type='file'> with a qcow2 or raw image",
                      what, AttrOr(source, "protocol", "?")));
      return;
    }
    if (type != "file") {
      Refuse(
          fmt::format("{} has type '{}': ftd needs an image file; use <disk type='file'> "
                      "with a qcow2 or raw image",
                      what, type));
      return;
    }

    DiskSpec spec;
    spec.id = dev;
    spec.path = AttrOr(source, "file", "");
    bool ok = true;
    if (dev.empty() || !ft::IsValidName(dev)) {
      Refuse(
          fmt::format("{}: target dev '{}' is not usable as a drive id; use a name like "
                      "'vda'",
                      what, dev));
      ok = false;
    }
    if (spec.path.empty()) {
      Refuse(fmt::format("{} has no <source file=...>: ftd needs an image file", what));
      ok = false;
    } else if (spec.path.front() != '/') {
      // As for <kernel>: the [vm] section that travels to the peer and into enabled.conf
      // holds absolute paths; a relative one would be read against '/' there.
      Refuse(fmt::format("{}: image '{}' is not an absolute path", what, spec.path));
      ok = false;
    }

    // libvirt infers a missing bus from the name, as here: vd* virtio, hd* ide, sd* scsi.
    std::string bus = AttrOr(target, "bus", "");
    if (bus.empty()) {
      bus = dev.rfind("vd", 0) == 0 ? "virtio" : dev.rfind("hd", 0) == 0 ? "ide" : "scsi";
    }
    if (bus == "virtio") {
      spec.bus = DiskBus::kVirtio;
    } else if (bus == "ide") {
      spec.bus = DiskBus::kIde;
      ide_disks.push_back(dev);
    } else {
      Refuse(
          fmt::format("{} uses bus '{}': ftd attaches disks as virtio-blk or IDE; use "
                      "bus='virtio' or bus='ide'",
                      what, bus));
      ok = false;
    }

    const xmlNode* driver = Element(disk, "driver");
    auto format = Attr(driver, "type");
    if (!format) {
      Warn(fmt::format("{} has no <driver type>: taken as raw, as libvirt does", what));
      spec.format = "raw";
    } else if (*format == "qcow2" || *format == "raw") {
      spec.format = *format;
    } else {
      Refuse(
          fmt::format("{} has format '{}': ftd supports qcow2 and raw; convert it "
                      "(qemu-img convert -O qcow2)",
                      what, *format));
      ok = false;
    }

    if (Element(disk, "readonly") != nullptr) {
      Refuse(
          fmt::format("{} is <readonly/>: ftd attaches disks read-write; remove <readonly/> "
                      "or the disk",
                      what));
      ok = false;
    }
    if (Element(disk, "shareable") != nullptr) {
      Refuse(
          fmt::format("{} is <shareable/>: another VM's writes would change it outside the "
                      "replay log; remove <shareable/>",
                      what));
      ok = false;
    }
    if (Element(disk, "transient") != nullptr) {
      Refuse(
          fmt::format("{} is <transient/>: ftd writes to the image itself; remove "
                      "<transient/>",
                      what));
      ok = false;
    }
    if (Element(source, "encryption") != nullptr || Element(disk, "encryption") != nullptr) {
      Refuse(
          fmt::format("{} is encrypted (<encryption>): ftd passes no secrets to QEMU; use an "
                      "unencrypted image (encrypt the storage below it instead)",
                      what));
      ok = false;
    }
    if (Element(disk, "iotune") != nullptr) {
      Warn(fmt::format("{} <iotune> ignored: ftd does not throttle disk I/O", what));
    }
    if (Element(disk, "serial") != nullptr) {
      Warn(fmt::format("{} <serial> ignored: the guest sees no disk serial under ftd", what));
    }
    if (ok) spec_.disks.push_back(std::move(spec));
  }

  void Serials(const std::vector<const xmlNode*>& serials) {
    if (serials.size() > 1) {
      Refuse(
          fmt::format("{} <serial> ports: ftd gives the guest one serial port (ttyS0, its "
                      "console log); keep one <serial>",
                      serials.size()));
    }
    for (const xmlNode* serial : serials) {
      std::string type = AttrOr(serial, "type", "pty");
      if (type != "pty") {
        Warn(
            fmt::format("<serial type='{}'> ignored: ftd writes the guest's ttyS0 to its "
                        "console log",
                        type));
      }
    }
  }

  void Interfaces(const std::vector<const xmlNode*>& interfaces) {
    if (interfaces.size() > 1) {
      std::vector<std::string> macs;
      for (const xmlNode* nic : interfaces) {
        macs.push_back(AttrOr(Element(nic, "mac"), "address", "(no MAC)"));
      }
      Refuse(
          fmt::format("{} interfaces ({}): ftd protects one NIC; keep one <interface "
                      "type='bridge'>",
                      interfaces.size(), fmt::join(macs, ", ")));
    }
    for (const xmlNode* nic : interfaces) {
      auto spec = Interface(nic);
      if (spec && interfaces.size() == 1) spec_.nic = std::move(*spec);
    }
  }

  std::optional<NicSpec> Interface(const xmlNode* nic) {
    auto mac = Attr(Element(nic, "mac"), "address");
    std::string what = fmt::format("interface {}", mac.value_or("(no MAC)"));
    std::string type = AttrOr(nic, "type", "?");
    const xmlNode* source = Element(nic, "source");
    if (type == "hostdev") {
      Refuse(
          fmt::format("{} passes a host NIC through (type='hostdev'): a host device cannot "
                      "be replayed on the backup; use <interface type='bridge'> with <model "
                      "type='e1000'/>",
                      what));
      return std::nullopt;
    }
    if (type != "bridge") {
      Refuse(
          fmt::format("{} has type '{}': ftd connects the NIC to a host bridge itself, "
                      "through its output gate; use <interface type='bridge'> with <source "
                      "bridge='br0'/>",
                      what, type));
      return std::nullopt;
    }

    NicSpec spec;
    spec.backend = NicBackend::kBridge;
    bool ok = true;
    if (!mac) {
      Refuse(fmt::format("{} has no <mac address>: add <mac address='52:54:00:xx:xx:xx'/>", what));
      ok = false;
    } else if (!domain::IsValidMac(*mac)) {
      Refuse(fmt::format("{}: MAC '{}' is not a unicast MAC like 52:54:00:12:34:56", what, *mac));
      ok = false;
    } else {
      spec.mac = *mac;
    }
    spec.bridge = AttrOr(source, "bridge", "");
    if (spec.bridge.empty()) {
      Refuse(fmt::format("{} has no <source bridge=...>: name the host bridge", what));
      ok = false;
    } else if (spec.bridge.size() > kMaxBridgeName) {
      Refuse(fmt::format("{}: bridge '{}' is longer than {} characters", what, spec.bridge,
                         kMaxBridgeName));
      ok = false;
    }

    auto model = Attr(Element(nic, "model"), "type");
    if (!model) {
      Refuse(
          fmt::format("{} has no <model>: libvirt gives it rtl8139 on x86, which ftd does not "
                      "protect; use <model type='e1000'/>",
                      what));
      ok = false;
    } else if (*model == "virtio") {
      Refuse(
          fmt::format("{} uses model virtio: virtio-net hangs in replay on QEMU 7.2; use "
                      "<model type='e1000'/>",
                      what));
      ok = false;
    } else if (*model != "e1000") {
      Refuse(
          fmt::format("{} uses model '{}': ftd records and replays only e1000 on QEMU 7.2; "
                      "use <model type='e1000'/>",
                      what, *model));
      ok = false;
    }

    if (const xmlNode* port = Element(nic, "virtualport")) {
      Refuse(
          fmt::format("{} uses a <virtualport type='{}'>: ftd adds a plain TAP to a Linux "
                      "bridge; use a Linux bridge and remove <virtualport>",
                      what, AttrOr(port, "type", "?")));
      ok = false;
    }
    if (Element(nic, "vlan") != nullptr) {
      Refuse(
          fmt::format("{} has a <vlan> tag: ftd's TAP joins the bridge untagged; put the VLAN "
                      "on the bridge (a bridge on eth0.100) and remove <vlan>",
                      what));
      ok = false;
    }
    if (const xmlNode* filter = Element(nic, "filterref")) {
      Refuse(
          fmt::format("{} uses nwfilter '{}': libvirt does not filter ftd's TAP; remove "
                      "<filterref> and filter on the bridge",
                      what, AttrOr(filter, "filter", "?")));
      ok = false;
    }
    if (Element(nic, "bandwidth") != nullptr) {
      Warn(fmt::format("{} <bandwidth> ignored: ftd does not shape the NIC's traffic", what));
    }
    if (AttrOr(Element(nic, "link"), "state", "up") == "down") {
      Warn(fmt::format("{} <link state='down'/> ignored: the NIC's link is up under ftd", what));
    }
    if (!ok) return std::nullopt;
    return spec;
  }

  // Devices other than disks, interfaces and serial ports.
  void OtherDevice(const xmlNode* device, std::string_view kind) {
    std::string type = AttrOr(device, "type", "");
    std::string model = AttrOr(device, "model", "");
    if (kind == "emulator" || kind == "controller" || kind == "memballoon") {
      // ftd runs its own QEMU (ImportDefaults), lays out its own controllers and gives the
      // guest no balloon: nothing the operator chose, so nothing to warn about.
    } else if (kind == "input") {
      if (AttrOr(device, "bus", "ps2") != "ps2") {
        Warn(fmt::format("input '{}' ({}) ignored: ftd runs the guest headless", type,
                         AttrOr(device, "bus", "?")));
      }
    } else if (kind == "audio") {
      if (type != "none") Warn(fmt::format("audio '{}' ignored: the guest has no sound", type));
    } else if (kind == "console") {
      std::string target = AttrOr(Element(device, "target"), "type", "serial");
      if (target != "serial") {
        Refuse(
            fmt::format("console '{}' ({}): ftd gives the guest one serial port, ttyS0; use "
                        "<console type='pty'><target type='serial'/></console>",
                        target, target == "virtio" ? "hvc0" : "not ttyS0"));
      }
    } else if (kind == "graphics") {
      Warn(
          fmt::format("graphics '{}' ignored: ftd runs the guest headless; use the serial "
                      "console",
                      type));
    } else if (kind == "video") {
      Warn(fmt::format("video '{}' ignored: ftd runs the guest headless",
                       AttrOr(Element(device, "model"), "type", "?")));
    } else if (kind == "sound") {
      Warn(fmt::format("sound '{}' ignored: the guest has no sound device under ftd", model));
    } else if (kind == "channel") {
      Warn(
          fmt::format("channel '{}' ignored: the guest has no virtio-serial channel under ftd "
                      "(no guest agent)",
                      AttrOr(Element(device, "target"), "name", type)));
    } else if (kind == "watchdog") {
      Warn(fmt::format("watchdog '{}' ignored: the guest has no watchdog device under ftd", model));
    } else if (kind == "rng") {
      Warn(
          fmt::format("rng '{}' ignored: the guest has no virtio-rng under ftd (host entropy "
                      "would not replay)",
                      model));
    } else if (kind == "panic") {
      Warn(fmt::format("panic '{}' ignored: the guest has no pvpanic device under ftd", model));
    } else if (kind == "iommu") {
      Warn(fmt::format("iommu '{}' ignored: the guest has no IOMMU under ftd", model));
    } else if (kind == "hostdev") {
      Refuse(
          fmt::format("{} (<hostdev>): a host device cannot be recorded, replayed or moved "
                      "to the backup; remove it (use an e1000 <interface> or a disk image)",
                      HostdevName(device)));
    } else if (kind == "redirdev") {
      Refuse(
          fmt::format("USB redirection (<redirdev type='{}'>): a client's USB device cannot "
                      "be replayed on the backup; remove it",
                      type));
    } else if (kind == "smartcard") {
      Refuse(
          fmt::format("smartcard (<smartcard mode='{}'>): a host or client card cannot be "
                      "replayed on the backup; remove it",
                      AttrOr(device, "mode", "?")));
    } else if (kind == "parallel") {
      Refuse("parallel port (<parallel>): ftd gives the guest one serial port only; remove it");
    } else if (kind == "tpm") {
      Refuse(
          fmt::format("TPM (<tpm model='{}'>): its state lives on the host and does not "
                      "reach the backup; remove it",
                      model));
    } else if (kind == "shmem") {
      Refuse(
          fmt::format("shared memory '{}' (<shmem>): memory shared with the host changes "
                      "outside the replay log; remove it",
                      AttrOr(device, "name", "?")));
    } else if (kind == "filesystem") {
      Refuse(
          fmt::format("filesystem '{}' (<filesystem>, virtiofs/9p): host files change "
                      "outside the replay log and are not on the backup; put the data on a "
                      "disk image",
                      AttrOr(Element(device, "target"), "dir", "?")));
    } else if (kind == "memory") {
      Refuse(
          fmt::format("memory device (<memory model='{}'>): memory hotplug is not "
                      "protected; remove it and size <memory> instead",
                      model));
    } else if (kind == "vsock") {
      Refuse(
          "vsock (<vsock>): host-guest sockets bypass the replay log and the output gate; "
          "remove it and use the NIC");
    } else if (kind == "crypto") {
      Refuse("crypto device (<crypto>): a host crypto backend cannot be replayed; remove it");
    } else {
      Refuse(fmt::format("device <{}> is not known to ftd and may not replay; remove it", kind));
    }
  }

  static std::string HostdevName(const xmlNode* hostdev) {
    std::string type = AttrOr(hostdev, "type", "?");
    const xmlNode* source = Element(hostdev, "source");
    if (type == "pci") {
      const xmlNode* address = Element(source, "address");
      auto hex = [&](const char* attr, int width) {
        std::string v = AttrOr(address, attr, "0");
        if (v.rfind("0x", 0) == 0) v.erase(0, 2);
        return std::string(width > static_cast<int>(v.size()) ? width - v.size() : 0, '0') + v;
      };
      return fmt::format("PCI passthrough of {}:{}:{}.{}", hex("domain", 4), hex("bus", 2),
                         hex("slot", 2), hex("function", 1));
    }
    if (type == "usb") {
      return fmt::format("USB passthrough of {}:{}", AttrOr(Element(source, "vendor"), "id", "?"),
                         AttrOr(Element(source, "product"), "id", "?"));
    }
    return fmt::format("{} passthrough", type);
  }

  std::string label_;
  VmSpec spec_;
  std::vector<std::string> refusals_;
  std::vector<std::string> warnings_;
};

}  // namespace

Result<DomainImport> ImportDomain(std::string_view domain_xml, const ImportDefaults& defaults) {
  static std::once_flag init;
  std::call_once(init, [] { xmlInitParser(); });
  if (domain_xml.size() > static_cast<size_t>(INT_MAX)) {
    return InvalidArgument("domain XML is too large");
  }
  std::unique_ptr<xmlParserCtxt, ParserFree> parser(xmlNewParserCtxt());
  if (!parser) return Internal("libxml2: cannot create a parser");
  // No network, no entity substitution, no DTD, and no messages on stderr: errors come back
  // through the context.
  int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;
  std::unique_ptr<xmlDoc, DocFree> doc(xmlCtxtReadMemory(parser.get(), domain_xml.data(),
                                                         static_cast<int>(domain_xml.size()),
                                                         "domain.xml", nullptr, options));
  if (!doc) {
    const xmlError* error = xmlCtxtGetLastError(parser.get());
    std::string message = error != nullptr && error->message != nullptr ? error->message : "?";
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return InvalidArgument(fmt::format("domain XML does not parse: line {}: {}",
                                       error != nullptr ? error->line : 0, message));
  }
  const xmlNode* root = xmlDocGetRootElement(doc.get());
  if (root == nullptr || NameOf(root) != "domain") {
    return InvalidArgument(
        fmt::format("domain XML has root <{}>, not <domain>", root != nullptr ? NameOf(root) : ""));
  }
  return Importer(defaults).Run(root);
}

}  // namespace ft::libvirt
