#!/usr/bin/env python3
"""PyTorch peer for bench/encoders-bench.ts: the same CNN body on random input, compute only.

torchvision Inception3 up to Mixed_7c (= Keras mixed10) or MobileNetV2 .features, random weights (speed does
not depend on them), eval mode, no_grad, float32, NCHW. Prints one JSON line: {"ms_per_image": [...per repeat]}.
Run from the package root with a Python that has torch: /usr/bin/python3 -m peers.encoders_bench_torch --arch inception_v3
"""
import argparse
import json
import time

import torch
import torchvision

p = argparse.ArgumentParser()
p.add_argument('--arch', default='inception_v3', choices=['inception_v3', 'mobilenet_v2'])
p.add_argument('--batch', type=int, default=8)
p.add_argument('--threads', type=int, default=2)
p.add_argument('--repeats', type=int, default=5)
a = p.parse_args()
torch.set_num_threads(a.threads)
if a.arch == 'inception_v3':
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    names = ['Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'maxpool1', 'Conv2d_3b_1x1', 'Conv2d_4a_3x3', 'maxpool2',
             'Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e', 'Mixed_7a', 'Mixed_7b', 'Mixed_7c']
    body, size = torch.nn.Sequential(*[getattr(net, n) for n in names]), 299
else:
    body, size = torchvision.models.mobilenet_v2(weights=None).features, 224
body.eval()
x = torch.rand(a.batch, 3, size, size)
times = []
with torch.no_grad():
    body(x)  # warm-up
    for _ in range(a.repeats):
        t = time.perf_counter()
        body(x)
        times.append((time.perf_counter() - t) * 1000 / a.batch)
print(json.dumps({'ms_per_image': times}))
