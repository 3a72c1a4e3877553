/** `sat average`: one checkpoint holding the mean weights of several checkpoints of one model. */
import { averageCheckpoints } from '../checkpoint/average.js';
import { requireString, type Command } from './command.js';

const command: Command = {
  name: 'average',
  summary: 'Average the weights of checkpoints of one model (e.g. the last epochs of a run) into one',
  usage: 'sat average --out DIR CHECKPOINT CHECKPOINT [...]',
  allowPositionals: true,
  options: {
    out: { type: 'string', description: 'folder for the averaged checkpoint (best.safetensors, best.json, vocab)' },
  },
  async run({ values, positionals }) {
    const out = requireString(values, 'out', 'pass the folder to write, e.g. --out runs/f8k/ck-avg');
    const { file, from } = averageCheckpoints(positionals, out);
    console.log(`Averaged ${from.length} checkpoints into ${file}:\n${from.map((f) => `  ${f}`).join('\n')}`);
  },
};

export default command;
