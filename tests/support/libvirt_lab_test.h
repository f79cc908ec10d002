// The start that every lab test with libvirt domains shares, as a gtest fixture to derive
// from: libvirtd for the suite (a skip without root or libvirt fails under CI=true), the guest
// built, a lab, and a temp dir named with TestDomainPrefix() for domain XML and images.
// A derived fixture calls LibvirtLabTest::SetUp() first and returns if it skipped or failed,
// and tears its own parts down (ftds first: their QEMUs die with them) before
// LibvirtLabTest::TearDown() removes the lab and the dir.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <memory>

#include <gtest/gtest.h>

#include "lab.h"
#include "libvirt_domains.h"

namespace ft::testing {

class LibvirtLabTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { libvirt_ = LibvirtdForSuite::Start(); }
  static void TearDownTestSuite() { libvirt_ = {}; }

  void SetUp() override {
    if (!libvirt_.skip.empty()) FT_SKIP_OR_FAIL_IN_CI(libvirt_.skip);
    ASSERT_TRUE(libvirt_.error.empty()) << libvirt_.error;
    ASSERT_FALSE(GuestDir().empty()) << "guest not built";
    auto lab = Lab::Create();
    SKIP_WITHOUT_LAB(lab);
    lab_ = std::move(lab).value();
    std::string templ =
        (std::filesystem::temp_directory_path() / (TestDomainPrefix() + "XXXXXX")).string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }

  void TearDown() override {
    lab_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  // True when the derived SetUp must stop: skipped or failed in LibvirtLabTest::SetUp.
  bool SetUpStopped() const { return IsSkipped() || HasFatalFailure(); }

  static inline LibvirtdForSuite libvirt_;
  std::unique_ptr<Lab> lab_;
  std::filesystem::path dir_;
};

}  // namespace ft::testing
