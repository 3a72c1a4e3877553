// N-API glue: unwraps typed arrays (checking type and length so a bad call throws instead of
// corrupting memory) and calls the kernels. Friendlier validation lives in src/model/native-model.ts;
// the typed declaration of these functions is src/model/binding.ts.
#include <napi.h>

#include <memory>
#include <string>

#include "blas.h"
#include "model.h"
#include "parallel.h"

using namespace sat;

namespace {

struct NativeWorkspace {
  Workspace<float> f32;
  Workspace<double> f64;
  DecodeWorkspace decode;
};

template <typename T> struct ArrayKind;
template <> struct ArrayKind<float> { static constexpr napi_typedarray_type type = napi_float32_array; static constexpr const char* name = "Float32Array"; };
template <> struct ArrayKind<double> { static constexpr napi_typedarray_type type = napi_float64_array; static constexpr const char* name = "Float64Array"; };
template <> struct ArrayKind<int32_t> { static constexpr napi_typedarray_type type = napi_int32_array; static constexpr const char* name = "Int32Array"; };

template <typename T>
T* data_of(Napi::Env env, const Napi::Value& v, size_t need, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != ArrayKind<T>::type)
    throw Napi::TypeError::New(env, what + " must be a " + ArrayKind<T>::name);
  auto ta = v.As<Napi::TypedArray>();
  if (ta.ElementLength() < need)
    throw Napi::RangeError::New(env, what + " has " + std::to_string(ta.ElementLength()) + " elements, needs " +
                                         std::to_string(need));
  return reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}

NativeWorkspace* workspace_of(Napi::Env env, const Napi::Value& v) {
  if (!v.IsExternal()) throw Napi::TypeError::New(env, "workspace must come from createWorkspace()");
  return v.As<Napi::External<NativeWorkspace>>().Data();
}

Dims dims_of(Napi::Env env, const Napi::Value& v) {
  const int32_t* a = data_of<int32_t>(env, v, 8, "dims");
  Dims d{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]};
  for (int i = 0; i < 8; i++)
    if (a[i] < 0) throw Napi::RangeError::New(env, "dims must be non-negative");
  return d;
}

template <typename T>
Params<T> params_of(Napi::Env env, const Napi::Value& v, const Dims& d, const char* what) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != kNumParams)
    throw Napi::TypeError::New(env, std::string(what) + " must be an array of " + std::to_string(kNumParams) + " typed arrays");
  auto arr = v.As<Napi::Array>();
  Params<T> p;
  for (int i = 0; i < kNumParams; i++)
    p.at[i] = data_of<T>(env, arr.Get(i), param_size(d, i), std::string(what) + "[" + std::to_string(i) + "]");
  return p;
}

Napi::Value CreateWorkspace(const Napi::CallbackInfo& info) {
  return Napi::External<NativeWorkspace>::New(info.Env(), new NativeWorkspace(),
                                              [](Napi::Env, NativeWorkspace* ws) { delete ws; });
}

// Frees the buffers now (the External itself is reclaimed by the garbage collector).
Napi::Value ReleaseWorkspace(const Napi::CallbackInfo& info) {
  NativeWorkspace* ws = workspace_of(info.Env(), info[0]);
  *ws = NativeWorkspace();
  return info.Env().Undefined();
}

template <typename T>
Napi::Value TrainStepT(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeWorkspace* ws = workspace_of(env, info[0]);
  const Dims d = dims_of(env, info[3]);
  Params<T> p = params_of<T>(env, info[1], d, "params");
  const bool with_grads = !info[2].IsNull() && !info[2].IsUndefined();
  Params<T> g{};
  if (with_grads) g = params_of<T>(env, info[2], d, "grads");
  // info[12], info[13]: optional image_of_row Int32Array [B] and the number of images features holds
  const bool shared = info.Length() > 12 && !info[12].IsNull() && !info[12].IsUndefined();
  const int32_t* image_of_row = shared ? data_of<int32_t>(env, info[12], (size_t)d.B, "imageOfRow") : nullptr;
  const int num_images = shared ? info[13].As<Napi::Number>().Int32Value() : d.B;
  if (shared) {
    if (num_images < 1) throw Napi::RangeError::New(env, "numImages must be >= 1");
    for (int b = 0; b < d.B; b++)
      if (image_of_row[b] < 0 || image_of_row[b] >= num_images)
        throw Napi::RangeError::New(env, "imageOfRow[" + std::to_string(b) + "] is outside [0, numImages)");
  }
  const T* features = data_of<T>(env, info[4], (size_t)num_images * d.L * d.C, "features");
  const int32_t* tokens = data_of<int32_t>(env, info[5], (size_t)d.B * (d.T + 1), "tokens");
  StepOptions opt;
  opt.dropout = info[6].As<Napi::Number>().DoubleValue();
  opt.lambda = info[7].As<Napi::Number>().DoubleValue();
  opt.seed = info[8].As<Napi::Number>().Uint32Value();
  opt.reset_state = info[9].ToBoolean().Value();
  opt.mean_init = info[10].ToBoolean().Value();
  Workspace<T>* w;
  if constexpr (std::is_same_v<T, float>) w = &ws->f32; else w = &ws->f64;
  // info[11]: optional per-sequence loss weights [B] (null/undefined = all 1)
  const T* weights = info.Length() > 11 && !info[11].IsNull() && !info[11].IsUndefined()
      ? data_of<T>(env, info[11], (size_t)d.B, "weights") : nullptr;
  StepResult r = train_step<T>(*w, d, p, with_grads ? &g : nullptr, features, tokens, opt, weights, image_of_row,
                               num_images);
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", r.loss);
  out.Set("crossEntropySum", r.ce_sum);
  out.Set("attentionPenalty", r.reg);
  out.Set("tokens", r.tokens);
  return out;
}

Napi::Value TrainStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[1].IsArray() || info[1].As<Napi::Array>().Length() == 0)
    throw Napi::TypeError::New(env, "params must be an array of " + std::to_string(kNumParams) + " typed arrays");
  Napi::Value first = info[1].As<Napi::Array>().Get(0u);
  if (first.IsTypedArray() && first.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array)
    return TrainStepT<double>(info);
  return TrainStepT<float>(info);
}

Napi::Value Encode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Dims d = dims_of(env, info[1]);
  Params<float> p = params_of<float>(env, info[0], d, "params");
  const size_t NL = (size_t)d.B * d.L;
  encode(d, p, data_of<float>(env, info[2], NL * d.C, "features"), data_of<float>(env, info[3], NL * d.E, "encoded"),
         data_of<float>(env, info[4], NL * d.A, "projected"), data_of<float>(env, info[5], (size_t)d.B * d.U, "hidden"),
         info[6].ToBoolean().Value());
  return env.Undefined();
}

Napi::Value DecodeStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeWorkspace* ws = workspace_of(env, info[0]);
  const Dims d = dims_of(env, info[2]);
  Params<float> p = params_of<float>(env, info[1], d, "params");
  const size_t N = d.B, NL = (size_t)d.B * d.L;
  decode_step(ws->decode, d, p, data_of<float>(env, info[3], NL * d.E, "encoded"),
              data_of<float>(env, info[4], NL * d.A, "projected"), data_of<float>(env, info[5], N * d.U, "hidden"),
              data_of<int32_t>(env, info[6], N, "tokens"), data_of<float>(env, info[7], N * d.V, "logits"),
              data_of<float>(env, info[8], NL, "attention"), data_of<float>(env, info[9], N * d.U, "hiddenOut"),
              info[10].ToBoolean().Value());
  return env.Undefined();
}

Napi::Value AdamUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "params must be a Float32Array");
  const size_t n = info[0].As<Napi::TypedArray>().ElementLength();
  adam_update(data_of<float>(env, info[0], n, "params"), data_of<float>(env, info[1], n, "grads"),
              data_of<float>(env, info[2], n, "m"), data_of<float>(env, info[3], n, "v"), n,
              info[4].As<Napi::Number>().DoubleValue(), info[5].As<Napi::Number>().DoubleValue(),
              info[6].As<Napi::Number>().DoubleValue(), info[7].As<Napi::Number>().DoubleValue(),
              info[8].As<Napi::Number>().Int32Value(), info[9].As<Napi::Number>().DoubleValue());
  return env.Undefined();
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) throw Napi::TypeError::New(env, "x must be a Float32Array");
  const size_t n = info[0].As<Napi::TypedArray>().ElementLength();
  return Napi::Number::New(env, sum_squares(data_of<float>(env, info[0], n, "x"), n));
}

// C[M,N] = A[M,K] B[K,N], for measuring the BLAS peak in benchmarks.
Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int M = info[0].As<Napi::Number>().Int32Value(), N = info[1].As<Napi::Number>().Int32Value(),
            K = info[2].As<Napi::Number>().Int32Value();
  gemm(false, false, M, N, K, 1.0f, data_of<float>(env, info[3], (size_t)M * K, "a"), K,
       data_of<float>(env, info[4], (size_t)K * N, "b"), N, 0.0f, data_of<float>(env, info[5], (size_t)M * N, "c"), N);
  return env.Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  set_blas_threads(info[0].As<Napi::Number>().Int32Value());
  set_worker_threads(info[1].As<Napi::Number>().Int32Value());
  return info.Env().Undefined();
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("blas", get_blas_threads());
  out.Set("workers", get_worker_threads());
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("createWorkspace", Napi::Function::New(env, CreateWorkspace));
  exports.Set("releaseWorkspace", Napi::Function::New(env, ReleaseWorkspace));
  exports.Set("trainStep", Napi::Function::New(env, TrainStep));
  exports.Set("encode", Napi::Function::New(env, Encode));
  exports.Set("decodeStep", Napi::Function::New(env, DecodeStep));
  exports.Set("adamUpdate", Napi::Function::New(env, AdamUpdate));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares));
  exports.Set("sgemm", Napi::Function::New(env, Sgemm));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("threads", Napi::Function::New(env, Threads));
  return exports;
}

}  // namespace

NODE_API_MODULE(sat_native, Init)
