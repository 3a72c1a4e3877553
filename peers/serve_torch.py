#!/usr/bin/env python3
"""PyTorch peer of `sat bench serve`: the same captioner behind Python's http.server, one request at a time.

POST /v1/captions?beam=K with a JPEG/PNG body -> {"caption", "log_prob", "alternatives"}, the way a
straightforward PyTorch service does it, in eager mode:
  PIL decode -> RGB -> resize to 224x224 ignoring aspect (bilinear) -> x/127.5-1 ->
  torchvision MobileNetV2 .features (random weights: speed does not depend on them) -> [1, 49, 1280] ->
  the project's PyTorch twin of the decoder (peers/torch_model.py: its checkpoint reader, encode, decoder_step
  and output_logits), with the checkpoint's own weights -> beam search (k rows per step; finished hypotheses
  ranked by log-prob, stop once no live beam can beat the best finished one; <pad> and <start> never emitted).
GET /healthz answers {"status": "ok"} once the model is loaded (it is loaded before the port opens).

Run from the package root with the system Python that has torch:
  /usr/bin/python3 -m peers.serve_torch --checkpoint RUN/checkpoints/best.safetensors --port 0
It prints one JSON line {"listening": "http://127.0.0.1:PORT", ...} on stdout when it takes requests.

  /usr/bin/python3 -m peers.serve_torch --checkpoint CKPT --caption-features FEATURES.npy [--beam 3]
captions the CNN features in a float32 .npy [N, L, C] instead (one JSON line {"caption", "log_prob"} per row) and
exits: the peer's decoder on real features, to check that it captions as our model does.
"""
import argparse
import io
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

# Idle OpenMP threads sleep instead of spin-waiting, as our onnxruntime threads do (must precede torch).
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')

import numpy as np
import torch
import torchvision
from PIL import Image

from peers.torch_model import decoder_step, encode, initial_state, output_logits, read_safetensors  # noqa: E402


class Captioner:
    def __init__(self, checkpoint, threads):
        torch.set_num_threads(threads)
        torch.set_flush_denormal(True)  # random encoder weights can produce denormals; trained ones do not
        self.p, meta = read_safetensors(checkpoint)
        info = json.loads(meta['sat.checkpoint'])
        self.model = info['model']
        self.reset_state = self.model.get('gruState', 'carry') == 'reset'
        self.init_state = self.model.get('initState', 'zeros')
        with open(os.path.join(os.path.dirname(checkpoint), info['vocab'])) as f:
            vocab = json.load(f)
        self.words = vocab['words']
        self.start, self.end = self.words.index('<start>'), self.words.index('<end>')
        self.max_length = max(1, vocab['maxLength'] - 1)
        torch.manual_seed(0)
        self.cnn = torchvision.models.mobilenet_v2(weights=None).features.eval()

    def features(self, body):
        img = Image.open(io.BytesIO(body)).convert('RGB').resize((224, 224), Image.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1.0
        y = self.cnn(x)                                                    # [1, 1280, 7, 7]
        return y.flatten(2).transpose(1, 2)                                # [1, 49, 1280]

    def step(self, enc, proj, h, tokens):
        """One decoder step of the twin for rows of (enc [R,L,E], proj [R,L,A], h [R,U]) fed tokens [R] -> log-probs [R,V], new h."""
        h, _ = decoder_step(self.p, enc, proj, h, self.p['embedding.embeddings'][tokens], self.reset_state)
        logits = output_logits(self.p, h)
        logits[:, 0] = -float('inf')          # <pad>
        logits[:, self.start] = -float('inf')  # <start>
        return torch.log_softmax(logits, dim=-1), h

    def beam_search(self, feats, k):
        p = self.p
        enc, proj = encode(p, feats)                                          # [1, L, E], [1, L, A]
        h = initial_state(p, enc, self.init_state)                           # [1, U]
        tokens = torch.tensor([self.start])
        scores = torch.zeros(1)
        seqs = [[]]
        finished = []  # (log_prob, words)
        V = p['fc2.bias'].shape[0]
        for t in range(self.max_length):
            R = tokens.shape[0]
            logp, h = self.step(enc.expand(R, -1, -1), proj.expand(R, -1, -1), h, tokens)
            total = (scores[:, None] + logp).flatten()
            top_scores, top = total.topk(min(2 * k, total.numel()))
            live_rows, live_tokens, live_scores = [], [], []
            for rank, (s, i) in enumerate(zip(top_scores.tolist(), top.tolist())):
                row, token = divmod(i, V)
                if token == self.end:
                    if rank < k:
                        finished.append((s, seqs[row]))
                elif len(live_rows) < k:
                    live_rows.append(row), live_tokens.append(token), live_scores.append(s)
            best = max(finished, key=lambda f: f[0]) if finished else None
            if not live_rows or (best and best[0] >= live_scores[0]):
                break
            seqs = [seqs[r] + [tok] for r, tok in zip(live_rows, live_tokens)]
            h = h[live_rows]
            tokens = torch.tensor(live_tokens)
            scores = torch.tensor(live_scores)
        if not finished:
            finished.append((float(scores[0]), seqs[0]))
        finished.sort(key=lambda f: -f[0])
        text = lambda ids: ' '.join(self.words[i] for i in ids)
        return {'caption': text(finished[0][1]), 'log_prob': finished[0][0],
                'alternatives': [{'caption': text(ids), 'log_prob': s} for s, ids in finished[:k]]}

    @torch.no_grad()
    def caption(self, body, beam):
        return self.beam_search(self.features(body), beam)


def make_handler(captioner, max_bytes):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_json(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == '/healthz':
                return self.send_json(200, {'status': 'ok'})
            self.send_json(404, {'error': 'not found'})

        def do_POST(self):
            url = urlparse(self.path)
            if url.path != '/v1/captions':
                return self.send_json(404, {'error': 'not found'})
            n = int(self.headers.get('Content-Length') or 0)
            if n <= 0 or n > max_bytes:
                return self.send_json(413 if n > max_bytes else 400, {'error': f'body of {n} bytes'})
            body = self.rfile.read(n)
            beam = int(parse_qs(url.query).get('beam', ['3'])[0])
            try:
                self.send_json(200, captioner.caption(body, beam))
            except Exception as e:  # noqa: BLE001 - a bad image must not stop the server
                self.send_json(422, {'error': str(e)})
    return Handler


class PeerServer(HTTPServer):
    # One request at a time, but the clients waiting for their turn queue in the listen backlog instead of having
    # their connections dropped (HTTPServer's default backlog of 5 made clients beyond it retry after 1 s).
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--checkpoint', required=True, help='a .safetensors checkpoint written by sat train')
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--max-bytes', type=int, default=10 * 1024 * 1024)
    ap.add_argument('--caption-features', help='caption the rows of this float32 .npy [N, L, C] of CNN features, print them, exit')
    ap.add_argument('--beam', type=int, default=3, help='beam width for --caption-features')
    args = ap.parse_args()
    captioner = Captioner(args.checkpoint, args.threads)
    if args.caption_features:
        with torch.no_grad():
            for row in np.load(args.caption_features):
                r = captioner.beam_search(torch.from_numpy(np.ascontiguousarray(row, dtype=np.float32))[None], args.beam)
                print(json.dumps({'caption': r['caption'], 'log_prob': r['log_prob']}), flush=True)
        return
    server = PeerServer((args.host, args.port), make_handler(captioner, args.max_bytes))
    print(json.dumps({'listening': f'http://{args.host}:{server.server_address[1]}', 'torch': torch.__version__,
                      'torchvision': torchvision.__version__, 'threads': args.threads}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == '__main__':
    main()
