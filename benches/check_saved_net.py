"""Rebuild a `bn-lab grad-norms --save-net FILE` network in PyTorch and compare its loss and
every gradient with the ones bn-lab computed by hand.

    cargo run --release -- grad-norms --norm layer --depth 4 --width 32 --batch 16 \
        --dtype f64 --save-net /tmp/net.json --out /tmp/gn
    python benches/check_saved_net.py /tmp/net.json

Needs PyTorch (`pip install torch`); the test suite does not. The normalisation layer is built
from the file's `torch_norm` string (`nn.BatchNorm1d(...)` or `nn.LayerNorm(...)`), so this also
checks that the string rebuilds what bn-lab ran. Prints the largest relative error per tensor
and exits 1 above --tol.
"""

import argparse
import json
import sys

import torch
from torch import nn

ACTS = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky-relu": lambda x: torch.nn.functional.leaky_relu(x, 0.01),
    "linear": lambda x: x,
}


def tensor(t, dtype):
    return torch.tensor(t["data"], dtype=dtype).reshape(t["shape"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--tol", type=float, default=None,
                   help="largest relative error accepted [default: 1e-9 for f64, 1e-4 for f32]")
    a = p.parse_args()
    net = json.load(open(a.file))
    cfg = net["config"]
    dtype = torch.float64 if net["dtype"] == "f64" else torch.float32
    tol = a.tol if a.tol is not None else (1e-9 if dtype == torch.float64 else 1e-4)
    params = {q["name"]: q for q in net["params"]}
    act = ACTS[cfg["act"]]
    bn = cfg["bn"]

    def leaf(name):
        q = params[name]
        return torch.tensor(q["value"], dtype=dtype).reshape(q["shape"]).requires_grad_(True)

    blocks = []
    for l in range(1, cfg["depth"] + 1):
        w, b = leaf(f"layers.{l}.weight"), leaf(f"layers.{l}.bias")
        norm = None
        if bn is not None:
            norm = eval(net["torch_norm"], {"nn": nn, "True": True, "False": False}).to(dtype)
            norm.train()
            if bn["affine"]:
                with torch.no_grad():
                    g = torch.tensor(params[f"layers.{l}.gamma"]["value"], dtype=dtype)
                    be = torch.tensor(params[f"layers.{l}.beta"]["value"], dtype=dtype)
                    norm.weight.copy_(g)
                    norm.bias.copy_(be)
        fan_in = params[f"layers.{l}.weight"]["shape"][0]
        skip = cfg["residual"] and (l > 1 or fan_in == cfg["width"])
        blocks.append((w, b, norm, skip))
    w_out, b_out = leaf("out.weight"), leaf("out.bias")

    x, y = tensor(net["x"], dtype), tensor(net["y"], dtype)
    h = x
    for w, b, norm, skip in blocks:
        z = h @ w + b
        if norm is None:
            branch = act(z)
        elif bn["placement"] == "pre":
            branch = act(norm(z))
        else:
            branch = norm(act(z))
        h = h + cfg["residual_scale"] * branch if skip else branch
    o = h @ w_out + b_out
    if net.get("loss_fn", "mse") == "ce":
        # Soft (here one-hot) targets: mean over the batch of -sum_k y_k log softmax(o)_k.
        loss = torch.nn.functional.cross_entropy(o, y)
    else:
        loss = 0.5 * ((o - y) ** 2).sum() / x.shape[0]
    loss.backward()

    def rel(a, b):
        d = (a - b).norm().item()
        s = max(a.norm().item(), b.norm().item(), 1e-12)
        return d / s

    worst = abs(loss.item() - net["loss"]) / max(abs(loss.item()), 1e-12)
    print(f"{'tensor':<18} {'rel error':>12}")
    print(f"{'loss':<18} {worst:>12.3e}")
    leaves = {}
    for l, (w, b, norm, _) in enumerate(blocks, start=1):
        leaves[f"layers.{l}.weight"] = w.grad
        leaves[f"layers.{l}.bias"] = b.grad
        if norm is not None and bn["affine"]:
            leaves[f"layers.{l}.gamma"] = norm.weight.grad
            leaves[f"layers.{l}.beta"] = norm.bias.grad
    leaves["out.weight"], leaves["out.bias"] = w_out.grad, b_out.grad
    for name, g in leaves.items():
        q = params[name]
        mine = torch.tensor(q["grad"], dtype=dtype).reshape(q["shape"])
        # A bias right before BatchNorm has a true gradient of 0: compare on the weight's scale.
        e = rel(mine, g) if g.norm().item() > 1e-10 else (mine - g).norm().item()
        worst = max(worst, e)
        print(f"{name:<18} {e:>12.3e}")
    ok = worst <= tol
    print(f"largest relative error {worst:.3e}: {'PASS' if ok else 'FAIL'} (tolerance {tol:g}; "
          f"normaliser {net['torch_norm']})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
