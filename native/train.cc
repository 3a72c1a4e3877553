// One training step: forward over the whole padded batch, then backward, written to be fast on CPUs
// without changing what the model computes:
//  - the encoder and W1·enc run once per sequence (not once per decoder step);
//  - the embedding share of the GRU input gates (x·Wx + b_in) runs as one GEMM over all T*B rows;
//  - fc1/fc2 and their gradients run as one large GEMM over the real (non-pad) rows of all steps,
//    with softmax + cross-entropy fused in place;
//  - the two matmuls of the state per step (h W2 for attention, h Wr for the GRU) are one GEMM with
//    [W2 | Wr], and likewise their input gradients in the backward pass;
//  - weight gradients of per-step matmuls (Wc, Wx, Wr, W2, W1) are one GEMM after the recurrence;
//  - attention tanh is recomputed in the backward pass instead of storing [T,B,L,A].
// With opt.reset_state (the TF tutorial's GRU, restarted from zeros every step) H[t] is only the attention
// query: the GRU's previous state is zeros, so h Wr is skipped, and no gradient flows back through the GRU.
// With opt.mean_init (the paper's sec. 3.1.2) H[0] = tanh(mean_l(enc) init_w + init_b) instead of zeros; the
// gradient left for H[0] after the recurrence flows back through it into init_w, init_b and enc.
#include <algorithm>
#include <cstring>

#include "layers.h"
#include "model.h"

namespace sat {

size_t param_size(const Dims& d, int i) {
  const size_t C = d.C, E = d.E, U = d.U, A = d.A, V = d.V;
  const size_t sizes[kNumParams] = {C * E, E, E * A, A, U * A, A, A, 1, V * E, 2 * E * 3 * U, U * 3 * U,
                                    2 * 3 * U, U * U, U, U * V, V, E * U, U};
  return sizes[i];
}

template <typename T>
static T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

template <typename T>
StepResult train_step(Workspace<T>& ws, const Dims& d, const Params<T>& p, const Params<T>* grads,
                      const T* features, const int32_t* tokens, const StepOptions& opt, const T* weights,
                      const int32_t* image_of_row, int num_images) {
  const int B = d.B, Tn = d.T, L = d.L, C = d.C, E = d.E, U = d.U, A = d.A, V = d.V;
  const int TB = Tn * B, BL = B * L, G = 3 * U, W = Tn + 1;  // W: token row width
  const int K = A + G;                                       // width of [h W2 | h Wr]
  const bool train = grads != nullptr;
  const bool reset = opt.reset_state;
  const bool mean_init = opt.mean_init;
  const double drop = train ? opt.dropout : 0.0;
  const uint32_t seed = opt.seed;

  T* enc = grow(ws.enc, (size_t)BL * E);        // [B,L,E]
  T* proj = grow(ws.proj, (size_t)BL * A);      // [B,L,A]
  T* x = grow(ws.x, (size_t)TB * E);            // [T,B,E] embeddings (after dropout)
  T* xg = grow(ws.xg, (size_t)TB * G);          // [T,B,3U] input-side gate pre-activations
  T* H = grow(ws.h, (size_t)(TB + B) * U);      // [T+1,B,U] states; H[0] = 0 or from the mean annotation
  T* enc_mean = grow(ws.enc_mean, (size_t)B * E); // [B,E] (mean_init only)
  T* gates = grow(ws.gates, (size_t)TB * 4 * U);// [T,B,4U]
  T* alpha = grow(ws.alpha, (size_t)TB * L);    // [T,B,L]
  T* ctx = grow(ws.ctx, (size_t)TB * E);        // [T,B,E]
  T* wcat = grow(ws.wcat, (size_t)U * K);      // [U, A+3U] = [W2 | Wr]
  T* hg = grow(ws.hg, (size_t)TB * K);          // [T,B,A+3U] = [h W2 + b2 | h Wr]
  T* zeros = grow(ws.zeros, (size_t)B * U);     // [B,U] the GRU's previous state in reset mode
  std::fill(zeros, zeros + (size_t)B * U, T(0));
  int32_t* rows = grow(ws.rows, (size_t)TB);
  int32_t* targets = grow(ws.targets, (size_t)TB);

  // ---- encoder and attention projection, once per image; gathered to rows when rows share images
  const bool shared = image_of_row != nullptr;
  const int NL = (shared ? num_images : B) * L;  // encoder rows
  T* enc_img = shared ? grow(ws.enc_img, (size_t)NL * E) : enc;    // [N,L,E]
  T* proj_img = shared ? grow(ws.proj_img, (size_t)NL * A) : proj; // [N,L,A]
  encoder_forward(enc_img, features, p.enc_w, p.enc_b, NL, C, E);
  dense_forward(proj_img, enc_img, p.w1, p.b1, NL, E, A);
  if (shared) {
    for (int b = 0; b < B; b++) {
      std::memcpy(enc + (size_t)b * L * E, enc_img + (size_t)image_of_row[b] * L * E, sizeof(T) * L * E);
      std::memcpy(proj + (size_t)b * L * A, proj_img + (size_t)image_of_row[b] * L * A, sizeof(T) * L * A);
    }
  }

  // ---- embeddings of every input token, then their share of the GRU input gates
  for (int t = 0; t < Tn; t++)
    for (int b = 0; b < B; b++) {
      const int tok = tokens[b * W + t];
      T* dst = x + ((size_t)t * B + b) * E;
      const T* src = p.emb + (size_t)tok * E;
      if (drop > 0) {
        const uint32_t base = (uint32_t)((t * B + b) * E);
        for (int k = 0; k < E; k++) dst[k] = src[k] * dropout_scale<T>(seed, 0, base + k, drop);
      } else {
        std::memcpy(dst, src, sizeof(T) * E);
      }
    }
  const T* Wc = p.gru_k;                  // [E,3U] context rows of the GRU kernel
  const T* Wx = p.gru_k + (size_t)E * G;  // [E,3U] embedding rows
  dense_forward(xg, x, Wx, p.gru_b, TB, E, G);

  // ---- the recurrence
  for (int u = 0; u < U; u++) {
    std::memcpy(wcat + (size_t)u * K, p.w2 + (size_t)u * A, sizeof(T) * A);
    std::memcpy(wcat + (size_t)u * K + A, p.gru_rk + (size_t)u * G, sizeof(T) * G);
  }
  if (mean_init)
    initial_state_forward(H, enc_mean, enc, p.init_w, p.init_b, B, L, E, U);
  else
    std::fill(H, H + (size_t)B * U, T(0));
  // live[t]: the recurrence at step t runs over rows 0..live[t]-1 only, every row with a real target at t or
  // later (a suffix maximum, so any padding layout is exact). Rows sorted by length, longest first, make
  // this the active rows exactly (pack_padded_sequence): self-critical batches of sampled captions, whose
  // longest sets T, skip most padding that way. The rows past live[t] are zeroed, forward and backward.
  int32_t* live = grow(ws.live, (size_t)Tn);
  for (int t = Tn - 1, m = 0; t >= 0; t--) {
    for (int b = B - 1; b >= m; b--)
      if (tokens[b * W + t + 1] != 0) { m = b + 1; break; }
    live[t] = m;
  }
  for (int t = 0; t < Tn; t++) {
    const int Bt = live[t];
    const T* h = H + (size_t)t * B * U;
    T* hn = H + (size_t)(t + 1) * B * U;
    T* hg_t = hg + (size_t)t * B * K;
    T* alpha_t = alpha + (size_t)t * BL;
    T* ctx_t = ctx + (size_t)t * B * E;
    T* gx_t = xg + (size_t)t * B * G;
    for (int b = 0; b < Bt; b++) {
      std::memcpy(hg_t + (size_t)b * K, p.b2, sizeof(T) * A);
      std::fill(hg_t + (size_t)b * K + A, hg_t + (size_t)(b + 1) * K, T(0));
    }
    std::fill(hg_t + (size_t)Bt * K, hg_t + (size_t)B * K, T(0));
    std::fill(alpha_t + (size_t)Bt * L, alpha_t + (size_t)B * L, T(0));
    std::fill(ctx_t + (size_t)Bt * E, ctx_t + (size_t)B * E, T(0));
    std::fill(hn + (size_t)Bt * U, hn + (size_t)B * U, T(0));
    if (Bt == 0) continue;
    // [h W2 + b2 | h Wr]; in reset mode only h W2 + b2, the GRU's share stays 0 (its state is zeros)
    gemm(false, false, Bt, reset ? A : K, U, T(1), h, U, wcat, K, T(1), hg_t, K);
    attention_forward(alpha_t, ctx_t, enc, proj, hg_t, K, p.v, p.bv[0], Bt, L, E, A);
    gemm(false, false, Bt, G, E, T(1), ctx_t, E, Wc, G, T(1), gx_t, G);  // += context share
    gru_forward(hn, gates + (size_t)t * B * 4 * U, gx_t, hg_t + A, K, p.gru_b + G, reset ? zeros : h, Bt, U);
  }

  // ---- output layers over the real rows of every step at once
  int nr = 0;
  for (int t = 0; t < Tn; t++)
    for (int b = 0; b < B; b++) {
      const int y = tokens[b * W + t + 1];
      if (y != 0) { rows[nr] = t * B + b; targets[nr] = y; nr++; }
    }
  T* hd = grow(ws.hd, (size_t)std::max(nr, 1) * U);      // [nr,U] GRU outputs (after dropout)
  T* f1 = grow(ws.f1, (size_t)std::max(nr, 1) * U);      // [nr,U]
  T* logits = grow(ws.logits, (size_t)std::max(nr, 1) * V);  // [nr,V], becomes dlogits
  T* row_loss = grow(ws.row_loss, (size_t)std::max(nr, 1));
  parallel_for(nr, [&](int i) {
    const int r = rows[i];
    const T* src = H + ((size_t)r + B) * U;  // H[t+1][b]
    T* dst = hd + (size_t)i * U;
    if (drop > 0) {
      for (int k = 0; k < U; k++) dst[k] = src[k] * dropout_scale<T>(seed, 1, (uint32_t)(r * U + k), drop);
    } else {
      std::memcpy(dst, src, sizeof(T) * U);
    }
  }, (double)nr * U * (drop > 0 ? 20 : 1));
  dense_forward(f1, hd, p.fc1_w, p.fc1_b, nr, U, U);
  dense_forward(logits, f1, p.fc2_w, p.fc2_b, nr, U, V);
  const T grad_scale = (train && nr > 0) ? T(1.0 / nr) : T(0);
  softmax_xent(logits, row_loss, targets, nr, V, grad_scale);
  if (weights) {  // per-sequence weights: scale each real row's loss and its logit gradient
    parallel_for(nr, [&](int i) {
      const T w = weights[rows[i] % B];
      row_loss[i] *= w;
      if (train) {
        T* g = logits + (size_t)i * V;
        for (int k = 0; k < V; k++) g[k] *= w;
      }
    }, (double)nr * V);
  }
  double ce_sum = 0;
  for (int i = 0; i < nr; i++) ce_sum += row_loss[i];

  // ---- doubly stochastic attention regulariser: lambda/B * sum_b sum_l (1 - sum_{real t} alpha)^2
  double reg = 0;
  T* reg_grad = nullptr;
  uint8_t* real = grow(ws.real, (size_t)TB);  // [T,B] target at step t is a real token
  for (int t = 0; t < Tn; t++)
    for (int b = 0; b < B; b++) real[t * B + b] = tokens[b * W + t + 1] != 0;
  if (opt.lambda > 0) {
    T* S = grow(ws.reg_sum, (size_t)BL);
    reg_grad = grow(ws.reg_grad, (size_t)BL);
    std::fill(S, S + BL, T(0));
    for (int t = 0; t < Tn; t++)
      for (int b = 0; b < B; b++)
        if (real[t * B + b])
          for (int l = 0; l < L; l++) S[b * L + l] += alpha[(size_t)t * BL + b * L + l];
    for (int i = 0; i < BL; i++) {
      const double gap = 1.0 - S[i];
      reg += gap * gap;
      reg_grad[i] = T(-2.0 * opt.lambda / B * gap);
    }
    reg *= opt.lambda / B;
  }
  StepResult result{(nr > 0 ? ce_sum / nr : 0.0) + reg, ce_sum, reg, nr};
  if (!train) return result;

  // ================================================================ backward
  const Params<T>& g = *grads;
  for (int i = 0; i < kNumParams; i++) std::fill(g.at(i), g.at(i) + param_size(d, i), T(0));

  T* df1 = grow(ws.df1, (size_t)std::max(nr, 1) * U);
  T* dhd = grow(ws.dhd, (size_t)std::max(nr, 1) * U);
  T* dh_out = grow(ws.dh_out, (size_t)TB * U);  // [T,B,U] loss gradient w.r.t. each step's output
  dense_backward(df1, g.fc2_w, g.fc2_b, logits, f1, p.fc2_w, nr, U, V);
  dense_backward(dhd, g.fc1_w, g.fc1_b, df1, hd, p.fc1_w, nr, U, U);
  std::fill(dh_out, dh_out + (size_t)TB * U, T(0));
  parallel_for(nr, [&](int i) {
    const int r = rows[i];
    T* dst = dh_out + (size_t)r * U;
    const T* src = dhd + (size_t)i * U;
    if (drop > 0) {
      for (int k = 0; k < U; k++) dst[k] = src[k] * dropout_scale<T>(seed, 1, (uint32_t)(r * U + k), drop);
    } else {
      std::memcpy(dst, src, sizeof(T) * U);
    }
  }, (double)nr * U * (drop > 0 ? 20 : 1));

  T* dh = grow(ws.dh, (size_t)B * U);     // gradient w.r.t. H[t+1] from later steps
  T* dhn = grow(ws.dhn, (size_t)B * U);   // total gradient w.r.t. H[t+1]
  T* dhp = grow(ws.dhp, (size_t)B * U);   // gradient w.r.t. H[t]
  T* dgx = grow(ws.dgx, (size_t)TB * G);    // [T,B,3U]
  T* dghw = grow(ws.dghw, (size_t)TB * K);  // [T,B,A+3U] = gradients of [h W2 + b2 | h Wr]
  T* dctx = grow(ws.dctx, (size_t)TB * E);
  T* dproj = grow(ws.dproj, (size_t)BL * A);
  T* dv_rows = grow(ws.dv_rows, (size_t)TB * A);
  T* dbv_rows = grow(ws.dbv_rows, (size_t)TB);
  T* scratch = grow(ws.scratch, (size_t)BL);
  std::fill(dh, dh + (size_t)B * U, T(0));
  std::fill(dproj, dproj + (size_t)BL * A, T(0));
  for (int t = Tn - 1; t >= 0; t--) {
    const int Bt = live[t];  // rows past it: zero gradients (the batched weight gradients below read them)
    const T* h = H + (size_t)t * B * U;
    const T* dout = dh_out + (size_t)t * B * U;
    for (int i = 0; i < Bt * U; i++) dhn[i] = dh[i] + dout[i];
    T* dgx_t = dgx + (size_t)t * B * G;
    T* dg_t = dghw + (size_t)t * B * K;
    T* dctx_t = dctx + (size_t)t * B * E;
    std::fill(dgx_t + (size_t)Bt * G, dgx_t + (size_t)B * G, T(0));
    std::fill(dg_t + (size_t)Bt * K, dg_t + (size_t)B * K, T(0));
    std::fill(dctx_t + (size_t)Bt * E, dctx_t + (size_t)B * E, T(0));
    std::fill(dv_rows + ((size_t)t * B + Bt) * A, dv_rows + (size_t)(t + 1) * B * A, T(0));
    std::fill(dbv_rows + (size_t)t * B + Bt, dbv_rows + (size_t)(t + 1) * B, T(0));
    std::fill(dhp + (size_t)Bt * U, dhp + (size_t)B * U, T(0));
    if (Bt > 0) {
      gru_backward(dgx_t, dg_t + A, K, dhp, dhn, gates + (size_t)t * B * 4 * U, reset ? zeros : h, Bt, U);
      gemm(false, true, Bt, E, G, T(1), dgx_t, G, Wc, G, T(0), dctx_t, E);  // dctx = dgx Wc^T
      attention_backward(dproj, dg_t, dv_rows + (size_t)t * B * A, dbv_rows + (size_t)t * B, dctx_t, reg_grad,
                         real + (size_t)t * B, alpha + (size_t)t * BL, enc, proj, hg + (size_t)t * B * K, K, p.v, Bt,
                         L, E, A, scratch);
      if (reset)  // H[t] reached only the attention query: dhp = dhw2 W2^T (overwrites gru_backward's z * dhn)
        gemm(false, true, Bt, U, A, T(1), dg_t, K, wcat, K, T(0), dhp, U);
      else
        gemm(false, true, Bt, U, K, T(1), dg_t, K, wcat, K, T(1), dhp, U);  // += [dhw2 | dgh] [W2 | Wr]^T
    }
    std::swap(dh, dhp);
  }

  // ---- weight gradients of the per-step matmuls, batched over all T*B rows
  gemm(true, false, E, G, TB, T(1), ctx, E, dgx, G, T(1), g.gru_k, G);                   // dWc
  gemm(true, false, E, G, TB, T(1), x, E, dgx, G, T(1), g.gru_k + (size_t)E * G, G);     // dWx
  colsum_add(g.gru_b, dgx, TB, G);
  colsum_add(g.gru_b + G, dghw + A, TB, G, K);
  if (!reset) gemm(true, false, U, G, TB, T(1), H, U, dghw + A, K, T(1), g.gru_rk, G);   // dWr (H[0..T-1]); 0 in reset mode
  gemm(true, false, U, A, TB, T(1), H, U, dghw, K, T(1), g.w2, A);                       // dW2
  colsum_add(g.b2, dghw, TB, A, K);
  colsum_add(g.v, dv_rows, TB, A);
  double dbv = 0;
  for (int i = 0; i < TB; i++) dbv += dbv_rows[i];
  g.bv[0] += T(dbv);

  // ---- embedding gradient: dx = dgx Wx^T, through dropout, scattered by token id
  T* dx = grow(ws.dx, (size_t)TB * E);
  gemm(false, true, TB, E, G, T(1), dgx, G, Wx, G, T(0), dx, E);
  for (int t = 0; t < Tn; t++)
    for (int b = 0; b < B; b++) {
      const int tok = tokens[b * W + t];
      const T* src = dx + ((size_t)t * B + b) * E;
      T* dst = g.emb + (size_t)tok * E;
      if (drop > 0) {
        const uint32_t base = (uint32_t)((t * B + b) * E);
        for (int k = 0; k < E; k++) dst[k] += src[k] * dropout_scale<T>(seed, 0, base + k, drop);
      } else {
        for (int k = 0; k < E; k++) dst[k] += src[k];
      }
    }

  // ---- encoder output gradient: through the context (alpha^T dctx per image) and through W1
  T* denc = grow(ws.denc, (size_t)BL * E);
  for (int b = 0; b < B; b++) {  // denc[b] [L,E] = alpha[:,b,:]^T [L,T] . dctx[:,b,:] [T,E]
    gemm(true, false, L, E, Tn, T(1), alpha + (size_t)b * L, BL, dctx + (size_t)b * E, B * E, T(0),
         denc + (size_t)b * L * E, E);
  }
  if (mean_init) {
    // dh = dLoss/dH[0] after the recurrence. Through tanh: dinit [B,U] = dh * (1 - H[0]^2); then
    // dinit_w = enc_mean^T dinit, dinit_b = colsum, d(enc_mean) [B,E] = dinit init_w^T, which each of
    // the L locations receives 1/L of (the mean), before the encoder's ReLU backward.
    T* dinit = grow(ws.dinit, (size_t)B * U);
    for (size_t i = 0; i < (size_t)B * U; i++) dinit[i] = dh[i] * (T(1) - H[i] * H[i]);
    T* dmean = grow(ws.dx, (size_t)std::max(TB, B) * E);  // dx is free again: reuse it as [B,E]
    dense_backward(dmean, g.init_w, g.init_b, dinit, enc_mean, p.init_w, B, E, U);
    const T inv = T(1) / T(L);
    for (int b = 0; b < B; b++)
      for (int l = 0; l < L; l++) {
        T* dst = denc + ((size_t)b * L + l) * E;
        const T* src = dmean + (size_t)b * E;
        for (int k = 0; k < E; k++) dst[k] += src[k] * inv;
      }
  }
  // Rows sharing an image: sum their encoder-output and projection gradients per image.
  T* denc_img = denc;
  T* dproj_img = dproj;
  if (shared) {
    denc_img = grow(ws.denc_img, (size_t)NL * E);
    dproj_img = grow(ws.dproj_img, (size_t)NL * A);
    std::fill(denc_img, denc_img + (size_t)NL * E, T(0));
    std::fill(dproj_img, dproj_img + (size_t)NL * A, T(0));
    for (int b = 0; b < B; b++) {
      T* de = denc_img + (size_t)image_of_row[b] * L * E;
      const T* se = denc + (size_t)b * L * E;
      for (size_t k = 0; k < (size_t)L * E; k++) de[k] += se[k];
      T* dp = dproj_img + (size_t)image_of_row[b] * L * A;
      const T* sp = dproj + (size_t)b * L * A;
      for (size_t k = 0; k < (size_t)L * A; k++) dp[k] += sp[k];
    }
  }
  gemm(false, true, NL, E, A, T(1), dproj_img, A, p.w1, A, T(1), denc_img, E);  // += dproj W1^T
  gemm(true, false, E, A, NL, T(1), enc_img, E, dproj_img, A, T(1), g.w1, A);   // dW1
  colsum_add(g.b1, dproj_img, NL, A);
  encoder_backward(denc_img, g.enc_w, g.enc_b, enc_img, features, NL, C, E);
  return result;
}

template StepResult train_step<float>(Workspace<float>&, const Dims&, const Params<float>&, const Params<float>*,
                                      const float*, const int32_t*, const StepOptions&, const float*, const int32_t*,
                                      int);
template StepResult train_step<double>(Workspace<double>&, const Dims&, const Params<double>&,
                                       const Params<double>*, const double*, const int32_t*, const StepOptions&,
                                       const double*, const int32_t*, int);

}  // namespace sat
