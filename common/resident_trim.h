// Returning memory an idle process holds but does not use: the freed heap (malloc_trim) and the
// page-table entries of clean, file-backed pages it touched once — the dynamic loader's walk
// over every library, static initialisers, start-up code — and will not touch again while idle.
//
// Why: an idle ztunnel's RSS is mostly (16 of 19 MB, docs/benchmarks.md "Idle memory") clean
// library pages mapped at start-up. They are shared with the page cache and cost no I/O to get
// back: dropping our references (madvise MADV_DONTNEED on read-only file mappings) leaves RSS at
// what the process actually uses; a page needed again comes back on a minor fault (about a
// microsecond, no disk read while the file stays cached).
//
// Safety: only mappings that are file-backed, not writable, and hold no private (copied) pages
// (smaps `Anonymous: 0`) are advised; for those MADV_DONTNEED re-reads exactly the bytes that
// were there. Writable or copied-on-write mappings (.data, .bss, RELRO after relocation, heap,
// stacks) are never touched.
//
// Threading: callable from any thread; it reads /proc/self/smaps and makes syscalls, so call it
// off the data path (the control thread's timers).
#pragma once

#include <cstddef>

namespace common {

struct ResidentTrimResult {
  size_t mappings = 0;      // file mappings advised
  size_t file_kb = 0;       // their resident kB before
  bool heap_trimmed = false;
};

// release_free_heap(), then MADV_DONTNEED over every clean read-only file mapping (see above).
ResidentTrimResult trim_resident_memory();

// Returns the allocator's free pages to the kernel: mimalloc's mi_collect(true) when the binary
// links mimalloc (ztunnel and the waypoint in release builds, see CMakeLists.txt), glibc's
// malloc_trim(0) otherwise. Returns whether glibc reported releasing memory (mimalloc: true).
bool release_free_heap();

// "mimalloc <version>" or "glibc malloc": which allocator serves this process (start-up log).
const char* allocator_name();

}  // namespace common
