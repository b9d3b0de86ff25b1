#include "store/checksum.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace fkv {

// Words are read little-endian; the page-file format fixes that byte order, and every target of this engine
// (x86-64, AArch64) is little-endian, so a plain load is the format's load.
static_assert(std::endian::native == std::endian::little, "checksum64 reads words little-endian");

namespace {

// Odd 64-bit constants (odd, so multiplying by them is invertible modulo 2^64): the golden ratio, two splitmix64
// multipliers, and two further odd constants with well-spread bits.
constexpr uint64_t kK1 = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kK2 = 0xBF58476D1CE4E5B9ull;
constexpr uint64_t kK3 = 0x94D049BB133111EBull;
constexpr uint64_t kK4 = 0xD6E8FEB86659FD93ull;
constexpr uint64_t kK5 = 0xFF51AFD7ED558CCDull;

uint64_t load64(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}

uint64_t load32(const uint8_t* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// One lane step: for a fixed accumulator, a bijection of the word; for a fixed word, a bijection of the accumulator.
uint64_t lane_step(uint64_t acc, uint64_t word) { return std::rotl(acc + word * kK1, 29) * kK2; }

// Folds one 64-bit value into the running hash h (a bijection of h for a fixed value, and of the value for a fixed h).
uint64_t fold(uint64_t h, uint64_t v) { return std::rotl(h ^ lane_step(0, v), 27) * kK3 + kK4; }

uint64_t avalanche(uint64_t h) {
  h ^= h >> 31;
  h *= kK3;
  h ^= h >> 29;
  h *= kK2;
  h ^= h >> 32;
  return h;
}

}  // namespace

Checksum64::Checksum64(uint64_t seed) : seed_(seed), lanes_{seed + kK2, seed + kK3, seed + kK4, seed + kK5} {}

void Checksum64::consume_blocks(const uint8_t* p, size_t n_blocks) {
  // Local copies keep the four chains in registers; they are independent, so their multiplies overlap.
  uint64_t a = lanes_[0], b = lanes_[1], c = lanes_[2], d = lanes_[3];
  for (size_t i = 0; i < n_blocks; ++i, p += 32) {
    a = lane_step(a, load64(p));
    b = lane_step(b, load64(p + 8));
    c = lane_step(c, load64(p + 16));
    d = lane_step(d, load64(p + 24));
  }
  lanes_[0] = a;
  lanes_[1] = b;
  lanes_[2] = c;
  lanes_[3] = d;
}

void Checksum64::update(const void* data, size_t n) {
  if (n == 0) return;
  const auto* p = static_cast<const uint8_t*>(data);
  n_total_ += n;
  if (n_pending_ > 0) {
    const size_t take = std::min(n, sizeof(pending_) - n_pending_);
    std::memcpy(pending_ + n_pending_, p, take);
    n_pending_ += take;
    p += take;
    n -= take;
    if (n_pending_ < sizeof(pending_)) return;
    consume_blocks(pending_, 1);
    n_pending_ = 0;
  }
  const size_t n_blocks = n / 32;
  consume_blocks(p, n_blocks);
  p += n_blocks * 32;
  n -= n_blocks * 32;
  if (n > 0) std::memcpy(pending_, p, n);
  n_pending_ = n;
}

uint64_t Checksum64::digest() const {
  uint64_t h = seed_ + kK5;
  if (n_total_ >= 32) {
    h = std::rotl(lanes_[0], 1) + std::rotl(lanes_[1], 7) + std::rotl(lanes_[2], 13) + std::rotl(lanes_[3], 19);
    for (uint64_t lane : lanes_) h = fold(h, lane);
  }
  h += n_total_;
  // The tail: whole words, then at most one 4-byte word, then single bytes; each step a bijection of its input.
  const uint8_t* p = pending_;
  size_t n = n_pending_;
  for (; n >= 8; n -= 8, p += 8) h = fold(h, load64(p));
  if (n >= 4) {
    h = std::rotl(h ^ (load32(p) * kK1), 23) * kK2 + kK5;
    n -= 4;
    p += 4;
  }
  for (; n > 0; --n, ++p) h = std::rotl(h ^ (*p * kK5), 11) * kK1;
  return avalanche(h);
}

uint64_t checksum64(const void* data, size_t n, uint64_t seed) {
  Checksum64 c(seed);
  c.update(data, n);
  return c.digest();
}

}  // namespace fkv
