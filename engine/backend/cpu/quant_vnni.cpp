// The tiled Q4_0/Q5_0/Q8_0 kernel with AVX-512 VNNI's int8 dot (vpdpbusd on 256-bit registers: one instruction where
// AVX2 needs maddubs and madd). Built with -mavx512f -mavx512vl -mavx512bw -mavx512vnni on top of the AVX2 flags;
// quant.cpp calls in only after its runtime check (vnni_detected).
#include <immintrin.h>

#include "backend/cpu/quant_impl.h"
#include "backend/cpu/tile_q32.h"

namespace fkv::cpu::vnni {

namespace {

struct DotVnni {
  static __m256i dot(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }
};

}  // namespace

TileFn tile_fn(DType t) {
  switch (t) {
    case DType::Q4_0:
      return q32::tile_q32<q32::UnpackQ4_0, DotVnni, kQ32TileTokens>;
    case DType::Q5_0:
      return q32::tile_q32<q32::UnpackQ5_0, DotVnni, kQ32TileTokens>;
    case DType::Q8_0:
      return q32::tile_q32<q32::UnpackQ8_0, DotVnni, kQ32TileTokens>;
    default:
      return nullptr;
  }
}

}  // namespace fkv::cpu::vnni
