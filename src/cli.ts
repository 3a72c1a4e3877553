#!/usr/bin/env node
/**
 * `sat`: the show-attend-tell command line. Each sub-command is a `Command` in src/cli/<name>.ts;
 * they are loaded lazily so `sat --help` starts fast and one broken optional dependency does not
 * take down every command.
 */
import { commandHelp, parseCommandArgs, type Command } from './cli/command.js';
import { UserError } from './util/errors.js';

// name -> loader. Add a command here and in README.md.
const COMMANDS: Record<string, () => Promise<Command>> = {
  // in data-flow order: dataset → features → training → decoding → metrics; then the all-in-one demo and benchmarks
  prepare: async () => (await import('./cli/prepare.js')).default,
  features: async () => (await import('./cli/features.js')).default,
  train: async () => (await import('./cli/train.js')).default,
  caption: async () => (await import('./cli/caption.js')).default,
  export: async () => (await import('./cli/export.js')).default,
  eval: async () => (await import('./cli/eval.js')).default,
  score: async () => (await import('./cli/score.js')).default,
  demo: async () => (await import('./cli/demo.js')).default,
  bench: async () => (await import('./cli/bench.js')).default,
};

async function main(argv: string[]): Promise<void> {
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

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UserError) {
    console.error(`sat: ${err.message}`);
    process.exitCode = 2;
  } else {
    console.error(err);
    process.exitCode = 1;
  }
});
