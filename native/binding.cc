// N-API glue: unwraps and checks every argument, then calls the kernels. The addon is dumb but memory-safe:
// before touching memory it checks argument counts and types, typed-array kinds and lengths, every size product
// against overflow, token ids against the vocabulary and image indices against the images given, and it turns
// allocation failures and oneDNN errors into JS errors instead of aborting. Reading an array element can run
// JavaScript (a getter), which could detach or shrink any ArrayBuffer: each entry point fetches every JS value it
// needs first (param_values), and only then takes data pointers, so no JavaScript runs while it holds one. Friendlier
// validation (messages that name config fields) lives in src/model/native-model.ts; the typed declaration is
// src/model/binding.ts.
#include <napi.h>

#include <array>
#include <climits>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "bf16.h"
#include "gemm.h"
#include "model.h"
#include "onednn.h"
#include "parallel.h"
#include "profile.h"

using namespace sat;

namespace {

struct NativeWorkspace {
  Workspace<float> f32;
  Workspace<double> f64;
  DecodeWorkspace decode;
};

// Tags the workspace External so an External from elsewhere is refused (not reinterpreted).
constexpr napi_type_tag kWorkspaceTag = {0x5a7c0de0b1d1a9e3ULL, 0x9f4e2a6c31d87b15ULL};

// ---------------------------------------------------------------- argument readers (all throw a named JS error)

[[noreturn]] void type_error(Napi::Env env, const std::string& what) {
  throw Napi::TypeError::New(env, what);
}
[[noreturn]] void range_error(Napi::Env env, const std::string& what) {
  throw Napi::RangeError::New(env, what);
}

void expect_args(const Napi::CallbackInfo& info, size_t n, const char* signature) {
  if (info.Length() < n)
    type_error(info.Env(), std::string(signature) + ": expected at least " + std::to_string(n) + " arguments, got " +
                               std::to_string(info.Length()));
}

bool is_absent(const Napi::Value& v) {
  return v.IsUndefined() || v.IsNull();
}

double number_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsNumber()) type_error(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

// An integer in [lo, hi] (a double that is not an integer, NaN or out of range is refused, not truncated).
int64_t integer_arg(const Napi::CallbackInfo& info, size_t i, const char* what, int64_t lo, int64_t hi) {
  const double x = number_arg(info, i, what);
  if (!(x >= (double)lo && x <= (double)hi) || x != (double)(int64_t)x)
    range_error(info.Env(), std::string(what) + " must be an integer in [" + std::to_string(lo) + ", " +
                                std::to_string(hi) + "], got " + std::to_string(x));
  return (int64_t)x;
}

bool bool_arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsBoolean()) type_error(info.Env(), std::string(what) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

template <typename T>
struct ArrayKind;
template <>
struct ArrayKind<float> {
  static constexpr napi_typedarray_type type = napi_float32_array;
  static constexpr const char* name = "Float32Array";
};
template <>
struct ArrayKind<double> {
  static constexpr napi_typedarray_type type = napi_float64_array;
  static constexpr const char* name = "Float64Array";
};
template <>
struct ArrayKind<int32_t> {
  static constexpr napi_typedarray_type type = napi_int32_array;
  static constexpr const char* name = "Int32Array";
};
template <>
struct ArrayKind<uint16_t> {
  static constexpr napi_typedarray_type type = napi_uint16_array;
  static constexpr const char* name = "Uint16Array";
};

// The elements of a typed array of kind T with at least `need` elements.
template <typename T>
T* data_of(Napi::Env env, const Napi::Value& v, size_t need, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != ArrayKind<T>::type)
    type_error(env, what + " must be a " + ArrayKind<T>::name);
  auto ta = v.As<Napi::TypedArray>();
  if (ta.ElementLength() < need)
    range_error(env, what + " has " + std::to_string(ta.ElementLength()) + " elements, needs " + std::to_string(need));
  return reinterpret_cast<T*>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
}

template <typename T>
T* data_arg(const Napi::CallbackInfo& info, size_t i, size_t need, const std::string& what) {
  if (i >= info.Length()) type_error(info.Env(), what + " is missing (a " + ArrayKind<T>::name + ")");
  return data_of<T>(info.Env(), info[i], need, what);
}

NativeWorkspace* workspace_arg(const Napi::CallbackInfo& info, size_t i) {
  const Napi::Value v = i < info.Length() ? info[i] : info.Env().Undefined();
  if (!v.IsExternal() || !v.As<Napi::External<NativeWorkspace>>().CheckTypeTag(&kWorkspaceTag))
    type_error(info.Env(), "workspace must come from createWorkspace()");
  return v.As<Napi::External<NativeWorkspace>>().Data();
}

// ---------------------------------------------------------------- sizes

// Dims [B, T, L, C, E, U, A, V]: T may be 0 (inference), every other size must be positive. Then every buffer the
// kernels use for these sizes (with `images` feature rows) must hold at most 2^31-1 elements: kernels index within
// a buffer in int arithmetic, and no product of sizes may overflow on the way.
Dims dims_arg(const Napi::CallbackInfo& info, size_t i, int images = -1) {
  Napi::Env env = info.Env();
  const int32_t* a = data_arg<int32_t>(info, i, 8, "dims");
  static const char* names[8] = {"B", "T", "L", "C", "E", "U", "A", "V"};
  for (int k = 0; k < 8; k++) {
    const int32_t lo = k == 1 ? 0 : 1;
    if (a[k] < lo)
      range_error(env, std::string("dims: ") + names[k] + " = " + std::to_string(a[k]) + " must be " +
                           (lo ? "positive" : "non-negative"));
  }
  Dims d{a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]};
  if (const char* what = oversized_buffer(d, images < 0 ? d.B : images))
    range_error(env, std::string("dims [B=") + std::to_string(d.B) + ", T=" + std::to_string(d.T) +
                         ", L=" + std::to_string(d.L) + ", C=" + std::to_string(d.C) + ", E=" + std::to_string(d.E) +
                         ", U=" + std::to_string(d.U) + ", A=" + std::to_string(d.A) + ", V=" + std::to_string(d.V) +
                         "]: the buffer " + what + " would hold more than 2^31-1 elements");
  return d;
}

// The elements of a parameter array (params or grads), fetched before any data pointer is taken: Get may run a
// getter. A Proxy is not an Array here (napi_is_array), so it is refused like any other non-array.
using ParamValues = std::array<Napi::Value, kNumParams>;

ParamValues param_values(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsArray() || info[i].As<Napi::Array>().Length() != kNumParams)
    type_error(info.Env(), std::string(what) + " must be an array of " + std::to_string(kNumParams) + " typed arrays");
  auto arr = info[i].As<Napi::Array>();
  ParamValues values;
  for (int k = 0; k < kNumParams; k++) values[k] = arr.Get((uint32_t)k);
  return values;
}

// Data pointers of fetched parameter values; runs no JavaScript.
template <typename T>
Params<T> params_of(Napi::Env env, const ParamValues& values, const Dims& d, const char* what) {
  Params<T> p;
  for (int k = 0; k < kNumParams; k++)
    p.at[k] = data_of<T>(env, values[k], param_size(d, k), std::string(what) + "[" + std::to_string(k) + "]");
  return p;
}

// Indices (token ids, image rows) are copied before they are checked, and the kernels read the copy: a typed
// array on a SharedArrayBuffer could change between the check and the use.
std::vector<int32_t> copy_of(const int32_t* x, size_t n) {
  return std::vector<int32_t>(x, x + n);
}

void check_tokens(Napi::Env env, const std::vector<int32_t>& tokens, int V, const char* what) {
  for (size_t k = 0; k < tokens.size(); k++)
    if (tokens[k] < 0 || tokens[k] >= V)
      range_error(env, std::string(what) + "[" + std::to_string(k) + "] = " + std::to_string(tokens[k]) +
                           " is outside the vocabulary [0, " + std::to_string(V) + ")");
}

// info[i]: imageOfRow Int32Array [rows], copied, each entry an image in [0, num_images).
std::vector<int32_t> image_rows_arg(const Napi::CallbackInfo& info, size_t i, size_t rows, int num_images) {
  std::vector<int32_t> image_rows = copy_of(data_arg<int32_t>(info, i, rows, "imageOfRow"), rows);
  for (size_t b = 0; b < rows; b++)
    if (image_rows[b] < 0 || image_rows[b] >= num_images)
      range_error(info.Env(), "imageOfRow[" + std::to_string(b) + "] is outside [0, numImages = " +
                                  std::to_string(num_images) + "): " + std::to_string(image_rows[b]));
  return image_rows;
}

// 'fp32' (or absent) -> false, 'bf16' -> true when this build and CPU can run bf16 products natively.
bool precision_arg(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || is_absent(info[i])) return false;
  const std::string p = info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : "";
  if (p == "fp32") return false;
  if (p != "bf16") type_error(info.Env(), "precision must be 'fp32' or 'bf16'");
  if (gemm_backend() != GemmBackend::onednn)
    range_error(info.Env(), "precision 'bf16' needs the oneDNN matmul backend, and the backend is " +
                                std::string(gemm_backend_name(gemm_backend())));
  if (!onednn_has_native_bf16())
    range_error(info.Env(),
                "precision 'bf16' needs bf16 instructions (AVX512-BF16 or AMX), and oneDNN's ISA on this CPU is " +
                    onednn_isa());
  return true;
}

// ---------------------------------------------------------------- entry points

// Every entry point runs through this: argument errors are already Napi::Error; allocation failures (workspace
// growth) and any other C++ exception become JS errors here instead of terminating the process.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(info.Env(),
                                "out of memory: the native core could not allocate its buffers for these sizes");
  } catch (const std::length_error& e) {
    throw Napi::RangeError::New(info.Env(),
                                std::string("out of memory: a native buffer would be too large (") + e.what() + ")");
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string("native core error: ") + e.what());
  }
}

Napi::Value CreateWorkspace(const Napi::CallbackInfo& info) {
  auto ext = Napi::External<NativeWorkspace>::New(info.Env(), new NativeWorkspace(),
                                                  [](Napi::Env, NativeWorkspace* ws) { delete ws; });
  ext.TypeTag(&kWorkspaceTag);
  return ext;
}

// Frees the buffers now (the External itself is reclaimed by the garbage collector).
Napi::Value ReleaseWorkspace(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "releaseWorkspace(ws)");
  NativeWorkspace* ws = workspace_arg(info, 0);
  *ws = NativeWorkspace();
  return info.Env().Undefined();
}

// trainStep(ws, params, grads|null, dims, features, tokens, dropout, lambda, seed, resetState, meanInit,
//           weights?, imageOfRow?, numImages?, precision?, labelSmoothing?); `params` and `grads` (absent: forward
//           only) already fetched.
template <typename T>
Napi::Value TrainStepT(const Napi::CallbackInfo& info, const ParamValues& params, const ParamValues* grads) {
  Napi::Env env = info.Env();
  NativeWorkspace* ws = workspace_arg(info, 0);
  // info[12], info[13]: optional imageOfRow Int32Array [B] and the number of images features holds
  const bool shared = info.Length() > 12 && !is_absent(info[12]);
  const int num_images = shared ? (int)integer_arg(info, 13, "numImages", 1, INT_MAX) : -1;
  const Dims d = dims_arg(info, 3, num_images);
  const Params<T> p = params_of<T>(env, params, d, "params");
  const bool with_grads = grads != nullptr;
  Params<T> g{};
  if (with_grads) g = params_of<T>(env, *grads, d, "grads");
  const std::vector<int32_t> image_rows =
      shared ? image_rows_arg(info, 12, (size_t)d.B, num_images) : std::vector<int32_t>();
  const int32_t* image_of_row = shared ? image_rows.data() : nullptr;
  const int images = shared ? num_images : d.B;
  const T* features = data_arg<T>(info, 4, (size_t)images * d.L * d.C, "features");
  const size_t ntok = (size_t)d.B * (d.T + 1);
  const std::vector<int32_t> tokens = copy_of(data_arg<int32_t>(info, 5, ntok, "tokens"), ntok);
  check_tokens(env, tokens, d.V, "tokens");
  StepOptions opt;
  opt.dropout = number_arg(info, 6, "dropout");
  if (!(opt.dropout >= 0 && opt.dropout < 1)) range_error(env, "dropout must be in [0, 1)");
  opt.lambda = number_arg(info, 7, "attentionLambda");
  opt.seed = (uint32_t)integer_arg(info, 8, "dropoutSeed", 0, UINT32_MAX);
  opt.reset_state = bool_arg(info, 9, "resetState");
  opt.mean_init = bool_arg(info, 10, "meanInit");
  // info[11]: optional per-sequence loss weights [B] (null/undefined = all 1)
  const T* weights =
      info.Length() > 11 && !is_absent(info[11]) ? data_arg<T>(info, 11, (size_t)d.B, "weights") : nullptr;
  // info[14]: optional precision 'fp32' (default) or 'bf16'
  opt.bf16 = precision_arg(info, 14);
  if (opt.bf16 && !std::is_same_v<T, float>) range_error(env, "precision 'bf16' applies to Float32Array steps only");
  // info[15]: optional label smoothing eps in [0, 1) (absent = 0)
  if (info.Length() > 15 && !is_absent(info[15])) {
    opt.label_smoothing = number_arg(info, 15, "labelSmoothing");
    if (!(opt.label_smoothing >= 0 && opt.label_smoothing < 1)) range_error(env, "labelSmoothing must be in [0, 1)");
  }
  Workspace<T>* w;
  if constexpr (std::is_same_v<T, float>)
    w = &ws->f32;
  else
    w = &ws->f64;
  StepResult r =
      train_step<T>(*w, d, p, with_grads ? &g : nullptr, features, tokens.data(), opt, weights, image_of_row, images);
  Napi::Object out = Napi::Object::New(env);
  out.Set("loss", r.loss);
  out.Set("crossEntropySum", r.ce_sum);
  out.Set("attentionPenalty", r.reg);
  out.Set("tokens", r.tokens);
  return out;
}

Napi::Value TrainStep(const Napi::CallbackInfo& info) {
  expect_args(info, 11,
              "trainStep(ws, params, grads, dims, features, tokens, dropout, attentionLambda, dropoutSeed, "
              "resetState, meanInit, weights?, imageOfRow?, numImages?, precision?, labelSmoothing?)");
  const ParamValues params = param_values(info, 1, "params");
  const bool with_grads = !is_absent(info[2]);
  const ParamValues grads = with_grads ? param_values(info, 2, "grads") : ParamValues{};
  // The element type follows params[0]: Float64Array selects the test-only float64 path.
  const Napi::Value& first = params[0];
  if (first.IsTypedArray() && first.As<Napi::TypedArray>().TypedArrayType() == napi_float64_array)
    return TrainStepT<double>(info, params, with_grads ? &grads : nullptr);
  return TrainStepT<float>(info, params, with_grads ? &grads : nullptr);
}

// encode(params, dims, features, encoded, projected, hidden, meanInit)
Napi::Value Encode(const Napi::CallbackInfo& info) {
  expect_args(info, 7, "encode(params, dims, features, encoded, projected, hidden, meanInit)");
  const ParamValues params = param_values(info, 0, "params");
  const Dims d = dims_arg(info, 1);
  const Params<float> p = params_of<float>(info.Env(), params, d, "params");
  const size_t NL = (size_t)d.B * d.L;
  const float* features = data_arg<float>(info, 2, NL * d.C, "features");
  float* enc = data_arg<float>(info, 3, NL * d.E, "encoded");
  float* keys = data_arg<float>(info, 4, NL * d.A, "projected");
  float* hidden = data_arg<float>(info, 5, (size_t)d.B * d.U, "hidden");
  encode(d, p, features, enc, keys, hidden, bool_arg(info, 6, "meanInit"));
  return info.Env().Undefined();
}

// decodeStep(ws, params, dims, encoded, projected, hidden, tokens, logits, attention, hiddenOut, resetState,
//            imageOfRow?, numImages?): with imageOfRow [N], encoded and projected hold numImages rows.
Napi::Value DecodeStep(const Napi::CallbackInfo& info) {
  expect_args(info, 11,
              "decodeStep(ws, params, dims, encoded, projected, hidden, tokens, logits, attention, "
              "hiddenOut, resetState, imageOfRow?, numImages?)");
  Napi::Env env = info.Env();
  const ParamValues params = param_values(info, 1, "params");
  NativeWorkspace* ws = workspace_arg(info, 0);
  const Dims d = dims_arg(info, 2);
  const Params<float> p = params_of<float>(env, params, d, "params");
  const size_t N = d.B, NL = (size_t)d.B * d.L;
  const bool shared = info.Length() > 11 && !is_absent(info[11]);
  const int num_images = shared ? (int)integer_arg(info, 12, "numImages", 1, INT_MAX) : d.B;
  const std::vector<int32_t> image_rows = shared ? image_rows_arg(info, 11, N, num_images) : std::vector<int32_t>();
  const size_t IL = (size_t)num_images * d.L;
  const float* enc = data_arg<float>(info, 3, IL * d.E, "encoded");
  const float* keys = data_arg<float>(info, 4, IL * d.A, "projected");
  const float* hidden = data_arg<float>(info, 5, N * d.U, "hidden");
  const std::vector<int32_t> tokens = copy_of(data_arg<int32_t>(info, 6, N, "tokens"), N);
  check_tokens(info.Env(), tokens, d.V, "tokens");
  float* logits = data_arg<float>(info, 7, N * d.V, "logits");
  float* alpha = data_arg<float>(info, 8, NL, "attention");
  float* hidden_out = data_arg<float>(info, 9, N * d.U, "hiddenOut");
  decode_step(ws->decode, d, p, enc, keys, hidden, tokens.data(), logits, alpha, hidden_out,
              bool_arg(info, 10, "resetState"), shared ? image_rows.data() : nullptr);
  return info.Env().Undefined();
}

// parameterTable(dims): [{name, shape}] of every parameter in ParamId order for the sizes dims (the table of
// native/model.h), so TypeScript and the PyTorch twin can be checked against the one declaration.
Napi::Value ParameterTable(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "parameterTable(dims)");
  Napi::Env env = info.Env();
  const Dims d = dims_arg(info, 0);
  Napi::Array out = Napi::Array::New(env, kNumParams);
  for (int i = 0; i < kNumParams; i++) {
    const ParamShape s = param_shape(d, i);
    Napi::Array shape = Napi::Array::New(env, s.cols ? 2 : 1);
    shape.Set(0u, (double)s.rows);
    if (s.cols) shape.Set(1u, (double)s.cols);
    Napi::Object row = Napi::Object::New(env);
    row.Set("name", s.name);
    row.Set("shape", shape);
    out.Set((uint32_t)i, row);
  }
  return out;
}

size_t length_of(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (i >= info.Length() || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    type_error(info.Env(), std::string(what) + " must be a Float32Array");
  return info[i].As<Napi::TypedArray>().ElementLength();
}

// adamUpdate(params, grads, m, v, learningRate, beta1, beta2, epsilon, step, gradScale)
Napi::Value AdamUpdate(const Napi::CallbackInfo& info) {
  expect_args(info, 10, "adamUpdate(params, grads, m, v, learningRate, beta1, beta2, epsilon, step, gradScale)");
  const size_t n = length_of(info, 0, "params");
  float* p = data_arg<float>(info, 0, n, "params");
  const float* g = data_arg<float>(info, 1, n, "grads");
  float* m = data_arg<float>(info, 2, n, "m");
  float* v = data_arg<float>(info, 3, n, "v");
  adam_update(p, g, m, v, n, number_arg(info, 4, "learningRate"), number_arg(info, 5, "beta1"),
              number_arg(info, 6, "beta2"), number_arg(info, 7, "epsilon"),
              (int)integer_arg(info, 8, "step", 1, INT_MAX), number_arg(info, 9, "gradScale"));
  return info.Env().Undefined();
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "sumSquares(x)");
  const size_t n = length_of(info, 0, "x");
  return Napi::Number::New(info.Env(), sum_squares(data_arg<float>(info, 0, n, "x"), n));
}

// sgemm(m, n, k, a, b, c): c[M,N] = a[M,K] b[K,N] through CBLAS whatever the backend (the benchmark's peak).
Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  expect_args(info, 6, "sgemm(m, n, k, a, b, c)");
  const int M = (int)integer_arg(info, 0, "m", 1, INT_MAX), N = (int)integer_arg(info, 1, "n", 1, INT_MAX),
            K = (int)integer_arg(info, 2, "k", 1, INT_MAX);
  if ((int64_t)M * N > INT_MAX || (int64_t)M * K > INT_MAX || (int64_t)K * N > INT_MAX)
    range_error(info.Env(), "sgemm: m*n, m*k and k*n must each be at most 2^31-1");
  const float* a = data_arg<float>(info, 3, (size_t)M * K, "a");
  const float* b = data_arg<float>(info, 4, (size_t)K * N, "b");
  float* c = data_arg<float>(info, 5, (size_t)M * N, "c");
  cblas_gemm(false, false, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
  return info.Env().Undefined();
}

GemmBackend backend_arg(const Napi::CallbackInfo& info, size_t i) {
  const std::string name = i < info.Length() && info[i].IsString() ? info[i].As<Napi::String>().Utf8Value() : "";
  if (name == "cblas") return GemmBackend::cblas;
  if (name == "onednn") {
    if (!onednn_built())
      range_error(info.Env(), "the oneDNN backend is not in this build (install libdnnl-dev, then rebuild the addon)");
    return GemmBackend::onednn;
  }
  type_error(info.Env(), "backend must be 'cblas' or 'onednn'");
}

// gemmPeak(backend, precision, m, n, k, repeats): seconds of each of `repeats` products c[M,N] = a[M,K] b[K,N]
// on random operands prepared beforehand (bf16 operands converted before timing), for the benchmark's roofs.
Napi::Value GemmPeak(const Napi::CallbackInfo& info) {
  expect_args(info, 6, "gemmPeak(backend, precision, m, n, k, repeats)");
  const GemmBackend backend = backend_arg(info, 0);
  const std::string precision = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  if (precision != "fp32" && precision != "bf16") type_error(info.Env(), "precision must be 'fp32' or 'bf16'");
  const bool bf16 = precision == "bf16";
  if (bf16 && backend != GemmBackend::onednn) range_error(info.Env(), "bf16 products need the oneDNN backend");
  const int M = (int)integer_arg(info, 2, "m", 1, 1 << 16), N = (int)integer_arg(info, 3, "n", 1, 1 << 16),
            K = (int)integer_arg(info, 4, "k", 1, 1 << 16);
  const int repeats = (int)integer_arg(info, 5, "repeats", 1, 1000);
  if ((int64_t)M * N > INT_MAX || (int64_t)M * K > INT_MAX || (int64_t)K * N > INT_MAX)
    range_error(info.Env(), "gemmPeak: m*n, m*k and k*n must each be at most 2^31-1");
  const std::vector<double> seconds = gemm_peak(backend, bf16, M, N, K, repeats);
  Napi::Array out = Napi::Array::New(info.Env(), seconds.size());
  for (size_t i = 0; i < seconds.size(); i++) out.Set((uint32_t)i, seconds[i]);
  return out;
}

// setProfiling(on): timers inside the training step (native/profile.h); profile() returns and clears them.
Napi::Value SetProfiling(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "setProfiling(on)");
  set_profiling(bool_arg(info, 0, "on"));
  return info.Env().Undefined();
}

Napi::Value Profile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::vector<ProfileEntry> entries = take_profile();
  Napi::Array out = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); i++) {
    Napi::Object e = Napi::Object::New(env);
    e.Set("name", entries[i].name);
    e.Set("seconds", entries[i].seconds);
    e.Set("matmulSeconds", entries[i].matmul_seconds);
    e.Set("cpuSeconds", entries[i].cpu_seconds);
    e.Set("matmulCpuSeconds", entries[i].matmul_cpu_seconds);
    e.Set("calls", (double)entries[i].calls);
    out.Set((uint32_t)i, e);
  }
  return out;
}

// setGemmBackend('cblas' | 'onednn'): the backend of every float product from now on.
Napi::Value SetGemmBackend(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "setGemmBackend(backend)");
  set_gemm_backend(backend_arg(info, 0));
  return info.Env().Undefined();
}

// gemmInfo(): the backend in use, the backends built, and which kernels ran.
Napi::Value GemmInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("backend", gemm_backend_name(gemm_backend()));
  Napi::Array built = Napi::Array::New(env);
  built.Set(0u, "cblas");
  if (onednn_built()) built.Set(1u, "onednn");
  out.Set("built", built);
  out.Set("blas", blas_kernels());
  if (onednn_built()) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("version", onednn_version());
    d.Set("isa", onednn_isa());
    d.Set("nativeBf16", onednn_has_native_bf16());
    const std::vector<std::string> names = onednn_kernels();
    Napi::Array kernels = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); i++) kernels.Set((uint32_t)i, names[i]);
    d.Set("kernels", kernels);
    out.Set("onednn", d);
  }
  return out;
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  expect_args(info, 2, "setThreads(blas, workers)");
  const int blas = (int)integer_arg(info, 0, "blas threads", 1, 4096);
  const int workers = (int)integer_arg(info, 1, "worker threads", 1, 4096);
  set_blas_threads(blas);
  set_worker_threads(workers);
  return info.Env().Undefined();
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("blas", get_blas_threads());
  out.Set("workers", get_worker_threads());
  return out;
}

// toBf16(src, dst): dst[i] = the bf16 bits of src[i], through the conversion the bf16 training step uses (chunked
// over the worker threads, AVX512-BF16 where the build has it): the tests hold it to a reference rounding.
Napi::Value ToBf16(const Napi::CallbackInfo& info) {
  expect_args(info, 2, "toBf16(src, dst)");
  const size_t n = length_of(info, 0, "src");
  const float* src = data_arg<float>(info, 0, n, "src");
  uint16_t* dst = data_arg<uint16_t>(info, 1, n, "dst");
  to_bf16(dst, src, n);
  return info.Env().Undefined();
}

// throwForTest(kind): throws std::bad_alloc, std::length_error or std::runtime_error inside an entry point, so
// the tests can check that `guarded` turns each into a JS error (a real allocation failure is not reproducible);
// 'onednn' runs a product oneDNN refuses, through the error path of every oneDNN call.
Napi::Value ThrowForTest(const Napi::CallbackInfo& info) {
  expect_args(info, 1, "throwForTest(kind)");
  const std::string kind = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (kind == "bad_alloc") throw std::bad_alloc();
  if (kind == "length_error") std::vector<float>().reserve(SIZE_MAX);  // throws std::length_error
  if (kind == "runtime_error") throw std::runtime_error("runtime_error for a test");
  if (kind == "onednn") onednn::fail_for_test();
  type_error(info.Env(), "kind must be 'bad_alloc', 'length_error', 'runtime_error' or 'onednn'");
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("parameterTable", Napi::Function::New(env, guarded<ParameterTable>));
  exports.Set("createWorkspace", Napi::Function::New(env, guarded<CreateWorkspace>));
  exports.Set("releaseWorkspace", Napi::Function::New(env, guarded<ReleaseWorkspace>));
  exports.Set("trainStep", Napi::Function::New(env, guarded<TrainStep>));
  exports.Set("encode", Napi::Function::New(env, guarded<Encode>));
  exports.Set("decodeStep", Napi::Function::New(env, guarded<DecodeStep>));
  exports.Set("adamUpdate", Napi::Function::New(env, guarded<AdamUpdate>));
  exports.Set("sumSquares", Napi::Function::New(env, guarded<SumSquares>));
  exports.Set("sgemm", Napi::Function::New(env, guarded<Sgemm>));
  exports.Set("setThreads", Napi::Function::New(env, guarded<SetThreads>));
  exports.Set("threads", Napi::Function::New(env, guarded<Threads>));
  exports.Set("gemmPeak", Napi::Function::New(env, guarded<GemmPeak>));
  exports.Set("setGemmBackend", Napi::Function::New(env, guarded<SetGemmBackend>));
  exports.Set("setProfiling", Napi::Function::New(env, guarded<SetProfiling>));
  exports.Set("profile", Napi::Function::New(env, guarded<Profile>));
  exports.Set("gemmInfo", Napi::Function::New(env, guarded<GemmInfo>));
  exports.Set("toBf16", Napi::Function::New(env, guarded<ToBf16>));
  exports.Set("throwForTest", Napi::Function::New(env, guarded<ThrowForTest>));
  return exports;
}

}  // namespace

NODE_API_MODULE(sat_native, Init)
