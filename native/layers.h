// The model's layers as forward/backward pairs (llm.c style), templated on the element type
// (float for training and inference, double for the finite-difference tests). Row-major buffers;
// shapes in brackets. Backward functions ACCUMULATE (+=) into weight gradients, so one gradient
// arena is summed over every use of a weight (time steps, paths into the annotation vectors).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "gemm.h"
#include "vecmath.h"
#include "parallel.h"

namespace sat {

// out[M] += sum over rows of x[N,M] (row stride ld, default M). Split by column blocks across threads.
template <typename T>
inline void colsum_add(T* out, const T* x, int N, int M, int ld = 0) {
  if (ld == 0) ld = M;
  const int block = 256;
  parallel_for((M + block - 1) / block,
               [&](int cb) {
                 int c0 = cb * block, c1 = std::min(M, c0 + block);
                 for (int i = 0; i < N; i++) {
                   const T* row = x + (size_t)i * ld;
                   for (int c = c0; c < c1; c++) out[c] += row[c];
                 }
               },
               (double)N * M);
}

// ---------------------------------------------------------------- Dense: y = x W + b
// x [N,K], W [K,M], b [M] -> y [N,M]
template <typename T>
void dense_forward(T* y, const T* x, const T* w, const T* b, int N, int K, int M) {
  gemm_bias(N, M, K, x, K, w, M, b, y, M);
}
// dy [N,M] -> dW [K,M] +=, db [M] +=, dx [N,K] = (or += with accumulate_dx; dx may be null: no input gradient)
template <typename T>
void dense_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int N, int K, int M,
                    bool accumulate_dx = false) {
  gemm(true, false, K, M, N, T(1), x, K, dy, M, T(1), dw, M);
  if (db) colsum_add(db, dy, N, M);
  if (dx) gemm(false, true, N, K, M, T(1), dy, M, w, M, accumulate_dx ? T(1) : T(0), dx, K);
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

// dh0 [B,U] (the loss gradient w.r.t. H[0]) -> dw [E,U] +=, db [U] +=, denc [B,L,E] += 1/L of d(enc_mean) at
// every location. Scratch: dpre [B,U] (through tanh), dmean [B,E].
template <typename T>
void initial_state_backward(T* denc, T* dw, T* db, const T* dh0, const T* h0, const T* enc_mean, const T* w, int B,
                            int L, int E, int U, T* dpre, T* dmean) {
  for (size_t i = 0; i < (size_t)B * U; i++) dpre[i] = dh0[i] * (T(1) - h0[i] * h0[i]);
  dense_backward(dmean, dw, db, dpre, enc_mean, w, B, E, U);
  const T inv = T(1) / T(L);
  for (int i = 0; i < B; i++)
    for (int l = 0; l < L; l++) {
      T* dst = denc + ((size_t)i * L + l) * E;
      const T* src = dmean + (size_t)i * E;
      for (int k = 0; k < E; k++) dst[k] += src[k] * inv;
    }
}

// ---------------------------------------------------------------- Feature projection: enc = relu(F Wp + bp)
// The model's Dense + ReLU from CNN features to annotation vectors. features [N,C] (N = B*L) -> enc [N,E]
template <typename T>
void projection_forward(T* enc, const T* features, const T* w, const T* b, int N, int C, int E) {
  dense_forward(enc, features, w, b, N, C, E);
  const size_t n = (size_t)N * E;
  for (size_t i = 0; i < n; i++) enc[i] = enc[i] > T(0) ? enc[i] : T(0);
}
// denc [N,E] (overwritten by the pre-activation gradient) -> dWp +=, dbp +=. No feature gradient.
// on_masked(denc) runs between the ReLU backward and the products (the bf16 step mirrors denc there).
struct NoHook {
  template <typename... Args>
  void operator()(Args&&...) const {}
};
template <typename T, typename Hook = NoHook>
void projection_backward(T* denc, T* dw, T* db, const T* enc, const T* features, int N, int C, int E,
                         Hook&& on_masked = {}) {
  const size_t n = (size_t)N * E;
  for (size_t i = 0; i < n; i++) denc[i] = enc[i] > T(0) ? denc[i] : T(0);
  on_masked(static_cast<const T*>(denc));
  gemm(true, false, C, E, N, T(1), features, C, denc, E, T(1), dw, E);
  colsum_add(db, denc, N, E);
}

// ---------------------------------------------------------------- Rows that share images
// Several rows (captions) of one image: x_img [N,R] per image -> x [B,R] per row, x[b] = x_img[image_of_row[b]]
// (R = L*E annotation vectors, or L*A attention keys).
template <typename T>
void image_gather_forward(T* x, const T* x_img, const int32_t* image_of_row, int B, size_t R) {
  for (int b = 0; b < B; b++) std::memcpy(x + (size_t)b * R, x_img + (size_t)image_of_row[b] * R, sizeof(T) * R);
}
// dx [B,R] -> dx_img [N,R] = the sum over the rows of each image (overwritten; rows added in order b).
template <typename T>
void image_gather_backward(T* dx_img, const T* dx, const int32_t* image_of_row, int B, int N, size_t R) {
  std::fill(dx_img, dx_img + (size_t)N * R, T(0));
  for (int b = 0; b < B; b++) {
    T* dst = dx_img + (size_t)image_of_row[b] * R;
    const T* src = dx + (size_t)b * R;
    for (size_t k = 0; k < R; k++) dst[k] += src[k];
  }
}

// ---------------------------------------------------------------- Dropout (inverted, counter-based masks)
// Element (i,k) of an [N,M] activation keeps with probability 1-p (scaled by 1/(1-p)), drawn from counter
// row_id(i)*M + k of `stream` (vecmath.h dropout_scale). The mask is a pure function of (seed, stream, row id, k):
// the backward pass regenerates it, and a gathered row keeps the mask of the row it came from.
struct DropoutMask {
  double p = 0;  // drop probability; 0 = off
  uint32_t seed = 0;
  uint32_t stream = 0;  // one stream per dropout site
  bool on() const { return p > 0; }
  // Counter of element (row, k) of an [*,M] activation.
  static uint32_t base(uint32_t row, int M) { return row * (uint32_t)M; }
  template <typename T>
  T scale(uint32_t base, int k) const {
    return dropout_scale<T>(seed, stream, base + (uint32_t)k, p);
  }
};

// x [N,M] *= mask, in place; row_ids [N] (row i's id) or null (id = i).
template <typename T>
void dropout_forward(T* x, int N, int M, const int32_t* row_ids, const DropoutMask& mask) {
  if (!mask.on()) return;
  parallel_for(
      N,
      [&](int i) {
        T* row = x + (size_t)i * M;
        const uint32_t base = DropoutMask::base((uint32_t)(row_ids ? row_ids[i] : i), M);
        for (int k = 0; k < M; k++) row[k] *= mask.scale<T>(base, k);
      },
      (double)N * M * 20);
}
// dx [N,M] *= the forward pass's mask.
template <typename T>
void dropout_backward(T* dx, int N, int M, const int32_t* row_ids, const DropoutMask& mask) {
  dropout_forward(dx, N, M, row_ids, mask);
}

// ---------------------------------------------------------------- Embedding: token gather / gradient scatter
// tokens [B,W] (row b's input token at step t in column t), emb [V,E] -> x [T,B,E], x[t,b] = emb[tokens[b,t]].
template <typename T>
void embedding_forward(T* x, const T* emb, const int32_t* tokens, int W, int Tn, int B, int E) {
  for (int t = 0; t < Tn; t++)
    for (int b = 0; b < B; b++)
      std::memcpy(x + ((size_t)t * B + b) * E, emb + (size_t)tokens[(size_t)b * W + t] * E, sizeof(T) * E);
}
// dx [T,B,E] -> demb [V,E] += dx, scattered by token id in (t, b) order. `mask`: the dropout that followed the
// gather in the forward pass (row ids t*B+b), applied inside the scatter-add so each element is one fused
// multiply-add, as dropout_backward followed by a plain scatter would round twice.
template <typename T>
void embedding_backward(T* demb, const T* dx, const int32_t* tokens, int W, int Tn, int B, int E,
                        const DropoutMask& mask) {
  for (int t = 0; t < Tn; t++)
    for (int b = 0; b < B; b++) {
      const T* src = dx + ((size_t)t * B + b) * E;
      T* dst = demb + (size_t)tokens[(size_t)b * W + t] * E;
      if (mask.on()) {
        const uint32_t base = DropoutMask::base((uint32_t)(t * B + b), E);
        for (int k = 0; k < E; k++) dst[k] += src[k] * mask.scale<T>(base, k);
      } else {
        for (int k = 0; k < E; k++) dst[k] += src[k];
      }
    }
}

// ---------------------------------------------------------------- Row gather / scatter
// x [R,M] -> out [N,M], out[i] = x[rows[i]]
template <typename T>
void gather_rows(T* out, const T* x, const int32_t* rows, int N, int M) {
  parallel_for(
      N, [&](int i) { std::memcpy(out + (size_t)i * M, x + (size_t)rows[i] * M, sizeof(T) * M); }, (double)N * M);
}
// dout [N,M] -> dx [R,M], dx[rows[i]] = dout[i] (rows must be distinct; other rows are left as they are).
template <typename T>
void scatter_rows(T* dx, const T* dout, const int32_t* rows, int N, int M) {
  parallel_for(
      N, [&](int i) { std::memcpy(dx + (size_t)rows[i] * M, dout + (size_t)i * M, sizeof(T) * M); }, (double)N * M);
}

// ---------------------------------------------------------------- Attention score, per location
// s = sum_a v[a] tanh(p[a] + h[a]) over A attention units (p: the location's key, h: the query's share).
template <typename T>
inline T attention_score(const T* p, const T* h, const T* v, int A) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int a = 0; a < A; a++) s += v[a] * fast_tanh(p[a] + h[a]);
  return s;
}
// Its backward for the score gradient ds, with tanh recomputed: th = tanh(p + h), dv += ds th,
// dpre = ds v (1 - th^2), dp += dpre, dh += dpre.
template <typename T>
inline void attention_score_backward(T ds, const T* p, const T* h, const T* v, T* dv, T* dp, T* dh, int A) {
#pragma omp simd
  for (int a = 0; a < A; a++) {
    const T th = fast_tanh(p[a] + h[a]);
    dv[a] += ds * th;
    const T dpre = ds * v[a] * (T(1) - th * th);
    dp[a] += dpre;
    dh[a] += dpre;
  }
}
#if defined(__AVX512F__)
// float on AVX-512: 16 units at a time with fast_tanh16; masked tails.
inline float attention_score(const float* p, const float* h, const float* v, int A) {
  __m512 acc = _mm512_setzero_ps();
  for (int a = 0; a < A; a += 16) {
    const __mmask16 m = A - a >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (A - a)) - 1);
    const __m512 th = fast_tanh16(_mm512_add_ps(_mm512_maskz_loadu_ps(m, p + a), _mm512_maskz_loadu_ps(m, h + a)));
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, v + a), th, acc);  // v = 0 in masked lanes
  }
  return _mm512_reduce_add_ps(acc);
}
inline void attention_score_backward(float ds, const float* p, const float* h, const float* v, float* dv, float* dp,
                                     float* dh, int A) {
  const __m512 vds = _mm512_set1_ps(ds), one = _mm512_set1_ps(1.0f);
  for (int a = 0; a < A; a += 16) {
    const __mmask16 m = A - a >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (A - a)) - 1);
    const __m512 th = fast_tanh16(_mm512_add_ps(_mm512_maskz_loadu_ps(m, p + a), _mm512_maskz_loadu_ps(m, h + a)));
    _mm512_mask_storeu_ps(dv + a, m, _mm512_fmadd_ps(vds, th, _mm512_maskz_loadu_ps(m, dv + a)));
    const __m512 dpre =
        _mm512_mul_ps(_mm512_mul_ps(vds, _mm512_maskz_loadu_ps(m, v + a)), _mm512_fnmadd_ps(th, th, one));
    _mm512_mask_storeu_ps(dp + a, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dp + a), dpre));
    _mm512_mask_storeu_ps(dh + a, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, dh + a), dpre));
  }
}
#endif

// ---------------------------------------------------------------- Bahdanau attention, one step
// enc [B,L,E]; keys [B,L,A] = enc W1 + b1 (once per image); hw2 [B,A] = h W2 + b2 (row stride hs);
// v [A], bv: score[b,l] = v . tanh(keys[b,l] + hw2[b]) + bv; alpha = softmax_l(score) [B,L];
// ctx [B,E] = sum_l alpha[b,l] enc[b,l]. With image_of_row [B], enc and keys hold one row per image instead
// ([images,L,E], [images,L,A]) and row b reads image image_of_row[b]'s.
template <typename T>
void attention_forward(T* alpha, T* ctx, const T* enc, const T* keys, const T* hw2, int hs, const T* v, T bv, int B,
                       int L, int E, int A, const int32_t* image_of_row = nullptr) {
  parallel_for(
      B,
      [&](int b) {
        T* al = alpha + (size_t)b * L;
        const T* h = hw2 + (size_t)b * hs;
        const size_t img = image_of_row ? (size_t)image_of_row[b] : (size_t)b;  // the row's image in enc and keys
        for (int l = 0; l < L; l++) al[l] = attention_score(keys + (img * L + l) * A, h, v, A) + bv;
        T mx = al[0];
        for (int l = 1; l < L; l++) mx = std::max(mx, al[l]);
        T sum = 0;
        for (int l = 0; l < L; l++) {
          al[l] = std::exp(al[l] - mx);
          sum += al[l];
        }
        for (int l = 0; l < L; l++) al[l] /= sum;
        T* c = ctx + (size_t)b * E;
        std::fill(c, c + E, T(0));
        for (int l = 0; l < L; l++) {
          const T* e = enc + (img * L + l) * E;
          const T w = al[l];
#pragma omp simd
          for (int k = 0; k < E; k++) c[k] += w * e[k];
        }
      },
      (double)B * L * (24.0 * A + 2.0 * E));
}

// Backward of one attention step. dctx [B,E]; dalpha_extra [B,L] is added to dalpha for rows with
// extra_on[b] != 0 (the doubly stochastic regulariser; may be null). tanh is recomputed, not stored.
// Outputs: dkeys [B,L,A] +=, dhw2 [B,A] = (row stride hs, like hw2), dv_rows [B,A] = and dbv_rows [B] =
// per-row dv and dbv (summed later in a fixed order, so results do not depend on the thread count).
// The enc gradient through ctx (alpha x dctx) is done by the caller as one batched GEMM.
template <typename T>
void attention_backward(T* dkeys, T* dhw2, T* dv_rows, T* dbv_rows, const T* dctx, const T* dalpha_extra,
                        const uint8_t* extra_on, const T* alpha, const T* enc, const T* keys, const T* hw2, int hs,
                        const T* v, int B, int L, int E, int A, T* scratch /*[B,L]*/) {
  parallel_for(
      B,
      [&](int b) {
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
          attention_score_backward(ds, keys + ((size_t)b * L + l) * A, h, v, dv, dkeys + ((size_t)b * L + l) * A, dh,
                                   A);
        }
        dbv_rows[b] = dbv;
      },
      (double)B * L * (30.0 * A + 2.0 * E));
}

// The annotation vectors' gradient through the contexts of all T steps, per row: alpha [T,B,L], dctx [T,B,E]
// -> denc [B,L,E] = (overwritten) denc[b] = alpha[:,b,:]^T dctx[:,b,:], a batch of B [L,T]x[T,E] products.
template <typename T>
void attention_context_backward(T* denc, const T* alpha, const T* dctx, int Tn, int B, int L, int E) {
  gemm_batched(true, false, B, L, E, Tn, alpha, B * L, L, dctx, B * E, E, T(0), denc, E, (int64_t)L * E);
}

// ---------------------------------------------------------------- Doubly stochastic attention regulariser
// Xu et al. 2015 eq. (14): every location should receive about one unit of attention over the caption.
// alpha [T,B,L], real [T,B] (the target at step t is a real token) -> S [B,L] = sum over real steps of alpha;
// returns lambda/B * sum_{b,l} (1 - S[b,l])^2.
template <typename T>
double attention_regularizer_forward(T* S, const T* alpha, const uint8_t* real, int Tn, int B, int L, double lambda) {
  const int BL = B * L;
  std::fill(S, S + BL, T(0));
  for (int t = 0; t < Tn; t++)
    for (int b = 0; b < B; b++)
      if (real[t * B + b])
        for (int l = 0; l < L; l++) S[b * L + l] += alpha[(size_t)t * BL + b * L + l];
  double reg = 0;
  for (int i = 0; i < BL; i++) {
    const double gap = 1.0 - S[i];
    reg += gap * gap;
  }
  return reg * (lambda / B);
}
// S [B,L] -> dalpha [B,L], the gradient w.r.t. alpha[t,b,l] for every real step t (the same for all of them):
// -2 lambda/B (1 - S). attention_backward adds it on the real steps.
template <typename T>
void attention_regularizer_backward(T* dalpha, const T* S, int B, int L, double lambda) {
  for (int i = 0; i < B * L; i++) {
    const double gap = 1.0 - S[i];
    dalpha[i] = T(-2.0 * lambda / B * gap);
  }
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
  parallel_for(
      B,
      [&](int b) {
        const T* x = gx + (size_t)b * 3 * U;
        const T* r_ = gh + (size_t)b * ghs;
        const T* hp = h + (size_t)b * U;
        T* g = gates + (size_t)b * 4 * U;
        T* out = hn + (size_t)b * U;
#pragma omp simd
        for (int j = 0; j < U; j++) {
          const T z = sigmoid(x[j] + r_[j] + brec[j]);
          const T r = sigmoid(x[U + j] + r_[U + j] + brec[U + j]);
          const T hh = r_[2 * U + j] + brec[2 * U + j];
          const T n = fast_tanh(x[2 * U + j] + r * hh);
          out[j] = z * hp[j] + (T(1) - z) * n;
          g[j] = z;
          g[U + j] = r;
          g[2 * U + j] = n;
          g[3 * U + j] = hh;
        }
      },
      (double)B * U * 40);
}
// dhn [B,U] -> dgx [B,3U] (input-side pre-activation grads = also d b_in), dgh [B,3U] (recurrent side,
// = d brec; row stride ghs), dh [B,U] = direct path dhn * z (the caller adds dgh Wr^T).
template <typename T>
void gru_backward(T* dgx, T* dgh, int ghs, T* dh, const T* dhn, const T* gates, const T* h, int B, int U) {
  parallel_for(
      B,
      [&](int b) {
        const T* g = gates + (size_t)b * 4 * U;
        const T* hp = h + (size_t)b * U;
        const T* d = dhn + (size_t)b * U;
        T* dx = dgx + (size_t)b * 3 * U;
        T* dr_ = dgh + (size_t)b * ghs;
        T* dhp = dh + (size_t)b * U;
#pragma omp simd
        for (int j = 0; j < U; j++) {
          const T z = g[j], r = g[U + j], n = g[2 * U + j], hh = g[3 * U + j];
          const T dz = d[j] * (hp[j] - n);
          const T dn = d[j] * (T(1) - z) * (T(1) - n * n);
          const T dr = dn * hh * r * (T(1) - r);
          const T dzp = dz * z * (T(1) - z);
          dx[j] = dzp;
          dx[U + j] = dr;
          dx[2 * U + j] = dn;
          dr_[j] = dzp;
          dr_[U + j] = dr;
          dr_[2 * U + j] = dn * r;
          dhp[j] = d[j] * z;
        }
      },
      (double)B * U * 20);
}

// ---------------------------------------------------------------- softmax + cross-entropy, fused
// x[k] = exp(x[k] - mx) in place; returns their sum.
template <typename T>
inline T exp_shifted(T* x, T mx, int V) {
#pragma omp simd
  for (int k = 0; k < V; k++) x[k] = fast_exp(x[k] - mx);
  T sum = 0;
#pragma omp simd reduction(+ : sum)
  for (int k = 0; k < V; k++) sum += x[k];
  return sum;
}
#if defined(__AVX512F__)
inline float exp_shifted(float* x, float mx, int V) {
  const __m512 m = _mm512_set1_ps(mx);
  __m512 acc = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= V; k += 16) {
    const __m512 e = fast_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + k), m));
    _mm512_storeu_ps(x + k, e);
    acc = _mm512_add_ps(acc, e);
  }
  float sum = _mm512_reduce_add_ps(acc);
  for (; k < V; k++) {
    x[k] = fast_exp(x[k] - mx);
    sum += x[k];
  }
  return sum;
}
#endif

// logits [N,V] with targets [N] (all real). Writes row_loss [N] = logsumexp - logit[target]; when
// grad_scale != 0 replaces logits in place with dlogits = grad_scale * (softmax - onehot).
// Label smoothing eps > 0 trains towards q = (1 - eps) onehot + eps / V (Szegedy et al. 2016):
// row_loss = (1 - eps) (logsumexp - logit[target]) + eps (logsumexp - mean(logits)), dlogits = grad_scale (softmax -
// q).
template <typename T>
void softmax_xent(T* logits, T* row_loss, const int32_t* targets, int N, int V, T grad_scale, T eps = T(0)) {
  parallel_for(
      N,
      [&](int i) {
        T* x = logits + (size_t)i * V;
        const int y = targets[i];
        T mx = x[0];
#pragma omp simd reduction(max : mx)
        for (int k = 1; k < V; k++) mx = std::max(mx, x[k]);
        const T shifted_y = x[y] - mx;
        T shifted_mean = 0;
        if (eps != T(0)) {
#pragma omp simd reduction(+ : shifted_mean)
          for (int k = 0; k < V; k++) shifted_mean += x[k];
          shifted_mean = shifted_mean / T(V) - mx;
        }
        T sum = 0;
        if (grad_scale != T(0)) {
          sum = exp_shifted(x, mx, V);
          const T s = grad_scale / sum;
#pragma omp simd
          for (int k = 0; k < V; k++) x[k] *= s;
          if (eps != T(0)) {
            const T uniform = grad_scale * eps / T(V);
#pragma omp simd
            for (int k = 0; k < V; k++) x[k] -= uniform;
          }
          x[y] -= grad_scale * (T(1) - eps);
        } else {
#pragma omp simd reduction(+ : sum)
          for (int k = 0; k < V; k++) sum += fast_exp(x[k] - mx);
        }
        const T lse = std::log(sum);  // logsumexp - mx
        row_loss[i] = (T(1) - eps) * (lse - shifted_y) + eps * (lse - shifted_mean);
      },
      (double)N * V * 20);
}

}  // namespace sat
