/**
 * The resume check of the native training tests: the same run trained straight into RUN/a, and for one epoch into
 * RUN/b and then resumed (`--resume`) to the end. Exact resume means both give the same losses and weights bit for bit.
 */
import path from 'node:path';
import type { TrainConfig } from '../../src/train/config.js';
import { train, type TrainOutcome } from '../../src/train/train.js';
import { QUIET_TRAIN } from './oracle-run.js';

/** `overrides.epochs` (at least 2) straight (a) and 1 + resume (b); the caller closes and disposes both. */
export async function straightAndResumed(
  runDir: string,
  overrides: Partial<TrainConfig> & { epochs: number },
): Promise<{ a: TrainOutcome; b: TrainOutcome }> {
  const a = await train({ runDir, checkpointDir: path.join(runDir, 'a'), overrides, ...QUIET_TRAIN });
  const split = path.join(runDir, 'b');
  const first = await train({ runDir, checkpointDir: split, overrides: { ...overrides, epochs: 1 }, ...QUIET_TRAIN });
  first.store.close();
  first.model.dispose();
  const b = await train({
    runDir,
    checkpointDir: split,
    overrides: { epochs: overrides.epochs },
    resume: true,
    ...QUIET_TRAIN,
  });
  return { a, b };
}
