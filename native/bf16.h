// bfloat16 storage: the top 16 bits of an IEEE float (sign, 8-bit exponent, 7 stored mantissa bits), rounded to
// nearest even. Only matmul operands are stored in bf16; everything else stays float.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "parallel.h"

namespace sat {

inline uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);  // NaN stays a (quiet) NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

inline float from_bf16(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// dst[i] = bf16(src[i]) for n elements (AVX512-BF16's vcvtneps2bf16 where the build has it: same rounding).
inline void to_bf16_serial(uint16_t* dst, const float* src, size_t n) {
  size_t i = 0;
#if defined(__AVX512BF16__) && defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    const __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), (__m256i)h);
  }
#endif
  for (; i < n; i++) dst[i] = to_bf16(src[i]);
}

// The same over the worker threads, in chunks.
inline void to_bf16(uint16_t* dst, const float* src, size_t n) {
  constexpr size_t kChunk = 1 << 15;
  const int chunks = (int)((n + kChunk - 1) / kChunk);
  parallel_for(chunks, [&](int c) {
    const size_t i0 = (size_t)c * kChunk, len = std::min(kChunk, n - i0);
    to_bf16_serial(dst + i0, src + i0, len);
  }, (double)n);
}

// Rows of a strided matrix: dst [R,M] (row stride ldd) = bf16(src [R,M] (row stride lds)).
inline void to_bf16_rows(uint16_t* dst, size_t ldd, const float* src, size_t lds, int R, int M) {
  parallel_for(R, [&](int r) { to_bf16_serial(dst + (size_t)r * ldd, src + (size_t)r * lds, (size_t)M); },
               (double)R * M);
}

}  // namespace sat
