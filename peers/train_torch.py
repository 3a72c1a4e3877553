"""PyTorch peer for `sat bench train`: the same model (peers/torch_model.py: the feature projection and W1
once per sequence, autograd backward) and Adam, float32 weights, on random data with the tutorial's shapes.
--bf16 runs the forward pass under torch.autocast("cpu", dtype=torch.bfloat16) (PyTorch's mixed precision: bf16
matmuls, f32 weights and optimizer), the backward pass outside it as PyTorch recommends.
Prints one JSON object: per-step seconds and the median tokens/s.
Run from the package root: /usr/bin/python3 -m peers.train_torch --json [--bf16]  (torch.set_num_threads from --threads, default 2)
With --serve it sets up, prints {"ready": true} and then times one step per line on stdin ("step": the --bf16
setting; "step fp32" / "step bf16": that precision), one JSON line each, so `sat bench train` can alternate its
steps with ours and both sides see the same machine load.
"""
import argparse
import json
import statistics
import sys
import time

import torch

from peers.torch_model import PARAMETER_ORDER, loss_fn, parameter_shapes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--locations", type=int, default=64)
    ap.add_argument("--channels", type=int, default=2048)
    ap.add_argument("--embed", type=int, default=256)
    ap.add_argument("--units", type=int, default=512)
    ap.add_argument("--attention", type=int, default=512)
    ap.add_argument("--vocab", type=int, default=5001)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--bf16", action="store_true", help='forward under torch.autocast("cpu", dtype=torch.bfloat16)')
    ap.add_argument("--serve", action="store_true", help="time one step per 'step' line on stdin")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    shapes = parameter_shapes(a.locations, a.channels, a.embed, a.units, a.attention, a.vocab)
    params = {n: ((torch.rand(shapes[n]) * 2 - 1) * 0.05).requires_grad_(True) for n in PARAMETER_ORDER}
    opt = torch.optim.Adam(list(params.values()), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    features = torch.rand(a.batch, a.locations, a.channels)
    tokens = torch.randint(1, a.vocab, (a.batch, a.steps + 1))  # every target real: B*T tokens per step

    def step(bf16=a.bf16):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, n_tokens = loss_fn(params, features, tokens)
        loss.backward()
        opt.step()
        step.cpu_s = time.process_time() - c0  # CPU seconds of all threads
        return time.perf_counter() - t0, loss, n_tokens

    if a.serve:
        print(json.dumps({"ready": True, "torch": torch.__version__, "threads": a.threads}), flush=True)
        modes = {"step": a.bf16, "step fp32": False, "step bf16": True}
        for line in sys.stdin:
            if line.strip() not in modes:
                break
            bf16 = modes[line.strip()]
            dt, loss, n_tokens = step(bf16)
            print(json.dumps({"step_s": dt, "cpu_s": step.cpu_s, "tokens": n_tokens, "loss": loss.item(),
                              "precision": "bf16" if bf16 else "fp32"}), flush=True)
        return

    times = []
    for i in range(a.warmup + a.repeats):
        dt, loss, n_tokens = step()
        if i >= a.warmup:
            times.append(dt)
        print(f"torch step {i + 1}/{a.warmup + a.repeats}: {dt:.3f} s, loss {loss.item():.4f}", file=sys.stderr)
    median = statistics.median(times)
    result = {"step_s": times, "median_step_s": median, "tokens_per_step": n_tokens,
              "tokens_per_s": n_tokens / median, "threads": a.threads, "torch": torch.__version__,
              "precision": "bf16" if a.bf16 else "fp32"}
    print(json.dumps(result) if a.json else result)


if __name__ == "__main__":
    main()
