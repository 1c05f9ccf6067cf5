#include "common/identity/certs.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/identity/local_ca.h"
#include "common/identity/local_ca_provider.h"

using common::Identity;
using common::LocalCa;
namespace certs = common::certs;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

const Identity kAlice("cluster.local", "default", "alice");
const Identity kBob("cluster.local", "default", "bob");

// A fresh directory under the temp dir, removed at scope exit.
struct TempDir {
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("certs_test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path path;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("generated key is PKCS#8 PEM", "[certs]") {
  auto key = certs::generate_key_pem();
  REQUIRE(key);
  CHECK(key->starts_with("-----BEGIN PRIVATE KEY-----"));
  auto other = certs::generate_key_pem();
  REQUIRE(other);
  CHECK(*key != *other);
}

TEST_CASE("CSR carries one critical URI SAN, empty subject, P-256, SHA-256", "[certs]") {
  auto kc = certs::generate_key_and_csr(kAlice);
  REQUIRE(kc);
  CHECK(kc->csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
  auto csr = certs::inspect_csr(kc->csr_pem);
  REQUIRE(csr);
  REQUIRE(csr->uri_sans.size() == 1);
  CHECK(csr->uri_sans[0] == kAlice.uri());
  CHECK(csr->san_critical);
  CHECK(csr->subject_empty);
  CHECK(csr->signature_ok);
  CHECK(csr->key_type == "EC");
  CHECK(csr->curve == "prime256v1");
  CHECK(csr->signature_algorithm == "ecdsa-with-SHA256");
}

TEST_CASE("make_csr rejects garbage keys", "[certs]") {
  CHECK_FALSE(certs::make_csr("not a key", kAlice));
  CHECK_FALSE(certs::inspect_csr("not a csr"));
}

TEST_CASE("PEM chains split and parse", "[certs]") {
  auto root = certs::make_root_ca("example.org", "Root", 24h);
  REQUIRE(root);
  auto inter = certs::make_intermediate_ca(*root, "example.org", "Inter", 12h);
  REQUIRE(inter);
  const std::string bundle = inter->cert_pem + "\n# comment between blocks\n" + root->cert_pem;
  auto parts = certs::split_pem_chain(bundle);
  REQUIRE(parts);
  REQUIRE(parts->size() == 2);
  CHECK((*parts)[0] == inter->cert_pem);
  CHECK((*parts)[1] == root->cert_pem);

  auto summary = certs::inspect_pem_chain(bundle);
  REQUIRE(summary);
  CHECK_FALSE((*summary)[0].self_signed);
  CHECK((*summary)[1].self_signed);
  const auto lifetime = (*summary)[0].not_after - (*summary)[0].not_before;
  CHECK(lifetime >= 12h + 59s);
  CHECK(lifetime <= 12h + 61s);
  CHECK_FALSE((*summary)[0].serial_hex.empty());
  CHECK((*summary)[0].serial_hex != (*summary)[1].serial_hex);

  CHECK_FALSE(certs::split_pem_chain(""));
  CHECK_FALSE(
      certs::split_pem_chain("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
}

TEST_CASE("rfc3339 formatting", "[certs]") {
  const auto t = std::chrono::system_clock::from_time_t(0) + 86400s + 3661s;
  CHECK(certs::to_rfc3339(t) == "1970-01-02T01:01:01Z");
}

TEST_CASE("LocalCa signs a leaf with exactly the requested identity", "[certs][local_ca]") {
  auto ca = LocalCa::generate("cluster.local");
  REQUIRE(ca);
  auto kc = certs::generate_key_and_csr(kAlice);
  REQUIRE(kc);
  const auto before = std::chrono::system_clock::now();
  auto chain = ca->sign(kc->csr_pem, kAlice, 1h);
  REQUIRE(chain);
  REQUIRE(chain->size() == 3);  // leaf, intermediate, root

  auto leaf = certs::inspect_pem(chain->front());
  REQUIRE(leaf);
  CHECK(leaf->uri_sans == std::vector<std::string>{kAlice.uri()});
  CHECK(leaf->not_after > before + 59min);
  CHECK(leaf->not_after <= before + 1h + 2s);
  CHECK(leaf->not_before < before);
  auto root = certs::inspect_pem(chain->back());
  REQUIRE(root);
  CHECK(root->self_signed);
  CHECK(chain->back() == ca->roots_pem());

  // Two leaves for the same CSR get different serials.
  auto again = ca->sign(kc->csr_pem, kAlice, 1h);
  REQUIRE(again);
  auto leaf2 = certs::inspect_pem(again->front());
  REQUIRE(leaf2);
  CHECK(leaf2->serial_hex != leaf->serial_hex);
}

TEST_CASE("LocalCa refuses a CSR naming someone else", "[certs][local_ca]") {
  auto ca = LocalCa::generate("cluster.local");
  REQUIRE(ca);
  auto kc = certs::generate_key_and_csr(kBob);
  REQUIRE(kc);
  auto r = ca->sign(kc->csr_pem, kAlice, 1h);
  REQUIRE_FALSE(r);
  CHECK(r.error().find(kBob.uri()) != std::string::npos);
  CHECK_FALSE(ca->sign("garbage", kAlice, 1h));
  CHECK_FALSE(ca->sign(kc->csr_pem, kBob, 0s));
}

TEST_CASE("LocalCa create writes the cacerts layout and load reads it back", "[certs][local_ca]") {
  TempDir dir;
  auto created = LocalCa::create(dir.path / "cacerts", "example.org");
  REQUIRE(created);
  for (const char* f : {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"}) {
    INFO(f);
    CHECK(fs::exists(dir.path / "cacerts" / f));
  }
  const auto key_perms = fs::status(dir.path / "cacerts" / "ca-key.pem").permissions();
  CHECK((key_perms & (fs::perms::group_all | fs::perms::others_all)) == fs::perms::none);
  const std::string first_root = slurp(dir.path / "cacerts" / "root-cert.pem");

  // Idempotent: a second create keeps the existing CA.
  auto again = LocalCa::create(dir.path / "cacerts", "example.org");
  REQUIRE(again);
  CHECK(again->roots_pem() == first_root);
  auto loaded = LocalCa::load(dir.path / "cacerts");
  REQUIRE(loaded);
  CHECK(loaded->cert_chain_pem() == created->cert_chain_pem());

  // Leaves from the reloaded CA chain up to the same root.
  common::LocalCaProvider provider(std::move(loaded).value(), 10min);
  auto creds = provider.issue(kAlice);
  REQUIRE(creds);
  CHECK(creds->roots_pem == first_root);
  auto chain = certs::split_pem_chain(creds->cert_chain_pem);
  REQUIRE(chain);
  CHECK(chain->size() == 2);  // leaf + intermediate; the root is not sent
  CHECK(creds->not_after - creds->not_before >= 10min);
}

TEST_CASE("LocalCa load rejects inconsistent layouts", "[certs][local_ca]") {
  TempDir dir;
  CHECK_FALSE(LocalCa::load(dir.path / "missing"));

  auto a = LocalCa::create(dir.path / "a", "cluster.local");
  REQUIRE(a);
  auto b = LocalCa::create(dir.path / "b", "cluster.local");
  REQUIRE(b);
  // b's root does not anchor a's intermediate.
  fs::copy_file(dir.path / "b" / "root-cert.pem", dir.path / "a" / "root-cert.pem",
                fs::copy_options::overwrite_existing);
  auto bad_root = LocalCa::load(dir.path / "a");
  REQUIRE_FALSE(bad_root);
  CHECK(bad_root.error().find("does not verify") != std::string::npos);
  // A key that does not match ca-cert.
  fs::copy_file(dir.path / "b" / "ca-key.pem", dir.path / "b-key-copy.pem");
  fs::copy_file(dir.path / "b-key-copy.pem", dir.path / "a" / "ca-key.pem",
                fs::copy_options::overwrite_existing);
  CHECK_FALSE(LocalCa::load(dir.path / "a"));
}

TEST_CASE("SAN extraction from DER survives junk", "[certs]") {
  CHECK(certs::uri_sans_from_der("").empty());
  CHECK(certs::uri_sans_from_der(std::string(100, '\x30')).empty());
}

TEST_CASE("make_credentials applies the CA answer rules", "[certs][cert_provider]") {
  auto ca = LocalCa::generate("cluster.local");
  REQUIRE(ca);
  auto kc = certs::generate_key_and_csr(kAlice);
  REQUIRE(kc);
  auto chain = ca->sign(kc->csr_pem, kAlice, 1h);
  REQUIRE(chain);

  // Roots taken from the chain when none are given; the root is not presented.
  auto creds = common::make_credentials(kAlice, kc->key_pem, *chain, "");
  REQUIRE(creds);
  CHECK(creds->roots_pem == ca->roots_pem());
  CHECK(creds->cert_chain_pem == (*chain)[0] + (*chain)[1]);
  CHECK(creds->not_after > creds->not_before);

  // A leaf for another identity is refused (impersonation answered with the wrong SAN).
  auto wrong = common::make_credentials(kBob, kc->key_pem, *chain, ca->roots_pem());
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().find(kAlice.uri()) != std::string::npos);

  CHECK_FALSE(common::make_credentials(kAlice, kc->key_pem, {}, ""));
  CHECK_FALSE(common::make_credentials(kAlice, kc->key_pem, {(*chain)[0]}, ""));  // no root
  CHECK_FALSE(common::make_credentials(kAlice, kc->key_pem, {"junk"}, ca->roots_pem()));
}
