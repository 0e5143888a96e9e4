#!/usr/bin/env python3
"""Summary of an A/B sitting (integration/bench/run_ab.sh): the figures issue 14 asks for,
per round and as medians over the rounds, fraudwall against Kamailio.

Reads the tagged lines run_ab.sh writes ("AB round=N proxy=P pass=A|B <harness line>"):
RESULT lines (max_cps, proxy_us_per_call at the pass's fixed rate, transit p50/p99/p99.9)
and the ramp step lines (proxy CPU at each ramp rate).

    integration/bench/ab_summary.py $WORK/ab-<time>.txt [--high-rate 6000]

Rows: CPU per call at 2,000 and at the high rate (fixed runs; the ramp step at the high rate
too), max sustained calls/s, INVITE transit p50/p99/p99.9 at 2,000 and at the high rate.
Ratio = fraudwall / Kamailio (targets: CPU at the high rate <= 0.5, max rate >= 1.5, p50 and
p99 <= 1.0 in every round).
"""

import argparse
import re
import statistics
import sys

TAG = re.compile(r"^AB round=(\d+) proxy=(\w+) pass=(\w+) (.*)$")
RAMP = re.compile(r"^\s*(?:ramp|refine)-(\d+): target \d+ cps, achieved ([\d.]+).*\| cpu\(% of 1 core\) proxy ([\d.]+)")


def parse_result(line):
    out = {}
    m = re.search(r"max_cps=(>=)?(\d+)", line)
    if m:
        out["max_cps"] = (int(m.group(2)), bool(m.group(1)))
    m = re.search(r"fixed_cps=(\d+)", line)
    fixed = int(m.group(1)) if m else None
    m = re.search(r"proxy_us_per_call=([\d.]+)", line)
    if m and fixed:
        out[("cpu", fixed)] = float(m.group(1))
    for m in re.finditer(r"transit_us@(\d+)cps\(p50/p99/p99.9\)=([\d.]+)/([\d.]+)/([\d.]+)", line):
        out[("transit", int(m.group(1)))] = tuple(float(x) for x in m.groups()[1:])
    return out


def collect(path):
    """round -> proxy -> figures."""
    data = {}
    for raw in open(path, encoding="utf-8", errors="replace"):
        m = TAG.match(raw.rstrip("\n"))
        if not m:
            continue
        rnd, proxy, _pass, line = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        figs = data.setdefault(rnd, {}).setdefault(proxy, {})
        if line.startswith("RESULT"):
            for k, v in parse_result(line).items():
                if k == "max_cps" and "max_cps" in figs:
                    continue
                figs[k] = v
        else:
            r = RAMP.match(line)
            if r and float(r.group(2)) > 0:
                rate, achieved, pct = int(r.group(1)), float(r.group(2)), float(r.group(3))
                figs[("ramp_cpu", rate)] = round(pct * 1e4 / achieved, 1)
    return data


def rows(high):
    yield ("CPU µs/call @2000 (fixed)", lambda f: f.get(("cpu", 2000)), "report")
    yield (f"CPU µs/call @{high} (fixed)", lambda f: f.get(("cpu", high)), "<= 0.5")
    yield (f"CPU µs/call @{high} (ramp step)", lambda f: f.get(("ramp_cpu", high)), "<= 0.5")
    yield ("max sustained calls/s", lambda f: f.get("max_cps", (None,))[0], ">= 1.5")
    for rate in (2000, high):
        for i, p in enumerate(("p50", "p99", "p99.9")):
            target = "<= 1.0" if p in ("p50", "p99") else "report"
            yield (f"transit {p} µs @{rate}", (lambda r, i: lambda f: (f.get(("transit", r)) or (None,) * 3)[i])(rate, i), target)


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float) and v < 10:
        return f"{v:.2f}"
    if isinstance(v, float) and v < 1000:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--high-rate", type=int, default=6000)
    a = ap.parse_args()
    data = collect(a.file)
    if not data:
        sys.exit(f"no tagged lines in {a.file}")
    rounds = sorted(data)
    print(f"{'figure':34} {'target':>7} | " + " | ".join(f"round {r}: kam / fw = ratio" for r in rounds) + " | median ratio")
    for name, get, target in rows(a.high_rate):
        cells, ratios = [], []
        for r in rounds:
            k = get(data[r].get("kamailio", {}))
            f = get(data[r].get("fraudwall", {}))
            ratio = (f / k) if (k and f is not None) else None
            if ratio is not None:
                ratios.append(ratio)
            cells.append(f"{fmt(k)} / {fmt(f)} = {fmt(ratio) if ratio is not None else '-'}")
        med = f"{statistics.median(ratios):.2f}" if ratios else "-"
        print(f"{name:34} {target:>7} | " + " | ".join(cells) + f" | {med}")
    lower = [r for r in rounds if data[r].get("fraudwall", {}).get("max_cps", (0, False))[1]]
    if lower:
        print(f"(fraudwall's max rate is only a lower bound in rounds {lower}: no ramp step failed; extend --rates)")


if __name__ == "__main__":
    main()
