"""Measured tables for the README's performance section, from `bn-lab bench --json`.

    cargo build --release
    python3 benches/scaling.py                 # all tables (a few minutes)
    python3 benches/scaling.py --only issue    # just the depth 50 / width 256 / batch 256 table
    python3 benches/scaling.py --torch .venv/bin/python   # add PyTorch's column (benches/pytorch_mlp.py)

Tables: (1) the issue's network, f32/f64 x BN off/on x 1/2 threads; (2) depth x width;
(3) batch. ReLU, He init, BN before the activation, median of --steps steps after warm-up.
"""

import argparse
import json
import subprocess
import sys

BIN = "target/release/bn-lab"


def bench(*, depth=50, width=256, batch=256, bn="on", dtype="f32", threads=1, steps=20):
    cmd = [BIN, "bench", "--json", f"--depth={depth}", f"--width={width}", f"--batch={batch}",
           f"--bn={bn}", f"--dtype={dtype}", f"--threads={threads}", f"--steps={steps}"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def torch_bench(py, *, bn, dtype, threads, steps):
    cmd = [py, "benches/pytorch_mlp.py", "--json", f"--bn={bn}", f"--dtype={dtype}",
           f"--threads={threads}", f"--steps={steps}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads([l for l in out.splitlines() if l.startswith("{")][0])


def issue_table(args):
    print("| dtype | BN | threads | bn-lab median ms | GFLOP/s | share of ceiling |"
          + (" PyTorch median ms (same machine) |" if args.torch else ""))
    print("|---|---|---|---|---|---|" + ("---|" if args.torch else ""))
    for dtype in ["f32", "f64"]:
        for bn in ["off", "on"]:
            for t in [1, 2]:
                r = bench(bn=bn, dtype=dtype, threads=t, steps=args.steps)
                row = (f"| {dtype} | {bn} | {t} | {r['median_ms']:.1f} | {r['gflops']:.0f} | "
                       f"{100 * r['ceiling_share']:.0f}% of {r['ceiling_gflops']:.0f} |")
                if args.torch:
                    p = torch_bench(args.torch, bn=bn, dtype=dtype, threads=t, steps=args.steps)
                    row += f" {p['median_ms']:.1f} |"
                print(row, flush=True)


def grid_table(args):
    widths = [64, 256, 1024]
    print("| depth \\ width | " + " | ".join(str(w) for w in widths) + " |")
    print("|---|" + "---|" * len(widths))
    for depth in [10, 50, 200]:
        cells = []
        for w in widths:
            steps = 5 if depth * w * w > 50 * 256 * 256 * 4 else args.steps
            r = bench(depth=depth, width=w, threads=args.threads, steps=steps)
            cells.append(f"{r['median_ms']:.1f} ms ({r['gflops']:.0f} GF/s)")
        print(f"| {depth} | " + " | ".join(cells) + " |", flush=True)


def batch_table(args):
    print("| batch | median ms | ms per 256 samples | GFLOP/s |")
    print("|---|---|---|---|")
    for batch in [64, 256, 1024]:
        r = bench(batch=batch, threads=args.threads, steps=args.steps)
        print(f"| {batch} | {r['median_ms']:.1f} | {r['median_ms'] * 256 / batch:.1f} | "
              f"{r['gflops']:.0f} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=["issue", "grid", "batch"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="threads for the grid and batch tables")
    p.add_argument("--torch", metavar="PYTHON", help="a Python with torch, to add PyTorch's figures")
    args = p.parse_args()
    for name, f in [("issue", issue_table), ("grid", grid_table), ("batch", batch_table)]:
        if args.only in (None, name):
            print(f"\n### {name} (f32 unless stated, BN on unless stated)\n", flush=True)
            f(args)


if __name__ == "__main__":
    sys.exit(main())
