// controlplane/atomic_file: write_file_atomically.
#include "fixture.h"

using namespace cptest;

TEST_CASE("write_file_atomically replaces the file whole and leaves no temporary", "[controlplane]") {
  TempDir dir;
  const std::string out = dir.file("out.yaml");
  REQUIRE(write_file_atomically(out, "first\n").ok());
  REQUIRE(write_file_atomically(out, "second\n").ok());
  std::ifstream in(out);
  std::stringstream buf;
  buf << in.rdbuf();
  CHECK(buf.str() == "second\n");
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
  auto bad = write_file_atomically(dir.file("missing/out.yaml"), "x");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().find("missing/out.yaml") != std::string::npos);
}
