#!/usr/bin/env python3
"""What a pre-activation block costs beside two plain layers (issue 31's speed target).

A preact block holds two layers, so 25 of them should cost about what 50 plain layers cost.
`bn-lab bench` times a whole training step, which also holds what is not a block or a layer:
the input layer (the stem), the head, the loss. So this script reports two ratios:

  step ratio   T(preact, 25 blocks) / T(plain, 50 layers)                  (whole steps)
  block ratio  [T(preact, 25) - T(preact, 5)] / 20                         (one block, by
               / (2 [T(plain, 50) - T(plain, 10)] / 40)                     differencing depths)

Runs are interleaved (every configuration once per round, in turn) so that a change in the
machine's load falls on all of them; the script prints the medians over rounds.

    cargo build --release
    python3 benches/preact_cost.py --rounds 8 --threads 2
    python3 benches/preact_cost.py --rounds 8 --threads 1 --bin target/release/bn-lab
    python3 benches/preact_cost.py --bin /tmp/bn-before --bin target/release/bn-lab   (A/B)

Nothing here asserts on time; it prints what it measured.
"""

import argparse
import json
import statistics
import subprocess

NETS = {
    "plain50": ["--depth", "50"],
    "plain10": ["--depth", "10"],
    "preact25": ["--block", "preact", "--depth", "25"],
    "preact5": ["--block", "preact", "--depth", "5"],
}


def bench(binary, net, norm, threads, steps):
    cmd = [binary, "bench", *NETS[net], "--norm", norm, "--act", "relu", "--init", "he",
           "--threads", str(threads), "--steps", str(steps), "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out)["median_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append",
                    help="bn-lab binary; give it twice or more to compare builds (interleaved)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--norms", default="batch,none")
    args = ap.parse_args()
    bins = args.bin or ["target/release/bn-lab"]
    for norm in args.norms.split(","):
        times = {(b, net): [] for b in bins for net in NETS}
        for _ in range(args.rounds):
            for b in bins:
                for net in NETS:
                    times[(b, net)].append(bench(b, net, norm, args.threads, args.steps))
        for b in bins:
            report(b if len(bins) > 1 else "", norm, args, {n: times[(b, n)] for n in NETS})


def report(name, norm, args, times):
    med = {net: statistics.median(v) for net, v in times.items()}
    step = med["preact25"] / med["plain50"]
    block = (med["preact25"] - med["preact5"]) / 20
    layer = (med["plain50"] - med["plain10"]) / 40
    per_round = [
        ((p25 - p5) / 20) / (2 * (q50 - q10) / 40)
        for p25, p5, q50, q10 in zip(
            times["preact25"], times["preact5"], times["plain50"], times["plain10"])
    ]
    print(f"{name + ': ' if name else ''}--norm {norm} --threads {args.threads}, "
          f"{args.rounds} rounds: plain 50 {med['plain50']:.1f} ms, preact 25 "
          f"{med['preact25']:.1f} ms, step ratio {step:.3f}; one block {block:.3f} ms against "
          f"two layers {2 * layer:.3f} ms, block ratio {block / (2 * layer):.3f} "
          f"(rounds {min(per_round):.3f} to {max(per_round):.3f})", flush=True)

if __name__ == "__main__":
    main()
