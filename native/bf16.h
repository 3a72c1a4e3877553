// bfloat16 storage: the top 16 bits of an IEEE float (sign, 8-bit exponent, 7 stored mantissa bits), rounded to
// nearest even; denormal inputs flush to signed zero (test/bf16-reference.test.ts holds both to a reference).
// Only matmul operands are stored in bf16; everything else stays float.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "parallel.h"
#include "simd.h"

namespace sat {

// Denormal inputs (0 < |x| < 2^-126) become zero of the same sign, as AVX512-BF16's vcvtneps2bf16 does: the
// vector and scalar paths below must agree, or a value's rounding would depend on its position in the buffer.
inline uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);  // NaN stays a (quiet) NaN
  if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);         // zero or denormal: signed zero
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
  parallel_for(
      chunks,
      [&](int c) {
        const size_t i0 = (size_t)c * kChunk, len = std::min(kChunk, n - i0);
        to_bf16_serial(dst + i0, src + i0, len);
      },
      (double)n);
}

// Rows of a strided matrix: dst [R,M] (row stride ldd) = bf16(src [R,M] (row stride lds)).
inline void to_bf16_rows(uint16_t* dst, size_t ldd, const float* src, size_t lds, int R, int M) {
  parallel_for(
      R, [&](int r) { to_bf16_serial(dst + (size_t)r * ldd, src + (size_t)r * lds, (size_t)M); }, (double)R * M);
}

}  // namespace sat

namespace sat {

// bf16 copies ("mirrors") of float buffers for the matrix products of one training step in bf16 precision.
// While a Bf16Scope is open on this thread, gemm() runs a float product with bf16 operands (f32 accumulation and
// output) when both operands lie inside mirrored buffers; every other product stays f32. The step mirrors each
// weight once per step and each activation or gradient once, where it is produced (add / refresh), so no
// operand is converted per product. Storage is kept across steps (entries are reused by buffer address).
class Bf16Mirrors {
 public:
  // Opens a new step: every mirror becomes stale until added again.
  void begin_step() {
    for (Entry& e : entries_) e.active = false;
  }
  // Mirrors x[0..n) now (converting every element).
  void add(const float* x, size_t n) {
    Entry& e = entry_for(x, n);
    to_bf16(e.bf16.data(), x, n);
  }
  // Mirrors x[0..n) without converting: its parts are converted by refresh() as they are written.
  void reserve(const float* x, size_t n) { entry_for(x, n); }
  // Reconverts x[0..n), which must lie inside a mirrored buffer.
  void refresh(const float* x, size_t n) {
    if (uint16_t* m = find(x, n)) to_bf16(m, x, n);
  }
  void refresh_rows(const float* x, size_t ld, int rows, int cols) {
    if (rows <= 0) return;
    if (uint16_t* m = find(x, (size_t)(rows - 1) * ld + cols)) to_bf16_rows(m, ld, x, ld, rows, cols);
  }
  // The bf16 copy of x[0..extent), or null when x is not inside an active mirror.
  uint16_t* find(const float* x, size_t extent) {
    for (Entry& e : entries_)
      if (e.active && x >= e.begin && x + extent <= e.begin + e.n) return e.bf16.data() + (x - e.begin);
    return nullptr;
  }

 private:
  struct Entry {
    const float* begin = nullptr;
    size_t n = 0;
    bool active = false;
    std::vector<uint16_t> bf16;
  };
  Entry& entry_for(const float* x, size_t n) {
    Entry* free_entry = nullptr;
    for (Entry& e : entries_) {
      if (e.begin == x) {
        free_entry = &e;
        break;
      }
      if (!e.active && !free_entry) free_entry = &e;
    }
    if (!free_entry) free_entry = &entries_.emplace_back();
    Entry& e = *free_entry;
    e.begin = x;
    e.n = n;
    e.active = true;
    if (e.bf16.size() < n) e.bf16.resize(n);
    return e;
  }
  std::vector<Entry> entries_;
};

// The mirrors gemm() consults on this thread (null: all products f32).
inline thread_local Bf16Mirrors* active_bf16_mirrors = nullptr;

class Bf16Scope {
 public:
  explicit Bf16Scope(Bf16Mirrors* m) : previous_(active_bf16_mirrors) { active_bf16_mirrors = m; }
  ~Bf16Scope() { active_bf16_mirrors = previous_; }
  Bf16Scope(const Bf16Scope&) = delete;
  Bf16Scope& operator=(const Bf16Scope&) = delete;

 private:
  Bf16Mirrors* previous_;
};

}  // namespace sat
