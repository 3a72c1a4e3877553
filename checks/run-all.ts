/**
 * `npm run check:data`: every correctness check of checks/ that can run here, one after another, with a verdict
 * each. A check whose data, model, Python or old build is missing is skipped with what it needs; the command exits
 * 1 when a check that ran failed. Sizes are small enough for a few minutes each; --full runs the sizes of RESULTS.md.
 *
 *   npm run check:data -- [--model RUN_OR_CHECKPOINT] [--run RUN] [--native-ab OLD.node] [--shared ../shared]
 *       [--encoder-weights DIR] [--python /usr/bin/python3] [--only name,...] [--full] [--list]
 *
 * --model: a trained run folder or checkpoint (MobileNetV2 features, as `sat serve` takes it), for the checks of the
 * service peer and of export; --run: the prepared run of --model, when its checkpoint does not say; --native-ab: an
 * addon built from another checkout, compared float for float with build/Release/sat_native.node.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    run: { type: 'string' },
    'native-ab': { type: 'string' },
    shared: { type: 'string', default: path.join(repo, '..', 'shared') },
    'encoder-weights': { type: 'string' },
    python: { type: 'string', default: '/usr/bin/python3' },
    only: { type: 'string' },
    full: { type: 'boolean' },
    list: { type: 'boolean' },
  },
});

const shared = path.resolve(values.shared!);
const flickr = path.join(shared, 'data', 'flickr8k');
const flickrImages = path.join(flickr, 'Flicker8k_Dataset');
const encoderWeights = path.resolve(values['encoder-weights'] ?? path.join(shared, 'models', 'mobilenet_v2_1.0_224'));
const full = values.full ?? false;

/** Why a check cannot run here, or null when it can. */
type Needs = () => string | null;
interface Check {
  name: string;
  file: string;
  what: string;
  needs: Needs;
  args: () => string[];
}

const missing = (what: string, file: string): string | null =>
  fs.existsSync(file) ? null : `${what} (${file} is missing)`;
const first = (...reasons: (string | null)[]) => reasons.find((r) => r !== null) ?? null;
const needModel: Needs = () =>
  values.model
    ? missing('the model given by --model', path.resolve(values.model))
    : 'a trained model: pass --model RUN_OR_CHECKPOINT';
let torchProbe: string | null | undefined;
const needTorch: Needs = () => {
  if (torchProbe === undefined) {
    const r = spawnSync(values.python!, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
    torchProbe =
      r.status === 0 ? null : `a Python with torch and torchvision (${values.python} has none: pass --python PATH)`;
  }
  return torchProbe;
};
const runArgs = () => (values.run ? ['--run', path.resolve(values.run)] : []);
const modelArgs = () => ['--model', path.resolve(values.model!), '--encoder-weights', encoderWeights];

const CHECKS: Check[] = [
  {
    name: 'encoders-mobilenet-sanity',
    file: 'checks/encoders-mobilenet-sanity.ts',
    what: 'the MobileNetV2 graph built from the .npy weights gives the output statistics its README states',
    needs: () => first(missing('the MobileNetV2 weights', encoderWeights), missing('Flickr8k', flickr)),
    args: () => ['--weights', encoderWeights, '--flickr', flickr, '--images', full ? '200' : '48'],
  },
  {
    name: 'export-equality',
    file: 'checks/export-equality.ts',
    what: 'the exported fp32 bundle computes the native model (log-probabilities, greedy and beam captions)',
    needs: () => first(needModel(), missing('the MobileNetV2 weights', encoderWeights)),
    args: () => [
      ...modelArgs(),
      ...runArgs(),
      '--images',
      full ? '200' : '40',
      '--out',
      path.join(repo, 'out', 'check-export-equality'),
    ],
  },
  {
    name: 'export-quality',
    file: 'checks/export-quality.ts',
    what: 'every bundle weight format (fp32, fp16, int8) captions within a CIDEr-D tolerance of `sat eval --beam 3`',
    needs: () => first(needModel(), missing('the MobileNetV2 weights', encoderWeights)),
    args: () => [
      ...modelArgs(),
      ...runArgs(),
      '--images',
      full ? '1000' : '100',
      '--out',
      path.join(repo, 'out', 'check-export-quality'),
    ],
  },
  {
    name: 'serve-peer-parity',
    file: 'checks/serve-peer-parity.ts',
    what: 'the PyTorch peer of `sat bench serve` captions our features as our native captioner does',
    needs: () =>
      first(
        needModel(),
        missing('the MobileNetV2 weights', encoderWeights),
        missing('Flickr8k images', flickrImages),
        needTorch(),
      ),
    args: () => [
      ...modelArgs(),
      '--images',
      flickrImages,
      '--limit',
      full ? '32' : '8',
      '--beam',
      '3',
      '--python',
      values.python!,
    ],
  },
  {
    name: 'parity-flickr8k',
    file: 'checks/parity-flickr8k.ts',
    what: 'the PyTorch twin reproduces our dev loss and greedy captions on weights `sat train` trained (cross-check)',
    needs: () =>
      first(
        values.run
          ? missing('the run given by --run', path.resolve(values.run))
          : 'a prepared run with features: pass --run RUN',
        needTorch(),
      ),
    args: () => [
      '--run',
      path.resolve(values.run!),
      '--python',
      values.python!,
      '--out',
      path.join(repo, 'out', 'check-parity'),
      ...(full
        ? ['--epochs', '4', '--train-images', '2000', '--dev-images', '300']
        : ['--epochs', '1', '--train-images', '200', '--dev-images', '50']),
    ],
  },
  {
    name: 'native-ab',
    file: 'checks/native-ab.ts',
    what: 'this build of the addon computes the same floats as another build, bit for bit (--check-only)',
    needs: () =>
      first(
        values['native-ab']
          ? missing('the build given by --native-ab', path.resolve(values['native-ab']))
          : 'an addon built from another checkout: pass --native-ab OLD.node',
        missing('this build of the addon', path.join(repo, 'build', 'Release', 'sat_native.node')),
      ),
    args: () => [
      path.resolve(values['native-ab']!),
      path.join(repo, 'build', 'Release', 'sat_native.node'),
      '--check-only',
    ],
  },
];

const names = CHECKS.map((c) => c.name);
const only = values.only
  ? values.only
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
  : names;
const unknown = only.filter((n) => !names.includes(n));
if (unknown.length) {
  console.error(`--only: no check named ${unknown.join(', ')}; the checks are ${names.join(', ')}.`);
  process.exit(2);
}
if (values.list) {
  for (const c of CHECKS)
    console.log(
      `${c.name.padEnd(26)} ${c.file}\n${''.padEnd(26)} ${c.what}; ${c.needs() === null ? 'can run here' : `needs ${c.needs()}`}`,
    );
  process.exit(0);
}

const results: { name: string; verdict: 'passed' | 'FAILED' | 'skipped'; note: string }[] = [];
for (const check of CHECKS.filter((c) => only.includes(c.name))) {
  const why = check.needs();
  if (why !== null) {
    console.error(`\n== ${check.name}: skipped, needs ${why}`);
    results.push({ name: check.name, verdict: 'skipped', note: `needs ${why}` });
    continue;
  }
  const args = ['--import', 'tsx', check.file, ...check.args()];
  console.error(`\n== ${check.name}: ${check.what}\n$ node ${args.join(' ')}`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd: repo, stdio: 'inherit' });
  const seconds = ((performance.now() - t0) / 1000).toFixed(0);
  const passed = r.status === 0;
  results.push({
    name: check.name,
    verdict: passed ? 'passed' : 'FAILED',
    note: `${seconds} s${passed ? '' : `, exit ${r.status ?? r.signal}`}`,
  });
}

console.error('\ncheck:data');
for (const r of results) console.error(`  ${r.verdict.padEnd(8)} ${r.name.padEnd(26)} ${r.note}`);
const ran = results.filter((r) => r.verdict !== 'skipped').length;
if (ran === 0) console.error('No check ran: give the data and options listed above (`npm run check:data -- --list`).');
process.exitCode = results.some((r) => r.verdict === 'FAILED') ? 1 : 0;
