// Dequantization on the device: a row-major matrix stored as raw GGUF blocks (the bytes of the file, uploaded as they
// are) becomes F16 (n_rows, n_cols), the weight layout cuda::matmul_f16 expects.
//
// Numerics equal the CPU reference (cpu::ref::dequantize_row) followed by f32 -> f16 rounding to nearest even: each
// element is computed in float with the same operations in the same order (multiplies and subtractions are issued
// as separately rounded __fmul_rn / __fsub_rn, so nvcc cannot contract them into an FMA the CPU does not do), then
// rounded once to F16. F16 input is copied bit for bit (the CPU round trip would also quiet a signalling NaN).
//
// tests/gpu/test_cuda_dequant.cpp compares every type with the CPU bit for bit.
#pragma once

#include <cstdint>

#include "backend/cuda/cuda_util.h"
#include "core/dtype.h"
#include "fkv/status.h"

namespace fkv::cuda {

// True for the weight types dequantize_to_f16 decodes: F32, F16, BF16, Q4_0, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K.
bool dequant_supported(DType t);

// out = dequantize(raw), rounded to F16, enqueued on `stream`.
// raw: (n_rows, row_bytes(type, n_cols)) bytes on the device, any alignment (fields are read byte by byte);
// out: (n_rows, n_cols) f16 on the device. n_cols must be a multiple of the type's block size.
// Shapes and pointers are checked on the host; an empty matrix launches nothing.
Status dequantize_to_f16(DType type, const void* raw, int64_t n_rows, int64_t n_cols, uint16_t* out,
                         StreamHandle stream);

}  // namespace fkv::cuda
