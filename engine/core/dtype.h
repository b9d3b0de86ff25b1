// Tensor element types as numbered by GGUF, with block geometry. Quantized types store blocks of
// `block_size` elements in `type_size` bytes.
#pragma once

#include "fkv/options.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace fkv {

enum class DType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q5_0 = 6,  // Gemma 3 270M Q4_K_M uses it for rows whose length is not a multiple of 256
  Q8_0 = 8,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,  // activations only: the partner of the K-quants in dot products
  BF16 = 30,
};

struct DTypeInfo {
  const char* name;
  int64_t block_size;  // elements per block
  size_t type_size;    // bytes per block
};

// Block geometry for a supported type.
const DTypeInfo& dtype_info(DType t);
inline const char* dtype_name(DType t) { return dtype_info(t).name; }

// The KV cache's element type as the public options name it, and back (a type no KV cache uses reads as f16).
inline DType kv_dtype(KvType t) { return t == KvType::f32 ? DType::F32 : t == KvType::bf16 ? DType::BF16 : DType::F16; }
inline KvType kv_type_of(DType t) {
  return t == DType::F32 ? KvType::f32 : t == DType::BF16 ? KvType::bf16 : KvType::f16;
}

// True when the engine can load weights of this GGUF type id.
bool dtype_supported(uint32_t raw);

// The GGUF name of any type id (also the ones the engine does not support), for error messages: "IQ2_XXS", "type 99".
std::string dtype_name_raw(uint32_t raw);

// Bytes for `n` elements; n must be a multiple of the block size (checked by callers that read files).
inline size_t row_bytes(DType t, int64_t n) {
  const DTypeInfo& i = dtype_info(t);
  return static_cast<size_t>(n / i.block_size) * i.type_size;
}

}  // namespace fkv
