"""The captioning model in PyTorch, written independently of the C++ core, for the reference fixture
(scripts/torch_reference.py), the speed peers (peers/train_torch.py, peers/serve_torch.py) and the tutorial's
recipe in PyTorch (peers/torch_train_tutorial.py); with the reader of `sat train` checkpoints they all use.

Same model and parameter layout as src/model (Keras [in, out] kernels, GRU reset_after=True with gate
blocks z, r, n, input = concat(context, embedding)). Only PyTorch autograd computes gradients here.
Both GRU state modes: carry (h_t = GRU(x_t, h_{t-1})) and reset (the TF tutorial's `self.gru(x)` with no
initial state: h_t = GRU(x_t, 0), h_{t-1} only the attention query). Both initial states: zeros (the tutorial)
and mean (the paper, sec. 3.1.2: H[0] = tanh(mean_l enc · init_state.kernel + init_state.bias)).
Shapes: B batch, T steps, L locations, C channels, E embedding, U units, A attention units, V vocab.
"""
import json
import struct

import numpy as np
import torch

# Earlier parameter names (checkpoints and fixtures written before the rename): old name -> current name.
RENAMED_PARAMETERS = {"encoder.kernel": "projection.kernel", "encoder.bias": "projection.bias"}


def current_name(name):
    """A tensor name with an earlier parameter name replaced, keeping a prefix such as "optimizer.m."."""
    for old, new in RENAMED_PARAMETERS.items():
        if name == old or name.endswith("." + old):
            return name[: len(name) - len(old)] + new
    return name


def read_safetensors(path, skip_prefixes=("optimizer.",)):
    """A `sat train` checkpoint (safetensors: u64 little-endian header length, JSON header, raw little-endian data)
    -> ({current parameter name: float32 tensor}, {metadata}). Earlier parameter names are renamed (current_name);
    tensors whose names start with one of `skip_prefixes` (the optimizer's moments by default) are not read."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, t in header.items():
        if name.startswith(tuple(skip_prefixes)):
            continue
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {t['dtype']}; `sat train` checkpoints hold F32 only (is this one?)")
        a, b = t["data_offsets"]
        tensors[current_name(name)] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(t["shape"]).copy())
    return tensors, meta


def parameter_shapes(L, C, E, U, A, V):
    """Name -> shape of every parameter, in the native core's order: the parameter table of native/model.h
    (param_shape), its one declaration. test/model-parameter-table.test.ts reads this table as text and fails when
    it drifts from the addon's, so keep it a literal dict, one "name": [shape] per entry, each axis a product of
    sizes and integers. L (locations) shapes no parameter."""
    return {
        "projection.kernel": [C, E],
        "projection.bias": [E],
        "attention.W1.kernel": [E, A],
        "attention.W1.bias": [A],
        "attention.W2.kernel": [U, A],
        "attention.W2.bias": [A],
        "attention.V.kernel": [A, 1],
        "attention.V.bias": [1],
        "embedding.embeddings": [V, E],
        "gru.kernel": [2 * E, 3 * U],
        "gru.recurrent_kernel": [U, 3 * U],
        "gru.bias": [2, 3 * U],
        "fc1.kernel": [U, U],
        "fc1.bias": [U],
        "fc2.kernel": [U, V],
        "fc2.bias": [V],
        "init_state.kernel": [E, U],
        "init_state.bias": [U],
    }


# Parameter names in the native core's order (the order of the table above).
PARAMETER_ORDER = list(parameter_shapes(1, 1, 1, 1, 1, 1))


def initial_state(p, enc, init_state):
    """The decoder's H[0] [B,U] from enc [B,L,E]: zeros, or the paper's tanh(mean_l enc · W + b)."""
    if init_state == "mean":
        return torch.tanh(enc.mean(dim=1) @ p["init_state.kernel"] + p["init_state.bias"])
    if init_state != "zeros":
        raise ValueError(f"init_state must be 'zeros' or 'mean', got {init_state!r}")
    return torch.zeros(enc.shape[0], p["gru.recurrent_kernel"].shape[0], dtype=enc.dtype)


def gru_cell(gx, prev, wr, brec):
    """Keras GRU (reset_after=True): gx [B,3U] = input share incl. its bias, prev [B,U] -> new state [B,U]."""
    gh = prev @ wr + brec                                                          # [B,3U]
    xz, xr, xn = gx.chunk(3, dim=-1)
    hz, hr, hn = gh.chunk(3, dim=-1)
    z = torch.sigmoid(xz + hz)
    r = torch.sigmoid(xr + hr)
    n = torch.tanh(xn + r * hn)
    return z * prev + (1 - z) * n


def decoder_step(p, enc, proj, h, x, reset_state=False):
    """One decoder step: enc [B,L,E], proj [B,L,A] (enc · W1 + b1), h [B,U] the previous output, x [B,E] the embedded
    input token -> (new state h [B,U], attention alpha [B,L,1]). reset_state: the GRU starts from zeros (the TF
    tutorial); h is then only the attention query."""
    hw2 = h @ p["attention.W2.kernel"] + p["attention.W2.bias"]                   # [B,A]
    score = torch.tanh(proj + hw2[:, None, :]) @ p["attention.V.kernel"] + p["attention.V.bias"]  # [B,L,1]
    alpha = torch.softmax(score, dim=1)                                            # [B,L,1]
    ctx = (alpha * enc).sum(dim=1)                                                 # [B,E]
    gx = torch.cat([ctx, x], dim=-1) @ p["gru.kernel"] + p["gru.bias"][0]          # [B,3U]
    h = gru_cell(gx, torch.zeros_like(h) if reset_state else h, p["gru.recurrent_kernel"], p["gru.bias"][1])
    return h, alpha


def output_logits(p, h):
    """Decoder outputs h [..., U] -> logits [..., V] (fc1 then fc2, no activation between, as the tutorial)."""
    return (h @ p["fc1.kernel"] + p["fc1.bias"]) @ p["fc2.kernel"] + p["fc2.bias"]


def encode(p, features):
    """CNN features [B,L,C] -> (enc [B,L,E] = relu(features · projection), proj [B,L,A] = enc · W1 + b1)."""
    enc = torch.relu(features @ p["projection.kernel"] + p["projection.bias"])
    return enc, enc @ p["attention.W1.kernel"] + p["attention.W1.bias"]


def loss_fn(p, features, tokens, attention_lambda=0.0, dropout_masks=None, reset_state=False, init_state="zeros"):
    """p: dict name -> tensor. features [B,L,C], tokens [B,T+1] (int64, 0 = pad).
    dropout_masks: optional (embedding mask [T,B,E], output mask [T,B,U]) already scaled by 1/(1-p).
    reset_state: the GRU restarts from zeros every step (the TF tutorial); the previous output is then only
    the attention query. init_state: 'zeros' or 'mean' (see initial_state).
    Returns (loss, number of real target tokens)."""
    B, T1 = tokens.shape
    T = T1 - 1
    enc, proj = encode(p, features)                                                # [B,L,E], [B,L,A]: once per sequence
    x_all = p["embedding.embeddings"][tokens[:, :T]]                               # [B,T,E]
    h = initial_state(p, enc, init_state)                                          # [B,U]
    outputs, alphas = [], []
    for t in range(T):
        x = x_all[:, t]
        if dropout_masks is not None:
            x = x * dropout_masks[0][t]
        h, alpha = decoder_step(p, enc, proj, h, x, reset_state)                   # [B,U], [B,L,1]
        out = h if dropout_masks is None else h * dropout_masks[1][t]
        outputs.append(out)
        alphas.append(alpha[..., 0])
    H = torch.stack(outputs, dim=1)                                                # [B,T,U]
    logits = output_logits(p, H)                                                   # [B,T,V]
    targets = tokens[:, 1:]
    mask = targets != 0
    ce = torch.nn.functional.cross_entropy(logits[mask], targets[mask])           # mean over real tokens
    loss = ce
    if attention_lambda > 0:
        S = (torch.stack(alphas, dim=1) * mask[..., None]).sum(dim=1)              # [B,L], real steps only
        loss = loss + attention_lambda * ((1 - S) ** 2).sum(dim=1).mean()
    return loss, int(mask.sum())


class KerasAdam:
    """Adam as Keras applies it: eps added to sqrt(v), bias correction folded into the step size."""

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7, clip_norm=None):
        self.params, self.lr, self.b1, self.b2, self.eps, self.clip = params, lr, beta1, beta2, eps, clip_norm
        self.m = [torch.zeros_like(q) for q in params]
        self.v = [torch.zeros_like(q) for q in params]
        self.t = 0

    @torch.no_grad()
    def step(self):
        # A parameter the loss does not use (init_state.* with init_state 'zeros') has no grad: zero, as in the native core.
        grads = [q.grad if q.grad is not None else torch.zeros_like(q) for q in self.params]
        if self.clip:
            norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
            if norm > self.clip:
                grads = [g * (self.clip / norm) for g in grads]
        self.t += 1
        alpha = self.lr * (1 - self.b2 ** self.t) ** 0.5 / (1 - self.b1 ** self.t)
        for q, g, m, v in zip(self.params, grads, self.m, self.v):
            m.mul_(self.b1).add_((1 - self.b1) * g)
            v.mul_(self.b2).add_((1 - self.b2) * g * g)
            q.sub_(alpha * m / (v.sqrt() + self.eps))
