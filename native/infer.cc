// Inference for decoding and beam search: encode a batch of images once, then one decoder step at a
// time for N rows (images or beams). Same kernels as training, no dropout.
#include <algorithm>
#include <cstring>

#include "layers.h"
#include "model.h"

namespace sat {

void encode(const Dims& d, const Params<float>& p, const float* features, float* enc, float* keys, float* hidden,
            bool mean_init) {
  const int NL = d.B * d.L;
  projection_forward(enc, features, p.projection_w(), p.projection_b(), NL, d.C, d.E);  // [N,L,E]
  dense_forward(keys, enc, p.w1(), p.b1(), NL, d.E, d.A);                               // [N,L,A] attention keys
  if (mean_init) {  // the same H[0] as training (train.cc)
    std::vector<float> enc_mean((size_t)d.B * d.E);
    initial_state_forward(hidden, enc_mean.data(), enc, p.init_w(), p.init_b(), d.B, d.L, d.E, d.U);
  } else {
    std::fill(hidden, hidden + (size_t)d.B * d.U, 0.0f);
  }
}

void decode_step(DecodeWorkspace& ws, const Dims& d, const Params<float>& p, const float* enc, const float* keys,
                 const float* hidden, const int32_t* tokens, float* logits, float* alpha, float* hidden_out,
                 bool reset_state, const int32_t* image_of_row) {
  const int N = d.B, L = d.L, E = d.E, U = d.U, A = d.A, V = d.V, G = 3 * U;
  auto grow = [](std::vector<float>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
  };
  float* hw2 = grow(ws.hw2, (size_t)N * A);
  float* ctx = grow(ws.ctx, (size_t)N * E);
  float* gx = grow(ws.gx, (size_t)N * G);
  float* gh = grow(ws.gh, (size_t)N * G);
  float* gates = grow(ws.gates, (size_t)N * 4 * U);
  float* f1 = grow(ws.f1, (size_t)N * U);
  float* x = grow(ws.x, (size_t)N * E);
  // The GRU's previous state: the carried hidden, or zeros in reset mode (hidden is then only the query).
  const float* h_prev = hidden;
  if (reset_state) {
    float* zeros = grow(ws.zeros, (size_t)N * U);
    std::fill(zeros, zeros + (size_t)N * U, 0.0f);
    h_prev = zeros;
  }

  dense_forward(hw2, hidden, p.w2(), p.b2(), N, U, A);
  attention_forward(alpha, ctx, enc, keys, hw2, A, p.v(), p.bv()[0], N, L, E, A, image_of_row);
  for (int i = 0; i < N; i++) std::memcpy(x + (size_t)i * E, p.emb() + (size_t)tokens[i] * E, sizeof(float) * E);
  dense_forward(gx, x, p.gru_k() + (size_t)E * G, p.gru_b(), N, E, G);   // embedding share + b_in
  gemm(false, false, N, G, E, 1.0f, ctx, E, p.gru_k(), G, 1.0f, gx, G);  // + context share
  if (reset_state)
    std::fill(gh, gh + (size_t)N * G, 0.0f);  // 0 Wr
  else
    gemm(false, false, N, G, U, 1.0f, hidden, U, p.gru_rk(), G, 0.0f, gh, G);
  gru_forward(hidden_out, gates, gx, gh, G, p.gru_b() + G, h_prev, N, U);
  dense_forward(f1, hidden_out, p.fc1_w(), p.fc1_b(), N, U, U);
  dense_forward(logits, f1, p.fc2_w(), p.fc2_b(), N, U, V);
}

}  // namespace sat
