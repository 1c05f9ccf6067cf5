// common/resident_trim: clean read-only file pages leave RSS and read back unchanged; written
// private pages and writable mappings are never advised.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "common/resident_trim.h"

namespace {

// Rss (kB) of the mapping that starts at `addr`, from /proc/self/smaps; -1 if not found.
long mapping_rss_kb(const void* addr) {
  char want[32];
  std::snprintf(want, sizeof want, "%lx-", reinterpret_cast<unsigned long>(addr));
  std::ifstream in("/proc/self/smaps");
  std::string line;
  bool in_it = false;
  while (std::getline(in, line)) {
    if (line.rfind(want, 0) == 0) {
      in_it = true;
    } else if (in_it && line.rfind("Rss:", 0) == 0) {
      return std::strtol(line.c_str() + 4, nullptr, 10);
    }
  }
  return -1;
}

struct TempFile {
  std::string path;
  int fd = -1;
  explicit TempFile(size_t bytes) {
    char tmpl[] = "/tmp/resident-trim-XXXXXX";
    fd = ::mkstemp(tmpl);
    path = tmpl;
    std::string page(4096, '\0');
    for (size_t off = 0; off < bytes; off += page.size()) {
      std::memset(page.data(), static_cast<int>('a' + (off / 4096) % 26), page.size());
      REQUIRE(::write(fd, page.data(), page.size()) == static_cast<ssize_t>(page.size()));
    }
    // Written back, so its cached pages are clean as a library's are (dirty page-cache pages
    // show as Private_Dirty, which the trim leaves alone).
    REQUIRE(::fsync(fd) == 0);
  }
  ~TempFile() {
    ::close(fd);
    ::unlink(path.c_str());
  }
};

}  // namespace

TEST_CASE("trim drops clean read-only file pages; they read back the same", "[trim]") {
  constexpr size_t kBytes = 64 * 4096;
  TempFile file(kBytes);
  auto* ro = static_cast<const char*>(::mmap(nullptr, kBytes, PROT_READ, MAP_PRIVATE, file.fd, 0));
  REQUIRE(ro != MAP_FAILED);
  unsigned sum = 0;
  for (size_t off = 0; off < kBytes; off += 4096) sum += static_cast<unsigned char>(ro[off]);
  REQUIRE(mapping_rss_kb(ro) == static_cast<long>(kBytes / 1024));

  // A private writable mapping of the same file with one page written (copied on write): its
  // content must survive, so it is never advised.
  auto* rw = static_cast<char*>(::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, file.fd, 0));
  REQUIRE(rw != MAP_FAILED);
  rw[0] = 'Z';
  const long rw_before = mapping_rss_kb(rw);

  const common::ResidentTrimResult r = common::trim_resident_memory();
  CHECK(r.mappings >= 1);
  CHECK(r.file_kb >= kBytes / 1024);
  CHECK(mapping_rss_kb(ro) == 0);
  CHECK(mapping_rss_kb(rw) == rw_before);
  CHECK(rw[0] == 'Z');

  unsigned again = 0;
  for (size_t off = 0; off < kBytes; off += 4096) {
    CHECK(ro[off] == static_cast<char>('a' + (off / 4096) % 26));
    again += static_cast<unsigned char>(ro[off]);
  }
  CHECK(again == sum);
  // The process's own code and libraries still run after their pages were dropped.
  CHECK(std::to_string(42) == "42");
  ::munmap(const_cast<char*>(ro), kBytes);
  ::munmap(rw, kBytes);
}
