/**
 * The single typed declaration of the C++ addon (native/binding.cc) and its loader.
 * The native side only computes: callers (native-model.ts) own every buffer and validate shapes first;
 * the addon still checks argument counts and types, array kinds and lengths, size products against overflow,
 * token ids and image indices, so a bad call throws a JS error naming the argument instead of corrupting memory
 * (test/native-binding-safety.test.ts).
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';

/** One row of the addon's parameter table: a parameter's name and shape ([rows, cols], or [rows] for a bias). */
export interface ParameterTableRow {
  name: string;
  shape: number[];
}

/** Opaque handle to native scratch buffers kept across steps (they grow, never shrink). */
export type NativeWorkspace = { readonly __brand: 'NativeWorkspace' };

/** Sizes as the addon reads them: Int32Array [B, T, L, C, E, U, A, V] (B = N rows for inference). */
export type NativeDims = Int32Array;

export type FloatArray = Float32Array | Float64Array;

/** Matrix products: oneDNN matmul primitives (Linux with libdnnl-dev) or CBLAS (OpenBLAS, macOS Accelerate). */
export type GemmBackend = 'cblas' | 'onednn';
export const GEMM_BACKENDS: readonly GemmBackend[] = ['cblas', 'onednn'];
/** Operands of the big training matmuls: fp32, or bf16 with f32 accumulation (oneDNN only). */
export type Precision = 'fp32' | 'bf16';

/**
 * One timed section of the training step: seconds excludes nested sections; matmulSeconds is the part in matmuls.
 * cpuSeconds / matmulCpuSeconds: the same in CPU time of the calling thread, which with setThreads(1, 1) holds all
 * the work and ignores the time spent waiting for a core (a reliable profile on a loaded machine).
 */
export interface ProfileSection {
  name: string;
  seconds: number;
  matmulSeconds: number;
  cpuSeconds: number;
  matmulCpuSeconds: number;
  calls: number;
}

export interface GemmInfo {
  backend: GemmBackend; // in use now
  built: GemmBackend[]; // in this build
  blas: string; // e.g. 'OpenBLAS Haswell' (the CBLAS library and its kernels)
  /** Where the build has oneDNN: its version, effective ISA, whether that has bf16 instructions (AVX512-BF16 or
   * AMX), and the implementations of the matmul primitives created so far (e.g. 'brg:avx512_core_bf16'). */
  onednn?: { version: string; isa: string; nativeBf16: boolean; kernels: string[] };
}

export interface NativeStepResult {
  loss: number; // crossEntropySum / tokens + attentionPenalty
  crossEntropySum: number;
  attentionPenalty: number; // lambda/B * sum_b sum_l (1 - sum_t alpha)^2, 0 when lambda = 0
  tokens: number;
}

export interface NativeBinding {
  /**
   * The parameter table of native/model.h (its one declaration) for the sizes `dims`: every parameter's name (the
   * checkpoint tensor name) and shape ([rows, cols], or [rows] for a bias), in the order trainStep takes them.
   * dims are checked as trainStep's.
   */
  parameterTable(dims: NativeDims): ParameterTableRow[];
  createWorkspace(): NativeWorkspace;
  /** Frees the workspace's buffers now. */
  releaseWorkspace(ws: NativeWorkspace): void;
  /**
   * Forward over a padded batch; with `grads` also backward (gradients are overwritten, not added).
   * params/grads: one array per parameter in PARAMETER_ORDER (src/model/params.ts), all Float32Array or all Float64Array (test-only path),
   * features [B, L, C] of the same type, tokens [B, T+1]. resetState: the TF tutorial's GRU, restarted from
   * zeros every step (the previous output is only the attention query); false = a real recurrence.
   * meanInit: H[0] = tanh(mean_l(encoded) · init_state.kernel + init_state.bias) (the paper) instead of zeros.
   * weights [B] (same type as features, or null = all 1): each sequence's cross-entropy terms are multiplied by
   * its weight (self-critical training: the reward advantage); crossEntropySum is then the weighted sum.
   * imageOfRow [B] (or null): rows share images, features then hold numImages rows [numImages, L, C] and the
   * projection runs once per image (self-critical training's K samples of one image).
   * precision 'bf16' (Float32Array steps on the oneDNN backend, on CPUs with AVX512-BF16 or AMX): the step's matrix
   * products take bf16 operands with f32 accumulation; weights, gradients, softmax and loss stay f32.
   */
  trainStep<A extends FloatArray>(
    ws: NativeWorkspace,
    params: A[],
    grads: A[] | null,
    dims: NativeDims,
    features: A,
    tokens: Int32Array,
    dropout: number,
    attentionLambda: number,
    dropoutSeed: number,
    resetState: boolean,
    meanInit: boolean,
    weights?: A | null,
    imageOfRow?: Int32Array | null,
    numImages?: number,
    precision?: Precision,
    labelSmoothing?: number,
  ): NativeStepResult;
  /**
   * features [N, L, C] -> encoded [N, L, E], projected [N, L, A], hidden [N, U] the decoder's initial state
   * (zeros, or from the mean annotation vector with meanInit, as trainStep's H[0]).
   */
  encode(
    params: Float32Array[],
    dims: NativeDims,
    features: Float32Array,
    encoded: Float32Array,
    projected: Float32Array,
    hidden: Float32Array,
    meanInit: boolean,
  ): void;
  /** One decoder step for N rows: writes logits [N, V], attention [N, L], hiddenOut [N, U]. resetState as in trainStep. */
  decodeStep(
    ws: NativeWorkspace,
    params: Float32Array[],
    dims: NativeDims,
    encoded: Float32Array,
    projected: Float32Array,
    hidden: Float32Array,
    tokens: Int32Array,
    logits: Float32Array,
    attention: Float32Array,
    hiddenOut: Float32Array,
    resetState: boolean,
    /** [N]: row i reads image imageOfRow[i] of encoded and projected, which then hold numImages rows. */
    imageOfRow?: Int32Array,
    numImages?: number,
  ): void;
  /** Keras Adam over whole arenas; gradients are multiplied by gradScale first (clipping). */
  adamUpdate(
    params: Float32Array,
    grads: Float32Array,
    m: Float32Array,
    v: Float32Array,
    learningRate: number,
    beta1: number,
    beta2: number,
    epsilon: number,
    step: number,
    gradScale: number,
  ): void;
  sumSquares(x: Float32Array): number;
  /** c[M, N] = a[M, K] b[K, N] through CBLAS, whatever the backend (benchmark peak). */
  sgemm(m: number, n: number, k: number, a: Float32Array, b: Float32Array, c: Float32Array): void;
  /**
   * Seconds of each of `repeats` products c[M, N] = a[M, K] b[K, N] on random operands prepared beforehand (bf16
   * operands converted before timing), after one untimed product: the benchmark's matmul roofs.
   */
  gemmPeak(backend: GemmBackend, precision: Precision, m: number, n: number, k: number, repeats: number): number[];
  /** The backend of every float matrix product from now on ('onednn' only where the build has it). */
  setGemmBackend(backend: GemmBackend): void;
  gemmInfo(): GemmInfo;
  /** Timers inside the training step (off by default); profile() returns the sections since the last call. */
  setProfiling(on: boolean): void;
  profile(): ProfileSection[];
  /** OpenBLAS threads, and OpenMP workers (the elementwise and attention kernels, and oneDNN's matmuls). */
  setThreads(blas: number, workers: number): void;
  threads(): { blas: number; workers: number };
  /**
   * dst[i] = the bf16 bits of src[i] (round to nearest even; NaN stays a quiet NaN; denormals become signed zero),
   * through the conversion of the bf16 training step (native/bf16.h): held to a reference by the tests.
   */
  toBf16(src: Float32Array, dst: Uint16Array): void;
  /** Test-only: throws that C++ exception inside an entry point, or runs a product oneDNN refuses ('onednn'): each must arrive as a JS error. */
  throwForTest(kind: 'bad_alloc' | 'length_error' | 'runtime_error' | 'onednn'): never;
}

let cached: NativeBinding | undefined;

/**
 * Loads build/Release/sat_native.node (built by `npm ci` through node-gyp), or the build SAT_NATIVE_ADDON names (a
 * .node file, e.g. the sanitizer build of `npm run check:sanitize`). SAT_GEMM_BACKEND=cblas|onednn picks the
 * matmul backend for the whole process (default: oneDNN where the build has it), e.g. to run the tests on either.
 */
export function loadBinding(): NativeBinding {
  if (cached) return cached;
  // Works from src/model (tsx) and from dist/src/model (compiled): walk up to the package root.
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5 && !existsSync(join(dir, 'binding.gyp')); i++) dir = dirname(dir);
  const alternate = process.env.SAT_NATIVE_ADDON;
  if (alternate && !existsSync(alternate)) {
    throw new UserError(
      `SAT_NATIVE_ADDON=${alternate}: no such file. Give the path of a built sat_native.node, or unset it.`,
    );
  }
  const file = alternate || join(dir, 'build', 'Release', 'sat_native.node');
  // Idle OpenMP workers sleep instead of spinning: the elementwise regions alternate with OpenBLAS calls on the
  // same cores, and spinning threads steal them, worst on a busy machine (docs/design.md, "Idle OpenMP workers").
  // Read by libgomp when the addon loads, so set before; a user's setting wins.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
  if (!existsSync(file)) {
    throw new UserError(
      `The native training core is not built (${file} is missing). ` +
        'Run `npm ci` (or `npx node-gyp rebuild`) in the package directory; on Debian/Ubuntu it needs ' +
        '`sudo apt-get install libopenblas-dev` first.',
    );
  }
  const binding = createRequire(import.meta.url)(file) as NativeBinding;
  selectGemmBackend(binding, process.env.SAT_GEMM_BACKEND);
  cached = binding;
  return cached;
}

/** Applies SAT_GEMM_BACKEND's value (unset or empty: the build's default), refusing a name or backend it lacks. */
export function selectGemmBackend(binding: NativeBinding, backend: string | undefined): void {
  if (!backend) return;
  if (!GEMM_BACKENDS.includes(backend as GemmBackend)) {
    throw new UserError(
      `SAT_GEMM_BACKEND=${backend}: must be one of ${GEMM_BACKENDS.join(', ')} (or unset for the build's default).`,
    );
  }
  const built = binding.gemmInfo().built;
  if (!built.includes(backend as GemmBackend)) {
    throw new UserError(
      `SAT_GEMM_BACKEND=${backend}: this build of the native core has only ${built.join(', ')}. ` +
        'Install libdnnl-dev (Debian/Ubuntu) and rebuild with `npm rebuild` to get oneDNN, or unset SAT_GEMM_BACKEND.',
    );
  }
  binding.setGemmBackend(backend as GemmBackend);
}
