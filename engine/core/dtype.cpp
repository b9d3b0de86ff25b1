#include "core/dtype.h"

namespace fkv {

namespace {
constexpr int64_t kQK = 256;  // super-block size of the K-quants
}

const DTypeInfo& dtype_info(DType t) {
  static const DTypeInfo f32{"F32", 1, 4};
  static const DTypeInfo f16{"F16", 1, 2};
  static const DTypeInfo bf16{"BF16", 1, 2};
  static const DTypeInfo q4_0{"Q4_0", 32, 2 + 16};
  static const DTypeInfo q5_0{"Q5_0", 32, 2 + 4 + 16};
  static const DTypeInfo q8_0{"Q8_0", 32, 2 + 32};
  static const DTypeInfo q4_k{"Q4_K", kQK, 2 + 2 + 12 + kQK / 2};
  static const DTypeInfo q5_k{"Q5_K", kQK, 2 + 2 + 12 + kQK / 8 + kQK / 2};
  static const DTypeInfo q6_k{"Q6_K", kQK, kQK / 2 + kQK / 4 + kQK / 16 + 2};
  static const DTypeInfo q8_k{"Q8_K", kQK, 4 + kQK + kQK / 16 * 2};
  switch (t) {
    case DType::F32: return f32;
    case DType::F16: return f16;
    case DType::BF16: return bf16;
    case DType::Q4_0: return q4_0;
    case DType::Q5_0: return q5_0;
    case DType::Q8_0: return q8_0;
    case DType::Q4_K: return q4_k;
    case DType::Q5_K: return q5_k;
    case DType::Q6_K: return q6_k;
    case DType::Q8_K: return q8_k;
  }
  return f32;
}

bool dtype_supported(uint32_t raw) {
  switch (raw) {
    case 0: case 1: case 2: case 6: case 8: case 12: case 13: case 14: case 30: return true;
    default: return false;
  }
}

std::string dtype_name_raw(uint32_t raw) {
  static const char* const names[] = {
      "F32",  "F16",     "Q4_0",    "Q4_1",   "Q4_2",  "Q4_3",  "Q5_0",   "Q5_1",  "Q8_0",   "Q8_1",  "Q2_K",
      "Q3_K", "Q4_K",    "Q5_K",    "Q6_K",   "Q8_K",  "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
      "IQ2_S", "IQ4_XS", "I8",      "I16",    "I32",   "I64",   "F64",    "IQ1_M", "BF16"};
  if (raw < sizeof(names) / sizeof(names[0])) return names[raw];
  return "type " + std::to_string(raw);
}

}  // namespace fkv
