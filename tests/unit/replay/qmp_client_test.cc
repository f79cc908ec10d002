// QmpClient against a fake QMP monitor that speaks the real protocol, on a real io_context
// driven by hand. Timing assertions only bound from below what a timer guarantees and from
// above generously; nothing sleeps.
#include "ft/replay/qmp_client.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <asio.hpp>

#include "fake_qmp_server.h"
#include "ft/replay/savevm.h"

namespace ft::replay {
namespace {

using namespace std::chrono_literals;
using fakes::FakeQmpServer;
using fakes::QmpScript;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// A command's outcome, filled in by its handler.
struct Outcome {
  std::optional<Result<Json>> result;
  Clock::time_point at;
  int calls = 0;
  bool done() const { return result.has_value(); }
  StatusCode code() const { return result->status().code(); }
  const std::string& message() const { return result->status().message(); }
};

const Json kRunning = {{"status", "running"}, {"singlestep", false}, {"running", true}};

class QmpClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/ft-qmp-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    path_ = dir_ + "/qmp.sock";
    server_ = std::make_unique<FakeQmpServer>(io_, path_);
  }

  void TearDown() override {
    client_.reset();
    server_.reset();
    io_.restart();
    io_.poll();  // let the closes settle before the directory goes
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Runs the io_context until `done()` or `limit`; false on the limit.
  template <typename Done>
  bool RunUntil(Done done, std::chrono::milliseconds limit = 5s) {
    auto deadline = Clock::now() + limit;
    while (!done()) {
      if (Clock::now() >= deadline) return false;
      if (io_.stopped()) io_.restart();
      io_.run_one_until(deadline);
    }
    return true;
  }

  // Runs whatever is ready or becomes ready within `d`.
  void RunFor(std::chrono::milliseconds d) {
    io_.restart();
    io_.run_for(d);
  }

  std::shared_ptr<QmpClient> NewClient() {
    auto client = QmpClient::Create(io_, "web1");
    client->OnEvent([this](const std::string& name, const Json& data) {
      events_.emplace_back(name, data);
      happenings_.push_back("event " + name);
    });
    client->OnClosed([this](Status why) { closed_.push_back(why); });
    return client;
  }

  void StartServerAndConnect() {
    ASSERT_TRUE(server_->Start().ok());
    client_ = NewClient();
    Status s = ConnectBlocking(io_, *client_, path_, 2s);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(client_->connected());
  }

  std::shared_ptr<Outcome> Execute(const std::string& command, std::chrono::milliseconds timeout,
                                   Json arguments = Json::object()) {
    auto out = std::make_shared<Outcome>();
    client_->Execute(command, std::move(arguments), timeout, [this, out, command](Result<Json> r) {
      ++out->calls;
      out->at = Clock::now();
      out->result.emplace(std::move(r));
      happenings_.push_back("reply " + command);
    });
    return out;
  }

  // Connect with a fresh client; returns the handler's status and how long it took.
  std::pair<Status, std::chrono::milliseconds> TimedConnect(std::chrono::milliseconds timeout) {
    client_ = NewClient();
    std::optional<Status> result;
    auto start = Clock::now();
    client_->Connect(path_, timeout, [&](Status s) { result = std::move(s); });
    EXPECT_TRUE(RunUntil([&] { return result.has_value(); }, timeout + 5s));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    return {result.value_or(Internal("Connect handler never called")), took};
  }

  asio::io_context io_;  // first: destroyed last
  std::string dir_;
  std::string path_;
  std::unique_ptr<FakeQmpServer> server_;
  std::shared_ptr<QmpClient> client_;
  std::vector<std::pair<std::string, Json>> events_;
  std::vector<Status> closed_;
  std::vector<std::string> happenings_;  // events and replies in the order handlers ran
};

TEST_F(QmpClientTest, ConnectNegotiatesCapabilities) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  EXPECT_THAT(server_->received_commands(), ElementsAre("qmp_capabilities"));
  EXPECT_TRUE(server_->received()[0]["id"].is_number_unsigned());
  EXPECT_EQ(client_->name(), "web1");
}

TEST_F(QmpClientTest, QueryStatusReturnsRunning) {
  server_->Script("query-status", QmpScript::Return(kRunning));
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());

  Result<Json> status = ExecuteBlocking(io_, *client_, "query-status", Json::object(), 2s);
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->value("status", ""), "running");
  EXPECT_TRUE(status->value("running", false));

  ASSERT_THAT(server_->received_commands(), ElementsAre("qmp_capabilities", "query-status"));
  const Json& sent = server_->received()[1];
  EXPECT_TRUE(sent["id"].is_number_unsigned());
  EXPECT_NE(sent["id"], server_->received()[0]["id"]) << "every command gets a fresh id";
}

TEST_F(QmpClientTest, ArgumentsReachTheServer) {
  server_->Script("migrate-set-parameters", QmpScript::Return());
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  Result<Json> r = ExecuteBlocking(io_, *client_, "migrate-set-parameters",
                                   Json{{"max-bandwidth", 1 << 30}}, 2s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(server_->received().back()["arguments"]["max-bandwidth"], 1 << 30);
}

TEST_F(QmpClientTest, ErrorReplyIsRemoteWithClassAndDesc) {
  server_->Script("device_del", QmpScript::Error("DeviceNotFound", "Device 'vdb' not found"));
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());

  Result<Json> r = ExecuteBlocking(io_, *client_, "device_del", Json{{"id", "vdb"}}, 2s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kRemote);
  EXPECT_THAT(r.status().message(),
              HasSubstr("device_del: DeviceNotFound: Device 'vdb' not found"));
  EXPECT_THAT(r.status().message(), HasSubstr("vm 'web1'"));
  EXPECT_TRUE(client_->connected()) << "an error reply is a normal answer";
}

TEST_F(QmpClientTest, HmpCommandFailsWithTheTextTheHumanMonitorPrinted) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  auto run = [&](const std::string& line) {
    std::optional<Status> result;
    client_->ExecuteHmp(line, 2s, [&](Status s) { result = s; });
    EXPECT_TRUE(RunUntil([&] { return result.has_value(); }));
    return result.value_or(Internal("no answer"));
  };
  server_->Script("human-monitor-command", QmpScript::Return(""));
  Status ok = run("savevm ft-golive");
  EXPECT_TRUE(ok.ok()) << ok.ToString();
  EXPECT_EQ(server_->received().back()["arguments"]["command-line"], "savevm ft-golive");

  server_->Script("human-monitor-command",
                  QmpScript::Return("Error: No block device can accept snapshots\r\n"));
  Status failed = run("savevm ft-golive");
  EXPECT_EQ(failed.code(), StatusCode::kRemote);
  EXPECT_EQ(failed.message(), "savevm ft-golive: Error: No block device can accept snapshots");
}

// Every snapshot sets x-ignore-shared for itself before savevm: a go-live save leaves the
// RAM in the RAM file, and a re-protection save carries it even in a QEMU whose command line
// turned the capability on (the recorder that went live).
TEST_F(QmpClientTest, SaveVmSetsIgnoreSharedForThisSaveFirst) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  server_->Script("migrate-set-capabilities", QmpScript::Return());
  server_->Script("human-monitor-command", QmpScript::Return(""));
  for (auto [ram, ignore] :
       {std::pair{SnapshotRam::kInGuestRamFile, true}, std::pair{SnapshotRam::kIncluded, false}}) {
    size_t before = server_->received().size();
    std::optional<Status> result;
    SaveVm(client_, "ft-golive", ram, 2s, [&](Status s) { result = s; });
    ASSERT_TRUE(RunUntil([&] { return result.has_value(); }));
    EXPECT_TRUE(result->ok()) << result->ToString();
    const auto& got = server_->received();
    ASSERT_EQ(got.size(), before + 2);
    EXPECT_EQ(got[before]["execute"], "migrate-set-capabilities");
    EXPECT_EQ(got[before]["arguments"]["capabilities"],
              Json::parse(fmt::format(R"([{{"capability":"x-ignore-shared","state":{}}}])",
                                      ignore ? "true" : "false")));
    EXPECT_EQ(got[before + 1]["arguments"]["command-line"], "savevm ft-golive");
  }
}

TEST_F(QmpClientTest, SaveVmDoesNotSaveWhenTheCapabilityCannotBeSet) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  server_->Script("migrate-set-capabilities",
                  QmpScript::Error("GenericError", "There's a migration process in progress"));
  server_->Script("human-monitor-command", QmpScript::Return(""));
  std::optional<Status> result;
  SaveVm(client_, "ft-reprotect", SnapshotRam::kIncluded, 2s, [&](Status s) { result = s; });
  ASSERT_TRUE(RunUntil([&] { return result.has_value(); }));
  EXPECT_EQ(result->code(), StatusCode::kRemote);
  EXPECT_THAT(result->message(), HasSubstr("migrate-set-capabilities"));
  EXPECT_EQ(server_->received().back()["execute"], "migrate-set-capabilities")
      << "a snapshot without the RAM must never leave this host";
}

TEST_F(QmpClientTest, LoadvmWithoutRamNeedsTheMigrationPropertyOfFtdsQemu) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  auto probe = [&] {
    std::optional<bool> result;
    ProbeLoadvmWithoutRam(client_, [&](bool can) { result = can; });
    EXPECT_TRUE(RunUntil([&] { return result.has_value(); }));
    return result.value_or(true);
  };
  // What ftd's build and Debian's answer (qom-list-properties typename=migration).
  server_->Script("qom-list-properties",
                  QmpScript::Return(Json::parse(R"([{"name":"x-block","type":"bool"},
                                                    {"name":"x-ignore-shared","type":"bool"}])")));
  EXPECT_TRUE(probe());
  EXPECT_EQ(server_->received().back()["arguments"]["typename"], "migration");
  server_->Script("qom-list-properties",
                  QmpScript::Return(Json::parse(R"([{"name":"x-block","type":"bool"}])")));
  EXPECT_FALSE(probe());
  server_->Script("qom-list-properties", QmpScript::Error("GenericError", "no such type"));
  EXPECT_FALSE(probe());
  server_->Script("qom-list-properties", QmpScript::Return(Json::object()));
  EXPECT_FALSE(probe());
}

TEST_F(QmpClientTest, UnknownCommandIsCommandNotFoundAsQemuSaysIt) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  Result<Json> r = ExecuteBlocking(io_, *client_, "no-such-command", Json(), 2s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kRemote);
  EXPECT_THAT(r.status().message(),
              HasSubstr("no-such-command: CommandNotFound: The command no-such-command has not "
                        "been found"));
}

TEST_F(QmpClientTest, OutOfOrderRepliesAreMatchedById) {
  server_->Script("query-slow", QmpScript::Return({{"which", "slow"}}).After(80ms));
  server_->Script("query-fast", QmpScript::Return({{"which", "fast"}}));
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());

  auto slow = Execute("query-slow", 2s);
  auto fast = Execute("query-fast", 2s);
  ASSERT_TRUE(RunUntil([&] { return slow->done() && fast->done(); }));

  ASSERT_TRUE(slow->result->ok()) << slow->result->status().ToString();
  ASSERT_TRUE(fast->result->ok()) << fast->result->status().ToString();
  EXPECT_EQ((*slow->result)->value("which", ""), "slow");
  EXPECT_EQ((*fast->result)->value("which", ""), "fast");
  EXPECT_THAT(happenings_, ElementsAre("reply query-fast", "reply query-slow"));
  EXPECT_THAT(server_->received_commands(),
              ElementsAre("qmp_capabilities", "query-slow", "query-fast"))
      << "commands are written in the order they were issued";
}

TEST_F(QmpClientTest, ManyConcurrentCommandsEachGetTheirOwnReply) {
  server_->Script("query-status", QmpScript::Return(kRunning));
  server_->Script("query-name", QmpScript::Return({{"name", "web1"}}).After(5ms));
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());

  std::vector<std::shared_ptr<Outcome>> statuses, names;
  for (int i = 0; i < 50; ++i) {
    statuses.push_back(Execute("query-status", 2s));
    names.push_back(Execute("query-name", 2s));
  }
  auto all_done = [&] {
    for (auto& o : statuses)
      if (!o->done()) return false;
    for (auto& o : names)
      if (!o->done()) return false;
    return true;
  };
  ASSERT_TRUE(RunUntil(all_done));
  for (auto& o : statuses) {
    ASSERT_TRUE(o->result->ok());
    EXPECT_EQ((*o->result)->value("status", ""), "running");
    EXPECT_EQ(o->calls, 1);
  }
  for (auto& o : names) {
    ASSERT_TRUE(o->result->ok());
    EXPECT_EQ((*o->result)->value("name", ""), "web1");
  }
  EXPECT_EQ(server_->received().size(), 101u);
}

TEST_F(QmpClientTest, EventsAreDeliveredWhileCommandsArePending) {
  server_->Script("query-status", QmpScript::Hang());
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());

  auto pending = Execute("query-status", 5s);
  ASSERT_TRUE(RunUntil([&] { return server_->received().size() == 2; }));
  server_->EmitEvent("STOP");
  server_->EmitEvent("SHUTDOWN", {{"guest", true}, {"reason", "guest-shutdown"}});
  ASSERT_TRUE(RunUntil([&] { return events_.size() == 2; }));

  EXPECT_FALSE(pending->done());
  EXPECT_EQ(events_[0].first, "STOP");
  EXPECT_EQ(events_[0].second, Json::object()) << "events without data get an empty object";
  EXPECT_EQ(events_[1].first, "SHUTDOWN");
  EXPECT_EQ(events_[1].second.value("reason", ""), "guest-shutdown");
  EXPECT_TRUE(client_->connected());
}

TEST_F(QmpClientTest, EventsBeforeAReplyAreDeliveredBeforeIt) {
  server_->Script("cont", QmpScript::Return().WithEventBefore("RESUME"));
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  auto cont = Execute("cont", 2s);
  ASSERT_TRUE(RunUntil([&] { return cont->done(); }));
  EXPECT_THAT(happenings_, ElementsAre("event RESUME", "reply cont"));
}

TEST_F(QmpClientTest, HangTimesOutNearTheTimeout) {
  server_->Script("query-status", QmpScript::Hang());
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());

  auto start = Clock::now();
  auto out = Execute("query-status", 200ms);
  ASSERT_TRUE(RunUntil([&] { return out->done(); }));
  auto took = out->at - start;

  EXPECT_EQ(out->code(), StatusCode::kTimeout) << out->result->status().ToString();
  EXPECT_THAT(out->message(), HasSubstr("query-status"));
  EXPECT_THAT(out->message(), HasSubstr("200 ms"));
  EXPECT_GE(took, 200ms) << "fired before the timeout";
  EXPECT_LT(took, 1500ms) << "fired long after the timeout";
  EXPECT_TRUE(client_->connected()) << "a timeout alone does not close the monitor";
}

TEST_F(QmpClientTest, LateReplyAfterTimeoutIsDroppedAndTheMonitorStaysUsable) {
  server_->Script("query-slow", QmpScript::Return({{"late", true}}).After(150ms));
  server_->Script("query-status", QmpScript::Return(kRunning));
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());

  auto slow = Execute("query-slow", 50ms);
  ASSERT_TRUE(RunUntil([&] { return slow->done(); }));
  EXPECT_EQ(slow->code(), StatusCode::kTimeout);

  RunFor(250ms);  // the late reply arrives and must be dropped quietly
  EXPECT_EQ(slow->calls, 1) << "the handler is called exactly once";
  EXPECT_TRUE(client_->connected());
  EXPECT_TRUE(closed_.empty());

  Result<Json> status = ExecuteBlocking(io_, *client_, "query-status", Json(), 2s);
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_EQ(status->value("status", ""), "running");
}

TEST_F(QmpClientTest, ReplyWithoutIdMatchesNothingAndTimesOut) {
  server_->Script("query-status", QmpScript::Return(kRunning).WithoutId());
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  auto out = Execute("query-status", 100ms);
  ASSERT_TRUE(RunUntil([&] { return out->done(); }));
  EXPECT_EQ(out->code(), StatusCode::kTimeout);
  EXPECT_TRUE(client_->connected());
}

TEST_F(QmpClientTest, CloseMidReplyAbortsEveryPendingCommandAndFiresOnClosed) {
  server_->Script("query-status", QmpScript::Hang());
  server_->Script("query-block", QmpScript::CloseMidReply({{"device", "vda"}}));
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());

  auto hanging = Execute("query-status", 5s);
  auto cut = Execute("query-block", 5s);
  ASSERT_TRUE(RunUntil([&] { return hanging->done() && cut->done() && !closed_.empty(); }));

  for (const auto& out : {hanging, cut}) {
    EXPECT_EQ(out->code(), StatusCode::kAborted) << out->result->status().ToString();
    EXPECT_THAT(out->message(), HasSubstr("monitor closed"));
  }
  EXPECT_THAT(cut->message(), HasSubstr("query-block"));
  EXPECT_THAT(cut->message(), HasSubstr("middle of a message"));
  ASSERT_EQ(closed_.size(), 1u);
  EXPECT_EQ(closed_[0].code(), StatusCode::kAborted);
  EXPECT_FALSE(client_->connected());

  RunFor(20ms);
  EXPECT_EQ(closed_.size(), 1u) << "OnClosed fires once";
  auto after = Execute("query-status", 1s);
  ASSERT_TRUE(RunUntil([&] { return after->done(); }));
  EXPECT_EQ(after->code(), StatusCode::kAborted);
}

TEST_F(QmpClientTest, PeerClosingAnIdleMonitorFiresOnClosed) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  server_->CloseConnections();
  ASSERT_TRUE(RunUntil([&] { return !closed_.empty(); }));
  EXPECT_EQ(closed_[0].code(), StatusCode::kAborted);
  EXPECT_THAT(closed_[0].message(), HasSubstr("vm 'web1'"));
  EXPECT_THAT(closed_[0].message(), HasSubstr("closed by QEMU"));
  EXPECT_FALSE(client_->connected());
}

TEST_F(QmpClientTest, GarbageIsAProtocolErrorThatClosesTheMonitor) {
  server_->Script("query-status", QmpScript::Hang());
  server_->Script("query-block", QmpScript::Garbage("\x01\x02this is not JSON\r\n"));
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());

  auto hanging = Execute("query-status", 5s);
  auto garbled = Execute("query-block", 5s);
  ASSERT_TRUE(RunUntil([&] { return hanging->done() && garbled->done() && !closed_.empty(); }));

  for (const auto& out : {hanging, garbled}) {
    EXPECT_EQ(out->code(), StatusCode::kProtocol) << out->result->status().ToString();
    EXPECT_THAT(out->message(), HasSubstr("not JSON"));
  }
  ASSERT_EQ(closed_.size(), 1u);
  EXPECT_EQ(closed_[0].code(), StatusCode::kProtocol);
  EXPECT_FALSE(client_->connected());
}

TEST_F(QmpClientTest, JsonThatIsNotQmpIsAProtocolError) {
  server_->Script("query-status", QmpScript::Garbage("{\"hello\": 1}\r\n"));
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  auto out = Execute("query-status", 5s);
  ASSERT_TRUE(RunUntil([&] { return out->done(); }));
  EXPECT_EQ(out->code(), StatusCode::kProtocol);
  EXPECT_THAT(out->message(), HasSubstr("no 'return', 'error', 'event' or 'QMP' key"));
}

TEST_F(QmpClientTest, LineOver16MiBIsAProtocolError) {
  server_->Script("query-status",
                  QmpScript::Garbage("{\"return\": \"" + std::string(17 * 1024 * 1024, 'x')));
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  auto out = Execute("query-status", 10s);
  ASSERT_TRUE(RunUntil([&] { return out->done() && !closed_.empty(); }, 20s));
  EXPECT_EQ(out->code(), StatusCode::kProtocol);
  EXPECT_THAT(out->message(), HasSubstr("16 MiB"));
  EXPECT_EQ(closed_[0].code(), StatusCode::kProtocol);
}

TEST_F(QmpClientTest, NoGreetingTimesOutConnect) {
  server_->SetGreeting(FakeQmpServer::GreetingMode::kNone);
  ASSERT_TRUE(server_->Start().ok());
  auto [status, took] = TimedConnect(150ms);
  EXPECT_EQ(status.code(), StatusCode::kTimeout) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr("no greeting"));
  EXPECT_THAT(status.message(), HasSubstr(path_));
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 1500ms);
  EXPECT_FALSE(client_->connected());
  EXPECT_TRUE(closed_.empty()) << "OnClosed is for a monitor that was connected";
}

TEST_F(QmpClientTest, HmpBannerInsteadOfGreetingIsAProtocolError) {
  server_->SetGreeting(FakeQmpServer::GreetingMode::kHmpBanner);
  ASSERT_TRUE(server_->Start().ok());
  auto [status, took] = TimedConnect(2s);
  EXPECT_EQ(status.code(), StatusCode::kProtocol) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr("QMP greeting"));
  EXPECT_THAT(status.message(), HasSubstr("QEMU 7.2.0 monitor"));
  EXPECT_LT(took, 1s) << "a bad greeting fails at once, not at the timeout";
}

TEST_F(QmpClientTest, JsonGreetingWithoutQmpKeyIsAProtocolError) {
  server_->SetGreeting(FakeQmpServer::GreetingMode::kJsonWithoutQmp);
  ASSERT_TRUE(server_->Start().ok());
  auto [status, took] = TimedConnect(2s);
  EXPECT_EQ(status.code(), StatusCode::kProtocol) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr("did not start with a QMP greeting"));
}

TEST_F(QmpClientTest, CapabilitiesErrorFailsConnect) {
  server_->Script("qmp_capabilities", QmpScript::Error("GenericError", "no, thanks"));
  ASSERT_TRUE(server_->Start().ok());
  auto [status, took] = TimedConnect(2s);
  EXPECT_EQ(status.code(), StatusCode::kRemote) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr("qmp_capabilities: GenericError: no, thanks"));
}

TEST_F(QmpClientTest, CapabilitiesNeverAnsweredTimesOutConnect) {
  server_->Script("qmp_capabilities", QmpScript::Hang());
  ASSERT_TRUE(server_->Start().ok());
  auto [status, took] = TimedConnect(150ms);
  EXPECT_EQ(status.code(), StatusCode::kTimeout) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr("qmp_capabilities"));
}

TEST_F(QmpClientTest, NobodyListeningTimesOutNamingThePath) {
  auto [status, took] = TimedConnect(150ms);
  EXPECT_EQ(status.code(), StatusCode::kTimeout) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr(path_));
  EXPECT_THAT(status.message(), HasSubstr("No such file or directory"));
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 1500ms);
}

TEST_F(QmpClientTest, StaleSocketFileIsRetriedUntilTheTimeout) {
  // A socket file nobody listens on (QEMU died and left it): ECONNREFUSED, retried.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  auto [status, took] = TimedConnect(150ms);
  ::close(fd);
  EXPECT_EQ(status.code(), StatusCode::kTimeout) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr("Connection refused"));
  EXPECT_THAT(status.message(), HasSubstr(path_));
}

TEST_F(QmpClientTest, ServerThatStartsLateIsReachedByRetrying) {
  // QEMU creates its QMP socket some time after it was spawned.
  asio::steady_timer later(io_, 100ms);
  later.async_wait([this](std::error_code ec) {
    if (!ec) {
      EXPECT_TRUE(server_->Start().ok());
    }
  });
  auto [status, took] = TimedConnect(3s);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_GE(took, 100ms);
  EXPECT_TRUE(client_->connected());
}

TEST_F(QmpClientTest, SocketPathTooLongIsInvalidArgument) {
  path_ = dir_ + "/" + std::string(120, 'p');
  auto [status, took] = TimedConnect(1s);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.ToString();
  EXPECT_THAT(status.message(), HasSubstr("107"));
}

TEST_F(QmpClientTest, CloseFailsPendingCommandsWithAborted) {
  server_->Script("query-status", QmpScript::Hang());
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  auto a = Execute("query-status", 5s);
  auto b = Execute("query-status", 5s);
  ASSERT_TRUE(RunUntil([&] { return server_->received().size() == 3; }));

  client_->Close();
  EXPECT_FALSE(client_->connected());
  ASSERT_TRUE(RunUntil([&] { return a->done() && b->done(); }));
  for (const auto& out : {a, b}) {
    EXPECT_EQ(out->code(), StatusCode::kAborted);
    EXPECT_THAT(out->message(), HasSubstr("closed"));
  }
  RunFor(20ms);
  EXPECT_TRUE(closed_.empty()) << "OnClosed is not called for our own Close()";
}

TEST_F(QmpClientTest, CloseDuringConnectAbortsIt) {
  server_->SetGreeting(FakeQmpServer::GreetingMode::kNone);
  ASSERT_TRUE(server_->Start().ok());
  client_ = NewClient();
  std::optional<Status> result;
  client_->Connect(path_, 5s, [&](Status s) { result = std::move(s); });
  ASSERT_TRUE(RunUntil([&] { return server_->connections_accepted() == 1; }));
  client_->Close();
  ASSERT_TRUE(RunUntil([&] { return result.has_value(); }, 1s));
  EXPECT_EQ(result->code(), StatusCode::kAborted);
}

TEST_F(QmpClientTest, DestroyingTheClientWithPendingOperationsIsSafe) {
  server_->Script("query-status", QmpScript::Hang());
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  auto a = Execute("query-status", 200ms);
  auto b = Execute("query-status", 5s);
  RunFor(10ms);
  client_.reset();
  ASSERT_TRUE(RunUntil([&] { return a->done() && b->done(); }, 2s));
  EXPECT_EQ(a->code(), StatusCode::kAborted);
  EXPECT_EQ(b->code(), StatusCode::kAborted);
  RunFor(300ms);  // a's timer would have fired by now
  EXPECT_EQ(a->calls, 1);
  EXPECT_EQ(b->calls, 1);
}

TEST_F(QmpClientTest, DestroyingTheClientDuringConnectIsSafe) {
  server_->SetGreeting(FakeQmpServer::GreetingMode::kNone);
  ASSERT_TRUE(server_->Start().ok());
  client_ = NewClient();
  auto result = std::make_shared<std::optional<Status>>();
  client_->Connect(path_, 200ms, [result](Status s) { *result = std::move(s); });
  RunFor(20ms);
  client_.reset();
  ASSERT_TRUE(RunUntil([&] { return result->has_value(); }, 2s));
  EXPECT_EQ((*result)->code(), StatusCode::kAborted);
}

TEST_F(QmpClientTest, HandlerIsNeverCalledInlineFromExecute) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  client_->Close();
  auto out = Execute("query-status", 1s);  // fails at once, but not inline
  EXPECT_FALSE(out->done());
  ASSERT_TRUE(RunUntil([&] { return out->done(); }));
  EXPECT_EQ(out->code(), StatusCode::kAborted);
}

TEST_F(QmpClientTest, ExecuteBeforeConnectFailsPrecondition) {
  client_ = NewClient();
  auto out = Execute("query-status", 1s);
  ASSERT_TRUE(RunUntil([&] { return out->done(); }));
  EXPECT_EQ(out->code(), StatusCode::kFailedPrecondition);
}

TEST_F(QmpClientTest, NonObjectArgumentsAreRejected) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  auto out = Execute("query-status", 1s, Json::array({1, 2}));
  ASSERT_TRUE(RunUntil([&] { return out->done(); }));
  EXPECT_EQ(out->code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(server_->received_commands(), ElementsAre("qmp_capabilities"));
}

TEST_F(QmpClientTest, SecondConnectFailsPrecondition) {
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());
  Status again = ConnectBlocking(io_, *client_, path_, 1s);
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(client_->connected());
}

TEST_F(QmpClientTest, CommandsFromAnotherThreadWhileTheIoContextRunsInTheBackground) {
  server_->Script("query-status", QmpScript::Return(kRunning));
  ASSERT_NO_FATAL_FAILURE(StartServerAndConnect());

  auto work = asio::make_work_guard(io_);
  io_.restart();
  std::thread io_thread([this] { io_.run(); });
  std::vector<std::future<Result<Json>>> replies;
  for (int i = 0; i < 20; ++i) {
    auto promise = std::make_shared<std::promise<Result<Json>>>();
    replies.push_back(promise->get_future());
    client_->Execute("query-status", Json(), 5s,
                     [promise](Result<Json> r) { promise->set_value(std::move(r)); });
  }
  for (auto& reply : replies) {
    ASSERT_EQ(reply.wait_for(10s), std::future_status::ready);
    Result<Json> r = reply.get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->value("status", ""), "running");
  }
  EXPECT_TRUE(client_->connected());
  work.reset();
  io_.stop();
  io_thread.join();
}

// The fake must behave like QEMU where the client does not exercise it.
class QmpFakeServerTest : public QmpClientTest {
 protected:
  // Writes `line` on a raw connection and returns the next line the server sends.
  // The server runs on io_, so the read is asynchronous and io_ is driven until it completes.
  std::string Roundtrip(asio::local::stream_protocol::socket& s, const std::string& line) {
    if (!line.empty()) asio::write(s, asio::buffer(line));
    bool read = false;
    asio::async_read_until(s, asio::dynamic_buffer(raw_in_), '\n',
                           [&](std::error_code, size_t) { read = true; });
    EXPECT_TRUE(RunUntil([&] { return read; }));
    size_t end = raw_in_.find('\n');
    if (end == std::string::npos) return "";
    std::string got = raw_in_.substr(0, end + 1);
    raw_in_.erase(0, end + 1);
    return got;
  }
  std::string raw_in_;
};

TEST_F(QmpFakeServerTest, RefusesCommandsBeforeCapabilitiesNegotiation) {
  ASSERT_TRUE(server_->Start().ok());
  asio::local::stream_protocol::socket raw(io_);
  raw.connect(asio::local::stream_protocol::endpoint(path_));

  Json greeting = Json::parse(Roundtrip(raw, ""));
  EXPECT_EQ(greeting["QMP"]["version"]["qemu"]["major"], 7);
  EXPECT_EQ(greeting["QMP"]["version"]["qemu"]["minor"], 2);

  Json refused = Json::parse(Roundtrip(raw, "{\"execute\": \"query-status\", \"id\": 1}\r\n"));
  EXPECT_EQ(refused["error"]["class"], "CommandNotFound");
  EXPECT_EQ(refused["error"]["desc"], "Expecting capabilities negotiation with 'qmp_capabilities'");
  EXPECT_EQ(refused["id"], 1);

  Json ok = Json::parse(Roundtrip(raw, "{\"execute\": \"qmp_capabilities\", \"id\": 2}\r\n"));
  EXPECT_EQ(ok["return"], Json::object());
  EXPECT_EQ(ok["id"], 2);

  Json again = Json::parse(Roundtrip(raw, "{\"execute\": \"qmp_capabilities\", \"id\": 3}\r\n"));
  EXPECT_EQ(again["error"]["class"], "CommandNotFound");
}

}  // namespace
}  // namespace ft::replay
