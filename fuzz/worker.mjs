// Worker entry of fuzz/run.ts: a worker thread does not inherit the main thread's `--import tsx`, so it
// registers tsx itself before loading the TypeScript harness (which then runs the worker side).
import { register } from 'tsx/esm/api';

register();
await import('./run.ts');
