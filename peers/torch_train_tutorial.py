"""The tutorial's training recipe in PyTorch, on the same cached features as `sat train`, for the parity check
(checks/parity-flickr8k.ts): does our native trainer land within noise of the same model written in PyTorch?

Recipe (the tutorial's, as `sat train --bucket-batches 0 --val-metric loss` with default settings): every (image, caption)
pair of the train split is one example, shuffled each epoch, batches of 64 (the last one smaller), each padded
to its own longest caption; teacher forcing with the GRU state carried across steps from a zero initial state
(--gru-state reset: restarted from zeros every step, as the TF tutorial's GRU and `sat train --gru-state reset`;
--init-state mean: the paper's initial state tanh(mean annotation · W + b) instead of zeros, as `sat train --init-state mean`);
loss = mean cross-entropy over real (non-pad) target tokens; Keras Adam (lr 1e-3, eps 1e-7 added to sqrt(v));
no dropout, no attention regulariser, no clipping; E 256, U 512, A 512; Keras initialisers (glorot_uniform
kernels, orthogonal GRU recurrent kernel, zero biases, Embedding uniform(-0.05, 0.05)). The model and the
optimizer are peers/torch_model.py (loss_fn, KerasAdam), the module that also produced the gradient fixture
our native core is tested against. Only the random streams (initial weights, shuffling) differ from ours.

After every epoch: the dev loss (token-weighted mean over all dev pairs) and greedy captions of the dev
images (those with captions and stored features, in images.jsonl order, as `sat eval` picks them): decoding
starts from <start> with the initial state (zeros, or from the mean annotation with --init-state mean), never emits <pad>/<start>, stops at <end> or after the vocabulary's
max length - 1 tokens. Written to OUT/results-eNNN.json in the COCO results format [{"image_id", "caption"}]
with `sat eval`'s ids (numeric ids as numbers), and OUT/history.json. Scoring is left to our scorer
(`sat score`), so both systems are scored by the same code.

--init-from CKPT --epochs 0 loads a `sat train` checkpoint and only evaluates it: the parity script uses it to
check that this side's feature reading, dev loss and greedy decoding give our numbers on our weights, so any
difference left in the comparison comes from training.

Run from the package root: /usr/bin/python3 -m peers.torch_train_tutorial --run runs/f8k --epochs 20 --out parity/torch [--threads 2]
"""
import argparse
import json
import math
import os
import re
import sys
import time
import zlib

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as our native core: idle OpenMP threads sleep, not spin

import numpy as np  # noqa: E402
import torch  # noqa: E402

from peers.torch_model import (PARAMETER_ORDER, KerasAdam, decoder_step, encode, initial_state, loss_fn, output_logits,  # noqa: E402
                         parameter_shapes, read_safetensors)


# --- the run directory and its feature store (layouts: src/dataset/run.ts, src/features/format.ts) ----------------

def load_run(run_dir):
    with open(os.path.join(run_dir, "run.json")) as f:
        info = json.load(f)
    if info.get("format") != "sat-run":
        sys.exit(f"{run_dir}/run.json is not a sat run; make one with `sat prepare`.")
    with open(os.path.join(run_dir, "vocab.json")) as f:
        vocab = json.load(f)
    with open(os.path.join(run_dir, "images.jsonl")) as f:
        images = [json.loads(line) for line in f if line.strip()]
    return info, vocab, images


def find_feature_dir(run_dir, info, explicit=None):
    """As findFeatureDir in src/train/train.ts: explicit, then run.json's record, then the only store."""
    if explicit:
        return explicit
    rec = info.get("features")
    if isinstance(rec, str):
        return os.path.join(run_dir, rec)
    if isinstance(rec, dict) and rec.get("dir"):
        return os.path.join(run_dir, rec["dir"])
    if isinstance(rec, dict) and rec.get("encoderId"):
        return os.path.join(run_dir, "features", re.sub(r"[^A-Za-z0-9_.-]", "_", rec["encoderId"]))
    root = os.path.join(run_dir, "features")
    found = [d for d in sorted(os.listdir(root)) if os.path.exists(os.path.join(root, d, "meta.json"))] if os.path.isdir(root) else []
    if len(found) != 1:
        sys.exit(f"{run_dir}: expected one feature store under features/, found {found}; pass --features DIR.")
    return os.path.join(root, found[0])


class FeatureStore:
    """Read-only view of a sat feature store: fp16 little-endian records [L, C] in shard-NNNNN.bin files,
    index.jsonl lines `{"id","shard","offset","crc"}<TAB>crc32-of-the-json-in-hex`. Like the TS reader, the
    index is trusted up to its first torn or corrupt line, and a later line for the same id wins."""

    def __init__(self, directory):
        with open(os.path.join(directory, "meta.json")) as f:
            meta = json.load(f)
        if meta.get("format") != "sat-feature-store" or meta.get("version") != 1:
            sys.exit(f"{directory}/meta.json is not a version-1 sat-feature-store.")
        if meta["dtype"] != "float16" or meta["byteOrder"] != "little" or meta["recordBytes"] != meta["locations"] * meta["channels"] * 2:
            sys.exit(f"{directory}/meta.json: unsupported record layout.")
        self.encoder_id, self.L, self.C = meta["encoderId"], meta["locations"], meta["channels"]
        self.index = {}
        with open(os.path.join(directory, "index.jsonl"), "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # torn last line: its record may not be complete
                line = raw[:-1].decode("utf8")
                text, _, crc = line.rpartition("\t")
                if not text or crc != format(zlib.crc32(text.encode("utf8")), "08x"):
                    break
                e = json.loads(text)
                self.index[e["id"]] = (e["shard"], e["offset"])
        self.shards = {}
        self.directory = directory

    def has(self, image_id):
        return image_id in self.index

    def read_batch(self, ids):
        """float32 [len(ids), L, C] (fp16 -> fp32 is exact, as in the TS reader)."""
        n = self.L * self.C
        out = np.empty((len(ids), n), dtype=np.float32)
        for row, image_id in enumerate(ids):
            shard, offset = self.index[image_id]
            if shard not in self.shards:
                path = os.path.join(self.directory, f"shard-{shard:05d}.bin")
                self.shards[shard] = np.memmap(path, dtype="<f2", mode="r")
            out[row] = self.shards[shard][offset // 2: offset // 2 + n]
        return out.reshape(len(ids), self.L, self.C)


# --- model ------------------------------------------------------------------------------------------------

def keras_init(shapes, generator, init_state="zeros"):
    """Keras defaults, drawn from torch's generator (so the sample differs from ours; the distribution does not).
    init_state.* is drawn only with init_state 'mean' (unused otherwise), so the default run's random stream
    (initial weights, then shuffling) is the one it had before the option existed."""
    params = {}
    for name in PARAMETER_ORDER:
        shape = shapes[name]
        if name.startswith("init_state.") and init_state != "mean":
            t = torch.zeros(shape)
        elif name == "embedding.embeddings":
            t = torch.empty(shape).uniform_(-0.05, 0.05, generator=generator)
        elif name == "gru.recurrent_kernel":
            # Keras Orthogonal for [U, 3U]: U orthonormal rows (QR of a normal [3U, U] matrix, sign-fixed, transposed).
            q, r = torch.linalg.qr(torch.randn(shape[1], shape[0], generator=generator, dtype=torch.float64))
            t = (q * torch.sign(torch.diagonal(r))).T.float().contiguous()
        elif name.endswith("kernel"):
            limit = math.sqrt(6.0 / (shape[0] + shape[1]))
            t = torch.empty(shape).uniform_(-limit, limit, generator=generator)
        else:
            t = torch.zeros(shape)
        params[name] = t.requires_grad_(True)
    return params


@torch.no_grad()
def greedy_decode(p, features, vocab, max_length, reset_state=False, init_state="zeros"):
    """features [N, L, C] -> N captions (lists of words, <end> excluded). Same steps as native/infer.cc."""
    N = features.shape[0]
    start, end = vocab["words"].index("<start>"), vocab["words"].index("<end>")
    enc, proj = encode(p, features)                                                 # [N,L,E], [N,L,A]
    h = initial_state(p, enc, init_state)                                           # [N,U]
    token = torch.full((N,), start, dtype=torch.int64)
    words = [[] for _ in range(N)]
    done = [False] * N
    for _ in range(max_length):
        h, _ = decoder_step(p, enc, proj, h, p["embedding.embeddings"][token], reset_state)  # [N,U]
        logits = output_logits(p, h)                                                 # [N,V]
        logits[:, 0] = -math.inf       # <pad>
        logits[:, start] = -math.inf
        token = logits.argmax(dim=-1)
        for i, t in enumerate(token.tolist()):
            if done[i]:
                continue
            if t == end:
                done[i] = True
            else:
                words[i].append(vocab["words"][t])
        if all(done):
            break
    return words


# --- data ---------------------------------------------------------------------------------------------------

def split_examples(images, split):
    """Every (image, caption) pair of a split, as (image id, token ids <start> .. <end>)."""
    return [(im["id"], toks) for im in images if im["split"] == split for toks in im["tokens"] if len(toks) >= 2]


def make_batch(store, examples):
    longest = max(len(t) for _, t in examples)
    tokens = torch.zeros(len(examples), longest, dtype=torch.int64)                  # [B, T+1], 0 = <pad>
    for row, (_, toks) in enumerate(examples):
        tokens[row, :len(toks)] = torch.tensor(toks)
    return torch.from_numpy(store.read_batch([i for i, _ in examples])), tokens


def load_sat_checkpoint(file, shapes, init_state="zeros"):
    """Weights from a `sat train` checkpoint (read by torch_model.read_safetensors), checked against `shapes`."""
    try:
        tensors, _ = read_safetensors(file)
    except ValueError as e:
        sys.exit(str(e))
    params = {}
    for name in PARAMETER_ORDER:
        t = tensors.get(name)
        if t is None and name.startswith("init_state.") and init_state == "zeros":
            params[name] = torch.zeros(shapes[name]).requires_grad_(True)  # checkpoints from before initState: unused
            continue
        if t is None or list(t.shape) != list(shapes[name]):
            sys.exit(f"{file}: parameter {name} is {None if t is None else list(t.shape)}, expected {shapes[name]} "
                     "(was it trained on this run's features and vocabulary?)")
        params[name] = t.requires_grad_(True)
    return params


def dev_loss(p, store, dev, batch, reset_state, init_state):
    """Token-weighted mean cross-entropy over all dev pairs (as evaluateLoss in src/train/loop.ts)."""
    total, tokens = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(dev), batch):
            features, toks = make_batch(store, dev[i:i + batch])
            loss, n = loss_fn(p, features, toks, reset_state=reset_state, init_state=init_state)
            total += loss.item() * n
            tokens += n
    return total / tokens if tokens else None


def dev_captions(p, store, dev_images, vocab, max_length, batch, reset_state, init_state):
    """COCO results [{"image_id", "caption"}] with `sat eval`'s ids: numeric ids as numbers."""
    results = []
    for i in range(0, len(dev_images), batch):
        chunk = dev_images[i:i + batch]
        words = greedy_decode(p, torch.from_numpy(store.read_batch([im["id"] for im in chunk])), vocab, max_length, reset_state,
                              init_state)
        for im, w in zip(chunk, words):
            results.append({"image_id": int(im["id"]) if re.fullmatch(r"\d+", im["id"]) else im["id"], "caption": " ".join(w)})
    return results


def main():
    ap = argparse.ArgumentParser(description="The tutorial's recipe in PyTorch on a sat run's cached features.")
    ap.add_argument("--run", required=True, help="run directory (sat prepare + sat features)")
    ap.add_argument("--out", required=True, help="output folder: results-eNNN.json per epoch and history.json")
    ap.add_argument("--epochs", type=int, default=20, help="0: only evaluate the initial weights (see --init-from)")
    ap.add_argument("--features", help="feature store folder (default: the one the run uses)")
    ap.add_argument("--init-from", help="start from a `sat train` checkpoint's weights (.safetensors) instead of Keras init")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--embed", type=int, default=256)
    ap.add_argument("--units", type=int, default=512)
    ap.add_argument("--attention", type=int, default=512)
    ap.add_argument("--seed", type=int, default=42, help="torch generator for initialisation and shuffling")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--decode-batch", type=int, default=64)
    ap.add_argument("--gru-state", choices=["carry", "reset"], default="carry",
                    help="reset = the TF tutorial's GRU, which restarts from zeros every step; carry = a real recurrence (default)")
    ap.add_argument("--init-state", choices=["zeros", "mean"], default="zeros",
                    help="mean = the paper's initial state tanh(mean annotation · W + b); zeros = the TF tutorial (default)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    reset_state = a.gru_state == "reset"

    info, vocab, images = load_run(a.run)
    store = FeatureStore(find_feature_dir(a.run, info, a.features))
    train = split_examples(images, "train")
    dev = split_examples(images, "dev")
    dev_images = [im for im in images if im["split"] == "dev" and im["captions"] and store.has(im["id"])]
    missing = [i for i, _ in train + dev if not store.has(i)]
    if missing:
        sys.exit(f"{len(missing)} train/dev captions have no stored features (first: {missing[0]}); run `sat features` first.")
    if not train:
        sys.exit(f"{a.run} has no train captions.")
    V = len(vocab["words"])
    max_length = max(1, vocab["maxLength"] - 1)
    shapes = parameter_shapes(store.L, store.C, a.embed, a.units, a.attention, V)
    gen = torch.Generator().manual_seed(a.seed)
    p = load_sat_checkpoint(a.init_from, shapes, a.init_state) if a.init_from else keras_init(shapes, gen, a.init_state)
    opt = KerasAdam([p[n] for n in PARAMETER_ORDER], lr=a.lr, eps=1e-7)
    os.makedirs(a.out, exist_ok=True)
    print(f"torch {torch.__version__}, {a.threads} threads, GRU state {a.gru_state}, initial state {a.init_state}; features {store.encoder_id} [{store.L} x {store.C}], V {V}; "
          f"train {len(train)} captions, dev {len(dev)} captions / {len(dev_images)} images", file=sys.stderr, flush=True)

    history = []

    def finish_epoch(epoch, record):
        t1 = time.perf_counter()
        record["valLoss"] = dev_loss(p, store, dev, a.batch, reset_state, a.init_state)
        results = dev_captions(p, store, dev_images, vocab, max_length, a.decode_batch, reset_state, a.init_state)
        record["decodeSeconds"] = time.perf_counter() - t1
        record["results"] = f"results-e{epoch:03d}.json"
        with open(os.path.join(a.out, record["results"]), "w") as f:
            json.dump(results, f)
            f.write("\n")
        history.append(record)
        with open(os.path.join(a.out, "history.json"), "w") as f:
            json.dump({"torch": torch.__version__, "threads": a.threads, "seed": a.seed, "encoder": store.encoder_id,
                       "config": vars(a), "history": history}, f, indent=2)
            f.write("\n")
        val = "-" if record["valLoss"] is None else f"{record['valLoss']:.4f}"
        train_loss = "-" if record["trainLoss"] is None else f"{record['trainLoss']:.4f}"
        print(f"epoch {epoch}: train loss {train_loss}, val loss {val}, {record['tokensPerSecond']:.0f} tok/s, "
              f"{record['trainSeconds']:.1f} s train + {record['decodeSeconds']:.1f} s validation", file=sys.stderr, flush=True)

    if a.epochs == 0:
        finish_epoch(0, {"epoch": 0, "trainLoss": None, "steps": 0, "trainSeconds": 0.0, "tokensPerSecond": 0.0})
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(len(train), generator=gen).tolist()
        batches = [order[i:i + a.batch] for i in range(0, len(order), a.batch)]
        loss_sum, tokens_seen = 0.0, 0
        for bi, batch in enumerate(batches):
            features, tokens = make_batch(store, [train[i] for i in batch])
            for q in opt.params:
                q.grad = None
            loss, n = loss_fn(p, features, tokens, reset_state=reset_state, init_state=a.init_state)
            if not math.isfinite(loss.item()):
                sys.exit(f"loss became {loss.item()} at epoch {epoch}, batch {bi + 1}")
            loss.backward()
            opt.step()
            loss_sum += loss.item() * n
            tokens_seen += n
            if (bi + 1) % 20 == 0 or bi + 1 == len(batches):
                rate = tokens_seen / (time.perf_counter() - t0)
                print(f"\repoch {epoch}/{a.epochs} batch {bi + 1}/{len(batches)} loss {loss_sum / tokens_seen:.4f} {rate:.0f} tok/s",
                      end="", file=sys.stderr, flush=True)
        seconds = time.perf_counter() - t0
        print(file=sys.stderr)
        finish_epoch(epoch, {"epoch": epoch, "trainLoss": loss_sum / tokens_seen, "steps": opt.t, "trainSeconds": seconds,
                             "tokensPerSecond": tokens_seen / seconds})


if __name__ == "__main__":
    main()
