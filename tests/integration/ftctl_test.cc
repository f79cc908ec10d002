// ftctl against a real ftd (not a mock): list, status, --json, and the errors an operator
// meets first: unknown VM, daemon not running, bad flags. Each has its own exit code.
#include <filesystem>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ftd_instance.h"
#include "guest_client.h"
#include "json_fields.h"

namespace ft::testing {
namespace {

using namespace std::chrono_literals;

TEST(FtctlTest, ListAndStatusOfARunningVm) {
  ASSERT_FALSE(GuestDir().empty()) << "guest not built";
  auto inst = FtdInstance::Create("ftctl");
  ASSERT_TRUE(inst.ok());
  auto& ftd = **inst;
  GuestVmOptions vm;
  vm.data_disk = false;
  ASSERT_TRUE(ftd.WriteConfig(ftd.GuestVmConfig(vm)).ok());
  ASSERT_TRUE(ftd.Start().ok());
  ASSERT_TRUE(WaitForFileContaining(ftd.ftd_log(), "running (QMP status 'running'", 60s))
      << ReadFile(ftd.ftd_log());

  auto list = ftd.Ftctl({"list"});
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_NE(list.output.find("NAME"), std::string::npos) << list.output;
  EXPECT_NE(list.output.find("web1"), std::string::npos);
  EXPECT_NE(list.output.find("running"), std::string::npos);

  auto json = ftd.Ftctl({"--json", "list"});
  ASSERT_EQ(json.exit_code, 0) << json.output;
  auto parsed = nlohmann::json::parse(json.output, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << json.output;
  EXPECT_EQ(parsed["node"], "test-ftctl");
  ASSERT_EQ(parsed["vms"].size(), 1u);
  EXPECT_EQ(parsed["vms"][0]["name"], "web1");
  EXPECT_EQ(parsed["vms"][0]["state"], ProtoName(proto::RUN_STATE_RUNNING));
  EXPECT_GT(parsed["vms"][0]["qemu_pid"].get<int>(), 0);

  auto status = ftd.Ftctl({"status", "web1", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.output;
  parsed = nlohmann::json::parse(status.output, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << status.output;
  EXPECT_EQ(parsed["node"], "test-ftctl");
  EXPECT_EQ(parsed["vm"]["state"], ProtoName(proto::RUN_STATE_RUNNING)) << status.output;
  EXPECT_EQ(parsed["vm"]["console_log"], ftd.console_log("web1"));

  auto text = ftd.Ftctl({"status", "web1"});
  EXPECT_EQ(text.exit_code, 0);
  EXPECT_NE(text.output.find("State:       running"), std::string::npos) << text.output;

  auto unknown = ftd.Ftctl({"status", "db9"});
  EXPECT_EQ(unknown.exit_code, 4) << unknown.output;
  EXPECT_NE(unknown.output.find("no VM named 'db9' on node 'test-ftctl'"), std::string::npos)
      << unknown.output;

  auto bad_flag = ftd.Ftctl({"list", "--frobnicate"});
  EXPECT_EQ(bad_flag.exit_code, 2) << bad_flag.output;
  auto missing_arg = ftd.Ftctl({"status"});
  EXPECT_EQ(missing_arg.exit_code, 2) << missing_arg.output;

  auto exit = ftd.Stop(30s);
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->clean());
  EXPECT_FALSE(std::filesystem::exists(ftd.control_socket())) << "control socket left behind";

  // The daemon is gone: ftctl says so, naming the socket, with its own exit code.
  auto down = ftd.Ftctl({"list"});
  EXPECT_EQ(down.exit_code, 3) << down.output;
  EXPECT_NE(down.output.find("cannot reach ftd at '" + ftd.control_socket() + "'"),
            std::string::npos)
      << down.output;
  for (const char* command : {"status", "disable", "failover", "drill"}) {
    auto gone = ftd.Ftctl({command, "web1", "--json"});
    EXPECT_EQ(gone.exit_code, 3) << command << ": " << gone.output;
    auto parsed_error = nlohmann::json::parse(gone.output, nullptr, false);
    ASSERT_FALSE(parsed_error.is_discarded()) << command << ": " << gone.output;
    EXPECT_EQ(parsed_error["exit_code"], 3);
    EXPECT_NE(parsed_error["error"].get<std::string>().find("is ftd running?"), std::string::npos);
  }
}

TEST(FtctlTest, BadFlagsOfEveryCommandAreUsageErrors) {
  for (std::vector<std::string> args :
       std::vector<std::vector<std::string>>{{"enable"},
                                             {"disable"},
                                             {"disable", "web1", "--frobnicate"},
                                             {"failover"},
                                             {"failover", "web1", "web2"},
                                             {"drill", "web1", "--timeout", "0"},
                                             {"drill", "web1", "--timeout", "soon"},
                                             {"list", "extra"},
                                             {"init-storage"},
                                             {"frobnicate"}}) {
    std::vector<std::string> argv = {FtctlBinary(), "--socket", "/nonexistent/ftd.sock"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto out = RunCommand(argv, 10s);
    EXPECT_EQ(out.exit_code, 2) << args[0] << ": " << out.output;
  }
  auto help = RunCommand({FtctlBinary(), "drill", "--help"}, 10s);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("--timeout"), std::string::npos) << help.output;
}

TEST(FtctlTest, HelpIsPrintedAndExitsZero) {
  auto help = RunCommand({FtctlBinary(), "--help"}, 10s);
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.output.find("list"), std::string::npos);
  EXPECT_NE(help.output.find("status"), std::string::npos);
  for (const char* command : {"enable", "disable", "failover", "drill", "Exit codes"}) {
    EXPECT_NE(help.output.find(command), std::string::npos) << command;
  }
  auto none = RunCommand({FtctlBinary()}, 10s);
  EXPECT_EQ(none.exit_code, 2) << none.output;  // a subcommand is required
}

}  // namespace
}  // namespace ft::testing
