#include <openssl/evp.h>

#include <fstream>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "ft/replay/vm_spec.h"

namespace ft::replay {
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

Result<std::string> FileDigest(const std::string& vm, const std::string& what,
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

}  // namespace ft::replay
