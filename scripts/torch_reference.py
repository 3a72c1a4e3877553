"""Writes test/fixtures/model-reference.safetensors: inputs, weights, loss, every gradient and the weights
after 3 Adam steps, computed by PyTorch autograd in float64 (stored as float32) for four cases:
  case0: the tutorial's model (no dropout, no regulariser, no clipping)
  case1: doubly stochastic attention regulariser lambda=0.5 and global-norm clipping at 0.5
  case2: as case1 with the TF tutorial's GRU (reset_state: restarted from zeros every step, `--gru-state reset`)
  case3: as case1 with the paper's initial state (init_state 'mean': H[0] = tanh(mean annotation · W + b),
         `--init-state mean`)
The init_state.* weights are drawn after the inputs, so cases 0-2 keep the numbers they had before they existed.
test/model-torch-reference.test.ts replays them through the native core tensor by tensor.
Run from the repository root: /usr/bin/python3 -m scripts.torch_reference   (needs torch; CI never does)
"""
import json
import os
import struct

import torch

from peers.torch_model import PARAMETER_ORDER, KerasAdam, loss_fn, parameter_shapes

SIZES = dict(L=6, C=10, E=8, U=12, A=9, V=15)
B, T = 3, 5
CASES = [dict(name="case0", attention_lambda=0.0, clip_norm=None, lr=1e-2, reset_state=False, init_state="zeros"),
         dict(name="case1", attention_lambda=0.5, clip_norm=0.5, lr=1e-2, reset_state=False, init_state="zeros"),
         dict(name="case2", attention_lambda=0.5, clip_norm=0.5, lr=1e-2, reset_state=True, init_state="zeros"),
         dict(name="case3", attention_lambda=0.5, clip_norm=0.5, lr=1e-2, reset_state=False, init_state="mean")]
LATE = ["init_state.kernel", "init_state.bias"]  # drawn after the inputs (see above)


def main():
    torch.manual_seed(1234)
    shapes = parameter_shapes(**SIZES)
    draw = lambda n: (torch.rand(shapes[n], dtype=torch.float64) * 2 - 1) * 0.5
    init = {n: draw(n) for n in PARAMETER_ORDER if n not in LATE}
    features = (torch.rand(B, SIZES["L"], SIZES["C"], dtype=torch.float64) * 2 - 0.5).float().double()
    init.update({n: draw(n) for n in LATE})
    init = {n: init[n].float().double() for n in PARAMETER_ORDER}  # exactly representable in float32
    # <start>=1, words 3..V-1, <end>=2, then <pad>=0: 5, 3 and 2 real targets
    tokens = torch.tensor([[1, 4, 9, 13, 7, 2], [1, 5, 3, 2, 0, 0], [1, 14, 2, 0, 0, 0]], dtype=torch.int64)
    out = {"input.features": features, "input.tokens": tokens.int()}
    out.update({f"param.{n}": t for n, t in init.items()})
    for case in CASES:
        params = [init[n].clone().requires_grad_(True) for n in PARAMETER_ORDER]
        opt = KerasAdam(params, lr=case["lr"], clip_norm=case["clip_norm"])
        losses = []
        for step in range(3):
            for q in params:
                q.grad = None
            loss, _ = loss_fn(dict(zip(PARAMETER_ORDER, params)), features, tokens, case["attention_lambda"],
                              reset_state=case["reset_state"], init_state=case["init_state"])
            loss.backward()
            losses.append(loss.item())
            if step == 0:  # unused parameters (init_state.* with 'zeros') have no grad: exactly zero
                out.update({f"{case['name']}.grad.{n}": q.grad.clone() if q.grad is not None else torch.zeros_like(q)
                            for n, q in zip(PARAMETER_ORDER, params)})
            opt.step()
        out[f"{case['name']}.losses"] = torch.tensor(losses, dtype=torch.float64)
        out.update({f"{case['name']}.after3.{n}": q.detach().clone() for n, q in zip(PARAMETER_ORDER, params)})
        print(f"{case['name']}: losses {losses}")
    meta = {"sizes": json.dumps(dict(SIZES, B=B, T=T)), "cases": json.dumps(CASES),
            "generator": "scripts/torch_reference.py (PyTorch %s, float64 autograd)" % torch.__version__}
    path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "model-reference.safetensors")
    write_safetensors(path, out, meta)
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes)")


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        dtype = "I32" if t.dtype == torch.int32 else "F32"
        data = (t if dtype == "I32" else t.float()).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    main()
