// <immintrin.h> for the AVX-512 paths (vecmath.h, bf16.h). GCC 12's own AVX-512 intrinsics trip its
// -Wmaybe-uninitialized: _mm512_undefined_ps() and friends are `__m512 __Y = __Y;` on purpose (GCC bug 105593,
// fixed in GCC 13), reported wherever _mm512_max_ps, _mm512_rcp14_ps, _mm512_extractf64x4_pd ... are inlined.
// The warning is switched off for this header only, so it still covers the project's code.
#pragma once
#if defined(__AVX512F__)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif
