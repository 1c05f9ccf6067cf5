// PageBuffer: a fixed-size, page-aligned anonymous mapping used as a connection's TLS read
// buffer. Its pages become resident only as reads fill them, and release() hands them back
// to the kernel while keeping the mapping, so a pooled connection that once carried a burst
// does not pin the burst's memory for the rest of its life (malloc'd memory cannot be given
// back piecewise; glibc keeps a freed 256 KiB block in its arena).
// Single-threaded: owned by one connection. Never throws: allocate() reports a failed mapping.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

namespace hbone {

class PageBuffer {
 public:
  PageBuffer() = default;
  ~PageBuffer() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }
  PageBuffer(const PageBuffer&) = delete;
  PageBuffer& operator=(const PageBuffer&) = delete;

  // Maps `size` bytes (once; later calls keep the first mapping). False if mmap failed.
  bool allocate(size_t size) {
    if (data_ != nullptr) return true;
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    data_ = static_cast<uint8_t*>(p);
    size_ = size;
    return true;
  }

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

  // The owner reports how far a read filled the buffer (the high-water mark since release()).
  void filled(size_t n) {
    if (n > touched_) touched_ = n;
  }
  size_t touched() const { return touched_; }

  // Returns the pages reads have touched to the kernel (they read back as zeros, which no
  // one relies on: the buffer holds nothing between reads). The mapping stays.
  void release() {
    if (data_ != nullptr && touched_ > 0) ::madvise(data_, touched_, MADV_DONTNEED);
    touched_ = 0;
  }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t touched_ = 0;
};

}  // namespace hbone
