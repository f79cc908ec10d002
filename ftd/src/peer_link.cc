#include "peer_link.h"

#include <asio.hpp>

#include <fmt/format.h>

#include "ft/channel/session.h"
#include "ft/daemon/managed_vm.h"
#include "ft/log.h"
#include "roles.h"

namespace ft::daemon {
namespace {
// The caller closes once it has the answer; a caller that never does is dropped after this.
constexpr auto kServeTimeout = std::chrono::seconds(120);
}  // namespace

channel::Identity PeerControlIdentity(const NodeConfig& node) {
  channel::Identity id;
  id.node = node.name;
  id.vm = channel::kPeerControlVm;
  return id;
}

void CallPeer(asio::io_context& io, const NodeConfig& node, std::string request,
              std::chrono::milliseconds timeout,
              std::function<void(Result<std::string>)> done) {
  struct Call {
    std::function<void(Result<std::string>)> done;
    std::shared_ptr<channel::Session> session;
    std::unique_ptr<asio::steady_timer> timer;
    void Finish(Result<std::string> r) {
      if (!done) return;
      auto cb = std::move(done);
      done = nullptr;
      timer->cancel();
      if (session) session->Close();
      session.reset();
      cb(std::move(r));
    }
  };
  auto call = std::make_shared<Call>();
  call->done = std::move(done);
  call->timer = std::make_unique<asio::steady_timer>(io);
  std::string peer = fmt::format("peer ftd at {}:{}", node.channel.peer_host, node.channel.peer_port);
  if (node.channel.peer_host.empty()) {
    asio::post(io, [call] {
      call->Finish(FailedPrecondition(
          "this node has no [node] peer = ADDRESS:PORT: there is no peer ftd to ask"));
    });
    return;
  }
  call->timer->expires_after(timeout);
  call->timer->async_wait([call, peer, timeout](const std::error_code& ec) {
    if (ec) return;
    call->Finish(Timeout(fmt::format("{} did not answer within {} ms", peer, timeout.count())));
  });
  channel::Options options = ChannelOptionsFrom(node.channel);
  options.handshake_timeout = std::min<std::chrono::milliseconds>(timeout, options.handshake_timeout);
  channel::Connect(
      io, node.channel.peer_host, node.channel.peer_port, PeerControlIdentity(node), options,
      [call, peer, request = std::move(request)](Result<std::shared_ptr<channel::Session>> r) {
        if (!call->done) {
          if (r.ok()) (*r)->Close();
          return;
        }
        if (!r.ok()) {
          return call->Finish(
              Unavailable(fmt::format("{} is not reachable: {}", peer, r.status().message())));
        }
        call->session = std::move(r).value();
        call->session->OnMessage([call](std::string_view answer) {
          call->Finish(std::string(answer));
        });
        call->session->OnClosed([call, peer](Status why) {
          call->Finish(Unavailable(
              fmt::format("{} closed the connection before answering: {}", peer, why.message())));
        });
        call->session->SendMessage(request);
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

  void Adopt(std::shared_ptr<channel::Session> s) {
    if (closed) return s->Close();
    sessions.insert(s);
    std::weak_ptr<Impl> weak = shared_from_this();
    std::weak_ptr<channel::Session> ws = s;
    auto timer = std::make_shared<asio::steady_timer>(io, kServeTimeout);
    timer->async_wait([weak, ws](const std::error_code& ec) {
      auto self = weak.lock();
      auto session = ws.lock();
      if (ec || !self || !session) return;
      self->Drop(session);
    });
    s->OnClosed([weak, ws, timer](Status) {
      timer->cancel();
      auto self = weak.lock();
      if (auto session = ws.lock(); self && session) self->sessions.erase(session);
    });
    s->OnMessage([weak, ws, peer = s->peer().node](std::string_view request) {
      auto self = weak.lock();
      if (!self) return;
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
