"""Writes test/fixtures/mobilenet-v2-reference.npy, the end-to-end reference of test/encoders-mobilenet.test.ts:
the 7x7x1280 output of a full MobileNetV2 1.0 (224x224 input) with seeded random weights, computed here in
float64 with numpy from the paper's architecture table, independently of the project's ONNX graph builder.

Weights, biases and the input image come from one 32-bit linear congruential stream (seed 2024; the test runs
the same stream in TypeScript): the image first (224x224x3 in [-1, 1)), then for each convolution in forward
order its weights (OHWI [out, kh, kw, in]; depthwise [1, kh, kw, channels], as the TFLite export stores them)
and its bias. Each value is (state / 2^32 - 0.5) * scale rounded to float32, with power-of-two scales, so both
languages produce the same floats: He-scaled weights (2^floor(log2(24 / fan_in) / 2 + 1/2)), biases in [-1/16, 1/16).

Stored rows (float32 [3, 1280]): the output at the centre location (3, 3), at the corner (0, 0) (its receptive
field is mostly TF SAME padding) and the mean over the 49 locations.

Usage: python3 scripts/mobilenet_v2_reference.py   (needs numpy; the test itself needs no Python)
"""
import math
import os

import numpy as np

# MobileNetV2 (Sandler et al. 2018, Table 2): expansion t, output channels c, repeats n, first stride s.
BOTTLENECKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
SEED = 2024
SIZE = 224


class Stream:
    """x_{k+1} = (1664525 x_k + 1013904223) mod 2^32 (Numerical Recipes); values (x / 2^32 - 0.5) * scale in float32."""

    def __init__(self, seed):
        self.state = seed

    def take(self, n, scale):
        out = np.empty(n, dtype=np.float64)
        s = self.state
        for i in range(n):
            s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
            out[i] = s / 2.0**32 - 0.5
        self.state = s
        return (out * scale).astype(np.float32)


def weight_scale(fan_in):
    """2^k nearest sqrt(24 / fan_in) (He: a uniform [-s/2, s/2) has standard deviation sqrt(2 / fan_in)), halves up."""
    return 2.0 ** math.floor(0.5 * math.log2(24.0 / fan_in) + 0.5)


def same_padding(n, k, stride):
    """TF SAME: output ceil(n / stride); odd padding goes after (bottom/right)."""
    out = -(-n // stride)
    total = max((out - 1) * stride + k - n, 0)
    return out, total // 2, total - total // 2


def conv(x, w, b, stride, depthwise):
    """x [H, W, C] float64; w OHWI (or [1, kh, kw, C] depthwise); returns [H', W', O] float64."""
    h, wd, _ = x.shape
    kh, kw = w.shape[1], w.shape[2]
    oh, top, bottom = same_padding(h, kh, stride)
    ow, left, right = same_padding(wd, kw, stride)
    xp = np.pad(x, ((top, bottom), (left, right), (0, 0)))
    w = w.astype(np.float64)
    y = 0.0
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[ky:ky + stride * (oh - 1) + 1:stride, kx:kx + stride * (ow - 1) + 1:stride, :]
            y = y + (patch * w[0, ky, kx, :] if depthwise else patch @ w[:, ky, kx, :].T)
    return y + b.astype(np.float64)


def relu6(x):
    return np.minimum(np.maximum(x, 0.0), 6.0)


def main():
    stream = Stream(SEED)
    x = stream.take(SIZE * SIZE * 3, 2.0).astype(np.float64).reshape(SIZE, SIZE, 3)

    def layer(x, cout, k, stride, depthwise, activation):
        cin = x.shape[2]
        shape = (1, k, k, cin) if depthwise else (cout, k, k, cin)
        w = stream.take(int(np.prod(shape)), weight_scale(k * k * (1 if depthwise else cin))).reshape(shape)
        b = stream.take(cin if depthwise else cout, 1.0 / 8)  # values in [-1/16, 1/16)
        y = conv(x, w, b, stride, depthwise)
        return relu6(y) if activation else y

    clamped = 0
    x = layer(x, 32, 3, 2, False, True)
    for t, c, n, s in BOTTLENECKS:
        for i in range(n):
            stride = s if i == 0 else 1
            block_input = x
            if t != 1:
                x = layer(x, x.shape[2] * t, 1, 1, False, True)
            x = layer(x, None, 3, stride, True, True)
            clamped += int((x >= 6.0).sum())
            x = layer(x, c, 1, 1, False, False)
            if stride == 1 and block_input.shape[2] == c:
                x = x + block_input
        print(f"after c={c}: {x.shape}, mean {x.mean():.3f}, std {x.std():.3f}")
    x = layer(x, 1280, 1, 1, False, True)
    assert x.shape == (7, 7, 1280), x.shape
    print(f"output: mean {x.mean():.3f}, std {x.std():.3f}, zeros {(x == 0).mean():.2f}, at 6 {(x == 6).mean():.3f}; "
          f"depthwise outputs clamped at 6: {clamped}")
    rows = np.stack([x[3, 3], x[0, 0], x.mean(axis=(0, 1))]).astype(np.float32)
    out = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'mobilenet-v2-reference.npy')
    np.save(out, rows)
    print(f"wrote {os.path.normpath(out)} {rows.shape}")


if __name__ == '__main__':
    main()
