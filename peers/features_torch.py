#!/usr/bin/env python3
"""PyTorch peer of `sat bench features`: JPEG files -> stored float16 features, the tutorial's way.

Same work as the TypeScript side: decode each JPEG (PIL), convert to RGB, resize to the input size
ignoring aspect (bilinear), scale, run the CNN body in batches, and save each image's features as a
float16 .npy file laid out [locations, channels] (the tutorial caches one float32 .npy per image; float16
matches our store's size). Random weights: speed does not depend on them.

Architectures (torchvision, same as the ONNX graphs we run):
  inception_v3  torchvision Inception3 body up to the Keras layer named by --layer (mixed10 = Mixed_7c,
                8x8x2048), input 299, x/255 like the nsfwjs model
  mobilenet_v2  torchvision MobileNetV2 .features (7x7x1280), input 224, x/127.5-1

Prints one JSON object: {"images_per_s": median over repeats, "runs": [...], ...}.
Run from the package root with a Python that has torch: /usr/bin/python3 -m peers.features_torch --images DIR
"""
import argparse
import json
import os
import shutil
import statistics
import tempfile
import time

# Idle OpenMP threads sleep instead of spin-waiting, as our onnxruntime threads do (allow_spinning=0):
# on a shared machine spinning threads burn the CPU the working ones need. Must be set before torch loads.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import numpy as np
import torch
import torchvision
from PIL import Image

# Keras InceptionV3 layer names -> torchvision Inception3 modules (same blocks, same order).
INCEPTION_BLOCKS = ['Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'maxpool1', 'Conv2d_3b_1x1',
                    'Conv2d_4a_3x3', 'maxpool2']
MIXED = ['Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e',
         'Mixed_7a', 'Mixed_7b', 'Mixed_7c']


def build(arch, layer):
    if arch == 'inception_v3':
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        cut = int(layer.replace('mixed', '')) if layer else 10
        body = torch.nn.Sequential(*[getattr(net, n) for n in INCEPTION_BLOCKS + MIXED[:cut + 1]])
        return body, 299, lambda x: x / 255.0
    if arch == 'mobilenet_v2':
        return torchvision.models.mobilenet_v2(weights=None).features, 224, lambda x: x / 127.5 - 1.0
    raise SystemExit(f'unknown --arch {arch}')


def load(path, size):
    img = Image.open(path).convert('RGB').resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())  # [size, size, 3] uint8


def extract(body, size, scale, files, batch, out_dir):
    for i in range(0, len(files), batch):
        chunk = files[i:i + batch]
        x = torch.stack([load(f, size) for f in chunk]).permute(0, 3, 1, 2).float()  # NCHW
        with torch.no_grad():
            y = body(scale(x))  # [n, c, h, w]
        n, c, h, w = y.shape
        feats = y.permute(0, 2, 3, 1).reshape(n, h * w, c).numpy().astype(np.float16)
        for f, a in zip(chunk, feats):
            np.save(os.path.join(out_dir, os.path.basename(f) + '.npy'), a)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--images', required=True, help='folder of JPEG files')
    p.add_argument('--limit', type=int, default=64)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=1)
    p.add_argument('--arch', default='inception_v3', choices=['inception_v3', 'mobilenet_v2'])
    p.add_argument('--layer', default=None, help='inception_v3: Keras layer name, mixed0..mixed10')
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    # Random weights can drive activations into denormal floats, which are slow on x86; real weights do not.
    # Flushing them keeps the peer's timing what it would be with trained weights.
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    files = sorted(os.path.join(args.images, f) for f in os.listdir(args.images)
                   if f.lower().endswith(('.jpg', '.jpeg')))[:args.limit]
    if not files:
        raise SystemExit(f'no JPEG files in {args.images}')
    body, size, scale = build(args.arch, args.layer)
    body.eval()
    runs = []
    cpu = []  # CPU seconds (all threads) per image: robust to other load on the machine, unlike wall time
    tmp = tempfile.mkdtemp(prefix='sat-torch-bench-')
    try:
        extract(body, size, scale, files[:args.batch], args.batch, tmp)  # warm-up, not timed
        for r in range(args.repeats):
            out = os.path.join(tmp, f'run{r}')
            os.makedirs(out)
            t, c = time.perf_counter(), time.process_time()
            extract(body, size, scale, files, args.batch, out)
            runs.append(len(files) / (time.perf_counter() - t))
            cpu.append((time.process_time() - c) / len(files))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({'images_per_s': statistics.median(runs), 'runs': runs,
                      'cpu_s_per_image': statistics.median(cpu), 'images': len(files),
                      'batch': args.batch, 'threads': args.threads, 'arch': args.arch,
                      'torch': torch.__version__}))


if __name__ == '__main__':
    main()
