// oneDNN matmul primitives behind native/gemm.h (internal). Without oneDNN in the build, built() is false and
// the products throw.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sat::onednn {

bool built();
// Row-major C[M,N] = alpha * op(A) op(B) + beta * C with f32 operands, or bf16 operands (alpha 1) and f32 C.
// packed_b: B is a weight of the current step, reordered once per weight generation into the primitive's
// preferred layout and reused from there. bias [N] (f32, or null) is added to every row of the product.
void gemm_f32(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
              float beta, float* C, int ldc, bool packed_b = false, const float* bias = nullptr);
void gemm_bf16(bool ta, bool tb, int M, int N, int K, const uint16_t* A, int lda, const uint16_t* B, int ldb,
               float beta, float* C, int ldc, bool packed_b = false, const float* bias = nullptr);
// `batch` products at once, operand i at A + i*sa, B + i*sb, C + i*sc (one 3-D primitive).
void gemm_f32_batched(bool ta, bool tb, int batch, int M, int N, int K, const float* A, int lda, int64_t sa,
                      const float* B, int ldb, int64_t sb, float beta, float* C, int ldc, int64_t sc);
// The step weights changed: packed copies are reordered again on their next use.
void new_weight_generation();
// Runs a product oneDNN refuses (a negative size), for the test of the error path: throws what any oneDNN error
// becomes, a std::runtime_error naming the primitive and its shapes.
void fail_for_test();
std::string version();
std::string isa();
bool has_native_bf16();
std::vector<std::string> kernels();

}  // namespace sat::onednn
