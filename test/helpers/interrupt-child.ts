/**
 * Child process for test/train-resume-native.test.ts: `sat train ARGS... --checkpoints CHECKPOINTS` (the CLI
 * command, in this process) that sends itself SIGNAL (SIGKILL: kill -9, or SIGINT: Ctrl-C) once
 * CHECKPOINTS/latest.safetensors has been written SAVES times. The watcher's event is handled between two batches
 * (the loop yields to the event loop after each), a batch or two after that save: where exactly does not matter,
 * since the run must continue exactly from whatever was saved last.
 *
 * Usage: node --import tsx test/helpers/interrupt-child.ts SIGNAL SAVES CHECKPOINTS ARGS...
 */
import fs from 'node:fs';
import command from '../../src/cli/train.js';
import { parseCommandArgs } from '../../src/cli/command.js';

const [signal, saves, checkpoints, ...args] = process.argv.slice(2);
fs.mkdirSync(checkpoints, { recursive: true });
let seen = 0;
const watcher = fs.watch(checkpoints, (_event, file) => {
  if (file === 'latest.safetensors' && ++seen === Number(saves)) process.kill(process.pid, signal as NodeJS.Signals);
});
try {
  await command.run(parseCommandArgs(command, [...args, '--checkpoints', checkpoints]) as never);
} finally {
  watcher.close();
}
