#!/usr/bin/env python3
"""Medians and min-max of run.sh's RUN lines: summarize.py RAW_LOG [BASELINE_ROUTE].

One table per connection shape (inline, streams); the ratios are per round, against the baseline
route's run of the same round and scenario (the same server start, adjacent in time)."""
import re
import statistics
import sys
from collections import defaultdict

path = sys.argv[1]
base = sys.argv[2] if len(sys.argv) > 2 else "poll"
runs = defaultdict(lambda: defaultdict(list))
rounds = defaultdict(dict)
for line in open(path):
    if not line.startswith("RUN "):
        continue
    f = dict(kv.split("=", 1) for kv in line.split()[1:])
    shape = f.get("shape", "inline")
    key = (shape, f["scenario"], f["route"])
    for k in ("req_s", "us_per_req", "server_util"):
        runs[key][k].append(float(f[k]))
    runs[key]["failed"].append(int(f["succeeded"]) == 0)
    rounds[(shape, f["scenario"], f["round"])][f["route"]] = f

shapes = list(dict.fromkeys(sh for sh, _, _ in runs))
scenarios = list(dict.fromkeys(s for _, s, _ in runs))
routes = list(dict.fromkeys(r for _, _, r in runs))


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def row(shape, s, r):
    d = runs.get((shape, s, r))
    if not d:
        return
    rq, cu = [], []
    for (sh2, s2, _rnd), by in rounds.items():
        if sh2 == shape and s2 == s and r in by and base in by:
            rq.append(float(by[r]["req_s"]) / float(by[base]["req_s"]))
            cu.append(float(by[r]["us_per_req"]) / float(by[base]["us_per_req"]))
    ratio = f"{med(rq):5.2f} ({min(rq):.2f}-{max(rq):.2f})" if r != base and rq else ""
    ratio2 = f"{med(cu):5.2f} ({min(cu):.2f}-{max(cu):.2f})" if r != base and cu else ""
    print(f"{s:9} {r:7} {len(d['req_s']):>2}  {med(d['req_s']):12.0f} "
          f"{'(%.0f-%.0f)' % (min(d['req_s']), max(d['req_s'])):>17}  "
          f"{med(d['us_per_req']):13.2f} "
          f"{'(%.2f-%.2f)' % (min(d['us_per_req']), max(d['us_per_req'])):>13}  "
          f"{med(d['server_util']):4.2f}  {ratio:>17} {ratio2:>17}")


for shape in shapes:
    print(f"shape={shape}")
    print(f"{'scenario':9} {'route':7} {'n':>2}  {'req/s median':>12} {'(min-max)':>17}  "
          f"{'us/req median':>13} {'(min-max)':>13}  {'util':>4}  "
          f"{'req/s vs ' + base:>17} {'us/req vs ' + base:>17}")
    for s in scenarios:
        for r in routes:
            row(shape, s, r)
