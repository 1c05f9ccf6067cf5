// Test helper: a private temporary directory removed with everything in it at scope exit,
// and the examples/k8s manifests' path. Header-only; for tests/unit only.
#pragma once

#include <stdlib.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace testutil {

inline std::string examples_k8s() {
  return (std::filesystem::path(AMBIENT_SOURCE_DIR) / "examples" / "k8s").string();
}

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "unit-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }

  // Rewrites the file in place (same inode).
  void write(const std::string& name, const std::string& content) const {
    std::ofstream out(file(name), std::ios::binary | std::ios::trunc);
    out << content;
    REQUIRE(out.good());
  }

  // Write + rename, as editors and kubectl-like tools replace files (new inode).
  void replace(const std::string& name, const std::string& content) const {
    const std::filesystem::path target = file(name);
    const std::string tmp = (target.parent_path() / ("." + target.filename().string() + ".tmp")).string();
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << content;
      REQUIRE(out.good());
    }
    std::filesystem::rename(tmp, target);
  }

 private:
  std::string path_;
};

}  // namespace testutil
