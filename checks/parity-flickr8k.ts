/**
 * Parity check: the tutorial's recipe trained by our native core (`sat train`) and by the same model written in
 * PyTorch (peers/torch_train_tutorial.py), on identical cached features, compared epoch by epoch on the dev split:
 * dev loss, BLEU-4 and CIDEr-D of greedy captions, both scored by our scorer against the same references.
 *
 *   node --import tsx checks/parity-flickr8k.ts --run runs/f8k --epochs 20            # the full comparison
 *   node --import tsx checks/parity-flickr8k.ts --run runs/f8k --epochs 2 --train-images 500 --dev-images 200
 *   node --import tsx checks/parity-flickr8k.ts --run runs/f8k --gru-state reset   # the TF tutorial's GRU, both sides
 *
 * --gru-state carry|reset goes to both trainers (and the cross-check's decoding): reset = the TF tutorial's GRU,
 * which restarts from zeros every step; carry = a real recurrence (default). --init-state zeros|mean likewise:
 * mean = the paper's initial state from the mean annotation vector; zeros = the TF tutorial (default).
 *
 * What it does, in OUT (default out/parity-<run name>-seed<seed>, with -reset appended for --gru-state reset
 * and -mean for --init-state mean):
 *   run/            a copy of the run (run.json, vocab.json, images.jsonl) restricted to --train-images /
 *                   --dev-images seeded images; the features stay where they are (run.json points at them).
 *                   Both systems train on this run, so they see the same examples and the same vocabulary.
 *   refs-dev.json   {"<image id>": [raw captions]} of its dev images: `sat eval`'s references, PTB-tokenised
 *                   by the scorer exactly as `sat eval` tokenises them.
 *   ours/           `sat train` one epoch at a time (--resume continues exactly, so this equals one N-epoch run),
 *                   each epoch followed by `sat eval --checkpoint latest` into ours/eval-eNNN/.
 *   torch/          peers/torch_train_tutorial.py: results-eNNN.json per epoch and history.json.
 *   crosscheck/     the PyTorch side evaluating OUR last checkpoint: its dev loss and greedy captions must equal
 *                   ours, so that what differs in the table comes from training alone.
 *   parity.json     the table (and the cross-check) as data.
 * "Within noise" needs the noise: rerun with another --seed (same images, other initialisation and order;
 * another default OUT) to see how far two seeds of the same system land apart.
 * Reruns skip the epochs `ours/` already has (the PyTorch side has no checkpoints and always runs anew,
 * unless --skip-torch). Both sides get --threads threads (OpenBLAS/OpenMP for ours, torch.set_num_threads).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { seededSubset } from '../src/util/rng.js';
import { readHypotheses, readReferences } from '../src/metrics/caption-files.js';
import { scoreCaptions, type Scores } from '../src/metrics/score.js';
import { loadRun } from '../src/dataset/prepare.js';
import { runFeatureDir } from '../src/features/run-feature-store.js';

const { values } = parseArgs({
  options: {
    run: { type: 'string', default: 'runs/f8k' },
    out: { type: 'string' },
    epochs: { type: 'string', default: '20' },
    'train-images': { type: 'string', default: '0' }, // 0 = all train images
    'dev-images': { type: 'string', default: '0' }, // 0 = all dev images
    seed: { type: 'string', default: '42' }, // both trainers' seeds (initialisation, shuffling)
    'subset-seed': { type: 'string', default: '42' }, // which images --train-images/--dev-images keep
    threads: { type: 'string', default: '2' },
    features: { type: 'string' },
    'skip-ours': { type: 'boolean', default: false },
    'skip-torch': { type: 'boolean', default: false },
    python: { type: 'string', default: '/usr/bin/python3' },
    'gru-state': { type: 'string', default: 'carry' }, // carry | reset (the TF tutorial's GRU), both trainers
    'init-state': { type: 'string', default: 'zeros' }, // zeros | mean (the paper's initial state), both trainers
  },
});
const int = (name: string, min: number) => {
  const v = Number(values[name as keyof typeof values]);
  if (!Number.isInteger(v) || v < min)
    throw new Error(`--${name} must be an integer >= ${min}, got ${values[name as keyof typeof values]}`);
  return v;
};
const epochs = int('epochs', 1),
  trainImages = int('train-images', 0),
  devImages = int('dev-images', 0);
const seed = int('seed', 0),
  subsetSeed = int('subset-seed', 0),
  threads = int('threads', 1);
const gruState = values['gru-state']!;
if (gruState !== 'carry' && gruState !== 'reset')
  throw new Error(`--gru-state must be carry or reset, got ${gruState}`);
const initState = values['init-state']!;
if (initState !== 'zeros' && initState !== 'mean')
  throw new Error(`--init-state must be zeros or mean, got ${initState}`);
const source = path.resolve(values.run!);
const out = path.resolve(
  values.out ??
    path.join(
      'out',
      `parity-${path.basename(source)}-seed${seed}${gruState === 'reset' ? '-reset' : ''}${initState === 'mean' ? '-mean' : ''}`,
    ),
);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pad3 = (n: number) => String(n).padStart(3, '0');

/** A node/python child with its output shown; stops the script if it fails. */
function run(cmd: string, args: string[], opts: { capture?: boolean } = {}): string {
  console.error(`\n$ ${[cmd, ...args].join(' ')}`);
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
  const r = spawnSync(cmd, args, {
    cwd: repo,
    env,
    stdio: ['ignore', opts.capture ? 'pipe' : 'inherit', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.slice(0, 3).join(' ')} ... failed (exit ${r.status ?? r.signal})`);
  return r.stdout ?? '';
}
const sat = (args: string[], capture = false) =>
  run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { capture });

// --- 1. the parity run: a seeded subset of the source run, same vocabulary, same feature store ----------------
const parityRun = path.join(out, 'run');
const refsFile = path.join(out, 'refs-dev.json');
{
  const src = loadRun(source);
  const store = path.resolve(runFeatureDir(source, { explicit: values.features }));
  const train = seededSubset(
    src.images.filter((im) => im.split === 'train'),
    trainImages,
    subsetSeed,
  );
  const dev = seededSubset(
    src.images.filter((im) => im.split === 'dev' && im.captions.length > 0),
    devImages,
    subsetSeed,
  );
  if (train.length === 0 || dev.length === 0)
    throw new Error(`${source} needs train and dev images (has ${train.length} train, ${dev.length} dev).`);
  const keep = new Set([...train, ...dev].map((im) => im.id));
  const images = src.images.filter((im) => keep.has(im.id)); // source order, as both trainers read it
  const count = (split: string) => {
    const ims = images.filter((im) => im.split === split);
    return { images: ims.length, captions: ims.reduce((s, im) => s + im.captions.length, 0) };
  };
  const info = {
    ...src.info,
    counts: { train: count('train'), dev: count('dev'), test: { images: 0, captions: 0 } },
    parity: { source, trainImages, devImages, subsetSeed },
    features: { ...(src.info as { features?: object }).features, dir: store },
  };
  const text = images.map((im) => JSON.stringify(im)).join('\n') + '\n';
  const existing = path.join(parityRun, 'images.jsonl');
  if (fs.existsSync(existing) && fs.readFileSync(existing, 'utf8') !== text) {
    throw new Error(
      `${out} holds a parity run of other images (another --run, --train-images, --dev-images or --subset-seed). Use another --out or delete it.`,
    );
  }
  fs.mkdirSync(parityRun, { recursive: true });
  fs.writeFileSync(path.join(parityRun, 'run.json'), JSON.stringify(info, null, 2) + '\n');
  fs.copyFileSync(path.join(source, 'vocab.json'), path.join(parityRun, 'vocab.json'));
  fs.writeFileSync(existing, text);
  fs.writeFileSync(refsFile, JSON.stringify(Object.fromEntries(dev.map((im) => [im.id, im.captions]))) + '\n');
  console.error(
    `parity run ${parityRun}: ${info.counts.train.images} train images (${info.counts.train.captions} captions), ` +
      `${info.counts.dev.images} dev images; features ${store}`,
  );
}

// --- 2. ours: the tutorial recipe, one epoch per call, eval after each ------------------------------------------
const TUTORIAL_RECIPE = [
  '--batch-size',
  '64',
  '--learning-rate',
  '0.001',
  '--embed-dim',
  '256',
  '--units',
  '512',
  '--attention-units',
  '512',
  '--dropout',
  '0',
  '--attention-lambda',
  '0',
  '--clip-norm',
  '0',
  '--lr-schedule',
  'constant',
  '--bucket-batches',
  '0',
  '--val-metric',
  'loss',
  '--early-stop-patience',
  '0',
  '--max-caption-length',
  '0',
  '--max-val-examples',
  '0',
  '--checkpoint-minutes',
  '0',
];
const oursDir = path.join(out, 'ours');
const ckptDir = path.join(oursDir, 'checkpoints');
const latestMeta = path.join(ckptDir, 'latest.json');
type EpochRecord = {
  epoch: number;
  trainLoss: number;
  valLoss: number | null;
  seconds: number;
  tokensPerSecond: number;
};
const oursHistory = (): EpochRecord[] =>
  fs.existsSync(latestMeta)
    ? (JSON.parse(fs.readFileSync(latestMeta, 'utf8')) as { progress: { history: EpochRecord[] } }).progress.history
    : [];
if (!values['skip-ours']) {
  for (let e = 1; e <= epochs; e++) {
    const evalDir = path.join(oursDir, `eval-e${pad3(e)}`);
    const done = oursHistory().length;
    if (done > e && !fs.existsSync(path.join(evalDir, 'results.json'))) {
      throw new Error(
        `${ckptDir} is past epoch ${e} but ${evalDir} is missing; delete ${oursDir} to start our side again.`,
      );
    }
    if (done < e) {
      sat([
        'train',
        '--run',
        parityRun,
        '--checkpoints',
        ckptDir,
        '--epochs',
        String(e),
        '--seed',
        String(seed),
        ...TUTORIAL_RECIPE,
        '--gru-state',
        gruState,
        '--init-state',
        initState,
        ...(done > 0 ? ['--resume'] : []),
      ]);
    }
    if (!fs.existsSync(path.join(evalDir, 'results.json'))) {
      sat(
        [
          'eval',
          '--run',
          parityRun,
          '--split',
          'dev',
          '--checkpoint',
          path.join(ckptDir, 'latest.safetensors'),
          '--out',
          evalDir,
          '--sample',
          '0',
          '--quiet',
          '--json',
        ],
        true,
      );
    }
  }
}

// --- 3. PyTorch: the same recipe and run -------------------------------------------------------------------
const torchDir = path.join(out, 'torch');
if (!values['skip-torch']) {
  run(values.python!, [
    '-m',
    'peers.torch_train_tutorial',
    '--run',
    parityRun,
    '--out',
    torchDir,
    '--epochs',
    String(epochs),
    '--threads',
    String(threads),
    '--seed',
    String(seed),
    '--gru-state',
    gruState,
    '--init-state',
    initState,
  ]);
}

// --- 4. score both with our scorer against the same references, print the table -----------------------------
const refs = readReferences(refsFile);
const score = (file: string): Scores | null => (fs.existsSync(file) ? scoreCaptions(refs, readHypotheses(file)) : null);
const ours = oursHistory();
const torch = fs.existsSync(path.join(torchDir, 'history.json'))
  ? (
      JSON.parse(fs.readFileSync(path.join(torchDir, 'history.json'), 'utf8')) as {
        history: (EpochRecord & { trainSeconds: number })[];
      }
    ).history
  : [];
const rows = Array.from({ length: epochs }, (_, i) => {
  const e = i + 1;
  const o = ours.find((r) => r.epoch === e),
    t = torch.find((r) => r.epoch === e);
  const oursScores = score(path.join(oursDir, `eval-e${pad3(e)}`, 'results.json'));
  // `sat eval` scored the same captions itself: the references built here must give the same numbers.
  const metricsFile = path.join(oursDir, `eval-e${pad3(e)}`, 'metrics.json');
  if (oursScores && fs.existsSync(metricsFile)) {
    const own = (JSON.parse(fs.readFileSync(metricsFile, 'utf8')) as { scores: Scores }).scores;
    if (Math.abs(own.CIDEr - oursScores.CIDEr) > 1e-9 || Math.abs(own['BLEU-4'] - oursScores['BLEU-4']) > 1e-9) {
      throw new Error(
        `epoch ${e}: sat eval scored CIDEr ${own.CIDEr} but ${refsFile} gives ${oursScores.CIDEr}: the references differ.`,
      );
    }
  }
  const torchScores = score(path.join(torchDir, `results-e${pad3(e)}.json`));
  return {
    epoch: e,
    ours: o
      ? {
          trainLoss: o.trainLoss,
          valLoss: o.valLoss,
          bleu4: oursScores?.['BLEU-4'] ?? null,
          cider: oursScores?.CIDEr ?? null,
          trainSeconds: o.seconds,
        }
      : null,
    torch: t
      ? {
          trainLoss: t.trainLoss,
          valLoss: t.valLoss,
          bleu4: torchScores?.['BLEU-4'] ?? null,
          cider: torchScores?.CIDEr ?? null,
          trainSeconds: t.trainSeconds,
        }
      : null,
  };
});

// Cross-check: the PyTorch side evaluating OUR last checkpoint must reproduce our dev loss and captions, so
// that what differs in the table comes from training alone (not from feature reading, loss or decoding).
let crossCheck: {
  epoch: number;
  identicalCaptions: number;
  images: number;
  valLossOurs: number | null;
  valLossTorch: number | null;
} | null = null;
const last = ours.at(-1);
const lastResults = last && path.join(oursDir, `eval-e${pad3(last.epoch)}`, 'results.json');
if (last && lastResults && fs.existsSync(lastResults) && !values['skip-torch']) {
  const checkDir = path.join(out, 'crosscheck');
  run(values.python!, [
    '-m',
    'peers.torch_train_tutorial',
    '--run',
    parityRun,
    '--out',
    checkDir,
    '--epochs',
    '0',
    '--init-from',
    path.join(ckptDir, 'latest.safetensors'),
    '--threads',
    String(threads),
    '--gru-state',
    gruState,
    '--init-state',
    initState,
  ]);
  const theirs = readHypotheses(path.join(checkDir, 'results-e000.json'));
  const mine = readHypotheses(lastResults);
  const identical = [...mine].filter(([id, caption]) => theirs.get(id) === caption).length;
  const torchVal = (
    JSON.parse(fs.readFileSync(path.join(checkDir, 'history.json'), 'utf8')) as { history: EpochRecord[] }
  ).history[0].valLoss;
  crossCheck = {
    epoch: last.epoch,
    identicalCaptions: identical,
    images: mine.size,
    valLossOurs: last.valLoss,
    valLossTorch: torchVal,
  };
}
fs.writeFileSync(
  path.join(out, 'parity.json'),
  JSON.stringify(
    { source, trainImages, devImages, subsetSeed, seed, threads, gruState, initState, epochs: rows, crossCheck },
    null,
    2,
  ) + '\n',
);

const f = (v: number | null | undefined, d = 4) => (v === null || v === undefined ? '-' : v.toFixed(d));
const lines = [
  `| epoch | ours val loss | ours BLEU-4 | ours CIDEr | ours s/epoch | PyTorch val loss | PyTorch BLEU-4 | PyTorch CIDEr | PyTorch s/epoch |`,
  `|---|---|---|---|---|---|---|---|---|`,
  ...rows.map(
    (r) =>
      `| ${r.epoch} | ${f(r.ours?.valLoss)} | ${f(r.ours?.bleu4)} | ${f(r.ours?.cider)} | ${f(r.ours?.trainSeconds, 0)} | ` +
      `${f(r.torch?.valLoss)} | ${f(r.torch?.bleu4)} | ${f(r.torch?.cider)} | ${f(r.torch?.trainSeconds, 0)} |`,
  ),
];
console.log(
  `\nParity on ${path.basename(source)} dev (${refs.size} images), tutorial recipe, GRU state ${gruState}, initial state ${initState}, seed ${seed}, ${threads} threads; ${path.join(out, 'parity.json')}`,
);
console.log(lines.join('\n'));
if (crossCheck) {
  console.log(
    `Cross-check (PyTorch evaluating our epoch-${crossCheck.epoch} weights): ${crossCheck.identicalCaptions}/${crossCheck.images} ` +
      `greedy captions identical to ours; dev loss ${f(crossCheck.valLossTorch, 6)} vs ours ${f(crossCheck.valLossOurs, 6)}.`,
  );
}
// The cross-check is the verdict of this script: the PyTorch side must reproduce our captions and dev loss on our
// weights (the table itself is a comparison within noise, read by a person).
if (crossCheck) {
  const lossGap = Math.abs((crossCheck.valLossTorch ?? NaN) - (crossCheck.valLossOurs ?? NaN));
  const same = crossCheck.identicalCaptions === crossCheck.images && lossGap <= 1e-4;
  console.error(
    same
      ? 'ok: the PyTorch twin reproduces our captions and dev loss on our weights'
      : `FAIL cross-check: ${crossCheck.images - crossCheck.identicalCaptions} captions differ, dev loss gap ${lossGap} (at most 1e-4)`,
  );
  process.exitCode = same ? 0 : 1;
}
