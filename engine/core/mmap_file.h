// A whole file, read-only in memory: mapped from the page cache, or copied into anonymous memory backed by
// transparent huge pages. RAII, move-only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "fkv/status.h"

namespace fkv {

// How MappedFile::open holds a file. HugePages copies it into anonymous memory with MADV_HUGEPAGE: streaming the
// weights once per decoded token then takes a TLB entry per 2 MiB instead of per 4 KiB page, measurably faster where
// decode is bound by memory bandwidth; it reads the whole file at open and keeps its own copy.
enum class FileBacking { Map, HugePages };

// Whether the kernel hands out transparent huge pages on request (its mode is "always" or "madvise").
bool huge_pages_available();

class MappedFile {
 public:
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // Maps (or copies) `path`; an empty file gives size 0 and a null pointer.
  static Result<MappedFile> open(const std::string& path, FileBacking backing = FileBacking::Map);

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool copied() const { return copied_; }  // held as an anonymous copy (FileBacking::HugePages)

 private:
  void release();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // bytes to unmap at data_: size_, or the copy's length rounded up to whole huge pages
  bool copied_ = false;
};

}  // namespace fkv
