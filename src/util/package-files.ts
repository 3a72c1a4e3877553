/**
 * Files shipped in the package beside dist/ (the PyTorch peers in peers/, configs/): found from this
 * module's own location, which is src/util under tsx and dist/src/util when installed, so they resolve the same
 * from a clone and from node_modules/show-attend-tell.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from './errors.js';
import { PACKAGE_NAME } from './version.js';

/** The package's root folder (the one holding its package.json). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (
      fs.existsSync(manifest) &&
      (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === PACKAGE_NAME
    )
      return dir;
    const parent = path.dirname(dir);
    if (parent === dir)
      throw new Error(`cannot find the ${PACKAGE_NAME} package folder above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** Absolute path of a file shipped in the package, e.g. packageFile('peers', 'train_torch.py'); a UserError if it is missing. */
export function packageFile(...parts: string[]): string {
  const root = packageRoot();
  const file = path.join(root, ...parts);
  if (!fs.existsSync(file)) {
    throw new UserError(
      `${path.join(...parts)} is missing from ${root}: this installation of ${PACKAGE_NAME} is incomplete. ` +
        `Reinstall the package (npm install ${PACKAGE_NAME}), or run from a clone of its repository.`,
    );
  }
  return file;
}
