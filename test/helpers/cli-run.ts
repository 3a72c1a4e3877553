/**
 * `sat ARGS...` in the test's own process (src/cli/main.ts runSat): what it prints on stdout, with progress
 * bars on stderr silenced. A user mistake rejects with the UserError whose message `sat` would print, so tests
 * of error texts need no child process; test/cli.test.ts checks once that the executable turns it into exit 2.
 */
import { format } from 'node:util';
import { runSat } from '../../src/cli/main.js';

export async function sat(args: string[]): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  const write = process.stderr.write.bind(process.stderr);
  const exitCode = process.exitCode;
  console.log = (...a: unknown[]) => lines.push(format(...a));
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await runSat(args);
  } finally {
    console.log = log;
    process.stderr.write = write;
    process.exitCode = exitCode; // a command's own exit status (130 when interrupted) is not the test's
  }
  return lines.join('\n');
}
