#include "peer_link.h"

#include <asio.hpp>
#include <optional>

#include <fmt/format.h>

#include "ft/channel/session.h"
#include "ft/daemon/managed_vm.h"
#include "ft/log.h"
#include "ft/proto/peer.pb.h"
#include "roles.h"

namespace ft::daemon {
namespace {
// The caller closes once it has the answer; a caller that never does is dropped after this.
constexpr auto kServeTimeout = std::chrono::seconds(120);  // idle: no request meanwhile
}  // namespace

channel::Identity PeerControlIdentity(const NodeConfig& node) {
  channel::Identity id;
  id.node = node.name;
  id.service = channel::Service::kPeerControl;
  // Compared on this session too, so `ftctl enable` between a host with a claim store and one
  // without is refused at once. No store_id: the daemon reads no store for this session.
  id.failover = !node.shared_storage.empty();
  return id;
}

struct PeerConversation::Impl {
  Impl(asio::io_context& io_context, std::string p)
      : io(io_context), timer(io_context), peer(std::move(p)) {}
  asio::io_context& io;
  asio::steady_timer timer;
  std::string peer;  // "peer ftd at 10.78.0.2:7400"
  std::shared_ptr<channel::Session> session;
  std::function<void(Result<std::string>)> waiting;
  std::optional<Status> broken;

  void Finish(Result<std::string> r) {
    timer.cancel();
    if (!waiting) return;
    auto cb = std::move(waiting);
    waiting = nullptr;
    cb(std::move(r));
  }
  void Break(Status why) {
    if (!broken) broken = why;
    if (session) session->Close();
    session.reset();
    Finish(std::move(why));
  }
};

PeerConversation::PeerConversation(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PeerConversation::~PeerConversation() { Close(); }

void PeerConversation::Open(asio::io_context& io, const NodeConfig& node,
                            std::chrono::milliseconds timeout, Opened done) {
  std::string peer =
      fmt::format("peer ftd at {}:{}", node.channel.peer_host, node.channel.peer_port);
  if (node.channel.peer_host.empty()) {
    asio::post(io, [done = std::move(done)] {
      done(FailedPrecondition(
          "this node has no [node] peer = ADDRESS:PORT: there is no peer ftd to ask"));
    });
    return;
  }
  channel::Options options = ChannelOptionsFrom(node.channel);
  options.handshake_timeout =
      std::min<std::chrono::milliseconds>(timeout, options.handshake_timeout);
  channel::Connect(
      io, node.channel.peer_host, node.channel.peer_port, PeerControlIdentity(node), options,
      [&io, peer, done = std::move(done)](Result<std::shared_ptr<channel::Session>> r) {
        if (!r.ok()) {
          return done(
              Unavailable(fmt::format("{} is not reachable: {}", peer, r.status().message())));
        }
        auto impl = std::make_unique<Impl>(io, peer);
        impl->session = std::move(r).value();
        Impl* raw = impl.get();
        std::shared_ptr<PeerConversation> conversation(new PeerConversation(std::move(impl)));
        std::weak_ptr<PeerConversation> weak = conversation;
        raw->session->OnMessage([weak](std::string_view answer) {
          if (auto self = weak.lock()) self->impl_->Finish(std::string(answer));
        });
        raw->session->OnClosed([weak](Status why) {
          auto self = weak.lock();
          if (!self) return;
          self->impl_->session.reset();
          self->impl_->Break(Unavailable(
              fmt::format("{} closed the connection: {}", self->impl_->peer, why.message())));
        });
        done(std::move(conversation));
      });
}

void PeerConversation::Ask(std::string request, std::chrono::milliseconds timeout,
                           std::function<void(Result<std::string>)> done) {
  if (impl_->broken || !impl_->session) {
    Status why = impl_->broken.value_or(Aborted(impl_->peer + ": the conversation is closed"));
    asio::post(impl_->io, [done = std::move(done), why] { done(why); });
    return;
  }
  impl_->waiting = std::move(done);
  impl_->timer.expires_after(timeout);
  std::weak_ptr<PeerConversation> weak = shared_from_this();
  impl_->timer.async_wait([weak, timeout](const std::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self) return;
    self->impl_->Break(
        Timeout(fmt::format("{} did not answer within {} ms", self->impl_->peer, timeout.count())));
  });
  impl_->session->SendMessage(request);
}

void PeerConversation::Close() {
  impl_->timer.cancel();
  impl_->waiting = nullptr;
  if (impl_->session) impl_->session->Close();
  impl_->session.reset();
  if (!impl_->broken) impl_->broken = Aborted(impl_->peer + ": the conversation is closed");
}

Status ParsePeerAnswer(const NodeConfig& node, const Result<std::string>& answer,
                       proto::PeerResponse& response) {
  if (!answer.ok()) return answer.status();
  if (!response.ParseFromString(*answer)) {
    return DataLoss(
        fmt::format("the peer ftd at {}:{} sent an answer that is not a "
                    "PeerResponse",
                    node.channel.peer_host, node.channel.peer_port));
  }
  return Status::Ok();
}

void CallPeer(asio::io_context& io, const NodeConfig& node, std::string request,
              std::chrono::milliseconds timeout, std::function<void(Result<std::string>)> done) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  PeerConversation::Open(
      io, node, timeout,
      [deadline, request = std::move(request),
       done = std::move(done)](Result<std::shared_ptr<PeerConversation>> opened) mutable {
        if (!opened.ok()) return done(opened.status());
        auto conversation = std::move(opened).value();
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        conversation->Ask(std::move(request), std::max(left, std::chrono::milliseconds(1)),
                          [conversation, done = std::move(done)](Result<std::string> r) {
                            conversation->Close();
                            done(std::move(r));
                          });
      });
}

struct PeerServer::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_context, Handler h) : io(io_context), handler(std::move(h)) {}
  asio::io_context& io;
  Handler handler;
  std::set<std::shared_ptr<channel::Session>> sessions;
  bool closed = false;

  void Drop(const std::shared_ptr<channel::Session>& s) {
    s->Close();
    sessions.erase(s);
  }

  // Drops a session that has been idle (no request) for kServeTimeout: its caller is gone.
  void ArmIdle(const std::shared_ptr<asio::steady_timer>& timer,
               std::weak_ptr<channel::Session> ws) {
    timer->expires_after(kServeTimeout);
    timer->async_wait([weak = weak_from_this(), ws](const std::error_code& ec) {
      auto self = weak.lock();
      auto session = ws.lock();
      if (ec || !self || !session) return;
      self->Drop(session);
    });
  }

  void Adopt(std::shared_ptr<channel::Session> s) {
    if (closed) return s->Close();
    sessions.insert(s);
    std::weak_ptr<Impl> weak = shared_from_this();
    std::weak_ptr<channel::Session> ws = s;
    auto timer = std::make_shared<asio::steady_timer>(io);
    ArmIdle(timer, ws);
    s->OnClosed([weak, ws, timer](Status) {
      timer->cancel();
      auto self = weak.lock();
      if (auto session = ws.lock(); self && session) self->sessions.erase(session);
    });
    s->OnMessage([weak, ws, timer, peer = s->peer().node](std::string_view request) {
      auto self = weak.lock();
      if (!self) return;
      self->ArmIdle(timer, ws);  // a long replica copy is many requests, each in time
      Logger("peer")->debug("request from peer '{}' ({} bytes)", peer, request.size());
      self->handler(std::string(request), [ws](std::string response) {
        if (auto session = ws.lock()) session->SendMessage(response);
      });
    });
  }
};

PeerServer::PeerServer(asio::io_context& io, Handler handler)
    : impl_(std::make_shared<Impl>(io, std::move(handler))) {}

PeerServer::~PeerServer() { Close(); }

void PeerServer::Adopt(std::shared_ptr<channel::Session> session) {
  impl_->Adopt(std::move(session));
}

void PeerServer::Close() {
  impl_->closed = true;
  auto sessions = std::move(impl_->sessions);
  impl_->sessions.clear();
  for (const auto& s : sessions) s->Close();
}

}  // namespace ft::daemon
