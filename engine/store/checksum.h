// A fast 64-bit non-cryptographic checksum, written for this project: KV page files checksum every page record with
// it, and model/tokenizer fingerprints are built from it. It detects accidental damage (torn writes, bit rot, a file
// truncated or edited), not an adversary. The exact algorithm is part of the page-file format: docs/kv-format.md.
//
// Four independent multiply-rotate lanes each take one 64-bit word of every 32-byte block, so the lanes' multiply
// chains overlap and one core hashes at several GB/s; a tail and a final avalanche fold in the last < 32 bytes and
// the length. Every per-word step is a bijection of the lane state, so a change of any single word (hence any
// single bit) changes the lane it lands in.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fkv {

// Incremental form: update() any number of times, then digest(). The result depends only on the concatenated bytes
// (not on how they were split), and equals checksum64() of them.
class Checksum64 {
 public:
  explicit Checksum64(uint64_t seed = 0);
  void update(const void* data, size_t n);
  uint64_t digest() const;

 private:
  void consume_blocks(const uint8_t* p, size_t n_blocks);

  uint64_t seed_ = 0;
  uint64_t lanes_[4] = {};    // (4) one accumulator per 8-byte column of a 32-byte block
  uint8_t pending_[32] = {};  // (n_pending) bytes not yet forming a whole block
  size_t n_pending_ = 0;
  uint64_t n_total_ = 0;
};

// One-shot checksum of n bytes at data (data may be null when n is 0).
uint64_t checksum64(const void* data, size_t n, uint64_t seed = 0);

}  // namespace fkv
