/**
 * What this machine must run, decided without asking the addon: tests that need oneDNN or bf16 declare it through
 * testNeeding(), and a required capability that is missing fails those tests instead of skipping them.
 *
 * SAT_REQUIRE=onednn,bf16,chromium (or `none`) states the required capabilities; .ci/run sets it (bf16 from
 * /proc/cpuinfo). Unset, they are derived from independent sources: oneDNN when its headers and library are
 * installed (dnnl.hpp and libdnnl.so, where native/find-onednn.cjs looks), bf16 when oneDNN is required, the
 * backend in use is oneDNN (SAT_GEMM_BACKEND) and /proc/cpuinfo lists avx512_bf16 or amx_bf16. Chromium (the
 * browser tests) has no source but its own presence, so it is required only where SAT_REQUIRE says so.
 */
import { test, type TestFn, type TestOptions } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

export type Capability = 'onednn' | 'bf16' | 'chromium';
export const CAPABILITIES: readonly Capability[] = ['onednn', 'bf16', 'chromium'];

/** The CPU's flags from /proc/cpuinfo (first processor), or null where there is none (not Linux). */
export function cpuFlags(cpuinfo = '/proc/cpuinfo'): Set<string> | null {
  if (!fs.existsSync(cpuinfo)) return null;
  const line = fs
    .readFileSync(cpuinfo, 'utf8')
    .split('\n')
    .find((l) => /^flags\s*:/.test(l));
  return line
    ? new Set(
        line
          .replace(/^flags\s*:/, '')
          .trim()
          .split(/\s+/),
      )
    : new Set();
}

/** Whether the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16) by its flags; null where unknown. */
export function cpuHasBf16(flags = cpuFlags()): boolean | null {
  return flags === null ? null : flags.has('avx512_bf16') || flags.has('amx_bf16');
}

/** The prefix holding oneDNN's header and library (the prefixes native/find-onednn.cjs searches), or null. */
export function onednnInstallation(): string | null {
  if (process.platform !== 'linux') return null;
  const prefixes = [process.env.DNNLROOT, '/usr', '/usr/local'].filter((p): p is string => Boolean(p));
  const libDirs = (p: string) => [
    path.join(p, 'lib'),
    path.join(p, 'lib64'),
    path.join(p, 'lib', `${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`),
  ];
  return (
    prefixes.find(
      (p) =>
        fs.existsSync(path.join(p, 'include', 'oneapi', 'dnnl', 'dnnl.hpp')) &&
        libDirs(p).some((d) => fs.existsSync(d) && fs.readdirSync(d).some((f) => /^libdnnl\.so/.test(f))),
    ) ?? null
  );
}

/** Parses SAT_REQUIRE: a comma-separated list of capabilities, or `none`; unknown names are refused. */
export function parseRequire(value: string): Set<Capability> {
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 1 && names[0] === 'none') return new Set();
  for (const n of names) {
    if (!CAPABILITIES.includes(n as Capability)) {
      throw new Error(
        `SAT_REQUIRE=${value}: unknown capability "${n}"; give a comma-separated list of ${CAPABILITIES.join(', ')}, or none.`,
      );
    }
  }
  return new Set(names as Capability[]);
}

export interface Requirements {
  required: Set<Capability>;
  source: string;
}

/** The required capabilities and where that answer came from (for messages). */
export function requirements(env: NodeJS.ProcessEnv = process.env): Requirements {
  if (env.SAT_REQUIRE !== undefined)
    return { required: parseRequire(env.SAT_REQUIRE), source: `SAT_REQUIRE=${env.SAT_REQUIRE}` };
  const required = new Set<Capability>();
  const prefix = onednnInstallation();
  if (prefix) required.add('onednn');
  const onOnednn = (env.SAT_GEMM_BACKEND ?? '') !== 'cblas';
  if (prefix && onOnednn && cpuHasBf16()) required.add('bf16');
  const why = [
    prefix ? `oneDNN is installed in ${prefix}` : 'no oneDNN installation',
    required.has('bf16') ? '/proc/cpuinfo lists bf16 instructions' : null,
  ]
    .filter(Boolean)
    .join('; ');
  return { required, source: `SAT_REQUIRE unset: ${why}` };
}

const current = requirements();

/**
 * node:test's test() for a test that needs `capability`. `unavailable` is why it cannot run here (null: it can).
 * Unavailable and not required: skipped with that reason. Unavailable and required: the test runs and fails,
 * naming the requirement, so a broken build or CPU detection cannot pass by skipping.
 */
export function testNeeding(
  capability: Capability,
  unavailable: string | null,
  name: string,
  fn: TestFn,
  options: Omit<TestOptions, 'skip'> = {},
): void {
  if (!unavailable) {
    test(name, options, fn);
    return;
  }
  if (!current.required.has(capability)) {
    test(name, { ...options, skip: `needs ${capability}: ${unavailable}` }, fn);
    return;
  }
  test(name, options, () => assert.fail(`${capability} is required here (${current.source}), but ${unavailable}`));
}

export function isRequired(capability: Capability): boolean {
  return current.required.has(capability);
}
