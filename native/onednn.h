// oneDNN matmul primitives behind native/gemm.h (internal). Without oneDNN in the build, built() is false and
// the products throw.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sat::onednn {

bool built();
// Row-major C[M,N] = alpha * op(A) op(B) + beta * C with f32 operands, or bf16 operands (alpha 1) and f32 C.
void gemm_f32(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
              float beta, float* C, int ldc);
void gemm_bf16(bool ta, bool tb, int M, int N, int K, const uint16_t* A, int lda, const uint16_t* B, int ldb,
               float beta, float* C, int ldc);
std::string version();
std::string isa();
bool has_native_bf16();
std::vector<std::string> kernels();

}  // namespace sat::onednn
