// Scalar helpers written so that gcc/clang vectorise the loops that call them (no libm calls in the
// hot loops; needs -fno-trapping-math). float uses approximations accurate to a few 1e-7;
// double (the finite-difference tests) uses libm.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "simd.h"

namespace sat {

// exp(x) for float, relative error ~1e-7 on [-87, 88]; branch-free so it vectorises.
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;  // x - n*ln2 in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n. A NaN x gives a NaN n (and a NaN result through p): cast 0 then, since casting NaN to int and shifting
  // the negative int it gives are undefined behaviour (found by `npm run check:sanitize`).
  const float n_finite = n == n ? n : 0.0f;
  int32_t bits = (static_cast<int32_t>(n_finite) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
inline double fast_exp(double x) {
  return std::exp(x);
}

// tanh for float: Eigen's rational approximation (odd degree-13 / even degree-6 polynomials on
// [-7.9, 7.9], beyond which tanh is 1 in float). Max abs error ~3e-7; no exp, no branches.
inline float fast_tanh(float x) {
  const float c = 7.90531110763549805f;
  x = x < -c ? -c : (x > c ? c : x);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}
inline double fast_tanh(double x) {
  return std::tanh(x);
}

#if defined(__AVX512F__)
// fast_exp on 16 floats: the same range reduction and polynomial; 2^n by vscalefps.
inline __m512 fast_exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f)),
                                        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// fast_tanh on 16 floats: the same rational approximation, with the division as a reciprocal estimate (rcp14,
// relative error 2^-14) and one Newton step (error ~2^-28): a division costs several times more on x86.
inline __m512 fast_tanh16(__m512 x) {
  const __m512 c = _mm512_set1_ps(7.90531110763549805f);
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_sub_ps(_mm512_setzero_ps(), c)), c);
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-2.76076847742355e-16f);
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.00018790482477e-13f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-8.60467152213735e-11f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(5.12229709037114e-08f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(1.48572235717979e-05f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(6.37261928875436e-04f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(4.89352455891786e-03f));
  __m512 q = _mm512_set1_ps(1.19825839466702e-06f);
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(1.18534705686654e-04f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(2.26843463243900e-03f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(4.89352518554385e-03f));
  __m512 r = _mm512_rcp14_ps(q);  // q >= 4.9e-3 > 0
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f)));
  return _mm512_mul_ps(_mm512_mul_ps(x, p), r);
}
#endif

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + fast_exp(-x));
}

// Counter-based dropout masks: keep(seed, stream, i) is a pure function, so the backward pass
// regenerates the forward pass's mask instead of storing it, and a seed reproduces a run.
inline uint32_t hash_u32(uint32_t seed, uint32_t stream, uint32_t i) {
  uint32_t h = seed * 0x9E3779B1u ^ (stream + 0x7F4A7C15u) * 0x85EBCA77u ^ i * 0xC2B2AE3Du;
  h ^= h >> 16;
  h *= 0x7FEB352Du;
  h ^= h >> 15;
  h *= 0x846CA68Bu;
  h ^= h >> 16;
  return h;
}
// Multiplier for element i: 0 (dropped) or 1/(1-p) (kept, inverted dropout).
template <typename T>
inline T dropout_scale(uint32_t seed, uint32_t stream, uint32_t i, double p) {
  double u = (hash_u32(seed, stream, i) >> 8) * (1.0 / 16777216.0);
  return u < p ? T(0) : T(1.0 / (1.0 - p));
}

}  // namespace sat
