// CBLAS side of native/gemm.h and the backend switch.
#include "gemm.h"

#include <stdexcept>

#if defined(__APPLE__)
#define ACCELERATE_NEW_LAPACK 1
#include <Accelerate/Accelerate.h>
#elif __has_include(<cblas.h>)
#include <cblas.h>
#else
#error \
    "cblas.h not found: the native training core needs OpenBLAS. Install it (Debian/Ubuntu: `sudo apt-get install libopenblas-dev`), then rerun `npm ci`."
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <random>

#include "bf16.h"
#include "onednn.h"
#include "profile.h"

namespace sat {

namespace {
// Process-wide, read once per product: atomic because model threads may run steps while another thread switches it.
std::atomic<GemmBackend> g_backend{default_gemm_backend()};
GemmBackend backend_now() {
  return g_backend.load(std::memory_order_relaxed);
}
thread_local StepWeights* g_step_weights = nullptr;

// K = 0: C = beta * C (what BLAS does; oneDNN has no empty reduction).
template <typename T>
void scale_only(int M, int N, T beta, T* C, int ldc) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == T(0) ? T(0) : beta * C[(size_t)i * ldc + j];
}
}  // namespace

bool onednn_built() {
  return onednn::built();
}
GemmBackend default_gemm_backend() {
  return onednn::built() ? GemmBackend::onednn : GemmBackend::cblas;
}
GemmBackend gemm_backend() {
  return backend_now();
}
const char* gemm_backend_name(GemmBackend b) {
  return b == GemmBackend::onednn ? "onednn" : "cblas";
}

void set_gemm_backend(GemmBackend b) {
  if (b == GemmBackend::onednn && !onednn::built())
    throw std::invalid_argument("this build has no oneDNN (install libdnnl-dev, then rebuild the addon)");
  g_backend.store(b, std::memory_order_relaxed);
}

void cblas_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
              ldb, beta, C, ldc);
}

StepWeights::StepWeights() : previous_(g_step_weights) {
  g_step_weights = this;
  onednn::new_weight_generation();
}
StepWeights::~StepWeights() {
  g_step_weights = previous_;
  onednn::new_weight_generation();
}
void StepWeights::add(const float* w, size_t n) {
  ranges_.emplace_back(w, n);
}
bool StepWeights::contains(const float* x, size_t extent) const {
  for (const auto& [w, n] : ranges_)
    if (x >= w && x + extent <= w + n) return true;
  return false;
}

// A float product on oneDNN (K > 0): bf16 when both operands are mirrored (native/bf16.h), B in its preferred
// layout when it is a step weight, bias (beta 0) or beta accumulation.
static void onednn_product(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
                           int ldb, float beta, float* C, int ldc, const float* bias) {
  const size_t a_extent = ta ? (size_t)(K - 1) * lda + M : (size_t)(M - 1) * lda + K;
  const size_t b_extent = tb ? (size_t)(N - 1) * ldb + K : (size_t)(K - 1) * ldb + N;
  const bool weight = g_step_weights && g_step_weights->contains(B, b_extent);
  if (Bf16Mirrors* mirrors = active_bf16_mirrors; mirrors && alpha == 1.0f) {
    const uint16_t* A16 = mirrors->find(A, a_extent);
    const uint16_t* B16 = A16 ? mirrors->find(B, b_extent) : nullptr;
    if (A16 && B16) return onednn::gemm_bf16(ta, tb, M, N, K, A16, lda, B16, ldb, beta, C, ldc, weight, bias);
  }
  onednn::gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, weight, bias);
}

void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
          float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  ProfileMatmul timer;
  if (backend_now() == GemmBackend::onednn) {
    if (K == 0) return scale_only(M, N, beta, C, ldc);
    return onednn_product(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr);
  }
  cblas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
static void fill_bias(T* C, int ldc, const T* bias, int M, int N) {
  for (int i = 0; i < M; i++) std::memcpy(C + (size_t)i * ldc, bias, sizeof(T) * N);
}

void gemm_bias(int M, int N, int K, const float* A, int lda, const float* B, int ldb, const float* bias, float* C,
               int ldc) {
  if (M == 0 || N == 0) return;
  if (backend_now() == GemmBackend::onednn && K > 0) {
    ProfileMatmul timer;
    return onednn_product(false, false, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc, bias);
  }
  fill_bias(C, ldc, bias, M, N);
  gemm(false, false, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc);
}

void gemm_bias(int M, int N, int K, const double* A, int lda, const double* B, int ldb, const double* bias, double* C,
               int ldc) {
  if (M == 0 || N == 0) return;
  fill_bias(C, ldc, bias, M, N);
  gemm(false, false, M, N, K, 1.0, A, lda, B, ldb, 1.0, C, ldc);
}

void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B, int ldb,
          double beta, double* C, int ldc) {
  if (M == 0 || N == 0) return;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
              ldb, beta, C, ldc);
}

void gemm_batched(bool ta, bool tb, int batch, int M, int N, int K, const float* A, int lda, int64_t sa, const float* B,
                  int ldb, int64_t sb, float beta, float* C, int ldc, int64_t sc) {
  if (M == 0 || N == 0 || batch == 0) return;
  ProfileMatmul timer;
  if (backend_now() == GemmBackend::onednn && K > 0)
    return onednn::gemm_f32_batched(ta, tb, batch, M, N, K, A, lda, sa, B, ldb, sb, beta, C, ldc, sc);
  for (int i = 0; i < batch; i++)
    cblas_gemm(ta, tb, M, N, K, 1.0f, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
}

void gemm_batched(bool ta, bool tb, int batch, int M, int N, int K, const double* A, int lda, int64_t sa,
                  const double* B, int ldb, int64_t sb, double beta, double* C, int ldc, int64_t sc) {
  for (int i = 0; i < batch; i++) gemm(ta, tb, M, N, K, 1.0, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
}

void gemm_bf16(bool ta, bool tb, int M, int N, int K, const uint16_t* A, int lda, const uint16_t* B, int ldb,
               float beta, float* C, int ldc) {
  if (M == 0 || N == 0) return;
  ProfileMatmul timer;
  if (K == 0) return scale_only(M, N, beta, C, ldc);
  onednn::gemm_bf16(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc, false, nullptr);
}

void set_blas_threads(int n) {
#if !defined(__APPLE__) && defined(OPENBLAS_VERSION)
  openblas_set_num_threads(n);
#else
  (void)n;
#endif
}

int get_blas_threads() {
#if !defined(__APPLE__) && defined(OPENBLAS_VERSION)
  return openblas_get_num_threads();
#else
  return 1;
#endif
}

std::string blas_kernels() {
#if defined(__APPLE__)
  return "Accelerate";
#elif defined(OPENBLAS_VERSION)
  return std::string("OpenBLAS ") + openblas_get_corename();
#else
  return "CBLAS";
#endif
}

std::vector<double> gemm_peak(GemmBackend backend, bool bf16, int M, int N, int K, int repeats) {
  std::vector<float> a((size_t)M * K), b((size_t)K * N), c((size_t)M * N);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& x : a) x = u(rng);
  for (float& x : b) x = u(rng);
  std::vector<uint16_t> a16, b16;
  if (bf16) {
    a16.resize(a.size());
    b16.resize(b.size());
    to_bf16(a16.data(), a.data(), a.size());
    to_bf16(b16.data(), b.data(), b.size());
  }
  const auto once = [&] {
    if (bf16)
      onednn::gemm_bf16(false, false, M, N, K, a16.data(), K, b16.data(), N, 0.0f, c.data(), N);
    else if (backend == GemmBackend::onednn)
      onednn::gemm_f32(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
    else
      cblas_gemm(false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c.data(), N);
  };
  once();  // creates the primitive, warms the caches
  std::vector<double> seconds;
  for (int r = 0; r < repeats; r++) {
    const auto t0 = std::chrono::steady_clock::now();
    once();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return seconds;
}

std::string onednn_version() {
  return onednn::version();
}
std::string onednn_isa() {
  return onednn::isa();
}
bool onednn_has_native_bf16() {
  return onednn::has_native_bf16();
}
std::vector<std::string> onednn_kernels() {
  return onednn::kernels();
}

}  // namespace sat
