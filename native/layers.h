// The model's layers as forward/backward pairs (llm.c style), templated on the element type
// (float for training and inference, double for the finite-difference tests). Row-major buffers;
// shapes in brackets. Backward functions ACCUMULATE (+=) into weight gradients, so one gradient
// arena is summed over every use of a weight (time steps, encoder paths).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "blas.h"
#include "math.h"
#include "parallel.h"

namespace sat {

// out[N,M] = bias[M] broadcast over rows.
template <typename T>
inline void fill_rows(T* out, const T* bias, int N, int M) {
  for (int i = 0; i < N; i++) std::memcpy(out + (size_t)i * M, bias, sizeof(T) * M);
}

// out[M] += sum over rows of x[N,M] (row stride ld, default M). Split by column blocks across threads.
template <typename T>
inline void colsum_add(T* out, const T* x, int N, int M, int ld = 0) {
  if (ld == 0) ld = M;
  const int block = 256;
  parallel_for((M + block - 1) / block, [&](int cb) {
    int c0 = cb * block, c1 = std::min(M, c0 + block);
    for (int i = 0; i < N; i++) {
      const T* row = x + (size_t)i * ld;
      for (int c = c0; c < c1; c++) out[c] += row[c];
    }
  }, (double)N * M);
}

// ---------------------------------------------------------------- Dense: y = x W + b
// x [N,K], W [K,M], b [M] -> y [N,M]
template <typename T>
void dense_forward(T* y, const T* x, const T* w, const T* b, int N, int K, int M) {
  fill_rows(y, b, N, M);
  gemm(false, false, N, M, K, T(1), x, K, w, M, T(1), y, M);
}
// dy [N,M] -> dW [K,M] +=, db [M] +=, dx [N,K] = (dx may be null: no input gradient)
template <typename T>
void dense_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int N, int K, int M) {
  gemm(true, false, K, M, N, T(1), x, K, dy, M, T(1), dw, M);
  if (db) colsum_add(db, dy, N, M);
  if (dx) gemm(false, true, N, K, M, T(1), dy, M, w, M, T(0), dx, K);
}

// ---------------------------------------------------------------- Initial decoder state
// The paper's initial decoder state: enc [B,L,E] -> enc_mean [B,E] (mean over locations),
// h0 [B,U] = tanh(enc_mean w + b), w [E,U], b [U].
template <typename T>
void initial_state_forward(T* h0, T* enc_mean, const T* enc, const T* w, const T* b, int B, int L, int E, int U) {
  const T inv = T(1) / T(L);
  for (int i = 0; i < B; i++) {
    T* m = enc_mean + (size_t)i * E;
    std::fill(m, m + E, T(0));
    for (int l = 0; l < L; l++) {
      const T* e = enc + ((size_t)i * L + l) * E;
      for (int k = 0; k < E; k++) m[k] += e[k];
    }
    for (int k = 0; k < E; k++) m[k] *= inv;
  }
  dense_forward(h0, enc_mean, w, b, B, E, U);
  for (size_t i = 0; i < (size_t)B * U; i++) h0[i] = std::tanh(h0[i]);
}

// ---------------------------------------------------------------- Encoder: enc = relu(F We + be)
// features [N,C] (N = B*L) -> enc [N,E]
template <typename T>
void encoder_forward(T* enc, const T* features, const T* w, const T* b, int N, int C, int E) {
  dense_forward(enc, features, w, b, N, C, E);
  const size_t n = (size_t)N * E;
  for (size_t i = 0; i < n; i++) enc[i] = enc[i] > T(0) ? enc[i] : T(0);
}
// denc [N,E] (overwritten by the pre-activation gradient) -> dWe +=, dbe +=. No feature gradient.
template <typename T>
void encoder_backward(T* denc, T* dw, T* db, const T* enc, const T* features, int N, int C, int E) {
  const size_t n = (size_t)N * E;
  for (size_t i = 0; i < n; i++) denc[i] = enc[i] > T(0) ? denc[i] : T(0);
  gemm(true, false, C, E, N, T(1), features, C, denc, E, T(1), dw, E);
  colsum_add(db, denc, N, E);
}

// ---------------------------------------------------------------- Bahdanau attention, one step
// enc [B,L,E]; proj [B,L,A] = enc W1 + b1 (once per sequence); hw2 [B,A] = h W2 + b2 (row stride hs);
// v [A], bv: score[b,l] = v . tanh(proj[b,l] + hw2[b]) + bv; alpha = softmax_l(score) [B,L];
// ctx [B,E] = sum_l alpha[b,l] enc[b,l].
template <typename T>
void attention_forward(T* alpha, T* ctx, const T* enc, const T* proj, const T* hw2, int hs, const T* v, T bv,
                       int B, int L, int E, int A) {
  parallel_for(B, [&](int b) {
    T* al = alpha + (size_t)b * L;
    const T* h = hw2 + (size_t)b * hs;
    for (int l = 0; l < L; l++) {
      const T* p = proj + ((size_t)b * L + l) * A;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int a = 0; a < A; a++) s += v[a] * fast_tanh(p[a] + h[a]);
      al[l] = s + bv;
    }
    T mx = al[0];
    for (int l = 1; l < L; l++) mx = std::max(mx, al[l]);
    T sum = 0;
    for (int l = 0; l < L; l++) { al[l] = std::exp(al[l] - mx); sum += al[l]; }
    for (int l = 0; l < L; l++) al[l] /= sum;
    T* c = ctx + (size_t)b * E;
    std::fill(c, c + E, T(0));
    for (int l = 0; l < L; l++) {
      const T* e = enc + ((size_t)b * L + l) * E;
      const T w = al[l];
#pragma omp simd
      for (int k = 0; k < E; k++) c[k] += w * e[k];
    }
  }, (double)B * L * (24.0 * A + 2.0 * E));
}

// Backward of one attention step. dctx [B,E]; dalpha_extra [B,L] is added to dalpha for rows with
// extra_on[b] != 0 (the doubly stochastic regulariser; may be null). tanh is recomputed, not stored.
// Outputs: dproj [B,L,A] +=, dhw2 [B,A] = (row stride hs, like hw2), dv_rows [B,A] = and dbv_rows [B] =
// per-row dv and dbv (summed later in a fixed order, so results do not depend on the thread count).
// The enc gradient through ctx (alpha x dctx) is done by the caller as one batched GEMM.
template <typename T>
void attention_backward(T* dproj, T* dhw2, T* dv_rows, T* dbv_rows, const T* dctx, const T* dalpha_extra,
                        const uint8_t* extra_on, const T* alpha, const T* enc, const T* proj, const T* hw2,
                        int hs, const T* v, int B, int L, int E, int A, T* scratch /*[B,L]*/) {
  parallel_for(B, [&](int b) {
    const T* al = alpha + (size_t)b * L;
    const T* dc = dctx + (size_t)b * E;
    T* da = scratch + (size_t)b * L;
    T dot = 0;
    for (int l = 0; l < L; l++) {
      const T* e = enc + ((size_t)b * L + l) * E;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int k = 0; k < E; k++) s += dc[k] * e[k];
      if (dalpha_extra && extra_on[b]) s += dalpha_extra[(size_t)b * L + l];
      da[l] = s;
      dot += al[l] * s;
    }
    // softmax backward: dscore = alpha * (dalpha - sum(alpha * dalpha))
    const T* h = hw2 + (size_t)b * hs;
    T* dh = dhw2 + (size_t)b * hs;
    T* dv = dv_rows + (size_t)b * A;
    std::fill(dh, dh + A, T(0));
    std::fill(dv, dv + A, T(0));
    T dbv = 0;
    for (int l = 0; l < L; l++) {
      const T ds = al[l] * (da[l] - dot);
      dbv += ds;
      const T* p = proj + ((size_t)b * L + l) * A;
      T* dp = dproj + ((size_t)b * L + l) * A;
#pragma omp simd
      for (int a = 0; a < A; a++) {
        const T th = fast_tanh(p[a] + h[a]);
        dv[a] += ds * th;
        const T dpre = ds * v[a] * (T(1) - th * th);
        dp[a] += dpre;
        dh[a] += dpre;
      }
    }
    dbv_rows[b] = dbv;
  }, (double)B * L * (30.0 * A + 2.0 * E));
}

// ---------------------------------------------------------------- GRU cell (Keras, reset_after=True)
// Gate blocks in the 3U columns: z (update), r (reset), n (candidate).
// gx [B,3U] = input x Wk + b_in; gh [B,3U] = h Wr (row stride ghs; bias brec [3U] added here);
// h [B,U] -> hn [B,U]
//   z = sig(gx_z + gh_z + bz), r = sig(gx_r + gh_r + br), n = tanh(gx_n + r * (gh_n + bn))
//   hn = z * h + (1 - z) * n
// Saves gates [B,4U] = (z, r, n, gh_n + bn) for the backward pass.
template <typename T>
void gru_forward(T* hn, T* gates, const T* gx, const T* gh, int ghs, const T* brec, const T* h, int B, int U) {
  parallel_for(B, [&](int b) {
    const T* x = gx + (size_t)b * 3 * U;
    const T* r_ = gh + (size_t)b * ghs;
    const T* hp = h + (size_t)b * U;
    T* g = gates + (size_t)b * 4 * U;
    T* out = hn + (size_t)b * U;
    for (int j = 0; j < U; j++) {
      const T z = sigmoid(x[j] + r_[j] + brec[j]);
      const T r = sigmoid(x[U + j] + r_[U + j] + brec[U + j]);
      const T hh = r_[2 * U + j] + brec[2 * U + j];
      const T n = fast_tanh(x[2 * U + j] + r * hh);
      out[j] = z * hp[j] + (T(1) - z) * n;
      g[j] = z; g[U + j] = r; g[2 * U + j] = n; g[3 * U + j] = hh;
    }
  }, (double)B * U * 40);
}
// dhn [B,U] -> dgx [B,3U] (input-side pre-activation grads = also d b_in), dgh [B,3U] (recurrent side,
// = d brec; row stride ghs), dh [B,U] = direct path dhn * z (the caller adds dgh Wr^T).
template <typename T>
void gru_backward(T* dgx, T* dgh, int ghs, T* dh, const T* dhn, const T* gates, const T* h, int B, int U) {
  parallel_for(B, [&](int b) {
    const T* g = gates + (size_t)b * 4 * U;
    const T* hp = h + (size_t)b * U;
    const T* d = dhn + (size_t)b * U;
    T* dx = dgx + (size_t)b * 3 * U;
    T* dr_ = dgh + (size_t)b * ghs;
    T* dhp = dh + (size_t)b * U;
    for (int j = 0; j < U; j++) {
      const T z = g[j], r = g[U + j], n = g[2 * U + j], hh = g[3 * U + j];
      const T dz = d[j] * (hp[j] - n);
      const T dn = d[j] * (T(1) - z) * (T(1) - n * n);
      const T dr = dn * hh * r * (T(1) - r);
      const T dzp = dz * z * (T(1) - z);
      dx[j] = dzp; dx[U + j] = dr; dx[2 * U + j] = dn;
      dr_[j] = dzp; dr_[U + j] = dr; dr_[2 * U + j] = dn * r;
      dhp[j] = d[j] * z;
    }
  }, (double)B * U * 20);
}

// ---------------------------------------------------------------- softmax + cross-entropy, fused
// logits [N,V] with targets [N] (all real). Writes row_loss [N] = logsumexp - logit[target]; when
// grad_scale != 0 replaces logits in place with dlogits = grad_scale * (softmax - onehot).
template <typename T>
void softmax_xent(T* logits, T* row_loss, const int32_t* targets, int N, int V, T grad_scale) {
  parallel_for(N, [&](int i) {
    T* x = logits + (size_t)i * V;
    const int y = targets[i];
    T mx = x[0];
    for (int k = 1; k < V; k++) mx = std::max(mx, x[k]);
    const T shifted_y = x[y] - mx;
    T sum = 0;
    if (grad_scale != T(0)) {
#pragma omp simd
      for (int k = 0; k < V; k++) x[k] = fast_exp(x[k] - mx);
#pragma omp simd reduction(+ : sum)
      for (int k = 0; k < V; k++) sum += x[k];
      const T s = grad_scale / sum;
#pragma omp simd
      for (int k = 0; k < V; k++) x[k] *= s;
      x[y] -= grad_scale;
    } else {
#pragma omp simd reduction(+ : sum)
      for (int k = 0; k < V; k++) sum += fast_exp(x[k] - mx);
    }
    row_loss[i] = std::log(sum) - shifted_y;  // -log softmax(x)[y]
  }, (double)N * V * 20);
}

}  // namespace sat
