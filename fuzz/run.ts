/**
 * Runs the fuzz targets of fuzz/targets.ts for a fixed budget: `npm run check:fuzz -- [options]`.
 *
 *   --seconds N      time per target (default 10)
 *   --iterations N   most inputs per target (default: no limit but the time)
 *   --seed N         run seed (default 1); input k of a target is a function of (seed, k) alone
 *   --target a,b     only these targets (default: all)
 *   --timeout-ms N   longest time one input may take before it counts as a hang (default 2000)
 *   --max-rss-mb N   peak resident memory that counts as excessive allocation (default 1536)
 *   --max-bytes N    largest input (default 65536)
 *   --out DIR        where failing inputs are written (default fuzz/crashes)
 *
 * Each target runs in a worker thread that reports every input before running it, so a hang (no report
 * within --timeout-ms) or a crash of the worker names the input. A failure is any exception that is not the
 * reader's own refusal (ParseError, or the UserError/BundleError the target names), a broken property, a
 * hang, or a peak RSS over the limit. Prints one line per target; exits 1 when anything failed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { mutateInput, mutateJson } from './mutate.js';
import { TARGETS, type FuzzTarget } from './targets.js';

interface Job {
  target: string;
  seed: number;
  seconds: number;
  iterations: number;
  maxRssMb: number;
  maxBytes: number;
}
type Report =
  | { kind: 'start'; k: number }
  | { kind: 'failure'; k: number; error: string; input: Uint8Array }
  | { kind: 'memory'; k: number; rssMb: number; input: Uint8Array }
  | { kind: 'done'; executed: number; refused: number; seeds: number };

const inputOf = (t: FuzzTarget, seeds: Uint8Array[], job: Job, k: number) =>
  (t.json ? mutateJson : mutateInput)(seeds, job.seed, k, job.maxBytes);

/** Worker side: run inputs until the budget is spent, reporting each before it runs. */
async function work(job: Job): Promise<void> {
  const t = TARGETS.find((x) => x.name === job.target)!;
  const seeds = t.seeds();
  const post = (r: Report) => parentPort!.postMessage(r);
  for (const [i, s] of seeds.entries()) {
    // a seed may be refused, but only with the reader's own error
    try {
      await t.run(s);
    } catch (e) {
      if (!t.expected(e)) throw new Error(`seed ${i} of ${t.name} fails: ${(e as Error)?.stack}`);
    }
  }
  const end = Date.now() + job.seconds * 1000;
  let k = 0,
    refused = 0,
    failures = 0;
  for (; k < job.iterations && Date.now() < end && failures < 20; k++) {
    const input = inputOf(t, seeds, job, k);
    post({ kind: 'start', k });
    try {
      await t.run(input);
    } catch (e) {
      if (t.expected(e)) refused++;
      else {
        failures++;
        post({ kind: 'failure', k, error: (e as Error)?.stack ?? String(e), input });
      }
    }
    const rssMb = process.resourceUsage().maxRSS / 1024; // the peak so far: an allocation freed again still shows
    if (rssMb > job.maxRssMb) {
      post({ kind: 'memory', k, rssMb, input });
      k++;
      break;
    }
  }
  post({ kind: 'done', executed: k, refused, seeds: seeds.length });
}

interface Outcome {
  target: string;
  executed: number;
  refused: number;
  seeds: number;
  failures: string[];
}

/** Main side: one worker per target, watched for hangs and deaths. */
function runTarget(job: Job, timeoutMs: number, outDir: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const worker = new Worker(new URL('./worker.mjs', import.meta.url), {
      workerData: job,
      resourceLimits: { maxOldGenerationSizeMb: job.maxRssMb },
    });
    const outcome: Outcome = { target: job.target, executed: 0, refused: 0, seeds: 0, failures: [] };
    let current = -1,
      startedAt = Date.now(),
      finished = false,
      stopping = false;
    const save = (k: number, input: Uint8Array | undefined, why: string) => {
      fs.mkdirSync(outDir, { recursive: true });
      const file = path.join(outDir, `${job.target}-seed${job.seed}-input${k}.bin`);
      const bytes =
        input ??
        (() => {
          const t = TARGETS.find((x) => x.name === job.target)!;
          return inputOf(t, t.seeds(), job, k);
        })();
      fs.writeFileSync(file, bytes);
      outcome.failures.push(`input ${k} (${path.relative(process.cwd(), file)}): ${why}`);
    };
    const finish = () => {
      if (!finished) {
        finished = true;
        clearInterval(watch);
        resolve(outcome);
      }
    };
    const watch = setInterval(
      () => {
        if (!stopping && current >= 0 && Date.now() - startedAt > timeoutMs) {
          stopping = true;
          save(current, undefined, `hang: no result after ${timeoutMs} ms`);
          outcome.executed = current + 1;
          void worker.terminate().then(finish);
        }
      },
      Math.min(200, timeoutMs / 4),
    );
    worker.on('message', (r: Report) => {
      if (r.kind === 'start') {
        current = r.k;
        startedAt = Date.now();
      } else if (r.kind === 'failure') save(r.k, r.input, r.error.split('\n').slice(0, 6).join('\n    '));
      else if (r.kind === 'memory')
        save(r.k, r.input, `peak RSS ${r.rssMb.toFixed(0)} MB is over the ${job.maxRssMb} MB limit`);
      else {
        outcome.executed = r.executed;
        outcome.refused = r.refused;
        outcome.seeds = r.seeds;
        current = -1;
      }
    });
    worker.on('error', (e) => {
      if (stopping) return;
      if (current >= 0) save(current, undefined, `worker died: ${e.message}`);
      else outcome.failures.push(`worker died before the first input: ${e.stack}`);
      outcome.executed = Math.max(outcome.executed, current + 1);
    });
    worker.on('exit', finish);
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '10' },
      iterations: { type: 'string' },
      seed: { type: 'string', default: '1' },
      target: { type: 'string' },
      'timeout-ms': { type: 'string', default: '2000' },
      'max-rss-mb': { type: 'string', default: '1536' },
      'max-bytes': { type: 'string', default: '65536' },
      out: { type: 'string', default: path.join(import.meta.dirname, 'crashes') },
    },
  });
  const number = (name: string, v: string | undefined, fallback: number) => {
    const n = v === undefined ? fallback : Number(v);
    if (Number.isNaN(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${v}`);
    return n;
  };
  const names = values.target ? values.target.split(',') : TARGETS.map((t) => t.name);
  const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n));
  if (unknown.length)
    throw new Error(`unknown target ${unknown.join(', ')}; targets: ${TARGETS.map((t) => t.name).join(', ')}`);
  const scratch = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'sat-fuzz-'));
  process.env.SAT_FUZZ_SCRATCH = scratch;
  const results: Outcome[] = [];
  try {
    for (const target of names) {
      const job: Job = {
        target,
        seed: number('seed', values.seed, 1),
        seconds: number('seconds', values.seconds, 10),
        iterations: number('iterations', values.iterations, Infinity),
        maxRssMb: number('max-rss-mb', values['max-rss-mb'], 1536),
        maxBytes: number('max-bytes', values['max-bytes'], 65536),
      };
      const started = Date.now();
      const r = await runTarget(job, number('timeout-ms', values['timeout-ms'], 2000), values.out!);
      results.push(r);
      const secs = (Date.now() - started) / 1000;
      console.log(
        `${target.padEnd(12)} ${String(r.executed).padStart(8)} inputs in ${secs.toFixed(1)} s (${(r.executed / secs).toFixed(0)}/s), ` +
          `${r.refused} refused as bad input, ${r.seeds} seeds, ${r.failures.length} failures`,
      );
      for (const f of r.failures) console.log(`  FAIL ${f}`);
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  if (results.some((r) => r.failures.length > 0)) process.exitCode = 1;
}

if (isMainThread) await main();
else await work(workerData as Job);
