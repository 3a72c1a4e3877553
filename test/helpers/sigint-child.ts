/**
 * Child process for test/train-sigint.test.ts: `sat train ARGS...` (the CLI command, in this process) that
 * presses Ctrl-C itself COUNT times right after its first batch, with no timing involved:
 *  - everything before the first batch runs synchronously (src/train/train.ts), and after it the loop waits
 *    for a setImmediate (src/util/event-loop.ts);
 *  - the command starts inside a setImmediate callback, so the loop's own setImmediate runs in the next
 *    turn of the event loop, after that turn's poll phase has run the SIGINT handlers for the signals
 *    sent here (a signal to oneself is delivered before kill() returns).
 * So the handlers always run between the first and the second batch.
 *
 * Usage: node --import tsx test/helpers/sigint-child.ts COUNT ARGS...
 */
import command from '../../src/cli/train.js';
import { parseCommandArgs } from '../../src/cli/command.js';

const [count, ...args] = process.argv.slice(2);
await new Promise<void>((resolve, reject) =>
  setImmediate(() => {
    const done = command.run(parseCommandArgs(command, args) as never);
    for (let i = 0; i < Number(count); i++) process.kill(process.pid, 'SIGINT');
    done.then(resolve, reject);
  }),
);
