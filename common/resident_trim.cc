#include "common/resident_trim.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

// Weak: resolved only when the executable links mimalloc (which then also serves malloc).
extern "C" {
void mi_collect(bool force) __attribute__((weak));
int mi_version(void) __attribute__((weak));
}

namespace common {

bool release_free_heap() {
  if (mi_collect != nullptr) {
    mi_collect(true);
    return true;
  }
  return ::malloc_trim(0) != 0;
}

const char* allocator_name() {
  static char name[32] = "glibc malloc";
  if (mi_version != nullptr) {
    const int v = mi_version();
    std::snprintf(name, sizeof name, "mimalloc %d.%d.%d", v / 100, (v / 10) % 10, v % 10);
  }
  return name;
}

namespace {

struct Mapping {
  uintptr_t start = 0, end = 0;
  bool candidate = false;  // file-backed and not writable
  size_t rss_kb = 0, anon_kb = 0, private_dirty_kb = 0;
};

// "Rss:   1234 kB" -> 1234 when the line starts with `key`.
bool field_kb(const char* line, const char* key, size_t& out) {
  const size_t n = std::strlen(key);
  if (std::strncmp(line, key, n) != 0) return false;
  unsigned long v = 0;
  if (std::sscanf(line + n, " %lu", &v) == 1) out = v;
  return true;
}

}  // namespace

ResidentTrimResult trim_resident_memory() {
  ResidentTrimResult r;
  r.heap_trimmed = release_free_heap();
  std::FILE* f = std::fopen("/proc/self/smaps", "re");
  if (f == nullptr) return r;
  std::vector<Mapping> maps;
  char line[4096];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo = 0, hi = 0;
    char perms[8] = {};
    unsigned long off = 0, inode = 0;
    char dev[16] = {};
    int name_at = 0;
    // A mapping header: "lo-hi perms offset dev inode [path]"; field lines start with a
    // capitalised key and never parse as this.
    if (std::sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &lo, &hi, perms, &off, dev, &inode, &name_at) >= 6 &&
        std::strchr(line, '-') != nullptr && line[0] != ' ' && perms[0] != '\0' && std::strlen(perms) == 4) {
      Mapping m;
      m.start = lo, m.end = hi;
      const char* name = line + name_at;
      m.candidate = inode != 0 && name[0] == '/' && perms[1] != 'w' && perms[0] == 'r';
      maps.push_back(m);
      continue;
    }
    if (maps.empty()) continue;
    Mapping& m = maps.back();
    if (field_kb(line, "Rss:", m.rss_kb) || field_kb(line, "Anonymous:", m.anon_kb) ||
        field_kb(line, "Private_Dirty:", m.private_dirty_kb)) {
      continue;
    }
  }
  std::fclose(f);
  for (const Mapping& m : maps) {
    if (!m.candidate || m.rss_kb == 0 || m.anon_kb != 0 || m.private_dirty_kb != 0) continue;
    if (::madvise(reinterpret_cast<void*>(m.start), m.end - m.start, MADV_DONTNEED) == 0) {
      ++r.mappings;
      r.file_kb += m.rss_kb;
    }
  }
  return r;
}

}  // namespace common
