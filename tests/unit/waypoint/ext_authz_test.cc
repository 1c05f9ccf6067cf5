// The ext_authz wire codec (waypoint/authz/ext_authz_codec.h) against protobuf's own encoding
// of the messages in proto/envoy/service/auth/v3/external_auth.proto (written from
// data-plane-api): what the waypoint sends parses as a CheckRequest with the right fields, and
// what a service sends decodes to the right outcome; malformed answers are errors.
#include <catch2/catch.hpp>

#include "envoy/service/auth/v3/external_auth.pb.h"
#include "waypoint/authz/ext_authz_codec.h"

using namespace waypoint::authz;
namespace auth = envoy::service::auth::v3;

TEST_CASE("ext_authz codec: the CheckRequest is protobuf's encoding", "[extauthz]") {
  CheckRequest r;
  r.source = {"10.0.2.1", 0, "spiffe://cluster.local/ns/demo/sa/client"};
  r.destination = {"10.96.0.10", 8080, "spiffe://cluster.local/ns/demo/sa/waypoint"};
  r.id = "req-1";
  r.method = "GET";
  r.path = "/admin?x=1";
  r.host = "calculate.demo:8080";
  r.scheme = "http";
  r.protocol = "HTTP/1.1";
  r.headers = {{":authority", "calculate.demo:8080"}, {"x-user", "alice"}};
  auth::CheckRequest m;
  REQUIRE(m.ParseFromString(encode_check_request(r)));
  const auto& a = m.attributes();
  CHECK(a.source().address().socket_address().address() == "10.0.2.1");
  CHECK(a.source().principal() == "spiffe://cluster.local/ns/demo/sa/client");
  CHECK(a.destination().address().socket_address().address() == "10.96.0.10");
  CHECK(a.destination().address().socket_address().port_value() == 8080);
  CHECK(a.destination().principal() == "spiffe://cluster.local/ns/demo/sa/waypoint");
  const auto& h = a.request().http();
  CHECK(h.id() == "req-1");
  CHECK(h.method() == "GET");
  CHECK(h.path() == "/admin?x=1");
  CHECK(h.host() == "calculate.demo:8080");
  CHECK(h.scheme() == "http");
  CHECK(h.protocol() == "HTTP/1.1");
  REQUIRE(h.headers().size() == 2);
  CHECK(h.headers().at("x-user") == "alice");
  CHECK(h.headers().at(":authority") == "calculate.demo:8080");
  // Nothing the waypoint does not fill is on the wire.
  CHECK(m.attributes().request().http().body().empty());
  CHECK(m.attributes().request().http().size() == 0);
}

TEST_CASE("ext_authz codec: OK and denied answers as protobuf writes them", "[extauthz]") {
  SECTION("ok with header mutations") {
    auth::CheckResponse m;
    m.mutable_status()->set_code(0);
    auto* ok = m.mutable_ok_response();
    auto* h1 = ok->add_headers();
    h1->mutable_header()->set_key("x-ext-authz-user");
    h1->mutable_header()->set_value("alice");
    auto* h2 = ok->add_headers();
    h2->mutable_header()->set_key("x-tags");
    h2->mutable_header()->set_value("b");
    h2->mutable_append()->set_value(true);
    auto* h3 = ok->add_headers();
    h3->mutable_header()->set_key("x-default");
    h3->mutable_header()->set_value("d");
    h3->set_append_action(envoy::config::core::v3::HeaderValueOption::ADD_IF_ABSENT);
    ok->add_headers_to_remove("authorization");
    auto* rh = ok->add_response_headers_to_add();
    rh->mutable_header()->set_key("x-checked");
    rh->mutable_header()->set_value("yes");
    auto r = decode_check_response(m.SerializeAsString());
    REQUIRE(r.ok());
    CHECK(r->grpc_code == 0);
    CHECK(r->http == CheckResponse::Http::Ok);
    REQUIRE(r->headers.size() == 3);
    CHECK(r->headers[0].key == "x-ext-authz-user");
    CHECK(r->headers[0].value == "alice");
    CHECK(r->headers[0].mode == CheckHeader::Mode::Set);
    CHECK(r->headers[1].mode == CheckHeader::Mode::Append);
    CHECK(r->headers[2].mode == CheckHeader::Mode::AddIfAbsent);
    CHECK(r->headers_to_remove == std::vector<std::string>{"authorization"});
    REQUIRE(r->response_headers_to_add.size() == 1);
    CHECK(r->response_headers_to_add[0].key == "x-checked");
    // Our encoder (fuzz seeds, tests) writes what protobuf reads back the same.
    auth::CheckResponse back;
    REQUIRE(back.ParseFromString(encode_check_response(*r)));
    CHECK(back.ok_response().headers_size() == 3);
    CHECK(back.ok_response().headers(1).append().value());
    CHECK(back.ok_response().headers(2).append_action() == envoy::config::core::v3::HeaderValueOption::ADD_IF_ABSENT);
  }
  SECTION("denied with status, body and headers") {
    auth::CheckResponse m;
    m.mutable_status()->set_code(7);  // PERMISSION_DENIED
    m.mutable_status()->set_message("nope");
    auto* d = m.mutable_denied_response();
    d->mutable_status()->set_code(401);
    d->set_body("denied by ext_authz");
    auto* h = d->add_headers();
    h->mutable_header()->set_key("x-ext-authz-check-result");
    h->mutable_header()->set_value("denied");
    auto r = decode_check_response(m.SerializeAsString());
    REQUIRE(r.ok());
    CHECK(r->grpc_code == 7);
    CHECK(r->grpc_message == "nope");
    CHECK(r->http == CheckResponse::Http::Denied);
    CHECK(r->denied_status == 401);
    CHECK(r->denied_body == "denied by ext_authz");
    REQUIRE(r->headers.size() == 1);
    CHECK(r->headers[0].value == "denied");
  }
  SECTION("a bare status; a negative code") {
    auth::CheckResponse m;
    m.mutable_status()->set_code(-5);
    auto r = decode_check_response(m.SerializeAsString());
    REQUIRE(r.ok());
    CHECK(r->grpc_code == -5);
    CHECK(r->http == CheckResponse::Http::None);
    auto e = decode_check_response("");
    REQUIRE(e.ok());
    CHECK(e->grpc_code == 0);  // an empty message is status OK, as protobuf reads it
  }
}

TEST_CASE("ext_authz codec: malformed input is an error naming the problem", "[extauthz]") {
  CHECK_THAT(decode_check_response(std::string("\x0a\x05\x08", 3)).error(), Catch::Contains("runs past the end"));
  CHECK_THAT(decode_check_response(std::string("\x0a\x02\x08\xff", 4)).error(), Catch::Contains("truncated varint"));
  CHECK_THAT(decode_check_response(std::string("\x08\x01", 2)).error(), Catch::Contains("status: wrong wire type"));
  // denied_response.headers with an empty key
  CHECK_THAT(decode_check_response(std::string("\x12\x04\x12\x02\x0a\x00", 6)).error(),
             Catch::Contains("denied_response: headers: header: empty key"));
  CHECK_THAT(decode_check_response(std::string("\x27", 1)).error(), Catch::Contains("unsupported wire type"));
}
