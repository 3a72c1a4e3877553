// CBLAS entry points, overloaded for float (training, inference) and double (the test-only
// finite-difference path). OpenBLAS on Linux, Accelerate on macOS.
#pragma once

#if defined(__APPLE__)
#define ACCELERATE_NEW_LAPACK 1
#include <Accelerate/Accelerate.h>
#elif __has_include(<cblas.h>)
#include <cblas.h>
#else
#error "cblas.h not found: the native training core needs OpenBLAS. Install it (Debian/Ubuntu: `sudo apt-get install libopenblas-dev`), then rerun `npm ci`."
#endif

namespace sat {

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
inline void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda,
                 const float* B, int ldb, float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}
inline void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda,
                 const double* B, int ldb, double beta, double* C, int ldc) {
  if (M == 0 || N == 0) return;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, A, lda, B, ldb, beta, C, ldc);
}

// Threads used by BLAS for large GEMMs (OpenBLAS only; Accelerate manages its own).
inline void set_blas_threads(int n) {
#if !defined(__APPLE__) && defined(OPENBLAS_VERSION)
  openblas_set_num_threads(n);
#else
  (void)n;
#endif
}
inline int get_blas_threads() {
#if !defined(__APPLE__) && defined(OPENBLAS_VERSION)
  return openblas_get_num_threads();
#else
  return 1;
#endif
}

}  // namespace sat
