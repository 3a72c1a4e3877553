// Matrix products of the native core. float goes to the selected backend: oneDNN matmul primitives where the
// build has oneDNN (Linux with libdnnl-dev), else CBLAS (OpenBLAS, or Accelerate on macOS); the backend can be
// switched at run time to compare the two. double (the finite-difference tests) always runs CBLAS dgemm.
// bf16 inputs (f32 accumulation and output) need oneDNN.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sat {

enum class GemmBackend { cblas, onednn };

// The backend is one setting for the whole process (every thread, every model). Switching it is atomic and
// applies to the products that start afterwards, so it is safe while another thread runs a step; that step may
// then mix the two backends (still correct, no longer bit-identical to a step on either). Set it before starting
// steps when results must reproduce (SAT_GEMM_BACKEND does, when the addon is loaded).
bool onednn_built();                   // the build has oneDNN
GemmBackend default_gemm_backend();    // oneDNN when built, else CBLAS
void set_gemm_backend(GemmBackend b);  // throws std::invalid_argument for oneDNN when not built
GemmBackend gemm_backend();
const char* gemm_backend_name(GemmBackend b);

// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C (op = transpose when ta/tb).
void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
          float beta, float* C, int ldc);
void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B, int ldb,
          double beta, double* C, int ldc);
// C[M,N] = A[M,K] B[K,N] + bias[N] broadcast over the rows (a Dense layer). oneDNN adds the bias inside the
// product; CBLAS (and double) fill C with it and accumulate onto it.
void gemm_bias(int M, int N, int K, const float* A, int lda, const float* B, int ldb, const float* bias, float* C,
               int ldc);
void gemm_bias(int M, int N, int K, const double* A, int lda, const double* B, int ldb, const double* bias, double* C,
               int ldc);
// The same with bf16 operands (raw bf16 bits) and f32 accumulation and output, through oneDNN.
void gemm_bf16(bool ta, bool tb, int M, int N, int K, const uint16_t* A, int lda, const uint16_t* B, int ldb,
               float beta, float* C, int ldc);
// `batch` products C_i = op(A_i) op(B_i) + beta C_i with A_i = A + i*sa, B_i = B + i*sb, C_i = C + i*sc (one
// oneDNN primitive, or a loop of CBLAS calls); float32, or float64 through CBLAS.
void gemm_batched(bool ta, bool tb, int batch, int M, int N, int K, const float* A, int lda, int64_t sa, const float* B,
                  int ldb, int64_t sb, float beta, float* C, int ldc, int64_t sc);
void gemm_batched(bool ta, bool tb, int batch, int M, int N, int K, const double* A, int lda, int64_t sa,
                  const double* B, int ldb, int64_t sb, double beta, double* C, int ldc, int64_t sc);

// The weights of one training step: while a StepWeights is open on this thread, a float product whose B operand
// lies in one of them may use a copy of it in oneDNN's preferred layout, made once per StepWeights (weights must
// not change while it is open). Decoding opens none: its products read the weights as stored.
class StepWeights {
 public:
  StepWeights();
  ~StepWeights();
  void add(const float* w, size_t n);
  bool contains(const float* x, size_t extent) const;
  StepWeights(const StepWeights&) = delete;
  StepWeights& operator=(const StepWeights&) = delete;

 private:
  std::vector<std::pair<const float*, size_t>> ranges_;
  StepWeights* previous_;
};

// CBLAS sgemm directly, whatever the backend (the benchmark's peak).
void cblas_gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                float beta, float* C, int ldc);

// Seconds of each of `repeats` products C[M,N] = A[M,K] B[K,N] on random operands (bf16: converted beforehand),
// after one untimed product: the benchmark's matmul roofs.
std::vector<double> gemm_peak(GemmBackend backend, bool bf16, int M, int N, int K, int repeats);

// Threads of the CBLAS library (OpenBLAS only; Accelerate manages its own). oneDNN uses the OpenMP threads.
void set_blas_threads(int n);
int get_blas_threads();

// What ran: the BLAS library and its kernels (OpenBLAS core name), oneDNN's version, effective ISA and the
// implementations of the matmul primitives created so far (e.g. "brg:avx512_core_bf16").
std::string blas_kernels();
std::string onednn_version();
std::string onednn_isa();
bool onednn_has_native_bf16();  // oneDNN's effective ISA has bf16 instructions (AVX512-BF16 or AMX)
std::vector<std::string> onednn_kernels();

}  // namespace sat
