#include "core/mmap_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace fkv {

namespace {

constexpr size_t kHugePage = size_t{2} << 20;

// Anonymous memory of `len` bytes (a multiple of kHugePage) starting on a huge-page boundary, so that every 2 MiB of
// it can be one huge page: map a huge page more than needed and unmap the ragged ends.
void* map_aligned(size_t len) {
  void* raw = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (base + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > base) munmap(raw, aligned - base);
  const uintptr_t end = base + len + kHugePage;
  if (end > aligned + len) munmap(reinterpret_cast<void*>(aligned + len), end - (aligned + len));
  return reinterpret_cast<void*>(aligned);
}

// Reads bytes [off, off + n) of fd into p; false with errno set on a read error, or with errno 0 when the file
// ended early (it shrank after fstat).
bool read_range(int fd, uint8_t* p, size_t off, size_t n) {
  size_t done = 0;
  while (done < n) {
    const ssize_t got =
        pread(fd, p + done, std::min<size_t>(n - done, size_t{64} << 20), static_cast<off_t>(off + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      if (got == 0) errno = 0;
      return false;
    }
    done += static_cast<size_t>(got);
  }
  return true;
}

// Reads all of fd into p, in huge-page-aligned parts on up to 4 threads: most of the time goes to the kernel
// faulting in and clearing fresh pages, which parallelizes. 0 on success, else the errno of a failed part (-1 when
// the file ended early).
int read_all(int fd, uint8_t* p, size_t n) {
  const size_t parts = std::clamp<size_t>(std::min<size_t>(std::thread::hardware_concurrency(), 4), 1,
                                          std::max<size_t>(1, n / (size_t{64} << 20)));
  const size_t part = (n / parts + kHugePage - 1) & ~(kHugePage - 1);
  std::vector<int> error(parts, 0);
  auto read_part = [&](size_t i) {
    const size_t off = std::min(n, i * part), len = std::min(n - off, part);
    if (!read_range(fd, p + off, off, len)) error[i] = errno != 0 ? errno : -1;
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < parts; ++i) threads.emplace_back(read_part, i);
  read_part(0);
  for (std::thread& t : threads) t.join();
  for (int e : error) {
    if (e != 0) return e;
  }
  return 0;
}

}  // namespace

bool huge_pages_available() {
  static const bool available = [] {
    std::ifstream in("/sys/kernel/mm/transparent_hugepage/enabled");
    const std::string mode((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return mode.find("[always]") != std::string::npos || mode.find("[madvise]") != std::string::npos;
  }();
  return available;
}

void MappedFile::release() {
  if (data_ != nullptr) munmap(const_cast<uint8_t*>(data_), mapped_);
  data_ = nullptr;
  size_ = mapped_ = 0;
  copied_ = false;
}

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)),
      size_(std::exchange(o.size_, 0)),
      mapped_(std::exchange(o.mapped_, 0)),
      copied_(std::exchange(o.copied_, false)) {}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    mapped_ = std::exchange(o.mapped_, 0);
    copied_ = std::exchange(o.copied_, false);
  }
  return *this;
}

Result<MappedFile> MappedFile::open(const std::string& path, FileBacking backing) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return err("cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return err("cannot stat '", path, "': ", std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return err("'", path, "' is not a regular file");
  }
  MappedFile m;
  const size_t size = static_cast<size_t>(st.st_size);
  if (size > 0 && backing == FileBacking::HugePages) {
    const size_t len = (size + kHugePage - 1) & ~(kHugePage - 1);
    void* p = map_aligned(len);
    if (p == nullptr) {
      const int e = errno;
      ::close(fd);
      return err("cannot allocate ", len, " bytes to hold '", path, "': ", std::strerror(e));
    }
    // Advice, not a requirement: without huge pages the copy still works, at the speed of the plain mapping.
    madvise(p, len, MADV_HUGEPAGE);
    if (const int e = read_all(fd, static_cast<uint8_t*>(p), size); e != 0) {
      munmap(p, len);
      ::close(fd);
      return err("cannot read '", path, "' (", size, " bytes): ",
                 e > 0 ? std::strerror(e) : "the file became shorter while it was read");
    }
    mprotect(p, len, PROT_READ);  // the weights stay read-only, as in the mapping
    m.data_ = static_cast<const uint8_t*>(p);
    m.size_ = size;
    m.mapped_ = len;
    m.copied_ = true;
  } else if (size > 0) {
    void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      return err("cannot map '", path, "' (", size, " bytes): ", std::strerror(e));
    }
    m.data_ = static_cast<const uint8_t*>(p);
    m.size_ = m.mapped_ = size;
  }
  ::close(fd);
  return m;
}

}  // namespace fkv
