#!/usr/bin/env node
/** The `sat` executable: src/cli/main.ts does the work. */
import { reportFailure, runSat } from './cli/main.js';

runSat(process.argv.slice(2)).catch((err: unknown) => {
  process.exitCode = reportFailure(err);
});
