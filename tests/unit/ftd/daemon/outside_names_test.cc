// Names that arrive from a peer or from ftctl, through Operations as the daemon serves them:
// every name follows the one rule (ft::IsValidName) before anything looks it up or builds a
// path from it, the refusal names the field, and no file outside the VM's own directories is
// touched. Replicas a copy went live from are never written over or removed by a peer.
#include <asio.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "ft/daemon/control_socket.h"
#include "ft/proto/control.pb.h"
#include "ft/proto/peer.pb.h"
#include "operations.h"
#include "replica_transfer.h"
#include "vm_records.h"

namespace ft::daemon {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// Every regular file under `root` with its size and contents' first bytes: what "touched"
// means here.
std::map<std::string, std::string> Tree(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_directory()) {
      out[e.path().string()] = "dir";
      continue;
    }
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    out[e.path().string()] = bytes;
  }
  return out;
}

void WriteFile(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

class OutsideNamesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "ftd-names-XXXXXX").string();
    ASSERT_NE(mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    config_.node.name = "hostB";
    config_.node.state_dir = (dir_ / "state").string();
    config_.node.run_dir = (dir_ / "run").string();
    config_.node.reprotect_auto = false;
    // What a path built from a hostile name would reach: files next to the state dir and in
    // it, outside any VM's directory.
    WriteFile(dir_ / "outside" / "replica-x.qcow2", "not ftd's");
    WriteFile(dir_ / "state" / "replica-x.qcow2", "not a VM's");
    WriteFile(dir_ / "state" / "vms" / "replica-x.qcow2", "not a VM's either");
    WriteFile(dir_ / "state" / "vms" / "other" / "replica-d.qcow2", "another VM's disk");
    ops_ = std::make_unique<Operations>(io_, config_, vms_);
  }
  void TearDown() override {
    ops_->Stop();
    ops_.reset();
    fs::remove_all(dir_);
  }

  proto::PeerResponse Peer(const proto::PeerRequest& request) {
    std::optional<std::string> answer;
    ops_->HandlePeer(request.SerializeAsString(), [&](std::string a) { answer = std::move(a); });
    for (int i = 0; i < 200 && !answer; ++i) io_.run_for(std::chrono::milliseconds(10));
    proto::PeerResponse r;
    EXPECT_TRUE(answer && r.ParseFromString(*answer)) << "no answer";
    return r;
  }

  proto::ControlResponse Control(proto::ControlRequest request) {
    request.set_version(kControlVersion);
    std::optional<std::string> answer;
    ops_->HandleControl(request.SerializeAsString(), [&](std::string a) { answer = std::move(a); });
    for (int i = 0; i < 200 && !answer; ++i) io_.run_for(std::chrono::milliseconds(10));
    proto::ControlResponse r;
    EXPECT_TRUE(answer && r.ParseFromString(*answer)) << "no answer";
    return r;
  }

  fs::path dir_;
  Config config_;
  asio::io_context io_;
  std::vector<std::unique_ptr<ManagedVm>> vms_;
  std::unique_ptr<Operations> ops_;
};

const char* const kHostileNames[] = {"",    "..",  "../x",        "/etc",  "a/b",
                                     ".",   "-rf", "a\nb",        "vm\0x", "x/../../outside",
                                     "a b", "é",   "../vms/other"};

std::string Hostile(const char* literal) {
  // "vm\0x" keeps its NUL.
  return std::string(literal) == "vm" ? std::string("vm\0x", 4) : std::string(literal);
}

TEST_F(OutsideNamesTest, PeerRequestsWithAnInvalidNameAreRefusedNamingTheField) {
  const auto before = Tree(dir_);
  for (const char* literal : kHostileNames) {
    const std::string name = Hostile(literal);
    SCOPED_TRACE("name '" + name + "'");
    struct Case {
      proto::PeerRequest request;
      std::string field;
    };
    std::vector<Case> cases(8);
    cases[0].request.mutable_unprotect()->set_vm(name);
    cases[0].field = "unprotect.vm";
    cases[1].request.mutable_handover()->set_vm(name);
    cases[1].field = "handover.vm";
    cases[2].request.mutable_status()->set_vm(name);
    cases[2].field = "status.vm";
    cases[3].request.mutable_replica_begin()->set_vm(name);
    cases[3].request.mutable_replica_begin()->set_disk("d");
    cases[3].request.mutable_replica_begin()->set_size(4096);
    cases[3].field = "replica_begin.vm";
    cases[4].request.mutable_replica_begin()->set_vm("web1");
    cases[4].request.mutable_replica_begin()->set_disk(name);
    cases[4].request.mutable_replica_begin()->set_size(4096);
    cases[4].field = "replica_begin.disk";
    cases[5].request.mutable_replica_chunk()->set_vm("web1");
    cases[5].request.mutable_replica_chunk()->set_disk(name);
    cases[5].request.mutable_replica_chunk()->set_data("xx");
    cases[5].field = "replica_chunk.disk";
    cases[6].request.mutable_replica_end()->set_vm(name);
    cases[6].request.mutable_replica_end()->set_disk("d");
    cases[6].field = "replica_end.vm";
    cases[7].request.mutable_protect()->set_vm_config("[vm web1]\nkernel = /k\n");
    cases[7].request.mutable_protect()->set_from_snapshot(name.empty() ? "../s" : name);
    cases[7].field = "protect.from_snapshot";
    for (const auto& c : cases) {
      proto::PeerResponse r = Peer(c.request);
      EXPECT_EQ(r.code(), proto::PeerResponse::BAD_REQUEST) << c.field;
      EXPECT_THAT(r.error(), HasSubstr("field '" + c.field + "'"));
      EXPECT_THAT(r.error(), HasSubstr("not a valid name"));
      EXPECT_THAT(r.error(), HasSubstr("on node 'hostB'"));
      EXPECT_EQ(r.error().find('\n'), std::string::npos) << "the value is shown printable";
    }
  }
  EXPECT_EQ(Tree(dir_), before) << "a refused request touched a file";
}

TEST_F(OutsideNamesTest, PeerFreeTextIsPrintableAndBounded) {
  proto::PeerRequest request;
  request.mutable_unprotect()->set_vm("web1");
  request.mutable_unprotect()->set_why("FT off\n2026-12-06 [error] vm 'web1': HALTING");
  proto::PeerResponse r = Peer(request);
  EXPECT_EQ(r.code(), proto::PeerResponse::BAD_REQUEST);
  EXPECT_THAT(r.error(), HasSubstr("field 'unprotect.why'"));
  EXPECT_THAT(r.error(), HasSubstr("not printable text of at most 1024 bytes"));

  proto::PeerRequest big;
  big.mutable_protect()->set_vm_config(std::string(100000, '#'));
  r = Peer(big);
  EXPECT_EQ(r.code(), proto::PeerResponse::BAD_REQUEST);
  EXPECT_THAT(r.error(), HasSubstr("field 'protect.vm_config': 100000 bytes, more than 65536"));
}

TEST_F(OutsideNamesTest, ControlRequestsWithAnInvalidNameAreRefusedNamingTheField) {
  const auto before = Tree(dir_);
  for (const char* literal : kHostileNames) {
    const std::string name = Hostile(literal);
    SCOPED_TRACE("name '" + name + "'");
    std::vector<std::pair<proto::ControlRequest, std::string>> cases(5);
    cases[0].first.mutable_status()->set_vm(name);
    cases[0].second = "status.vm";
    cases[1].first.mutable_disable()->set_vm(name);
    cases[1].second = "disable.vm";
    cases[2].first.mutable_failover()->set_vm(name);
    cases[2].second = "failover.vm";
    cases[3].first.mutable_drill()->set_vm(name);
    cases[3].second = "drill.vm";
    // An enable's vm may be empty (a definition is sent instead): then it is not a name.
    cases[4].first.mutable_enable()->set_vm(name.empty() ? "../x" : name);
    cases[4].second = "enable.vm";
    for (const auto& [request, field] : cases) {
      proto::ControlResponse r = Control(request);
      EXPECT_EQ(r.code(), proto::ControlResponse::BAD_REQUEST) << field;
      EXPECT_THAT(r.error(), HasSubstr("field '" + field + "'"));
    }
  }
  EXPECT_EQ(Tree(dir_), before) << "a refused request touched a file";
}

TEST_F(OutsideNamesTest, AReplicaIsNeverWrittenOverDisksACopyWentLiveFrom) {
  // hostB's backup of web1 went live in epoch 3 from its replica; its VM is not loaded now
  // (e.g. it failed to start after a restart). The peer enables web1 from its stale image.
  const fs::path replica = ReplicaPath(config_.node, "web1", "d");
  WriteFile(replica, "the only current disk");
  ASSERT_TRUE(WriteWentLiveRecord(config_.node, "web1", 3).ok());
  const auto before = Tree(dir_);

  proto::PeerRequest begin;
  begin.mutable_replica_begin()->set_vm("web1");
  begin.mutable_replica_begin()->set_disk("d");
  begin.mutable_replica_begin()->set_size(4096);
  proto::PeerResponse r = Peer(begin);
  EXPECT_EQ(r.code(), proto::PeerResponse::REFUSED);
  EXPECT_THAT(r.error(), HasSubstr("vm 'web1' went live on this host in epoch 3"));
  EXPECT_THAT(r.error(), HasSubstr("not replaced"));

  // Turning FT off from the peer, with no copy loaded here, keeps them too.
  proto::PeerRequest unprotect;
  unprotect.mutable_unprotect()->set_vm("web1");
  unprotect.mutable_unprotect()->set_why("FT turned off on hostA");
  r = Peer(unprotect);
  EXPECT_EQ(r.code(), proto::PeerResponse::UNKNOWN_VM);
  EXPECT_EQ(Tree(dir_), before);
}

TEST_F(OutsideNamesTest, AReplicaOfACopyThatNeverWentLiveIsReplaced) {
  const fs::path replica = ReplicaPath(config_.node, "web1", "d");
  WriteFile(replica, "left by an earlier enable");
  proto::PeerRequest begin;
  begin.mutable_replica_begin()->set_vm("web1");
  begin.mutable_replica_begin()->set_disk("d");
  begin.mutable_replica_begin()->set_size(4096);
  EXPECT_EQ(Peer(begin).code(), proto::PeerResponse::OK);
  proto::PeerRequest unprotect;
  unprotect.mutable_unprotect()->set_vm("web1");
  EXPECT_EQ(Peer(unprotect).code(), proto::PeerResponse::UNKNOWN_VM);
  EXPECT_FALSE(fs::exists(replica)) << "a backup's replicas are ftd's own copies";
}

}  // namespace
}  // namespace ft::daemon
