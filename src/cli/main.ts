/**
 * `sat`: the show-attend-tell command line (src/cli.ts is the executable). Each sub-command is a `Command`
 * in src/cli/<name>.ts; they are loaded lazily so `sat --help` starts fast and one broken optional
 * dependency does not take down every command.
 */
import { commandHelp, parseCommandArgs, type Command } from './command.js';
import { UserError } from '../util/errors.js';

// name -> loader. Add a command here and in README.md.
const COMMANDS: Record<string, () => Promise<Command>> = {
  // in data-flow order: dataset → features → training → decoding → metrics → serving; then the all-in-one demo and benchmarks
  prepare: async () => (await import('./prepare.js')).default,
  features: async () => (await import('./features.js')).default,
  train: async () => (await import('./train.js')).default,
  average: async () => (await import('./average.js')).default,
  caption: async () => (await import('./caption.js')).default,
  export: async () => (await import('./export.js')).default,
  eval: async () => (await import('./eval.js')).default,
  score: async () => (await import('./score.js')).default,
  serve: async () => (await import('./serve.js')).default,
  models: async () => (await import('./models.js')).default,
  demo: async () => (await import('./demo.js')).default,
  bench: async () => (await import('./bench.js')).default,
};

/** Run `sat ARGV...` in this process: a UserError is the user's mistake (see reportFailure). */
export async function runSat(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const cmds = await Promise.all(Object.entries(COMMANDS).map(async ([, load]) => load()));
    const lines = ['sat: Show, Attend and Tell image captioning for Node.js', '', 'Commands:'];
    for (const c of cmds) lines.push(`  ${c.name.padEnd(10)}${c.summary}`);
    lines.push('', 'Run `sat <command> --help` for its options and defaults.');
    if (name === 'help' && rest[0] && COMMANDS[rest[0]]) {
      console.log(commandHelp(await COMMANDS[rest[0]]()));
      return;
    }
    console.log(lines.join('\n'));
    return;
  }
  const load = COMMANDS[name];
  if (!load) throw new UserError(`Unknown command "${name}". Run \`sat --help\` for the list of commands.`);
  const cmd = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(commandHelp(cmd));
    return;
  }
  await cmd.run(parseCommandArgs(cmd, rest) as never);
}

/** Print a failure as the CLI does and return its exit status: 2 with a one-line message for a UserError, else 1 with the stack. */
export function reportFailure(err: unknown): number {
  if (err instanceof UserError) {
    console.error(`sat: ${err.message}`);
    return 2;
  }
  console.error(err);
  return 1;
}
