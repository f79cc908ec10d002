// A VM's log lines name the VM and, when the role knows them, its epoch and log offset, read
// at the moment of the line.
#include "vm_log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

namespace ft::daemon {
namespace {

TEST(VmLogTest, ThePrefixSaysWhatIsKnown) {
  EXPECT_EQ(VmLogPrefix("web1", {}), "vm 'web1': ");
  EXPECT_EQ(VmLogPrefix("web1", {3, std::nullopt}), "vm 'web1' (epoch 3): ");
  EXPECT_EQ(VmLogPrefix("web1", {std::nullopt, 4096}), "vm 'web1' (log 4096): ");
  EXPECT_EQ(VmLogPrefix("web1", {3, 4096}), "vm 'web1' (epoch 3, log 4096): ");
}

TEST(VmLogTest, EachLineCarriesThePositionAtThatMoment) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_pattern("%l %v");
  auto logger = std::make_shared<spdlog::logger>("vm-log-test", sink);
  logger->set_level(spdlog::level::info);
  VmLogPosition at{2, 100};
  VmLog log(logger, "db1", [&at] { return at; });
  log.info("PROTECTED: backup '{}' connected", "hostB");
  at = {3, 250};
  log.warn("running UNPROTECTED: {}", "backup lost");
  log.debug("not shown at level info: {}", 1);
  EXPECT_EQ(out.str(),
            "info vm 'db1' (epoch 2, log 100): PROTECTED: backup 'hostB' connected\n"
            "warning vm 'db1' (epoch 3, log 250): running UNPROTECTED: backup lost\n");
}

}  // namespace
}  // namespace ft::daemon
