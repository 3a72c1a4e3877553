import os from 'node:os';
import path from 'node:path';

/** The folder of downloaded files (encoder weights, images from URLs): $SAT_CACHE, else ~/.cache/show-attend-tell. */
export function cacheDir(): string {
  return process.env.SAT_CACHE || path.join(os.homedir(), '.cache', 'show-attend-tell');
}
