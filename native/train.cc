// One training step: forward over the whole padded batch, then backward, as a sequence of layer calls
// (native/layers.h), written to be fast on CPUs without changing what the model computes:
//  - the feature projection and W1·enc run once per image (not once per decoder step);
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

#include "bf16.h"
#include "layers.h"
#include "model.h"
#include "profile.h"

namespace sat {

namespace {

// Product of sizes if it is at most kMaxElements, else -1 (never overflows: each factor is checked first).
constexpr int64_t kMaxElements = 2147483647;  // 2^31-1
int64_t bounded_product(const int64_t (&factors)[3]) {
  int64_t n = 1;
  for (int64_t f : factors) {
    if (f < 0 || f > kMaxElements) return -1;
    n *= f;  // both <= 2^31-1: fits int64
    if (n > kMaxElements) return -1;
  }
  return n;
}

}  // namespace

const char* oversized_buffer(const Dims& d, int images) {
  const int64_t B = d.B, T = d.T, L = d.L, C = d.C, E = d.E, U = d.U, A = d.A, V = d.V, N = images;
  struct Buffer {
    const char* name;
    int64_t factors[3];
  };
  const int64_t R = std::max(N, B);  // rows of annotation vectors / keys (per image and per caption row)
  const Buffer buffers[] = {
      {"features [N,L,C]", {N, L, C}},
      {"tokens [B,T+1]", {B, T + 1, 1}},
      {"annotation vectors [N,L,E]", {R, L, E}},
      {"attention keys [N,L,A]", {R, L, A}},
      {"states [T+1,B,U]", {T + 1, B, U}},
      {"gates [T,B,4U]", {T, B, 4 * U}},
      {"embeddings [T,B,E]", {T, B, E}},
      {"state products [T,B,A+3U]", {T, B, A + 3 * U}},
      {"attention [T,B,L]", {T, B, L}},
      {"logits [T*B,V]", {T, B, V}},
      {"per-row dv [T,B,A]", {T, B, A}},
      {"logits [N,V]", {B, V, 1}},
      {"gate inputs [N,4U]", {B, 4 * U, 1}},
      {"projection kernel [C,E]", {C, E, 1}},
      {"W1 [E,A]", {E, A, 1}},
      {"W2 [U,A]", {U, A, 1}},
      {"embeddings [V,E]", {V, E, 1}},
      {"gru.kernel [2E,3U]", {2 * E, 3 * U, 1}},
      {"[W2 | Wr] [U,A+3U]", {U, A + 3 * U, 1}},
      {"fc1 [U,U]", {U, U, 1}},
      {"fc2 [U,V]", {U, V, 1}},
      {"init_state [E,U]", {E, U, 1}},
  };
  for (const Buffer& b : buffers)
    if (bounded_product(b.factors) < 0) return b.name;
  return nullptr;
}

namespace {

template <typename T>
T* grow(std::vector<T>& v, size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

// bf16 mirrors of the step's matmul operands (native/bf16.h) when it runs in bf16 precision; without (fp32, and
// always for double) every call is a no-op and every product stays in the element type.
template <typename T>
struct Mirrors {
  Bf16Mirrors* m = nullptr;
  bool on() const { return m != nullptr; }
  void add(const T* x, size_t n) const {
    if constexpr (std::is_same_v<T, float>)
      if (m) m->add(x, n);
  }
  void reserve(const T* x, size_t n) const {
    if constexpr (std::is_same_v<T, float>)
      if (m) m->reserve(x, n);
  }
  void refresh(const T* x, size_t n) const {
    if constexpr (std::is_same_v<T, float>)
      if (m) m->refresh(x, n);
  }
};

// The step's sizes and the layout of its token rows.
struct StepShape {
  int B, Tn, L, C, E, U, A, V;
  int TB, BL, G, W, K;  // T*B, B*L, 3U, token row width T+1, width A+3U of [h W2 | h Wr]
  int N, NL;            // images whose features are given, and their N*L projection rows
  bool shared;          // rows share images (image_of_row)
};

StepShape shape_of(const Dims& d, bool shared, int num_images) {
  StepShape s{d.B, d.T,       d.L,       d.C,     d.E,     d.U,           d.A,
              d.V, d.T * d.B, d.B * d.L, 3 * d.U, d.T + 1, d.A + 3 * d.U, shared ? num_images : d.B,
              0,   shared};
  s.NL = s.N * s.L;
  return s;
}

// Forward activations kept for the backward pass (views into the Workspace).
template <typename T>
struct Activations {
  T* enc_img;        // [N,L,E] annotation vectors per image
  T* keys_img;       // [N,L,A] attention keys enc W1 + b1 per image
  T* enc;            // [B,L,E] per row (= enc_img when rows do not share images)
  T* keys;           // [B,L,A] per row
  T* x;              // [T,B,E] input embeddings (after dropout)
  T* xg;             // [T,B,3U] GRU input-gate pre-activations (embedding and context shares + b_in)
  T* H;              // [T+1,B,U] decoder states; H[0] = 0 or from the mean annotation vector
  T* enc_mean;       // [B,E] mean annotation vector (mean_init only)
  T* gates;          // [T,B,4U] GRU gates (z, r, n, gh_n + bn)
  T* alpha;          // [T,B,L] attention weights
  T* ctx;            // [T,B,E] context vectors
  T* wcat;           // [U,A+3U] = [W2 | Wr]
  T* hg;             // [T,B,A+3U] = [h W2 + b2 | h Wr]
  T* zeros;          // [B,U] the GRU's previous state in reset mode
  int32_t* live;     // [T] rows 0..live[t]-1 run the recurrence at step t
  int32_t* rows;     // [nr] row t*B+b of each real target
  int32_t* targets;  // [nr] its token
  uint8_t* real;     // [T,B] the target at step t is a real token
  int nr;            // real targets in the batch
  T* hd;             // [nr,U] decoder outputs of the real rows (after dropout)
  T* f1;             // [nr,U] fc1 output
  T* logits;         // [nr,V] fc2 output, replaced by dlogits
  T* row_loss;       // [nr] cross-entropy per real target (times its sequence weight)
  T* reg_sum;        // [B,L] attention summed over the real steps (lambda > 0 only)
  Mirrors<T> bf16;   // bf16 copies of the matmul operands (precision bf16)
};

// live[t]: the recurrence at step t runs over rows 0..live[t]-1 only, every row with a real target at t or
// later (a suffix maximum, so any padding layout is exact). Rows sorted by length, longest first, make
// this the active rows exactly (pack_padded_sequence): self-critical batches of sampled captions, whose
// longest sets T, skip most padding that way. The rows past live[t] are zeroed, forward and backward.
void find_live_rows(int32_t* live, const int32_t* tokens, int B, int Tn) {
  const int W = Tn + 1;
  for (int t = Tn - 1, m = 0; t >= 0; t--) {
    for (int b = B - 1; b >= m; b--)
      if (tokens[(size_t)b * W + t + 1] != 0) {
        m = b + 1;
        break;
      }
    live[t] = m;
  }
}

// rows/targets of every real (non-pad) target in (t, b) order, and the real mask [T,B]; returns their count.
int find_real_targets(int32_t* rows, int32_t* targets, uint8_t* real, const int32_t* tokens, int B, int Tn) {
  const int W = Tn + 1;
  int nr = 0;
  for (int t = 0; t < Tn; t++)
    for (int b = 0; b < B; b++) {
      const int y = tokens[(size_t)b * W + t + 1];
      real[t * B + b] = y != 0;
      if (y != 0) {
        rows[nr] = t * B + b;
        targets[nr] = y;
        nr++;
      }
    }
  return nr;
}

// [W2 | Wr] [U, A+3U], so h W2 and h Wr are one GEMM per step.
template <typename T>
void pack_state_weights(T* wcat, const T* w2, const T* rk, int U, int A, int G) {
  const int K = A + G;
  for (int u = 0; u < U; u++) {
    std::memcpy(wcat + (size_t)u * K, w2 + (size_t)u * A, sizeof(T) * A);
    std::memcpy(wcat + (size_t)u * K + A, rk + (size_t)u * G, sizeof(T) * G);
  }
}

// The decoder over T steps: attention on H[t], the context's share of the GRU input gates, the GRU cell.
template <typename T>
void recurrence_forward(const StepShape& s, const Params<T>& p, Activations<T>& a, bool reset) {
  const int B = s.B, L = s.L, E = s.E, U = s.U, A = s.A, G = s.G, K = s.K, BL = s.BL;
  const T* Wc = p.gru_k();  // [E,3U] context rows of the GRU kernel
  for (int t = 0; t < s.Tn; t++) {
    const int Bt = a.live[t];
    const T* h = a.H + (size_t)t * B * U;
    T* hn = a.H + (size_t)(t + 1) * B * U;
    T* hg_t = a.hg + (size_t)t * B * K;
    T* alpha_t = a.alpha + (size_t)t * BL;
    T* ctx_t = a.ctx + (size_t)t * B * E;
    T* gx_t = a.xg + (size_t)t * B * G;
    for (int b = 0; b < Bt; b++) {
      std::memcpy(hg_t + (size_t)b * K, p.b2(), sizeof(T) * A);
      std::fill(hg_t + (size_t)b * K + A, hg_t + (size_t)(b + 1) * K, T(0));
    }
    std::fill(hg_t + (size_t)Bt * K, hg_t + (size_t)B * K, T(0));
    std::fill(alpha_t + (size_t)Bt * L, alpha_t + (size_t)B * L, T(0));
    std::fill(ctx_t + (size_t)Bt * E, ctx_t + (size_t)B * E, T(0));
    std::fill(hn + (size_t)Bt * U, hn + (size_t)B * U, T(0));
    if (Bt == 0) {
      a.bf16.refresh(ctx_t, (size_t)B * E);
      a.bf16.refresh(hn, (size_t)B * U);
      continue;
    }
    {  // [h W2 + b2 | h Wr]; in reset mode only h W2 + b2, the GRU's share stays 0 (its state is zeros)
      ProfileSection section("fwd state matmul");
      gemm(false, false, Bt, reset ? A : K, U, T(1), h, U, a.wcat, K, T(1), hg_t, K);
    }
    {
      ProfileSection section("fwd attention");
      attention_forward(alpha_t, ctx_t, a.enc, a.keys, hg_t, K, p.v(), p.bv()[0], Bt, L, E, A);
      a.bf16.refresh(ctx_t, (size_t)B * E);
    }
    {
      ProfileSection section("fwd context matmul");
      gemm(false, false, Bt, G, E, T(1), ctx_t, E, Wc, G, T(1), gx_t, G);  // += context share
    }
    ProfileSection section("fwd gru");
    gru_forward(hn, a.gates + (size_t)t * B * 4 * U, gx_t, hg_t + A, K, p.gru_b() + G, reset ? a.zeros : h, Bt, U);
    a.bf16.refresh(hn, (size_t)B * U);
  }
}

// Gradients flowing back through the recurrence, per step (weight gradients are batched afterwards).
template <typename T>
struct RecurrenceGrads {
  T* dh_out;    // [T,B,U] loss gradient w.r.t. each step's output (in)
  T* dgx;       // [T,B,3U] GRU input-side pre-activation gradients
  T* dghw;      // [T,B,A+3U] gradients of [h W2 + b2 | h Wr]
  T* dctx;      // [T,B,E]
  T* dkeys;     // [B,L,A] += through the attention scores
  T* dv_rows;   // [T,B,A] per-row dv
  T* dbv_rows;  // [T,B] per-row dbv
  T* dh;        // [B,U] out: the gradient w.r.t. H[0] once the recurrence is done
  T* dhn;       // [B,U] scratch
  T* dhp;       // [B,U] scratch
  T* scratch;   // [B,L]
};

template <typename T>
void recurrence_backward(const StepShape& s, const Params<T>& p, const Activations<T>& a, RecurrenceGrads<T>& r,
                         const T* dalpha_reg, bool reset) {
  const int B = s.B, L = s.L, E = s.E, U = s.U, A = s.A, G = s.G, K = s.K, BL = s.BL;
  const T* Wc = p.gru_k();
  T* dh = r.dh;    // gradient w.r.t. H[t+1] from later steps
  T* dhp = r.dhp;  // gradient w.r.t. H[t]
  std::fill(dh, dh + (size_t)B * U, T(0));
  std::fill(r.dkeys, r.dkeys + (size_t)BL * A, T(0));
  for (int t = s.Tn - 1; t >= 0; t--) {
    const int Bt = a.live[t];  // rows past it: zero gradients (the batched weight gradients read them)
    const T* h = a.H + (size_t)t * B * U;
    const T* dout = r.dh_out + (size_t)t * B * U;
    ProfileSection section("bwd gru");
    for (int i = 0; i < Bt * U; i++) r.dhn[i] = dh[i] + dout[i];
    T* dgx_t = r.dgx + (size_t)t * B * G;
    T* dg_t = r.dghw + (size_t)t * B * K;
    T* dctx_t = r.dctx + (size_t)t * B * E;
    std::fill(dgx_t + (size_t)Bt * G, dgx_t + (size_t)B * G, T(0));
    std::fill(dg_t + (size_t)Bt * K, dg_t + (size_t)B * K, T(0));
    std::fill(dctx_t + (size_t)Bt * E, dctx_t + (size_t)B * E, T(0));
    std::fill(r.dv_rows + ((size_t)t * B + Bt) * A, r.dv_rows + (size_t)(t + 1) * B * A, T(0));
    std::fill(r.dbv_rows + (size_t)t * B + Bt, r.dbv_rows + (size_t)(t + 1) * B, T(0));
    std::fill(dhp + (size_t)Bt * U, dhp + (size_t)B * U, T(0));
    if (Bt > 0) {
      gru_backward(dgx_t, dg_t + A, K, dhp, r.dhn, a.gates + (size_t)t * B * 4 * U, reset ? a.zeros : h, Bt, U);
      a.bf16.refresh(dgx_t, (size_t)B * G);
      {
        ProfileSection section("bwd context matmul");
        gemm(false, true, Bt, E, G, T(1), dgx_t, G, Wc, G, T(0), dctx_t, E);  // dctx = dgx Wc^T
      }
      ProfileSection section("bwd attention");
      attention_backward(r.dkeys, dg_t, r.dv_rows + (size_t)t * B * A, r.dbv_rows + (size_t)t * B, dctx_t, dalpha_reg,
                         a.real + (size_t)t * B, a.alpha + (size_t)t * BL, a.enc, a.keys, a.hg + (size_t)t * B * K, K,
                         p.v(), Bt, L, E, A, r.scratch);
      a.bf16.refresh(dg_t, (size_t)B * K);
      ProfileSection section2("bwd state matmul");
      if (reset)  // H[t] reached only the attention query: dhp = dhw2 W2^T (overwrites gru_backward's z * dhn)
        gemm(false, true, Bt, U, A, T(1), dg_t, K, a.wcat, K, T(0), dhp, U);
      else
        gemm(false, true, Bt, U, K, T(1), dg_t, K, a.wcat, K, T(1), dhp, U);  // += [dhw2 | dgh] [W2 | Wr]^T
    }
    if (Bt == 0) {
      a.bf16.refresh(dgx_t, (size_t)B * G);
      a.bf16.refresh(dg_t, (size_t)B * K);
    }
    std::swap(dh, dhp);
  }
  r.dh = dh;
  r.dhp = dhp;
}

// Weight gradients of the per-step matmuls, batched over all T*B rows.
template <typename T>
void recurrence_weight_grads(const StepShape& s, const Activations<T>& a, const RecurrenceGrads<T>& r,
                             const Params<T>& g, bool reset) {
  const int E = s.E, U = s.U, A = s.A, G = s.G, K = s.K, TB = s.TB;
  gemm(true, false, E, G, TB, T(1), a.ctx, E, r.dgx, G, T(1), g.gru_k(), G);                // dWc
  gemm(true, false, E, G, TB, T(1), a.x, E, r.dgx, G, T(1), g.gru_k() + (size_t)E * G, G);  // dWx
  colsum_add(g.gru_b(), r.dgx, TB, G);
  colsum_add(g.gru_b() + G, r.dghw + A, TB, G, K);
  if (!reset) gemm(true, false, U, G, TB, T(1), a.H, U, r.dghw + A, K, T(1), g.gru_rk(), G);  // dWr; 0 in reset mode
  gemm(true, false, U, A, TB, T(1), a.H, U, r.dghw, K, T(1), g.w2(), A);                      // dW2
  colsum_add(g.b2(), r.dghw, TB, A, K);
  colsum_add(g.v(), r.dv_rows, TB, A);
  double dbv = 0;
  for (int i = 0; i < TB; i++) dbv += r.dbv_rows[i];
  g.bv()[0] += T(dbv);
}

// Views of the workspace for the forward activations (grown to this step's sizes; nr-sized ones come later).
template <typename T>
Activations<T> bind_activations(Workspace<T>& ws, const StepShape& s) {
  const size_t TB = s.TB, BL = s.BL, B = s.B, U = s.U, E = s.E, A = s.A, NL = s.NL;
  Activations<T> a{};
  a.enc = grow(ws.enc, BL * E);
  a.keys = grow(ws.keys, BL * A);
  a.enc_img = s.shared ? grow(ws.enc_img, NL * E) : a.enc;
  a.keys_img = s.shared ? grow(ws.keys_img, NL * A) : a.keys;
  a.x = grow(ws.x, TB * E);
  a.xg = grow(ws.xg, TB * s.G);
  a.H = grow(ws.h, (TB + B) * U);
  a.enc_mean = grow(ws.enc_mean, B * E);
  a.gates = grow(ws.gates, TB * 4 * U);
  a.alpha = grow(ws.alpha, TB * s.L);
  a.ctx = grow(ws.ctx, TB * E);
  a.wcat = grow(ws.wcat, U * s.K);
  a.hg = grow(ws.hg, TB * s.K);
  a.zeros = grow(ws.zeros, B * U);
  std::fill(a.zeros, a.zeros + B * U, T(0));
  a.live = grow(ws.live, (size_t)s.Tn);
  a.rows = grow(ws.rows, TB);
  a.targets = grow(ws.targets, TB);
  a.real = grow(ws.real, TB);
  return a;
}

// What the forward pass needs besides the parameters.
template <typename T>
struct StepInputs {
  const T* features;            // [N,L,C]
  const int32_t* tokens;        // [B,T+1]
  const T* weights;             // [B] or null
  const int32_t* image_of_row;  // [B] or null
  bool train, reset, mean_init;
  double lambda;
  double label_smoothing;
  DropoutMask embedding_dropout;  // on the GRU input embeddings [T,B,E]
  DropoutMask output_dropout;     // on the GRU outputs [T,B,U] (fc1 input)
};

// Loss of the batch; with in.train the logits are left holding dlogits.
template <typename T>
StepResult forward_pass(Workspace<T>& ws, const StepShape& s, const Params<T>& p, Activations<T>& a,
                        const StepInputs<T>& in) {
  const int B = s.B, Tn = s.Tn, L = s.L, C = s.C, E = s.E, U = s.U, A = s.A, V = s.V, G = s.G;
  // annotation vectors and attention keys, once per image; gathered to rows when rows share images
  ProfileSteps prof;
  if (a.bf16.on()) {  // weights once per step; the features, whose products are the step's largest
    prof.next("fwd bf16 weights and features");
    a.bf16.add(p.projection_w(), (size_t)C * E);
    a.bf16.add(p.w1(), (size_t)E * A);
    a.bf16.add(p.gru_k(), (size_t)2 * E * G);
    a.bf16.add(p.fc1_w(), (size_t)U * U);
    a.bf16.add(p.fc2_w(), (size_t)U * V);
    a.bf16.add(in.features, (size_t)s.NL * C);
  }
  prof.next("fwd projection and keys");
  projection_forward(a.enc_img, in.features, p.projection_w(), p.projection_b(), s.NL, C, E);
  a.bf16.add(a.enc_img, (size_t)s.NL * E);
  dense_forward(a.keys_img, a.enc_img, p.w1(), p.b1(), s.NL, E, A);
  if (s.shared) {
    image_gather_forward(a.enc, a.enc_img, in.image_of_row, B, (size_t)L * E);
    image_gather_forward(a.keys, a.keys_img, in.image_of_row, B, (size_t)L * A);
  }
  // embeddings of every input token, then their share of the GRU input gates
  prof.next("fwd embedding and input gates");
  embedding_forward(a.x, p.emb(), in.tokens, s.W, Tn, B, E);
  dropout_forward(a.x, s.TB, E, nullptr, in.embedding_dropout);
  a.bf16.add(a.x, (size_t)s.TB * E);
  dense_forward(a.xg, a.x, p.gru_k() + (size_t)E * G, p.gru_b(), s.TB, E, G);  // embedding rows of the kernel
  // the recurrence
  prof.next("fwd initial state");
  pack_state_weights(a.wcat, p.w2(), p.gru_rk(), U, A, G);
  a.bf16.add(a.wcat, (size_t)U * s.K);
  a.bf16.reserve(a.H, (size_t)(s.TB + B) * U);  // rows converted as the recurrence writes them
  a.bf16.reserve(a.ctx, (size_t)s.TB * E);
  if (in.mean_init)
    initial_state_forward(a.H, a.enc_mean, a.enc, p.init_w(), p.init_b(), B, L, E, U);
  else
    std::fill(a.H, a.H + (size_t)B * U, T(0));
  a.bf16.refresh(a.H, (size_t)B * U);
  find_live_rows(a.live, in.tokens, B, Tn);
  prof.next("fwd recurrence other");
  recurrence_forward(s, p, a, in.reset);
  prof.next("fwd output rows");
  // output layers over the real rows of every step at once
  const int nr = a.nr = find_real_targets(a.rows, a.targets, a.real, in.tokens, B, Tn);
  const size_t nr1 = (size_t)std::max(nr, 1);
  a.hd = grow(ws.hd, nr1 * U);
  a.f1 = grow(ws.f1, nr1 * U);
  a.logits = grow(ws.logits, nr1 * V);
  a.row_loss = grow(ws.row_loss, nr1);
  gather_rows(a.hd, a.H + (size_t)B * U, a.rows, nr, U);  // H[t+1][b] for row t*B+b
  dropout_forward(a.hd, nr, U, a.rows, in.output_dropout);
  a.bf16.add(a.hd, (size_t)nr * U);
  prof.next("fwd fc1 and fc2");
  dense_forward(a.f1, a.hd, p.fc1_w(), p.fc1_b(), nr, U, U);
  a.bf16.add(a.f1, (size_t)nr * U);
  dense_forward(a.logits, a.f1, p.fc2_w(), p.fc2_b(), nr, U, V);
  prof.next("fwd softmax and loss");
  const T grad_scale = (in.train && nr > 0) ? T(1.0 / nr) : T(0);
  softmax_xent(a.logits, a.row_loss, a.targets, nr, V, grad_scale, (T)in.label_smoothing);
  if (in.weights) {  // per-sequence weights: scale each real row's loss and its logit gradient
    parallel_for(
        nr,
        [&](int i) {
          const T w = in.weights[a.rows[i] % B];
          a.row_loss[i] *= w;
          if (in.train) {
            T* g = a.logits + (size_t)i * V;
            for (int k = 0; k < V; k++) g[k] *= w;
          }
        },
        (double)nr * V);
  }
  if (in.train) a.bf16.add(a.logits, (size_t)nr * V);  // dlogits, for both of fc2's backward products
  double ce_sum = 0;
  for (int i = 0; i < nr; i++) ce_sum += a.row_loss[i];
  prof.next("fwd regularizer");
  double reg = 0;
  if (in.lambda > 0) {
    a.reg_sum = grow(ws.reg_sum, (size_t)s.BL);
    reg = attention_regularizer_forward(a.reg_sum, a.alpha, a.real, Tn, B, L, in.lambda);
  }
  return StepResult{(nr > 0 ? ce_sum / nr : 0.0) + reg, ce_sum, reg, nr};
}

// Gradients of every parameter (overwritten) from the forward pass's activations and dlogits.
template <typename T>
void backward_pass(Workspace<T>& ws, const StepShape& s, const Params<T>& p, const Params<T>& g,
                   const Activations<T>& a, const StepInputs<T>& in, const Dims& d) {
  const int B = s.B, Tn = s.Tn, L = s.L, C = s.C, E = s.E, U = s.U, A = s.A, V = s.V;
  const int TB = s.TB, BL = s.BL, G = s.G, NL = s.NL, nr = a.nr;
  const size_t nr1 = (size_t)std::max(nr, 1);
  ProfileSteps prof;
  prof.next("bwd zero gradients");
  for (int i = 0; i < kNumParams; i++) std::fill(g.at[i], g.at[i] + param_size(d, i), T(0));
  // output layers (logits already hold dlogits), back to each step's output
  T* df1 = grow(ws.df1, nr1 * U);
  T* dhd = grow(ws.dhd, nr1 * U);
  RecurrenceGrads<T> r{};
  r.dh_out = grow(ws.dh_out, (size_t)TB * U);
  prof.next("bwd fc2 and fc1");
  dense_backward(df1, g.fc2_w(), g.fc2_b(), a.logits, a.f1, p.fc2_w(), nr, U, V);
  a.bf16.add(df1, (size_t)nr * U);
  dense_backward(dhd, g.fc1_w(), g.fc1_b(), df1, a.hd, p.fc1_w(), nr, U, U);
  prof.next("bwd output rows");
  dropout_backward(dhd, nr, U, a.rows, in.output_dropout);
  std::fill(r.dh_out, r.dh_out + (size_t)TB * U, T(0));
  scatter_rows(r.dh_out, dhd, a.rows, nr, U);
  // the recurrence, then its batched weight gradients
  T* dalpha_reg = nullptr;
  if (in.lambda > 0) {
    dalpha_reg = grow(ws.reg_grad, (size_t)BL);
    attention_regularizer_backward(dalpha_reg, a.reg_sum, B, L, in.lambda);
  }
  r.dh = grow(ws.dh, (size_t)B * U);
  r.dhn = grow(ws.dhn, (size_t)B * U);
  r.dhp = grow(ws.dhp, (size_t)B * U);
  r.dgx = grow(ws.dgx, (size_t)TB * G);
  r.dghw = grow(ws.dghw, (size_t)TB * s.K);
  r.dctx = grow(ws.dctx, (size_t)TB * E);
  r.dkeys = grow(ws.dkeys, (size_t)BL * A);
  r.dv_rows = grow(ws.dv_rows, (size_t)TB * A);
  r.dbv_rows = grow(ws.dbv_rows, (size_t)TB);
  r.scratch = grow(ws.scratch, (size_t)BL);
  a.bf16.reserve(r.dgx, (size_t)TB * G);  // rows converted as the recurrence writes them
  a.bf16.reserve(r.dghw, (size_t)TB * s.K);
  prof.next("bwd recurrence other");
  recurrence_backward(s, p, a, r, dalpha_reg, in.reset);
  prof.next("bwd recurrence weight grads");
  recurrence_weight_grads(s, a, r, g, in.reset);
  // embedding gradient: dx = dgx Wx^T, back through dropout, scattered by token id
  prof.next("bwd embedding");
  T* dx = grow(ws.dx, (size_t)TB * E);
  gemm(false, true, TB, E, G, T(1), r.dgx, G, p.gru_k() + (size_t)E * G, G, T(0), dx, E);
  embedding_backward(g.emb(), dx, in.tokens, s.W, Tn, B, E, in.embedding_dropout);
  // annotation vectors' gradient: through the contexts, the initial state, then per image through W1
  prof.next("bwd annotation vectors");
  T* denc = grow(ws.denc, (size_t)BL * E);
  attention_context_backward(denc, a.alpha, r.dctx, Tn, B, L, E);
  if (in.mean_init) {
    T* dmean = grow(ws.dx, (size_t)std::max(TB, B) * E);  // dx is free again: reuse it as [B,E]
    initial_state_backward(denc, g.init_w(), g.init_b(), r.dh, a.H, a.enc_mean, p.init_w(), B, L, E, U,
                           grow(ws.dinit, (size_t)B * U), dmean);
  }
  T* denc_img = denc;
  T* dkeys_img = r.dkeys;
  if (s.shared) {
    denc_img = grow(ws.denc_img, (size_t)NL * E);
    dkeys_img = grow(ws.dkeys_img, (size_t)NL * A);
    image_gather_backward(denc_img, denc, in.image_of_row, B, s.N, (size_t)L * E);
    image_gather_backward(dkeys_img, r.dkeys, in.image_of_row, B, s.N, (size_t)L * A);
  }
  a.bf16.add(dkeys_img, (size_t)NL * A);
  prof.next("bwd keys and projection");
  dense_backward(denc_img, g.w1(), g.b1(), dkeys_img, a.enc_img, p.w1(), NL, E, A, /*accumulate_dx=*/true);
  projection_backward(denc_img, g.projection_w(), g.projection_b(), a.enc_img, in.features, NL, C, E,
                      [&](const T* denc_masked) { a.bf16.add(denc_masked, (size_t)NL * E); });
}

}  // namespace

template <typename T>
StepResult train_step(Workspace<T>& ws, const Dims& d, const Params<T>& p, const Params<T>* grads, const T* features,
                      const int32_t* tokens, const StepOptions& opt, const T* weights, const int32_t* image_of_row,
                      int num_images) {
  const StepShape s = shape_of(d, image_of_row != nullptr, num_images);
  const bool train = grads != nullptr;
  const double drop = train ? opt.dropout : 0.0;
  const StepInputs<T> in{features,
                         tokens,
                         weights,
                         image_of_row,
                         train,
                         opt.reset_state,
                         opt.mean_init,
                         opt.lambda,
                         opt.label_smoothing,
                         DropoutMask{drop, opt.seed, 0},
                         DropoutMask{drop, opt.seed, 1}};
  Activations<T> a = bind_activations(ws, s);
  if constexpr (std::is_same_v<T, float>) {
    if (opt.bf16) {
      ws.bf16.begin_step();
      a.bf16.m = &ws.bf16;
    }
  }
  Bf16Scope bf16_scope(a.bf16.m);  // products whose operands are both mirrored run in bf16
  StepWeights step_weights;        // products reading these may use them in oneDNN's preferred layout
  if constexpr (std::is_same_v<T, float>) {
    for (int i : {kProjectionW, kW1, kGruK, kFc1W, kFc2W}) step_weights.add(p.at[i], param_size(d, i));
    step_weights.add(a.wcat, (size_t)d.U * s.K);  // packed from W2 and Wr in the forward pass, before its first use
  }
  const StepResult result = forward_pass(ws, s, p, a, in);
  if (train) backward_pass(ws, s, p, *grads, a, in, d);
  return result;
}

template StepResult train_step<float>(Workspace<float>&, const Dims&, const Params<float>&, const Params<float>*,
                                      const float*, const int32_t*, const StepOptions&, const float*, const int32_t*,
                                      int);
template StepResult train_step<double>(Workspace<double>&, const Dims&, const Params<double>&, const Params<double>*,
                                       const double*, const int32_t*, const StepOptions&, const double*, const int32_t*,
                                       int);

}  // namespace sat
