#include "ft/disk/image_digest.h"

#include "ft/disk/replica_copy.h"
#include "sha256.h"

namespace ft::disk {

Result<ImageDigest> DigestImage(const std::string& vm, const std::string& disk_id,
                                const std::string& path) {
  auto reader = ImageReader::Open(path);
  if (!reader.ok()) {
    return Status(reader.status().code(),
                  fmt::format("vm '{}': disk.{}: {}", vm, disk_id, reader.status().message()));
  }
  while (!(*reader)->done()) {
    auto chunk = (*reader)->Next(4 << 20);
    if (!chunk.ok()) {
      return Status(chunk.status().code(),
                    fmt::format("vm '{}': disk.{}: {}", vm, disk_id, chunk.status().message()));
    }
  }
  return (*reader)->digest();
}

Result<std::string> ReplicaSetDigest(const domain::VmSpec& spec) {
  if (spec.disks.empty()) return std::string();
  Sha256 all;
  for (const auto& d : spec.disks) {
    FT_ASSIGN_OR_RETURN(ImageDigest one, DigestImage(spec.name, d.id, d.path));
    all.Update(fmt::format("{} {} {}\n", d.id, one.size, one.sha256));
  }
  return all.Hex();
}

}  // namespace ft::disk
