"""The PyTorch peers of show-attend-tell: the same model and pipelines written in PyTorch, to measure against
(`sat bench` starts train_torch, serve_torch and features_torch) and to check against (the parity checks in checks/).
torch_model is the PyTorch twin of the captioning model that they share. Run each from the package root as a
module, e.g. `python3 -m peers.train_torch --json`; see peers/README.md.
"""
