/**
 * The layering of src/, checked by `npm run check:layers` (part of `npm test`).
 *
 * Imports point one way along the data path. Each folder has a rank; a module may import modules of its own
 * rank or a lower one, never a higher one, and no import cycle is allowed at all:
 *
 *   0 src/util
 *   1 src/vocab, src/dataset, src/encoders, src/metrics, src/figures
 *   2 src/features
 *   3 src/model, src/checkpoint
 *   4 src/decode, src/export, src/models   (models: what a model source names, loadCaptioner, installs)
 *   5 src/train, src/eval          (eval may import train; train never imports eval)
 *   6 src/demo, src/serve, src/bench, src/web
 *   7 src/cli, src/cli.ts, src/index.ts, src/internals.ts
 *
 * bench/ (measurements), checks/ (correctness checks on real data) and scripts/ (fixture writers, dev tools) sit
 * outside the package's layers and may import anything in src/; src/ never imports them. peers/ holds Python only.
 */
const RANKS = [
  { name: 'util', folders: ['util'] },
  { name: 'data', folders: ['vocab', 'dataset', 'encoders', 'metrics', 'figures'] },
  { name: 'features', folders: ['features'] },
  { name: 'model', folders: ['model', 'checkpoint'] },
  { name: 'decoding', folders: ['decode', 'export', 'models'] },
  { name: 'training', folders: ['train', 'eval'] },
  { name: 'applications', folders: ['demo', 'serve', 'bench', 'web'] },
  { name: 'entry points', folders: ['cli'], files: ['cli.ts', 'index.ts', 'internals.ts'] },
];

const escape = (s) => s.replace(/[.]/g, '\\.');
/** A path regex for the folders (and top-level files) of ranks `from`..`to`. */
function pathsOf(ranks) {
  const parts = [];
  for (const r of ranks) {
    if (r.folders.length) parts.push(`(${r.folders.join('|')})/`);
    for (const f of r.files ?? []) parts.push(`${escape(f)}$`);
  }
  return `^src/(${parts.join('|')})`;
}
const label = (r, i) =>
  `${i} ${[...r.folders.map((f) => `src/${f}`), ...(r.files ?? []).map((f) => `src/${f}`)].join(', ')}`;

const rankRules = RANKS.slice(0, -1).map((rank, i) => ({
  name: `rank-${i}-${rank.name.replace(/ /g, '-')}-imports-only-ranks-0-to-${i}`,
  severity: 'error',
  comment:
    `Rank ${label(rank, i)} may import only ranks 0..${i} (${RANKS.slice(0, i + 1)
      .map((r) => r.name)
      .join(', ')}); ` + `the imported module is of a higher rank. Move shared code down, or the importing code up.`,
  from: { path: pathsOf([rank]) },
  to: { path: pathsOf(RANKS.slice(i + 1)) },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'Import cycles are not allowed (at module level): break the cycle by moving the shared part down a rank.',
      from: {},
      to: { circular: true },
    },
    ...rankRules,
    {
      name: 'train-not-eval',
      severity: 'error',
      comment: 'src/train must not import src/eval (eval may import train): what training needs lives in src/train.',
      from: { path: '^src/train/' },
      to: { path: '^src/eval/' },
    },
    {
      name: 'src-not-outside',
      severity: 'error',
      comment:
        'src/ must not import bench/, checks/, scripts/, test/ or fuzz/ (they are not part of the package layers): move the code into src/.',
      from: { path: '^src/' },
      to: { path: '^(bench|checks|scripts|test|fuzz)/' },
    },
    {
      name: 'src-in-a-layer',
      severity: 'error',
      comment: `Every module under src/ belongs to a ranked folder (${RANKS.map(label).join('; ')}).`,
      from: { path: '^src/', pathNot: pathsOf(RANKS) },
      to: { path: '^src/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|build|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.js', '.json'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
