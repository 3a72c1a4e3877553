/**
 * How `sat bench` and the checks start the PyTorch peers (src/bench/torch-peer.ts): `python -m peers.NAME` in the
 * package root, where peers/ is a Python package beside its shared twin. No Python runs here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { torchPeerCommand, torchPeerPath } from '../src/bench/torch-peer.js';
import { UserError } from '../src/util/errors.js';

test('a peer runs as a module of the peers package from the package root', () => {
  const peer = torchPeerCommand('/usr/bin/python3', 'train_torch', ['--serve']);
  assert.equal(peer.command, '/usr/bin/python3');
  assert.deepEqual(peer.args, ['-m', 'peers.train_torch', '--serve']);
  assert.ok(fs.existsSync(path.join(peer.cwd, 'peers', '__init__.py')), 'peers/ is a package');
  assert.equal(peer.script, path.join(peer.cwd, 'peers', 'train_torch.py'));
  for (const name of ['serve_torch', 'features_torch'])
    assert.ok(fs.existsSync(torchPeerCommand('python3', name, []).script), name);
});

test('a Python given by path and path arguments are made absolute (the peer runs elsewhere)', () => {
  assert.equal(torchPeerCommand('python3', 'train_torch', []).command, 'python3', 'a name is looked up on PATH');
  assert.equal(torchPeerCommand('venv/bin/python', 'train_torch', []).command, path.resolve('venv/bin/python'));
  assert.equal(
    torchPeerPath('runs/f8k/checkpoints/best.safetensors'),
    path.resolve('runs/f8k/checkpoints/best.safetensors'),
  );
});

test('a missing peer is refused with the reinstall hint', () => {
  assert.throws(
    () => torchPeerCommand('python3', 'no_such_peer', []),
    (e: unknown) =>
      e instanceof UserError && /peers\/no_such_peer\.py is missing/.test(e.message) && /Reinstall/.test(e.message),
  );
});
