#!/usr/bin/env python3
"""Template mining: logwarden's miner against Drain3 on the same lines.

Runs the `template_ga` example (release build) and Drain3 (PyPI `drain3`,
the generic configuration of shared/eval/README.md: depth 4, similarity 0.5,
masks for IPs, hex and numbers) over the `Content` column of every labelled
dataset under DIR (each folder holding a `*_structured.csv`), in file
order, and prints one table: grouping accuracy of the ids assigned online
and lines per second on one core (best of several passes of a fresh miner).

    python3 bench/templates.py [DIR]      # DIR: ../shared/eval/loghub-dev
"""

import csv
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict

PASSES = 5


def ga(pred, truth):
    pred_size, true_size, pair = Counter(pred), Counter(truth), Counter(zip(pred, truth))
    ok = sum(n for (p, t), n in pair.items() if pred_size[p] == n and true_size[t] == n)
    return ok / len(pred)


def drain3_miner():
    from drain3 import TemplateMiner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    cfg = TemplateMinerConfig()
    cfg.drain_depth = 4
    cfg.drain_sim_th = 0.5
    cfg.profiling_enabled = False
    cfg.masking_instructions = [
        MaskingInstruction(r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)", "IP"),
        MaskingInstruction(r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)", "HEX"),
        MaskingInstruction(r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM"),
    ]
    return TemplateMiner(config=cfg)


def drain3_run(lines):
    m = drain3_miner()
    return [m.add_log_message(line)["cluster_id"] for line in lines]


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(repo, "..", "shared", "eval", "loghub-dev")
    subprocess.run(
        ["cargo", "build", "--release", "-q", "-p", "logwarden-ingest", "--example", "template_ga"],
        cwd=repo, check=True,
    )
    out = subprocess.run(
        [os.path.join(repo, "target", "release", "examples", "template_ga"), data],
        cwd=repo, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout  # its stderr (datasets it skipped) goes straight to ours
    # One row per dataset the example found: name, lines, templates, true
    # templates, GA, lines/s, and the file it read.
    ours = {}
    for line in out.splitlines():
        f = line.split(maxsplit=6)
        if len(f) == 7 and f[0] != "dataset":
            ours[f[0]] = (float(f[4]), float(f[5]), f[6])
    ga_ours, ga_drain = [], []

    print("| dataset | lines | logwarden GA | logwarden lines/s | Drain3 GA | Drain3 lines/s | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for name, (o_ga, o_rate, path) in ours.items():
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        lines = [r["Content"] for r in rows]
        truth = [r["EventId"] for r in rows]
        pred = drain3_run(lines)
        best = float("inf")
        for _ in range(PASSES):
            t = time.perf_counter()
            drain3_run(lines)
            best = min(best, time.perf_counter() - t)
        d_rate = len(lines) / best
        d_ga = ga(pred, truth)
        ga_ours.append(o_ga)
        ga_drain.append(d_ga)
        print(f"| {name} | {len(lines)} | {o_ga:.3f} | {o_rate:,.0f} | {d_ga:.3f} | {d_rate:,.0f} | {o_rate / d_rate:.0f}x |")
    if ga_ours:
        print(f"| average of {len(ga_ours)} | | {sum(ga_ours) / len(ga_ours):.3f} | | {sum(ga_drain) / len(ga_drain):.3f} | | |")


if __name__ == "__main__":
    main()
