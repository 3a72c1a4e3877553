/**
 * `sat models`: the models a name can pick (the shipped one and those installed in the cache), and their upkeep.
 *
 *   sat models                              list: name, size, source, scores (from the model card), id
 *   sat models install URL [--name NAME]    download a bundle once into the cache (URL#sha256=HEX pins the manifest)
 *   sat models remove NAME                  remove a cached model (never the shipped one)
 */
import { installModelFromUrl } from '../models/install.js';
import { listInstalledModels, removeInstalledModel, type InstalledModel } from '../models/installed.js';
import { UserError } from '../util/errors.js';
import type { Command } from './command.js';

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** "BLEU-4 0.214, CIDEr-D 0.512 (Flickr8k dev, beam 3)", the run's best validation score, or "-". */
export function scoresText(m: InstalledModel): string {
  const scores = m.card?.scores;
  if (scores && Object.keys(scores).length > 0) {
    const list = Object.entries(scores)
      .filter(([, v]) => typeof v === 'number')
      .map(([k, v]) => `${k} ${Number(v.toFixed(3))}`)
      .join(', ');
    return m.card?.evaluatedOn ? `${list} (${m.card.evaluatedOn})` : list;
  }
  if (m.best) return `${m.best.by} ${Number(m.best.score.toFixed(4))} (epoch ${m.best.epoch})`;
  return '-';
}

const sourceText = (m: InstalledModel) =>
  m.origin === 'shipped' ? `shipped${m.isDefault ? ' (default)' : ''}` : (m.install?.url ?? 'cache (copied in)');

function printTable(models: InstalledModel[]): void {
  if (models.length === 0) {
    console.log('No models are installed. Install one with `sat models install https://HOST/PATH/manifest.json`.');
    return;
  }
  const rows = models.map((m) => [
    m.name,
    mb(m.bytes),
    sourceText(m),
    m.problem ? `damaged: ${m.problem}` : scoresText(m),
    m.id ?? '-',
  ]);
  const header = ['NAME', 'SIZE', 'SOURCE', 'SCORES', 'ID'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [header, ...rows])
    console.log(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  '));
}

const toJson = (m: InstalledModel) => ({
  name: m.name,
  id: m.id ?? null,
  origin: m.origin,
  default: m.isDefault,
  path: m.path,
  bytes: m.bytes,
  url: m.install?.url ?? null,
  installedAt: m.install?.installedAt ?? null,
  card: m.card ?? null,
  best: m.best ?? null,
  problem: m.problem ?? null,
});

const command: Command = {
  name: 'models',
  summary: 'List the installed models (shipped and cached), install one from a manifest URL, or remove a cached one',
  usage: 'sat models [--json] | sat models install URL[#sha256=HEX] [--name NAME] | sat models remove NAME',
  allowPositionals: true,
  options: {
    json: { type: 'boolean', description: 'list as JSON (one object per model)' },
    name: {
      type: 'string',
      description: "install: the name to install under (default: the card's name, else the URL's folder)",
    },
    sha256: {
      type: 'string',
      description: 'install: the SHA-256 the manifest.json must have (the same as URL#sha256=HEX)',
    },
  },
  async run({ values, positionals }) {
    const [action, ...args] = positionals;
    if (action === undefined || action === 'list') {
      const models = listInstalledModels();
      if (values.json) console.log(JSON.stringify(models.map(toJson), null, 2));
      else printTable(models);
      return;
    }
    if (action === 'remove') {
      if (args.length !== 1)
        throw new UserError('sat models remove takes one model name, e.g. sat models remove my-model.');
      const removed = removeInstalledModel(args[0]);
      console.log(`removed ${removed.name} (${mb(removed.bytes)}) from ${removed.path}`);
      return;
    }
    if (action === 'install') {
      if (args.length !== 1)
        throw new UserError(
          'sat models install takes one URL, e.g. sat models install https://host/models/m/manifest.json.',
        );
      const model = await installModelFromUrl(args[0], {
        name: typeof values.name === 'string' ? values.name : undefined,
        manifestSha256: typeof values.sha256 === 'string' ? values.sha256 : undefined,
        silent: false,
      });
      console.log(
        `installed ${model.name} (${mb(model.bytes)}, ${model.id}) at ${model.path}; use it with --model ${model.name}`,
      );
      return;
    }
    throw new UserError(
      `sat models: unknown action "${action}". Use \`sat models\` (list), \`sat models install URL\` or \`sat models remove NAME\`.`,
    );
  },
};

export default command;
