// controlplane/dir_watch: directory fingerprints.
#include "fixture.h"

using namespace cptest;

TEST_CASE("fingerprint changes on edit, addition and removal, not on other files", "[controlplane]") {
  TempDir dir;
  dir.write("a.yaml", "kind: x\n");
  auto f0 = fingerprint(dir.path());
  REQUIRE(f0.ok());
  CHECK(f0->size() == 1);

  dir.write("a.yaml", "kind: xy\n");  // size changes even within one mtime tick
  auto f1 = fingerprint(dir.path());
  REQUIRE(f1.ok());
  CHECK(*f1 != *f0);

  dir.write("b.yml", "");
  auto f2 = fingerprint(dir.path());
  REQUIRE(f2.ok());
  CHECK(f2->size() == 2);

  dir.write("out.yaml", "generated");  // excluded (our own output)
  dir.write("README.md", "x");         // not a manifest
  auto f3 = fingerprint(dir.path(), {dir.file("out.yaml")});
  REQUIRE(f3.ok());
  CHECK(*f3 == *f2);

  fs::remove(dir.file("b.yml"));
  auto f4 = fingerprint(dir.path());
  REQUIRE(f4.ok());
  CHECK(f4->size() == 2);  // a.yaml + out.yaml (not excluded this time)
  CHECK_FALSE(fingerprint(dir.file("nope")).ok());
}
