#include "waypoint/side_call.h"

#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <memory>

#include "waypoint/http/h2_session.h"
#include "waypoint/ratelimit/rls_codec.h"
#include "waypoint/request_flow.h"

namespace waypoint {

namespace asio = boost::asio;

asio::awaitable<common::Result<std::string>> unary_grpc_call(FlowEnv& env, const Cluster& cluster,
                                                             const upstream::Target& target, std::string authority,
                                                             std::string_view path, std::chrono::milliseconds timeout,
                                                             std::string body, std::string_view who) {
  const std::string name(who);
  struct Guard {
    bool fired = false;
    std::shared_ptr<http::H2Session> session;
    int32_t stream = 0;
  };
  auto guard = std::make_shared<Guard>();
  asio::steady_timer timer(env.exec);
  timer.expires_after(timeout);
  timer.async_wait([guard](boost::system::error_code ec) {
    if (ec) return;
    guard->fired = true;
    if (guard->session && guard->stream) guard->session->cancel(guard->stream);
  });
  const auto connect_timeout = std::min<std::chrono::milliseconds>(cluster.connect_timeout, timeout);
  auto sess = co_await env.connector->acquire_h2(target, env.client_tls, env.self_identity, connect_timeout);
  if (guard->fired) co_return common::make_error(name + " call timed out");
  if (!sess) co_return common::make_error(name + " connect: " + sess.error());

  http::Request req;
  req.protocol = http::Protocol::Http2;
  req.head.method = "POST";
  req.head.scheme = "http";
  req.head.authority = std::move(authority);
  req.head.path = std::string(path);
  req.head.headers.add("content-type", "application/grpc");
  req.head.headers.add("te", "trailers");
  req.head.headers.add("grpc-timeout", std::to_string(timeout.count()) + "m");
  req.body = std::move(body);
  const int32_t id = sess.value()->submit(req);
  if (id == 0) co_return common::make_error(name + " connection takes no more streams");
  guard->session = sess.value();
  guard->stream = id;
  auto res = co_await sess.value()->wait(id);
  guard->session = nullptr;
  timer.cancel();
  if (guard->fired) co_return common::make_error(name + " call timed out");
  if (!res.ok) co_return common::make_error(name + " stream failed: " + res.detail);
  if (res.response.status != 200)
    co_return common::make_error(name + " answered HTTP " + std::to_string(res.response.status));
  // grpc-status in the trailers, or in the headers of a trailers-only answer.
  auto gs = res.response.trailers.get("grpc-status");
  if (!gs) gs = res.response.headers.get("grpc-status");
  if (!gs) co_return common::make_error(name + " answer has no grpc-status");
  if (*gs != "0") co_return common::make_error(name + " grpc-status " + std::string(*gs));
  auto msg = ratelimit::grpc_unframe(res.response.body);
  if (!msg) co_return common::make_error(msg.error());
  co_return std::string(*msg);
}

}  // namespace waypoint
