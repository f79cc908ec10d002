// GuestRam: the memory file a VM's RAM lives in, handed to a real child process the way
// VmRunner hands it to QEMU, and outliving that process.
#include "ft/replay/guest_ram.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "ft/replay/process.h"

namespace ft::replay {
namespace {

using namespace std::chrono_literals;

class GuestRamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("ft-ram-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs `script` under sh with `ram` inherited (or not); returns its exit code and output.
  std::pair<int, std::string> Run(const std::string& script, const GuestRam* ram) {
    SpawnOptions options;
    options.output_path = (dir_ / "out.log").string();
    std::filesystem::remove(options.output_path);
    if (ram) options.inherit_fds.push_back(ram->fd());
    auto child = ChildProcess::Spawn({"sh", "-c", script}, options);
    EXPECT_TRUE(child.ok()) << child.status().ToString();
    if (!child.ok()) return {-1, ""};
    auto exit = (*child)->WaitFor(10s);
    EXPECT_TRUE(exit.has_value());
    return {exit ? exit->code : -1, TailOfFile(options.output_path)};
  }

  std::filesystem::path dir_;
};

TEST_F(GuestRamTest, IsZeroFilledOfTheAskedSizeAndNamedForTheVm) {
  auto ram = GuestRam::Create("web1", 4 << 20);
  ASSERT_TRUE(ram.ok()) << ram.status().ToString();
  EXPECT_EQ((*ram)->bytes(), 4u << 20);
  EXPECT_EQ(lseek((*ram)->fd(), 0, SEEK_END), 4 << 20);
  char byte = 1;
  ASSERT_EQ(pread((*ram)->fd(), &byte, 1, (4 << 20) - 1), 1);
  EXPECT_EQ(byte, 0);
  char link[256] = {};
  ASSERT_GT(readlink(fmt::format("/proc/self/fd/{}", (*ram)->fd()).c_str(), link, sizeof link - 1),
            0);
  EXPECT_EQ(std::string(link).rfind("/memfd:ftd-ram:web1", 0), 0u) << link;
}

TEST_F(GuestRamTest, ZeroBytesIsAClearError) {
  auto ram = GuestRam::Create("web1", 0);
  ASSERT_FALSE(ram.ok());
  EXPECT_NE(ram.status().message().find("vm 'web1'"), std::string::npos);
}

// What go-live relies on: one process writes the RAM, ends, and the next one finds it there.
TEST_F(GuestRamTest, WhatAChildWritesIsThereForTheNextChild) {
  auto ram = GuestRam::Create("web1", 1 << 20);
  ASSERT_TRUE(ram.ok());
  std::string path = (*ram)->path_in_child();
  auto [wrote, unused] = Run(fmt::format("printf guest-state 1<> {}", path), ram->get());
  EXPECT_EQ(wrote, 0);
  auto [read, out] = Run(fmt::format("head -c 11 {}", path), ram->get());
  EXPECT_EQ(read, 0);
  EXPECT_EQ(out, "guest-state");
}

TEST_F(GuestRamTest, OnlyTheChildItIsGivenToInheritsIt) {
  auto ram = GuestRam::Create("web1", 1 << 20);
  ASSERT_TRUE(ram.ok());
  auto [code, out] = Run(fmt::format("test -e {}", (*ram)->path_in_child()), nullptr);
  EXPECT_NE(code, 0) << "a QEMU of another VM must not map this VM's RAM";
}

TEST(ChildProcessInheritTest, AClosedDescriptorIsAnErrorBeforeAnythingRuns) {
  SpawnOptions options;
  options.inherit_fds = {1000};
  auto child = ChildProcess::Spawn({"true"}, options);
  ASSERT_FALSE(child.ok());
  EXPECT_NE(child.status().message().find("descriptor 1000"), std::string::npos)
      << child.status().ToString();
}

}  // namespace
}  // namespace ft::replay
