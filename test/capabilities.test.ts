/**
 * The addon's own answers about what it can run (gemmInfo(): oneDNN built, bf16 instructions) agree with sources
 * it does not control: /proc/cpuinfo's flags and the oneDNN installation on disk. Every required capability
 * (test/helpers/capabilities.ts: SAT_REQUIRE, set by .ci/run, or derived from those sources) is there and actually runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16Unavailable, resolvePrecision } from '../src/model/index.js';
import { loadBinding } from '../src/model/binding.js';
import {
  cpuFlags,
  cpuHasBf16,
  isRequired,
  onednnInstallation,
  parseRequire,
  requirements,
} from './helpers/capabilities.js';

const native = loadBinding();
const info = native.gemmInfo();
const flags = cpuFlags();
/** oneDNN honours these caps on its ISA; with one set, its answer may rightly differ from the CPU's flags. */
const isaCap = process.env.ONEDNN_MAX_CPU_ISA ?? process.env.DNNL_MAX_CPU_ISA;

test('SAT_REQUIRE: a list of known capabilities or none; unset, derived from the CPU flags and the installation', () => {
  assert.deepEqual([...parseRequire('onednn,bf16')], ['onednn', 'bf16']);
  assert.deepEqual([...parseRequire(' bf16 ')], ['bf16']);
  assert.deepEqual([...parseRequire('none')], []);
  assert.deepEqual([...parseRequire('')], []);
  assert.deepEqual([...parseRequire('onednn,bf16,chromium')], ['onednn', 'bf16', 'chromium']);
  assert.throws(
    () => parseRequire('onednn,avx'),
    /SAT_REQUIRE=onednn,avx: unknown capability "avx"; give a comma-separated list of onednn, bf16, chromium, or none/,
  );
  const derived = requirements({});
  assert.equal(derived.required.has('onednn'), onednnInstallation() !== null, derived.source);
  assert.equal(derived.required.has('bf16'), onednnInstallation() !== null && cpuHasBf16() === true, derived.source);
  assert.equal(derived.required.has('chromium'), false, 'Chromium only where SAT_REQUIRE says so');
  assert.equal(
    requirements({ SAT_GEMM_BACKEND: 'cblas' }).required.has('bf16'),
    false,
    'bf16 is not required on the CBLAS backend',
  );
  assert.deepEqual([...requirements({ SAT_REQUIRE: 'bf16' }).required], ['bf16']);
});

test('cpuHasBf16 reads the flags line of /proc/cpuinfo', () => {
  assert.equal(cpuHasBf16(new Set(['fpu', 'avx512f', 'avx512_bf16'])), true);
  assert.equal(cpuHasBf16(new Set(['fpu', 'amx_bf16', 'amx_tile'])), true);
  assert.equal(cpuHasBf16(new Set(['fpu', 'avx512f', 'avx512_vnni'])), false);
  assert.equal(cpuHasBf16(null), null);
  if (flags) assert.ok(flags.has('fpu') || flags.has('fp') || flags.size > 0, 'the flags line was found');
});

test('the build has oneDNN where oneDNN is required, and only where it is installed', () => {
  const installed = onednnInstallation();
  if (isRequired('onednn'))
    assert.ok(
      info.built.includes('onednn'),
      `oneDNN is required and installed in ${installed}, but this build has ${info.built.join(', ')}: rebuild (npx node-gyp rebuild) without SAT_ONEDNN=0`,
    );
  if (info.built.includes('onednn')) {
    assert.ok(installed !== null, 'a oneDNN build with no oneDNN installation found on disk');
    assert.match(info.onednn!.version, /^\d+\.\d+/);
  } else {
    assert.equal(info.onednn, undefined);
  }
});

test(
  'bf16 detection agrees with /proc/cpuinfo',
  {
    skip:
      (!flags && 'no /proc/cpuinfo') ||
      (!info.onednn && 'this build has no oneDNN') ||
      (isaCap !== undefined && `oneDNN's ISA is capped (${isaCap})`),
  },
  () => {
    const cpu = cpuHasBf16(flags)!;
    assert.equal(
      info.onednn!.nativeBf16,
      cpu,
      `oneDNN says nativeBf16 ${info.onednn!.nativeBf16} (ISA ${info.onednn!.isa}); /proc/cpuinfo ${cpu ? 'lists' : 'lacks'} avx512_bf16/amx_bf16`,
    );
    if (cpu) assert.match(info.onednn!.isa, /bf16|amx/);
    const onednnInUse = native.gemmInfo().backend === 'onednn';
    assert.equal(bf16Unavailable() === null, cpu && onednnInUse, `bf16Unavailable(): ${bf16Unavailable()}`);
    assert.equal(resolvePrecision('auto').precision, cpu && onednnInUse ? 'bf16' : 'fp32');
  },
);

test('every required capability runs: oneDNN matmuls, and bf16 ones with bf16 kernels', () => {
  for (const capability of ['onednn', 'bf16'] as const) {
    if (!isRequired(capability)) continue;
    const backend = native.gemmInfo().backend;
    native.setGemmBackend('onednn');
    try {
      native.gemmPeak('onednn', capability === 'bf16' ? 'bf16' : 'fp32', 32, 48, 64, 1);
    } finally {
      native.setGemmBackend(backend);
    }
    const kernels = native.gemmInfo().onednn!.kernels;
    assert.ok(
      kernels.some((k) => (capability === 'bf16' ? /bf16|amx/.test(k) : k.length > 0)),
      `${capability}: kernels ${kernels.join(', ')}`,
    );
  }
});
