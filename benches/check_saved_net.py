"""Rebuild a `bn-lab grad-norms --save-net FILE` network in PyTorch and compare its loss and
every gradient with the ones bn-lab computed by hand.

    cargo run --release -- grad-norms --norm layer --depth 4 --width 32 --batch 16 \
        --dtype f64 --save-net /tmp/net.json --out /tmp/gn
    python benches/check_saved_net.py /tmp/net.json
    cargo run --release -- grad-norms --block preact --skip-init --norm batch --depth 3 \
        --width 16 --batch 8 --dtype f64 --save-net /tmp/res.json --out /tmp/gn

Needs PyTorch (`pip install torch`); the test suite does not. The normalisation layer is built
from the file's `torch_norm` string (`nn.BatchNorm1d(...)` or `nn.LayerNorm(...)`), so this also
checks that the string rebuilds what bn-lab ran. Standard residual blocks (`--block basic|preact`,
`--skip-init`) are rebuilt from the config's `block` and `skip_init` and the parameter names
(`layers.N.*` per matrix, `blocks.N.gamma|beta|alpha` per block). Prints the largest relative error per tensor
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

    def norm_of(prefix):
        """The normaliser whose gamma and beta are saved as `{prefix}.gamma`/`.beta`."""
        norm = eval(net["torch_norm"], {"nn": nn, "True": True, "False": False}).to(dtype)
        norm.train()
        if bn["affine"]:
            with torch.no_grad():
                norm.weight.copy_(torch.tensor(params[f"{prefix}.gamma"]["value"], dtype=dtype))
                norm.bias.copy_(torch.tensor(params[f"{prefix}.beta"]["value"], dtype=dtype))
        return norm

    def layer(l, with_norm=True):
        """Layer l's (weight, bias, normaliser or None), leaves of the graph."""
        w, b = leaf(f"layers.{l}.weight"), leaf(f"layers.{l}.bias")
        return w, b, norm_of(f"layers.{l}") if (bn is not None and with_norm) else None

    def norm_act(z, norm, f):
        if norm is None:
            return f(z)
        return f(norm(z)) if bn["placement"] == "pre" else norm(f(z))

    identity = ACTS["linear"]
    kind, beta = cfg.get("block"), cfg["residual_scale"]
    blocks, units = [], []
    x, y = tensor(net["x"], dtype), tensor(net["y"], dtype)
    if kind is None:
        # One-layer blocks: Linear -> [norm] -> act, with a skip where the shapes match.
        for l in range(1, cfg["depth"] + 1):
            w, b, norm = layer(l)
            skip = cfg["residual"] and (l > 1 or w.shape[0] == cfg["width"])
            blocks.append((l, w, b, norm, skip))
        h = x
        for _, w, b, norm, skip in blocks:
            branch = norm_act(h @ w + b, norm, act)
            h = h + beta * branch if skip else branch
    else:
        # Standard blocks (bn-lab's StdBlock): a stem, then per block its two layers, a preact
        # block's first normaliser (`blocks.N.gamma`) and SkipInit's gain (`blocks.N.alpha`).
        w0, b0, n0 = layer(1, with_norm=kind == "basic")
        blocks.append((1, w0, b0, n0, False))
        for u in range(1, cfg["depth"] + 1):
            l1, l2 = layer(2 * u), layer(2 * u + 1, with_norm=kind == "basic")
            blocks += [(2 * u, *l1, False), (2 * u + 1, *l2, False)]
            pre = norm_of(f"blocks.{u}") if (kind == "preact" and bn is not None) else None
            alpha = leaf(f"blocks.{u}.alpha") if cfg.get("skip_init") else None
            units.append((u, l1, l2, pre, alpha))
        h = norm_act(x @ w0 + b0, n0, act if kind == "basic" else identity)
        for _, (w1, b1, n1), (w2, b2, n2), pre, alpha in units:
            s = beta * alpha if alpha is not None else beta
            if kind == "preact":
                p = norm_act(h, pre, act)
                a = norm_act(p @ w1 + b1, n1, act)
                h = h + s * (a @ w2 + b2)
            else:
                a = norm_act(h @ w1 + b1, n1, act)
                h = act(h + s * norm_act(a @ w2 + b2, n2, identity))
    w_out, b_out = leaf("out.weight"), leaf("out.bias")
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
    for l, w, b, norm, _ in blocks:
        leaves[f"layers.{l}.weight"] = w.grad
        leaves[f"layers.{l}.bias"] = b.grad
        if norm is not None and bn["affine"]:
            leaves[f"layers.{l}.gamma"] = norm.weight.grad
            leaves[f"layers.{l}.beta"] = norm.bias.grad
    for u, _, _, pre, alpha in units:
        if pre is not None and bn["affine"]:
            leaves[f"blocks.{u}.gamma"] = pre.weight.grad
            leaves[f"blocks.{u}.beta"] = pre.bias.grad
        if alpha is not None:
            leaves[f"blocks.{u}.alpha"] = alpha.grad
    leaves["out.weight"], leaves["out.bias"] = w_out.grad, b_out.grad
    for name, g in leaves.items():
        q = params[name]
        mine = torch.tensor(q["grad"], dtype=dtype).reshape(q["shape"])
        # A bias right before BatchNorm has a true gradient of 0: compare on the weight's scale.
        e = rel(mine, g) if g.norm().item() > 1e-10 else (mine - g).norm().item()
        worst = max(worst, e)
        print(f"{name:<18} {e:>12.3e}")
    unchecked = sorted(set(params) - set(leaves))
    if unchecked:
        print(f"saved but not rebuilt: {', '.join(unchecked)}")
    ok = worst <= tol and not unchecked
    print(f"largest relative error {worst:.3e}: {'PASS' if ok else 'FAIL'} (tolerance {tol:g}; "
          f"normaliser {net['torch_norm']})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
