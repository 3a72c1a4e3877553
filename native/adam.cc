// Adam over the whole parameter arena in one pass, and the squared gradient norm for clipping.
#include <algorithm>
#include <cmath>
#include <vector>

#include "model.h"
#include "parallel.h"

namespace sat {

static constexpr size_t kChunk = 1 << 16;

double sum_squares(const float* x, size_t n) {
  const int chunks = (int)((n + kChunk - 1) / kChunk);
  std::vector<double> part(chunks);
  parallel_for(
      chunks,
      [&](int c) {
        const size_t i0 = (size_t)c * kChunk, i1 = std::min(n, i0 + kChunk);
        double s = 0;
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * x[i];
        part[c] = s;
      },
      (double)n);
  double s = 0;
  for (double v : part) s += v;  // fixed order: same result for any thread count
  return s;
}

void adam_update(float* p, const float* g, float* m, float* v, size_t n, double lr, double beta1, double beta2,
                 double eps, int step, double grad_scale) {
  // Keras: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t); p -= alpha * m / (sqrt(v) + eps)
  const float alpha = (float)(lr * std::sqrt(1.0 - std::pow(beta2, step)) / (1.0 - std::pow(beta1, step)));
  const float b1 = (float)beta1, b2 = (float)beta2, e = (float)eps, gs = (float)grad_scale;
  const int chunks = (int)((n + kChunk - 1) / kChunk);
  parallel_for(
      chunks,
      [&](int c) {
        const size_t i0 = (size_t)c * kChunk, i1 = std::min(n, i0 + kChunk);
#pragma omp simd
        for (size_t i = i0; i < i1; i++) {
          const float gi = g[i] * gs;
          m[i] = b1 * m[i] + (1.0f - b1) * gi;
          v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
          p[i] -= alpha * m[i] / (std::sqrt(v[i]) + e);
        }
      },
      10.0 * n);
}

}  // namespace sat
