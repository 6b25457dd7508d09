"""PyTorch reference for `bn-lab bench`: the same network and step, timed the same way.

One step = forward (train mode) + MSE loss 0.5/N sum (o - y)^2 + backward, on a fixed batch,
median of --steps steps after --warmup untimed ones. ReLU/He init, biases 0, BN (when on)
before the activation with PyTorch's defaults (affine, eps 1e-5, momentum 0.1).

    python benches/pytorch_mlp.py                      # the README table: f32/f64, BN off/on, 1 and 2 threads
    python benches/pytorch_mlp.py --depth 10 --width 1024 --threads 1 --dtype f32 --bn on
"""

import argparse
import json
import statistics
import time

import torch
from torch import nn


def make_net(depth, width, d_out, bn, dtype):
    layers = []
    for _ in range(depth):
        lin = nn.Linear(width, width)
        nn.init.kaiming_normal_(lin.weight, nonlinearity="relu")
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if bn:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
    out = nn.Linear(width, d_out)
    nn.init.kaiming_normal_(out.weight, nonlinearity="relu")
    nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers).to(dtype).train()


def bench(depth, width, batch, d_out, bn, dtype, threads, steps, warmup):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = make_net(depth, width, d_out, bn, dtype)
    x = torch.randn(batch, width, dtype=dtype)
    y = torch.randn(batch, d_out, dtype=dtype)

    def step():
        net.zero_grad(set_to_none=True)
        o = net(x)
        loss = 0.5 * ((o - y) ** 2).sum() / batch
        loss.backward()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1e3)
    weights = width * width * depth + width * d_out
    gflop = 6 * batch * weights / 1e9
    med = statistics.median(times)
    return {
        "dtype": "f32" if dtype == torch.float32 else "f64",
        "bn": bn,
        "threads": threads,
        "depth": depth,
        "width": width,
        "batch": batch,
        "median_ms": med,
        "min_ms": min(times),
        "gflops": gflop / (med / 1e3),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depth", type=int, default=50)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--d-out", type=int, default=10)
    p.add_argument("--dtype", choices=["f32", "f64"], action="append")
    p.add_argument("--bn", choices=["on", "off"], action="append")
    p.add_argument("--threads", type=int, action="append")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    a = p.parse_args()
    print(f"# torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}", flush=True)
    for dt in a.dtype or ["f32", "f64"]:
        for bn in a.bn or ["off", "on"]:
            for th in a.threads or [1, 2]:
                r = bench(a.depth, a.width, a.batch, a.d_out, bn == "on",
                          torch.float32 if dt == "f32" else torch.float64, th, a.steps, a.warmup)
                if a.json:
                    print(json.dumps(r), flush=True)
                else:
                    print(f"{r['dtype']} BN {bn:3} {th} thread(s): median {r['median_ms']:7.2f} ms "
                          f"(min {r['min_ms']:7.2f})  {r['gflops']:6.1f} GFLOP/s", flush=True)


if __name__ == "__main__":
    main()
