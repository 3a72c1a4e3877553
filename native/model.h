// The captioning model's training step and inference, over caller-owned parameter buffers.
// Shapes: B batch, T decoder steps, L locations, C feature channels, E embedding, U GRU units,
// A attention units, V vocabulary. The TypeScript side (src/model/native-model.ts) allocates and
// validates everything; this side only computes.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "bf16.h"

namespace sat {

struct Dims {
  int B, T, L, C, E, U, A, V;
};

// The parameter table: the one declaration of every parameter's name (also its checkpoint tensor name) and shape.
// The addon reports it (parameterTable in native/binding.cc); src/model/params.ts and the PyTorch twin
// (peers/sat_torch/model.py) are checked against it by test/model-parameter-table.test.ts. Keras-like layout:
// kernels are [in, out]; gru.kernel is [2E, 3U] with rows 0..E-1 for the context and E..2E-1 for the
// embedding (input = concat(context, embedding)), gate blocks z, r, n; gru.bias is [2, 3U] = (input bias,
// recurrent bias) as Keras reset_after=True. The feature projection (a Dense layer + ReLU) maps CNN features [L,C]
// to annotation vectors [L,E]. init_state predicts the decoder's initial state from the mean annotation vector
// (Xu et al. 2015, sec. 3.1.2): H[0] = tanh(mean_l enc[b,l,:] init_w + init_b); unused (zero gradient) when H[0] = 0.
enum ParamId : int {
  kProjectionW,
  kProjectionB,
  kW1,
  kB1,
  kW2,
  kB2,
  kV,
  kBv,
  kEmb,
  kGruK,
  kGruRk,
  kGruB,
  kFc1W,
  kFc1B,
  kFc2W,
  kFc2B,
  kInitW,
  kInitB,
  kNumParams
};

// One row of the table: a kernel has two axes [rows, cols]; a bias one axis [rows] (cols = 0).
struct ParamShape {
  const char* name;
  size_t rows, cols;
};

// Row i (a ParamId) of the table for the sizes d.
inline ParamShape param_shape(const Dims& d, int i) {
  const size_t C = d.C, E = d.E, U = d.U, A = d.A, V = d.V;
  const ParamShape table[kNumParams] = {
      {"projection.kernel", C, E},         // kProjectionW
      {"projection.bias", E, 0},           // kProjectionB
      {"attention.W1.kernel", E, A},       // kW1
      {"attention.W1.bias", A, 0},         // kB1
      {"attention.W2.kernel", U, A},       // kW2
      {"attention.W2.bias", A, 0},         // kB2
      {"attention.V.kernel", A, 1},        // kV
      {"attention.V.bias", 1, 0},          // kBv
      {"embedding.embeddings", V, E},      // kEmb
      {"gru.kernel", 2 * E, 3 * U},        // kGruK
      {"gru.recurrent_kernel", U, 3 * U},  // kGruRk
      {"gru.bias", 2, 3 * U},              // kGruB
      {"fc1.kernel", U, U},                // kFc1W
      {"fc1.bias", U, 0},                  // kFc1B
      {"fc2.kernel", U, V},                // kFc2W
      {"fc2.bias", V, 0},                  // kFc2B
      {"init_state.kernel", E, U},         // kInitW
      {"init_state.bias", U, 0},           // kInitB
  };
  return table[i];
}

// Element count of parameter i for the sizes d (the binding's bounds checks, the step's loops over parameters).
inline size_t param_size(const Dims& d, int i) {
  const ParamShape s = param_shape(d, i);
  return s.cols ? s.rows * s.cols : s.rows;
}

// One pointer per parameter (weights or their gradients), with named accessors.
template <typename T>
struct Params {
  std::array<T*, kNumParams> at{};
  T* projection_w() const { return at[kProjectionW]; }
  T* projection_b() const { return at[kProjectionB]; }
  T* w1() const { return at[kW1]; }
  T* b1() const { return at[kB1]; }
  T* w2() const { return at[kW2]; }
  T* b2() const { return at[kB2]; }
  T* v() const { return at[kV]; }
  T* bv() const { return at[kBv]; }
  T* emb() const { return at[kEmb]; }
  T* gru_k() const { return at[kGruK]; }
  T* gru_rk() const { return at[kGruRk]; }
  T* gru_b() const { return at[kGruB]; }
  T* fc1_w() const { return at[kFc1W]; }
  T* fc1_b() const { return at[kFc1B]; }
  T* fc2_w() const { return at[kFc2W]; }
  T* fc2_b() const { return at[kFc2B]; }
  T* init_w() const { return at[kInitW]; }
  T* init_b() const { return at[kInitB]; }
};

// The name of a buffer the kernels would use for these sizes (with `images` feature rows) that would hold more
// than 2^31-1 elements, or nullptr when every one fits. Kernels index within a buffer in int arithmetic, so the
// binding refuses such sizes before any product of them can overflow.
const char* oversized_buffer(const Dims& d, int images);

struct StepOptions {
  double dropout = 0;          // on the embeddings (GRU input) and on the GRU output (fc1 input); training only
  double lambda = 0;           // doubly stochastic attention regulariser weight
  double label_smoothing = 0;  // eps of the cross-entropy's target (1 - eps) onehot + eps / V
  uint32_t seed = 0;           // dropout masks
  // false: a real recurrence, h_t = GRU(x_t, h_{t-1}). true: the TF tutorial's GRU, restarted from zeros
  // every step, h_t = GRU(x_t, 0); h_{t-1} is then only the attention query (and Wr is unused).
  bool reset_state = false;
  // false: H[0] = 0 (the TF tutorial). true: H[0] = tanh(mean_l(enc) init_w + init_b) (the paper).
  bool mean_init = false;
  // float only, oneDNN backend: the step's matrix products take bf16 operands (weights converted once per step,
  // activations and gradients once where they are produced) with f32 accumulation and output; everything else
  // (weights, gradients, softmax, loss, the optimizer) stays f32.
  bool bf16 = false;
};

struct StepResult {
  double loss;    // ce_sum / tokens + reg
  double ce_sum;  // summed cross-entropy over real target tokens (each times its sequence's weight)
  double reg;     // attention regulariser term (already weighted by lambda)
  int tokens;     // real (non-pad) target tokens
};

// Buffers kept across steps; they grow when a batch needs more and never shrink.
template <typename T>
struct Workspace {
  std::vector<T> enc, keys, x, xg, h, gates, alpha, ctx, wcat, hg, hd, f1, logits, row_loss, reg_sum, reg_grad;
  std::vector<T> dhd, df1, dh_out, dh, dhn, dhp, dgx, dghw, dctx, dkeys, dv_rows, dbv_rows, dx, denc, scratch;
  std::vector<T> zeros;            // [B,U] the GRU's previous state in reset mode
  std::vector<T> enc_mean, dinit;  // [B,E] mean annotation vector; [B,U] gradient of init's pre-activation
  std::vector<T> enc_img, keys_img, denc_img, dkeys_img;  // per distinct image when rows share images
  std::vector<int32_t> rows, targets, live;
  std::vector<uint8_t> real;
  Bf16Mirrors bf16;  // bf16 copies of the matmul operands (StepOptions::bf16)
};

// Forward (+ backward when grads != nullptr) of one padded batch. features [B,L,C], tokens [B,T+1].
// Gradients are written (not accumulated) into grads. weights [B] or nullptr (all 1): each sequence's
// cross-entropy terms are multiplied by its weight (self-critical training passes the reward advantage), so
// loss = sum_tokens w_b * ce / tokens + reg and ce_sum is the weighted sum.
// image_of_row [B] or nullptr: rows share images (several captions of one image, e.g. self-critical samples);
// features then hold num_images rows [num_images,L,C], and the feature projection and W1 run once per image, their
// gradients summed over the rows that use it. nullptr: features [B,L,C], one image per row.
template <typename T>
StepResult train_step(Workspace<T>& ws, const Dims& d, const Params<T>& p, const Params<T>* grads, const T* features,
                      const int32_t* tokens, const StepOptions& opt, const T* weights = nullptr,
                      const int32_t* image_of_row = nullptr, int num_images = 0);

// Inference. encode: features [N,L,C] -> enc [N,L,E], keys [N,L,A] (attention keys enc W1 + b1), hidden [N,U] the
// decoder's initial state (zeros, or from the mean annotation vector when mean_init). d.B = N.
void encode(const Dims& d, const Params<float>& p, const float* features, float* enc, float* keys, float* hidden,
            bool mean_init);

struct DecodeWorkspace {
  std::vector<float> hw2, ctx, gx, gh, gates, f1, x, zeros;
};
// One decoder step for N = d.B rows: tokens [N], hidden [N,U] -> logits [N,V], alpha [N,L], hidden_out [N,U].
// reset_state as in StepOptions: `hidden` is then only the attention query and the GRU starts from zeros.
// enc [N,L,E] and keys [N,L,A], or with image_of_row [N] one row per image (rows of an image share them, as
// samples and beams do, so selecting rows never copies them).
void decode_step(DecodeWorkspace& ws, const Dims& d, const Params<float>& p, const float* enc, const float* keys,
                 const float* hidden, const int32_t* tokens, float* logits, float* alpha, float* hidden_out,
                 bool reset_state, const int32_t* image_of_row = nullptr);

// Adam (Keras formulation: eps added to sqrt(v), bias correction folded into the step size) over one
// contiguous arena; gradients are multiplied by grad_scale first (global-norm clipping).
void adam_update(float* p, const float* g, float* m, float* v, size_t n, double lr, double beta1, double beta2,
                 double eps, int step, double grad_scale);
double sum_squares(const float* x, size_t n);

}  // namespace sat
