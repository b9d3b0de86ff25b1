// Device dequantization of raw GGUF weight blocks into F16 (see dequant.h for the numerics contract).
// One thread per output element: a thread block covers 256 consecutive columns of one row (a K-quant super-block, or
// eight 32-element blocks), and reads the few block bytes its element needs. Block fields are read byte by byte,
// so rows of odd-sized blocks (Q4_0 is 18 bytes) need no alignment. This is the plain version, written to be
// obviously correct; it runs once per weight at load, so its speed matters little.
//
// tests/gpu/test_cuda_dequant.cpp compares each type with the CPU reference bit for bit.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "backend/cuda/dequant.h"

namespace fkv::cuda {

namespace {

constexpr int kThreads = 256;          // columns per thread block; one K-quant super-block
constexpr int64_t kMaxBlocks = 65535;  // a grid-stride loop covers larger matrices

// ---- byte access (GGUF is little-endian, as every CUDA device is) ----

__device__ uint32_t load_u16(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8);
}

__device__ uint32_t load_u32(const uint8_t* p) { return load_u16(p) | (load_u16(p + 2) << 16); }

__device__ float f16_bits_to_float(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}

__device__ uint16_t float_to_f16_bits(float v) { return __half_as_ushort(__float2half_rn(v)); }

// The 6-bit scale (sc) and min (m) of sub-block j (0..7) from the 12 packed bytes of a Q4_K/Q5_K super-block.
__device__ void k_scale_min(const uint8_t* s, int j, int& sc, int& m) {  // s (12)
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// x = d * sc * code - dmin * m, with the CPU's rounding: (d * sc), (dmin * m), their product and difference each
// rounded separately.
__device__ float k_affine(const uint8_t* blk, int j, int code) {  // blk: d, dmin, scales[12] at bytes 0, 2, 4
  int sc = 0, m = 0;
  k_scale_min(blk + 4, j / 32, sc, m);
  const float scale = __fmul_rn(f16_bits_to_float(load_u16(blk)), static_cast<float>(sc));
  const float min = __fmul_rn(f16_bits_to_float(load_u16(blk + 2)), static_cast<float>(m));
  return __fsub_rn(__fmul_rn(scale, static_cast<float>(code)), min);
}

// ---- decoders: element j of one block, as F16 bits. kElems elements are stored in kBytes bytes. ----

struct DecodeF32 {
  static constexpr int kElems = 1, kBytes = 4;
  __device__ static uint16_t decode(const uint8_t* b, int) { return float_to_f16_bits(__uint_as_float(load_u32(b))); }
};

struct DecodeF16 {
  static constexpr int kElems = 1, kBytes = 2;
  __device__ static uint16_t decode(const uint8_t* b, int) { return static_cast<uint16_t>(load_u16(b)); }
};

struct DecodeBF16 {
  static constexpr int kElems = 1, kBytes = 2;
  __device__ static uint16_t decode(const uint8_t* b, int) {
    return float_to_f16_bits(__uint_as_float(load_u16(b) << 16));
  }
};

// d (f16) at 0, qs[32] int8 at 2: x = d * q
struct DecodeQ8_0 {
  static constexpr int kElems = 32, kBytes = 34;
  __device__ static uint16_t decode(const uint8_t* b, int j) {
    const float q = static_cast<float>(static_cast<int8_t>(b[2 + j]));
    return float_to_f16_bits(__fmul_rn(f16_bits_to_float(load_u16(b)), q));
  }
};

// d at 0, qs[16] at 2: element j < 16 is the low nibble of qs[j], j >= 16 the high nibble of qs[j - 16]; x = d * (q -
// 8)
struct DecodeQ4_0 {
  static constexpr int kElems = 32, kBytes = 18;
  __device__ static uint16_t decode(const uint8_t* b, int j) {
    const int q = j < 16 ? (b[2 + j] & 0xF) : (b[2 + j - 16] >> 4);
    return float_to_f16_bits(__fmul_rn(f16_bits_to_float(load_u16(b)), static_cast<float>(q - 8)));
  }
};

// d at 0, qh (32 bits) at 2, qs[16] at 6: Q4_0's nibbles plus bit j of qh as bit 4; x = d * (q - 16)
struct DecodeQ5_0 {
  static constexpr int kElems = 32, kBytes = 22;
  __device__ static uint16_t decode(const uint8_t* b, int j) {
    const int lo = j < 16 ? (b[6 + j] & 0xF) : (b[6 + j - 16] >> 4);
    const int q = lo | static_cast<int>(((load_u32(b + 2) >> j) & 1u) << 4);
    return float_to_f16_bits(__fmul_rn(f16_bits_to_float(load_u16(b)), static_cast<float>(q - 16)));
  }
};

// d, dmin, scales[12], qs[128] at 0, 2, 4, 16. Element j sits in 64-element chunk i = j / 64: the low nibbles of
// qs[32i .. 32i + 31] for its first half, the high nibbles for its second.
struct DecodeQ4_K {
  static constexpr int kElems = 256, kBytes = 144;
  __device__ static uint16_t decode(const uint8_t* b, int j) {
    const int i = j / 64, l = j % 64;
    const uint8_t byte = b[16 + 32 * i + l % 32];
    const int code = l < 32 ? (byte & 0xF) : (byte >> 4);
    return float_to_f16_bits(k_affine(b, j, code));
  }
};

// Q4_K plus qh[32] at 16 (qs moves to 48): bit 2i (first half of chunk i) or 2i + 1 (second half) of qh[l % 32]
// is bit 4 of the code.
struct DecodeQ5_K {
  static constexpr int kElems = 256, kBytes = 176;
  __device__ static uint16_t decode(const uint8_t* b, int j) {
    const int i = j / 64, l = j % 64;
    const uint8_t byte = b[48 + 32 * i + l % 32];
    const int low = l < 32 ? (byte & 0xF) : (byte >> 4);
    const int high = (b[16 + l % 32] >> (2 * i + (l < 32 ? 0 : 1))) & 1;
    return float_to_f16_bits(k_affine(b, j, low | (high << 4)));
  }
};

// ql[128], qh[64], scales[16] int8, d (f16) at 0, 128, 192, 208. Element j lies in half n = j / 128, quarter
// k = (j % 128) / 32, lane l = j % 32: low 4 bits from ql[64n + l + 32 (k & 1)] (low nibble for k < 2, high
// otherwise), high 2 bits from qh[32n + l] >> 2k. x = (d * scales[j / 16]) * (q - 32).
struct DecodeQ6_K {
  static constexpr int kElems = 256, kBytes = 210;
  __device__ static uint16_t decode(const uint8_t* b, int j) {
    const int n = j / 128, k = (j % 128) / 32, l = j % 32;
    const uint8_t ql = b[64 * n + l + 32 * (k & 1)];
    const int low = k < 2 ? (ql & 0xF) : (ql >> 4);
    const int high = (b[128 + 32 * n + l] >> (2 * k)) & 3;
    const float scale =
        __fmul_rn(f16_bits_to_float(load_u16(b + 208)), static_cast<float>(static_cast<int8_t>(b[192 + j / 16])));
    return float_to_f16_bits(__fmul_rn(scale, static_cast<float>((low | (high << 4)) - 32)));
  }
};

// out (n_rows, n_cols) f16 from raw (n_rows, row_bytes). Thread block t of the grid-stride loop covers columns
// [256 * (t % tiles_per_row), + 256) of row t / tiles_per_row.
template <class D>
__global__ void dequant_kernel(const uint8_t* raw, int64_t row_bytes, int64_t n_rows, int64_t n_cols,
                               int64_t tiles_per_row, uint16_t* out) {
  const int64_t n_tiles = n_rows * tiles_per_row;
  for (int64_t t = blockIdx.x; t < n_tiles; t += gridDim.x) {
    const int64_t row = t / tiles_per_row;
    const int64_t col = (t % tiles_per_row) * kThreads + threadIdx.x;
    if (col >= n_cols) continue;
    const uint8_t* block = raw + row * row_bytes + (col / D::kElems) * D::kBytes;
    out[row * n_cols + col] = D::decode(block, static_cast<int>(col % D::kElems));
  }
}

template <class D>
Status launch(DType type, const void* raw, int64_t n_rows, int64_t n_cols, uint16_t* out, StreamHandle stream) {
  // The decoders' geometry must agree with the engine's table, which the CPU path and the file reader use.
  const DTypeInfo& info = dtype_info(type);
  if (info.block_size != D::kElems || info.type_size != static_cast<size_t>(D::kBytes))
    return err("dequantize_to_f16: block geometry of ", info.name, " is ", info.block_size, " elements in ",
               info.type_size, " bytes, expected ", D::kElems, " in ", D::kBytes);
  const int64_t tiles_per_row = (n_cols + kThreads - 1) / kThreads;
  const auto blocks = static_cast<unsigned>(std::min<int64_t>(n_rows * tiles_per_row, kMaxBlocks));
  const auto row_bytes = static_cast<int64_t>(fkv::row_bytes(type, n_cols));
  dequant_kernel<D><<<blocks, kThreads, 0, stream>>>(static_cast<const uint8_t*>(raw), row_bytes, n_rows, n_cols,
                                                     tiles_per_row, out);
  return launch_status("dequant_kernel");
}

Status check_args(DType type, const void* raw, int64_t n_rows, int64_t n_cols, const uint16_t* out) {
  if (!dequant_supported(type))
    return err("dequantize_to_f16: expected a weight type (F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K), found ",
               dtype_name_raw(static_cast<uint32_t>(type)));
  if (n_rows < 0 || n_cols < 0)
    return err("dequantize_to_f16: expected n_rows >= 0 and n_cols >= 0, found ", n_rows, " x ", n_cols);
  const int64_t block = dtype_info(type).block_size;
  if (n_cols % block != 0)
    return err("dequantize_to_f16: expected n_cols a multiple of ", dtype_name(type), "'s block size ", block,
               ", found ", n_cols);
  if (n_rows > 0 && n_cols > std::numeric_limits<int64_t>::max() / n_rows)
    return err("dequantize_to_f16: expected n_rows * n_cols to fit in 64 bits, found ", n_rows, " x ", n_cols);
  if (n_rows * n_cols > 0 && (raw == nullptr || out == nullptr))
    return err("dequantize_to_f16: expected device pointers for ", n_rows, " x ", n_cols,
               " elements, found a null pointer");
  return {};
}

}  // namespace

bool dequant_supported(DType t) {
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16:
    case DType::Q4_0:
    case DType::Q5_0:
    case DType::Q8_0:
    case DType::Q4_K:
    case DType::Q5_K:
    case DType::Q6_K:
      return true;
    default:
      return false;
  }
}

Status dequantize_to_f16(DType type, const void* raw, int64_t n_rows, int64_t n_cols, uint16_t* out,
                         StreamHandle stream) {
  FKV_TRY(check_args(type, raw, n_rows, n_cols, out));
  if (n_rows == 0 || n_cols == 0) return {};
  switch (type) {
    case DType::F32:
      return launch<DecodeF32>(type, raw, n_rows, n_cols, out, stream);
    case DType::F16:
      return launch<DecodeF16>(type, raw, n_rows, n_cols, out, stream);
    case DType::BF16:
      return launch<DecodeBF16>(type, raw, n_rows, n_cols, out, stream);
    case DType::Q4_0:
      return launch<DecodeQ4_0>(type, raw, n_rows, n_cols, out, stream);
    case DType::Q5_0:
      return launch<DecodeQ5_0>(type, raw, n_rows, n_cols, out, stream);
    case DType::Q8_0:
      return launch<DecodeQ8_0>(type, raw, n_rows, n_cols, out, stream);
    case DType::Q4_K:
      return launch<DecodeQ4_K>(type, raw, n_rows, n_cols, out, stream);
    case DType::Q5_K:
      return launch<DecodeQ5_K>(type, raw, n_rows, n_cols, out, stream);
    case DType::Q6_K:
      return launch<DecodeQ6_K>(type, raw, n_rows, n_cols, out, stream);
    default:
      break;  // refused by check_args
  }
  return err("dequantize_to_f16: no kernel for ", dtype_name(type));
}

}  // namespace fkv::cuda
