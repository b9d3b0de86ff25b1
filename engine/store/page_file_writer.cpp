// PageFileWriter: one sequential pass into "<path>.tmp" through a large chunk buffer, then the checksum table and the
// header in place, fsync, rename over the target and fsync of its directory (so the rename itself is durable).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/disk_space.h"
#include "store/page_file.h"

namespace fkv {

namespace {

// Big enough that the kernel sees long sequential writes, small enough to stay in cache while it is filled.
constexpr size_t kChunkBytes = size_t{4} << 20;

std::string parent_dir(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

Status write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return err("cannot write '", path, "': ", write_error_detail(w < 0 ? errno : EIO, path));
    p += w;
    n -= static_cast<size_t>(w);
  }
  return {};
}

Status pwrite_all(int fd, const uint8_t* p, size_t n, uint64_t off, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      return err("cannot write '", path, "' at byte ", off, ": ", write_error_detail(w < 0 ? errno : EIO, path));
    }
    p += w;
    off += static_cast<uint64_t>(w);
    n -= static_cast<size_t>(w);
  }
  return {};
}

Status sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return err("cannot open directory '", dir, "' to sync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int e = errno;
  ::close(fd);
  if (rc != 0) return err("cannot sync directory '", dir, "': ", std::strerror(e));
  return {};
}

int create_new(const std::string& path) { return ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644); }

}  // namespace

Result<PageFileWriter> PageFileWriter::create(const std::string& path, const PageFileInfo& info,
                                              ByteProgress progress) {
  if (Status s = info.validate(); !s.ok()) return err(path, ": cannot write a page file: ", s.message());
  Result<PageFileLayout> layout = PageFileLayout::of(info);
  if (!layout.ok()) return err(path, ": ", layout.message());
  PageFileWriter w;
  w.info_ = info;
  w.layout_ = *layout;
  w.path_ = path;
  w.tmp_path_ = path + ".tmp";
  w.progress_ = std::move(progress);
  w.fd_ = create_new(w.tmp_path_);
  if (w.fd_ < 0 && errno == EEXIST) {  // left by a save that was killed: see the header
    ::unlink(w.tmp_path_.c_str());
    w.fd_ = create_new(w.tmp_path_);
  }
  if (w.fd_ < 0) return err("cannot create '", w.tmp_path_, "': ", write_error_detail(errno, w.tmp_path_));
  const uint64_t head_block = w.layout_.record_bytes / (2 * static_cast<uint64_t>(info.n_kv_heads));
  w.chunk_.resize(static_cast<size_t>(std::min<uint64_t>(kChunkBytes, w.layout_.file_size)));
  w.zeros_.assign(static_cast<size_t>(std::max<uint64_t>(head_block, kPageFileAlign)), 0);
  w.table_.assign(static_cast<size_t>(info.n_layers) * static_cast<size_t>(info.n_pages()), 0);
  FKV_TRY(w.append_zeros(w.layout_.records_offset));  // header and table: written in place by finish()
  return w;
}

PageFileWriter::~PageFileWriter() {
  if (fd_ >= 0) close_and_remove();
}

PageFileWriter::PageFileWriter(PageFileWriter&& o) noexcept { *this = std::move(o); }

PageFileWriter& PageFileWriter::operator=(PageFileWriter&& o) noexcept {
  if (this == &o) return *this;
  if (fd_ >= 0) close_and_remove();
  info_ = std::move(o.info_);
  layout_ = o.layout_;
  path_ = std::move(o.path_);
  tmp_path_ = std::move(o.tmp_path_);
  progress_ = std::move(o.progress_);
  fd_ = std::exchange(o.fd_, -1);
  failed_ = o.failed_;
  chunk_ = std::move(o.chunk_);
  n_chunk_ = o.n_chunk_;
  zeros_ = std::move(o.zeros_);
  n_written_ = o.n_written_;
  table_ = std::move(o.table_);
  n_records_ = o.n_records_;
  n_summary_layers_ = o.n_summary_layers_;
  summaries_hash_ = o.summaries_hash_;
  return *this;
}

void PageFileWriter::close_and_remove() {
  ::close(fd_);
  fd_ = -1;
  ::unlink(tmp_path_.c_str());
}

Status PageFileWriter::fail(Status s) {
  if (fd_ >= 0) close_and_remove();
  failed_ = true;
  return s;
}

Status PageFileWriter::check_open() const {
  if (failed_) return err(path_, ": this page-file write has already failed");
  if (fd_ < 0) return err("page-file writer: no file is open");
  return {};
}

Status PageFileWriter::flush() {
  if (Status s = write_all(fd_, chunk_.data(), n_chunk_, tmp_path_); !s.ok()) return fail(s);
  n_written_ += n_chunk_;
  n_chunk_ = 0;
  if (progress_ && !progress_(n_written_, layout_.file_size)) return fail(err(path_, ": saving was cancelled"));
  return {};
}

Status PageFileWriter::append(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const size_t take = std::min(n, chunk_.size() - n_chunk_);
    std::memcpy(chunk_.data() + n_chunk_, p, take);
    n_chunk_ += take;
    p += take;
    n -= take;
    if (n_chunk_ == chunk_.size()) FKV_TRY(flush());
  }
  return {};
}

Status PageFileWriter::append_zeros(size_t n) {
  while (n > 0) {
    const size_t take = std::min(n, zeros_.size());
    FKV_TRY(append(zeros_.data(), take));
    n -= take;
  }
  return {};
}

Status PageFileWriter::append_hashed(const void* data, size_t n, Checksum64& h) {
  h.update(data, n);
  return append(data, n);
}

Status PageFileWriter::add_page(const uint8_t* k, const uint8_t* v, int n_rows) {
  FKV_TRY(check_open());
  if (n_records_ >= table_.size())
    return fail(err(path_, ": page record ", n_records_ + 1, " added, the file holds ", table_.size()));
  if (n_rows < 1 || n_rows > info_.page_size)
    return fail(err(path_, ": a page holds 1..", info_.page_size, " rows, found ", n_rows));
  const size_t head_bytes = static_cast<size_t>(layout_.record_bytes) / (2 * static_cast<size_t>(info_.n_kv_heads));
  const size_t used = head_bytes / static_cast<size_t>(info_.page_size) * static_cast<size_t>(n_rows);
  Checksum64 h;
  for (const uint8_t* src : {k, v}) {
    if (n_rows == info_.page_size) {  // whole page: all heads are one contiguous block
      FKV_TRY(append_hashed(src, head_bytes * static_cast<size_t>(info_.n_kv_heads), h));
      continue;
    }
    for (int head = 0; head < info_.n_kv_heads; ++head) {
      FKV_TRY(append_hashed(src + static_cast<size_t>(head) * head_bytes, used, h));
      FKV_TRY(append_hashed(zeros_.data(), head_bytes - used, h));  // unused rows: zero, never stale memory
    }
  }
  table_[n_records_++] = h.digest();
  return append_zeros(static_cast<size_t>(layout_.record_stride - layout_.record_bytes));
}

Status PageFileWriter::add_summaries(const float* layer_summaries) {
  FKV_TRY(check_open());
  if (n_records_ != table_.size())
    return fail(err(path_, ": summaries added after ", n_records_, " of ", table_.size(), " page records"));
  if (n_summary_layers_ >= info_.n_layers)
    return fail(err(path_, ": summaries of layer ", n_summary_layers_, " added, the file has ", info_.n_layers));
  const uint64_t per_layer = layout_.summary_bytes / static_cast<uint64_t>(info_.n_layers);
  ++n_summary_layers_;
  return append_hashed(layer_summaries, static_cast<size_t>(per_layer), summaries_hash_);
}

Status PageFileWriter::finish(std::span<const int> n_built) {
  FKV_TRY(check_open());
  if (n_summary_layers_ != info_.n_layers)
    return fail(err(path_, ": finished after summaries of ", n_summary_layers_, " of ", info_.n_layers, " layers"));
  if (n_built.size() != static_cast<size_t>(info_.n_layers))
    return fail(
        err(path_, ": ", n_built.size(), " summary counts given, expected one per layer (", info_.n_layers, ")"));
  const int64_t n_total = info_.first_page + info_.n_pages();
  std::vector<uint8_t> counts(4 * n_built.size());  // (n_layers) u32 little-endian
  for (size_t l = 0; l < n_built.size(); ++l) {
    if (n_built[l] < 0 || n_built[l] > n_total)
      return fail(err(path_, ": layer ", l, " has ", n_built[l], " summarised pages, expected 0..", n_total));
    for (int i = 0; i < 4; ++i) counts[4 * l + i] = static_cast<uint8_t>(static_cast<uint32_t>(n_built[l]) >> (8 * i));
  }
  FKV_TRY(append_hashed(counts.data(), counts.size(), summaries_hash_));
  if (n_chunk_ > 0) FKV_TRY(flush());
  if (n_written_ != layout_.file_size)
    return fail(err(path_, ": internal error: wrote ", n_written_, " bytes, the layout has ", layout_.file_size));
  return commit();
}

Status PageFileWriter::commit() {
  std::vector<uint8_t> table(table_.size() * 8);  // (n_layers, n_pages) u64 little-endian
  for (size_t i = 0; i < table_.size(); ++i)
    for (int b = 0; b < 8; ++b) table[8 * i + b] = static_cast<uint8_t>(table_[i] >> (8 * b));
  const auto header =
      page_file_detail::encode_header(info_, layout_, checksum64(table.data(), table.size()), summaries_hash_.digest());
  Status s = pwrite_all(fd_, table.data(), table.size(), layout_.table_offset, tmp_path_);
  if (s.ok()) s = pwrite_all(fd_, header.data(), header.size(), 0, tmp_path_);
  if (s.ok() && ::fsync(fd_) != 0) s = err("cannot sync '", tmp_path_, "': ", std::strerror(errno));
  if (!s.ok()) return fail(s);
  const int rc = ::close(std::exchange(fd_, -1));
  if (rc != 0) s = err("cannot close '", tmp_path_, "': ", std::strerror(errno));
  if (s.ok() && ::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    s = err("cannot rename '", tmp_path_, "' to '", path_, "': ", std::strerror(errno));
  if (!s.ok()) {
    ::unlink(tmp_path_.c_str());
    return fail(s);
  }
  return sync_dir(parent_dir(path_));
}

}  // namespace fkv
