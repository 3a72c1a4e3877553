/**
 * How the PyTorch peers are started. They live in peers/ (shipped in the package), a Python package whose
 * modules share the PyTorch twin of the model, peers/torch_model.py (`from peers.torch_model import ...`). Each runs
 * as `python -m peers.NAME` from the package root, so the import resolves with no change to sys.path; path
 * arguments are therefore made absolute first (torchPeerPath).
 *
 *   const peer = torchPeerCommand('/usr/bin/python3', 'train_torch', ['--serve']);
 *   spawn(peer.command, peer.args, { cwd: peer.cwd });
 */
import path from 'node:path';
import { packageFile, packageRoot } from '../util/package-files.js';

export interface TorchPeerCommand {
  command: string;
  args: string[];
  /** The package root: the folder holding peers/. */
  cwd: string;
  /** The peer's file, for messages. */
  script: string;
}

/**
 * The command line that runs peers/NAME.py with `python` (a name looked up on PATH, or a path, made absolute
 * here since the peer runs in the package root); a UserError when the peer or the twin is missing.
 */
export function torchPeerCommand(python: string, name: string, args: readonly string[]): TorchPeerCommand {
  packageFile('peers', '__init__.py');
  packageFile('peers', 'torch_model.py');
  const script = packageFile('peers', `${name}.py`);
  const command = python.includes('/') || python.includes(path.sep) ? path.resolve(python) : python;
  return { command, args: ['-m', `peers.${name}`, ...args], cwd: packageRoot(), script };
}

/** A file or folder argument for a peer: absolute, since the peer runs in the package root. */
export function torchPeerPath(file: string): string {
  return path.resolve(file);
}
