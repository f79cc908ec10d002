// Connection against libvirt's built-in test driver (test:///default: one running domain
// "test", no daemon), and against a socket nobody listens on. The real qemu:///system is
// tests/integration/libvirt_test.cc.
#include "ft/libvirt/connection.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ft/libvirt/domain_spec.h"

namespace ft::libvirt {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

TEST(ConnectionTest, ListsAndReadsDomainsOfTheTestDriver) {
  auto conn = Connection::Open("test:///default");
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  EXPECT_EQ((*conn)->uri(), "test:///default");

  auto domains = (*conn)->ListDomains();
  ASSERT_TRUE(domains.ok()) << domains.status().ToString();
  ASSERT_EQ(domains->size(), 1u);
  EXPECT_EQ((*domains)[0].name, "test");
  EXPECT_EQ((*domains)[0].uuid.size(), 36u);
  EXPECT_TRUE((*domains)[0].active);
  EXPECT_TRUE((*domains)[0].persistent);

  auto xml = (*conn)->DomainXml("test");
  ASSERT_TRUE(xml.ok()) << xml.status().ToString();
  EXPECT_THAT(*xml, StartsWith("<domain type='test'"));
  EXPECT_THAT(*xml, HasSubstr("<name>test</name>"));

  // The test driver's domain is no QEMU domain (and has two vCPUs): refused, and named.
  auto imported = ImportDomain(*xml, ImportDefaults{});
  ASSERT_FALSE(imported.ok());
  EXPECT_THAT(imported.status().message(),
              HasSubstr("domain 'test': 5 problems:\n  - type 'test' is not a QEMU domain"));
  EXPECT_THAT(imported.status().message(), HasSubstr("more than one vCPU"));
}

TEST(ConnectionTest, MissingDomainIsNotFoundAndLibvirtPrintsNothing) {
  auto conn = Connection::Open("test:///default");
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  ::testing::internal::CaptureStderr();
  auto xml = (*conn)->DomainXml("nope");
  std::string printed = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(xml.ok());
  EXPECT_EQ(xml.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(xml.status().message(), "libvirt at test:///default has no domain 'nope'");
  EXPECT_THAT(printed, IsEmpty());
}

TEST(ConnectionTest, UnreachableDaemonNamesTheUriAndCarriesLibvirtsMessage) {
  const std::string uri = "qemu+unix:///system?socket=/nonexistent/ftd-test/libvirt-sock";
  ::testing::internal::CaptureStderr();
  auto conn = Connection::Open(uri);
  std::string printed = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(conn.ok());
  EXPECT_EQ(conn.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(conn.status().message(), StartsWith("libvirt at " + uri + " is not reachable: "));
  EXPECT_THAT(conn.status().message(), HasSubstr("/nonexistent/ftd-test/libvirt-sock"));
  EXPECT_THAT(conn.status().message(), HasSubstr("(is libvirtd running?)"));
  EXPECT_THAT(printed, IsEmpty());
}

}  // namespace
}  // namespace ft::libvirt
