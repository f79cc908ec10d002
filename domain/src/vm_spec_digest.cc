#include <openssl/evp.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "ft/domain/vm_spec.h"

namespace ft::domain {
namespace {

using MdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

void Add(EVP_MD_CTX* ctx, const std::string& field, const std::string& value) {
  // Length-prefixed so that no two different specs hash the same text.
  std::string line = fmt::format("{}={}:{}\n", field, value.size(), value);
  EVP_DigestUpdate(ctx, line.data(), line.size());
}

std::string Hex(const unsigned char* data, unsigned size) {
  std::string out;
  for (unsigned i = 0; i < size; ++i) out += fmt::format("{:02x}", data[i]);
  return out;
}

Result<std::string> HashFile(const std::string& vm, const std::string& what,
                             const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(fmt::format("vm '{}': cannot read {} '{}'", vm, what, path));
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  if (in.bad()) return DataLoss(fmt::format("vm '{}': error reading {} '{}'", vm, what, path));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return Hex(md, len);
}

// One version of a file: a file rewritten in place or replaced changes its ctime or inode.
using FileVersion = std::tuple<std::string, dev_t, ino_t, off_t, int64_t, int64_t>;

// Kernels and initrds are tens of MiB and shared by every VM of a host: each version is
// hashed once, so that starting a VM at run time does not hash them again on ftd's event loop.
Result<std::string> FileDigest(const std::string& vm, const std::string& what,
                               const std::string& path) {
  static std::mutex mu;
  static std::map<FileVersion, std::string> cache;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return HashFile(vm, what, path);  // names the error
  FileVersion version{path,
                      st.st_dev,
                      st.st_ino,
                      st.st_size,
                      int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                      int64_t(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
  {
    std::lock_guard lock(mu);
    if (auto it = cache.find(version); it != cache.end()) return it->second;
  }
  FT_ASSIGN_OR_RETURN(std::string digest, HashFile(vm, what, path));
  std::lock_guard lock(mu);
  cache[version] = digest;
  return digest;
}

}  // namespace

Result<std::string> ReplicatedSpecDigest(const VmSpec& spec) {
  FT_ASSIGN_OR_RETURN(std::string kernel, FileDigest(spec.name, "kernel", spec.kernel));
  std::string initrd;
  if (!spec.initrd.empty()) {
    FT_ASSIGN_OR_RETURN(initrd, FileDigest(spec.name, "initrd", spec.initrd));
  }
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  Add(ctx.get(), "format", "ftd-vm-spec-1");
  Add(ctx.get(), "name", spec.name);
  Add(ctx.get(), "memory_mib", std::to_string(spec.memory_mib));
  Add(ctx.get(), "icount_shift", std::to_string(spec.icount_shift));
  Add(ctx.get(), "cmdline", spec.cmdline);
  Add(ctx.get(), "kernel", kernel);
  Add(ctx.get(), "initrd", initrd);
  for (const auto& d : spec.disks) {
    Add(ctx.get(), "disk", fmt::format("{} {} {}", d.id, d.format, DiskBusName(d.bus)));
  }
  Add(ctx.get(), "nic", spec.nic ? spec.nic->mac : "none");
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return Hex(md, len);
}

}  // namespace ft::domain
