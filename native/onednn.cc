// oneDNN matmul primitives: one per shape (transposes, strides, batch, beta and data types), created on first use
// and kept in a bounded per-thread cache. Transposes are strides, beta = 1 accumulation is a sum post-op, alpha an
// output scale. Weights that several products of a training step read unchanged are reordered once per step into
// the layout the primitive prefers (blocked; VNNI pairs for bf16) and that copy is reused: measured on this
// project's shapes, +10-25% for the per-step products with 64 rows, +5-10% for the large ones, for a reorder
// that costs 0.1-0.9 of one product (done once per step for 16-32 uses, or once for fc2's one or two).
// Any oneDNN error becomes a std::runtime_error naming the primitive and its shapes (the binding turns it into a
// JS error).
#include "onednn.h"

#ifdef SAT_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>

#include <atomic>
#include <cstring>
#include <list>
#include <mutex>
#include <set>
#include <stdexcept>
#include <unordered_map>

namespace sat::onednn {

namespace {

using dnnl::memory;
using dt = memory::data_type;

struct Key {
  bool ta, tb;
  int M, N, K, lda, ldb, ldc;
  float alpha, beta;
  dt type;            // of A and B (C is f32)
  bool packed;        // B in the primitive's preferred layout (a step weight)
  bool bias = false;  // a [N] f32 bias added to every row
  int batch = 1;
  int64_t sa = 0, sb = 0, sc = 0;  // batch strides
  bool operator==(const Key& o) const {
    return ta == o.ta && tb == o.tb && M == o.M && N == o.N && K == o.K && lda == o.lda && ldb == o.ldb &&
           ldc == o.ldc && alpha == o.alpha && beta == o.beta && type == o.type && packed == o.packed &&
           bias == o.bias && batch == o.batch && sa == o.sa && sb == o.sb && sc == o.sc;
  }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = (size_t)k.ta | (size_t)k.tb << 1 | (size_t)k.packed << 2 | (size_t)k.bias << 3 | (size_t)k.type << 4;
    for (int v : {k.M, k.N, k.K, k.lda, k.ldb, k.ldc, k.batch}) h = h * 1000003u ^ (size_t)(unsigned)v;
    for (int64_t v : {k.sa, k.sb, k.sc}) h = h * 1000003u ^ (size_t)v;
    const auto bits = [](float f) {
      uint32_t u;
      std::memcpy(&u, &f, 4);
      return (size_t)u;
    };
    return h * 31 ^ bits(k.alpha) * 17 ^ bits(k.beta);
  }
};

struct Primitive {
  dnnl::matmul matmul;
  memory::desc a, b, c, bias;  // b: as the caller stores it
  memory::desc b_run;          // as the primitive reads it (= b, or the preferred layout when Key::packed)
};

std::string describe(const Key& k) {
  const char* type = k.type == dt::bf16 ? "bf16" : "f32";
  return std::string("oneDNN matmul ") + type + (k.packed ? " (packed weights)" : "") + (k.bias ? " + bias" : "") +
         (k.batch > 1 ? " batch " + std::to_string(k.batch) : std::string()) + " C[" + std::to_string(k.M) + "," +
         std::to_string(k.N) + "] = " + (k.ta ? "A^T" : "A") + "[" + std::to_string(k.M) + "," + std::to_string(k.K) +
         "] (ld " + std::to_string(k.lda) + ") x " + (k.tb ? "B^T" : "B") + "[" + std::to_string(k.K) + "," +
         std::to_string(k.N) + "] (ld " + std::to_string(k.ldb) + "), ldc " + std::to_string(k.ldc) + ", alpha " +
         std::to_string(k.alpha) + ", beta " + std::to_string(k.beta);
}

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

std::mutex kernels_mutex;
std::set<std::string> kernel_names;  // implementations of every primitive created (for `sat bench train`)

Primitive create(const Key& k) {
  const memory::dim M = k.M, N = k.N, K = k.K;
  memory::desc a, b, c;
  if (k.batch == 1) {
    a = memory::desc({M, K}, k.type, k.ta ? memory::dims{1, k.lda} : memory::dims{k.lda, 1});
    b = memory::desc({K, N}, k.type, k.tb ? memory::dims{1, k.ldb} : memory::dims{k.ldb, 1});
    c = memory::desc({M, N}, dt::f32, memory::dims{k.ldc, 1});
  } else {
    const memory::dim nb = k.batch;
    a = memory::desc({nb, M, K}, k.type, k.ta ? memory::dims{k.sa, 1, k.lda} : memory::dims{k.sa, k.lda, 1});
    b = memory::desc({nb, K, N}, k.type, k.tb ? memory::dims{k.sb, 1, k.ldb} : memory::dims{k.sb, k.ldb, 1});
    c = memory::desc({nb, M, N}, dt::f32, memory::dims{k.sc, k.ldc, 1});
  }
  const memory::desc b_want = k.packed ? memory::desc(b.dims(), k.type, memory::format_tag::any) : b;
  dnnl::primitive_attr attr;
  if (k.alpha != 1.0f) attr.set_output_scales(0, {k.alpha});
  if (k.beta != 0.0f) {
    dnnl::post_ops ops;
    ops.append_sum(k.beta);
    attr.set_post_ops(ops);
  }
  const memory::desc bias = k.bias ? memory::desc({1, N}, dt::f32, memory::dims{N, 1}) : memory::desc();
  dnnl::matmul::primitive_desc pd(k.bias ? dnnl::matmul::desc(a, b_want, bias, c) : dnnl::matmul::desc(a, b_want, c),
                                  attr, engine());
  {
    std::lock_guard<std::mutex> lock(kernels_mutex);
    kernel_names.insert(pd.impl_info_str());
  }
  return Primitive{dnnl::matmul(pd), a, b, c, bias, pd.weights_desc()};
}

// Step weights in a primitive's preferred layout: one copy per (source buffer, layouts), reordered again when the
// weight generation moved on (a new training step: the weights changed).
std::atomic<uint64_t> weight_generation{1};

class PackedWeights {
 public:
  const memory& get(const void* src, const memory::desc& plain, const memory::desc& packed) {
    Entry* e = nullptr;
    for (Entry& x : entries_)
      if (x.src == src && x.plain == plain && x.packed == packed) {
        e = &x;
        break;
      }
    if (!e) {
      if (entries_.size() >= kCapacity) entries_.erase(entries_.begin());
      entries_.push_back(Entry{src, plain, packed, 0, memory(packed, engine()), dnnl::reorder()});
      e = &entries_.back();
      e->reorder = dnnl::reorder(memory(plain, engine(), const_cast<void*>(src)), e->mem);
    }
    if (e->generation != weight_generation) {
      thread_local dnnl::stream stream(engine());
      memory from(plain, engine(), const_cast<void*>(src));
      e->reorder.execute(stream, from, e->mem);
      stream.wait();
      e->generation = weight_generation;
    }
    return e->mem;
  }

 private:
  struct Entry {
    const void* src;
    memory::desc plain, packed;
    uint64_t generation;
    memory mem;
    dnnl::reorder reorder;
  };
  static constexpr size_t kCapacity = 64;
  std::vector<Entry> entries_;
};

// Least-recently-used cache of primitives, one per thread (a primitive per distinct shape: the decoder's live
// rows give up to B shapes per per-step product, so the bound is generous).
class Cache {
 public:
  const Primitive& get(const Key& k) {
    auto it = index_.find(k);
    if (it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return it->second->second;
    }
    if (index_.size() >= kCapacity) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(k, create(k));
    index_[k] = order_.begin();
    return order_.front().second;
  }

 private:
  static constexpr size_t kCapacity = 1024;
  std::list<std::pair<Key, Primitive>> order_;
  std::unordered_map<Key, std::list<std::pair<Key, Primitive>>::iterator, KeyHash> index_;
};

void run(const Key& k, const void* A, const void* B, float* C, const float* bias = nullptr) {
  thread_local Cache cache;
  thread_local PackedWeights packed;
  thread_local dnnl::stream stream(engine());
  try {
    const Primitive& p = cache.get(k);
    std::unordered_map<int, memory> args;
    args.emplace(DNNL_ARG_SRC, memory(p.a, engine(), const_cast<void*>(A)));
    args.emplace(DNNL_ARG_DST, memory(p.c, engine(), C));
    if (k.bias) args.emplace(DNNL_ARG_BIAS, memory(p.bias, engine(), const_cast<float*>(bias)));
    if (k.packed && !(p.b_run == p.b))
      args.emplace(DNNL_ARG_WEIGHTS, packed.get(B, p.b, p.b_run));
    else
      args.emplace(DNNL_ARG_WEIGHTS, memory(p.b, engine(), const_cast<void*>(B)));
    p.matmul.execute(stream, args);
    stream.wait();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(describe(k) + ": " + e.what());
  }
}

}  // namespace

bool built() {
  return true;
}

void gemm_f32(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
              float beta, float* C, int ldc, bool packed_b, const float* bias) {
  run(Key{ta, tb, M, N, K, lda, ldb, ldc, alpha, beta, dt::f32, packed_b, bias != nullptr}, A, B, C, bias);
}

void gemm_bf16(bool ta, bool tb, int M, int N, int K, const uint16_t* A, int lda, const uint16_t* B, int ldb,
               float beta, float* C, int ldc, bool packed_b, const float* bias) {
  run(Key{ta, tb, M, N, K, lda, ldb, ldc, 1.0f, beta, dt::bf16, packed_b, bias != nullptr}, A, B, C, bias);
}

void gemm_f32_batched(bool ta, bool tb, int batch, int M, int N, int K, const float* A, int lda, int64_t sa,
                      const float* B, int ldb, int64_t sb, float beta, float* C, int ldc, int64_t sc) {
  run(Key{ta, tb, M, N, K, lda, ldb, ldc, 1.0f, beta, dt::f32, false, false, batch, sa, sb, sc}, A, B, C);
}

void new_weight_generation() {
  weight_generation++;
}

void fail_for_test() {
  float x = 0;
  run(Key{false, false, -3, 4, 5, 5, 4, 4, 1.0f, 0.0f, dt::f32, false}, &x, &x, &x);
}

std::string version() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

std::string isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "other";
  }
}

bool has_native_bf16() {
  const auto i = dnnl::get_effective_cpu_isa();
  return i == dnnl::cpu_isa::avx512_core_bf16 || i == dnnl::cpu_isa::avx512_core_amx;
}

std::vector<std::string> kernels() {
  std::lock_guard<std::mutex> lock(kernels_mutex);
  return std::vector<std::string>(kernel_names.begin(), kernel_names.end());
}

}  // namespace sat::onednn

#else  // no oneDNN in this build

#include <stdexcept>

namespace sat::onednn {

bool built() {
  return false;
}
void gemm_f32(bool, bool, int, int, int, float, const float*, int, const float*, int, float, float*, int, bool,
              const float*) {
  throw std::runtime_error("this build has no oneDNN");
}
void gemm_bf16(bool, bool, int, int, int, const uint16_t*, int, const uint16_t*, int, float, float*, int, bool,
               const float*) {
  throw std::runtime_error("bf16 matmuls need oneDNN, and this build has none (install libdnnl-dev, then rebuild)");
}
void gemm_f32_batched(bool, bool, int, int, int, int, const float*, int, int64_t, const float*, int, int64_t, float,
                      float*, int, int64_t) {
  throw std::runtime_error("this build has no oneDNN");
}
void new_weight_generation() {}
void fail_for_test() {
  throw std::runtime_error("this build has no oneDNN");
}
std::string version() {
  return "";
}
std::string isa() {
  return "";
}
bool has_native_bf16() {
  return false;
}
std::vector<std::string> kernels() {
  return {};
}

}  // namespace sat::onednn

#endif
