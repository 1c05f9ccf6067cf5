#!/usr/bin/env python3
"""bench/report.py FILE... -- the issue-11 table: every row, its goal, met or missed.

Role: turns the per-repeat figures that bench/run.sh and bench/node_run.sh record into one
final table whose rows are issue 11's rows. Input lines are `rep<N>.<metric>.<who>=<value>`
(`<who>` is ours, stunnel or haproxy; lines without `rep<N>.` count as repeat 0), in any
number of files. For every row it prints the median of each contender over the repeats and
the ratios ours/stunnel and ours/haproxy. A ratio is taken **within each repeat** (the
contenders of one repeat ran interleaved, under the same machine noise) and the median of
those per-repeat ratios is printed; absolute figures on this VM drift +-15 % within minutes.

Verdicts: `met` when every anchor the goal names satisfies it in the median, `missed (by X)`
otherwise, `n/a` when a figure is missing. Exit status 0 always: the table reports, it does not
judge the run (the scripts' own NOTE lines say when a measurement failed).
"""
import re
import statistics
import sys

# (label, metric key, goal kind, goal value, anchors the goal applies to, unit of the figures)
#   ratio_ge / ratio_le / ratio_lt: ours/anchor against the value, for each named anchor
#   abs_le: ours alone against the value (anchors are shown for scale only)
ROWS = [
    ("dedicated: single-stream throughput", "tp_gbps", "ratio_ge", 1.3, ("stunnel", "haproxy"), "Gbps"),
    ("dedicated: CPU-s per GB, client side", "cpu_gb_client", "ratio_le", 0.8, ("stunnel", "haproxy"), "CPU-s/GB"),
    ("dedicated: CPU-s per GB, server side", "cpu_gb_server", "ratio_le", 0.8, ("stunnel", "haproxy"), "CPU-s/GB"),
    ("dedicated: new connections per second", "conn_rate", "ratio_ge", 5.0, ("stunnel",), "conn/s"),
    ("dedicated: idle RSS", "idle_rss_mb", "abs_le", 12.0, (), "MB"),
    ("node: single-stream throughput", "node.tp_gbps", "ratio_ge", 1.3, ("stunnel", "haproxy"), "Gbps"),
    ("node: CPU-s per GB, client side", "node.cpu_gb_client", "ratio_le", 0.8, ("stunnel", "haproxy"), "CPU-s/GB"),
    ("node: CPU-s per GB, server side", "node.cpu_gb_server", "ratio_le", 0.8, ("stunnel", "haproxy"), "CPU-s/GB"),
    ("node: CPU per request ~1000 rps 1 KiB, client", "node.cpu_req_client", "ratio_le", 0.5, ("stunnel", "haproxy"), "us"),
    ("node: CPU per request ~1000 rps 1 KiB, server", "node.cpu_req_server", "ratio_le", 0.5, ("stunnel", "haproxy"), "us"),
    ("node: added latency P50", "node.added_p50", "ratio_lt", 1.0, ("stunnel", "haproxy"), "us"),
    ("node: added latency P90", "node.added_p90", "ratio_lt", 1.0, ("stunnel", "haproxy"), "us"),
    ("node: added latency P99", "node.added_p99", "ratio_lt", 1.0, ("stunnel", "haproxy"), "us"),
    ("node: idle RSS of one ztunnel", "node.idle_rss_mb", "abs_le", 12.0, (), "MB"),
    ("node: RSS after 10k closed / idle", "node.rss_closed_over_idle", "abs_le", 1.2, (), "x idle"),
    ("node: churn, reopen 10k: round 2 / round 1", "node.churn_ratio", "abs_le", 1.5, (), "x"),
    ("node: 10k idle tunnels, KiB each", "node.kib_per_idle_tunnel", "abs_le", 32.0, (), "KiB"),
]
WHO = ("ours", "stunnel", "haproxy")
LINE = re.compile(r"^(?:rep(\d+)\.)?([A-Za-z0-9_.]+)\.(ours|stunnel|haproxy)=(.*)$")


def load(paths):
    """{metric: {who: {rep: float}}}; unparsable or nan values are left out."""
    data = {}
    for path in paths:
        try:
            lines = open(path, encoding="utf-8").read().splitlines()
        except OSError as e:
            print(f"report.py: cannot read {path}: {e.strerror}", file=sys.stderr)
            continue
        for line in lines:
            m = LINE.match(line.strip())
            if not m:
                continue
            rep, metric, who, raw = int(m.group(1) or 0), m.group(2), m.group(3), m.group(4)
            try:
                v = float(raw)
            except ValueError:
                continue
            if v != v:  # nan
                continue
            data.setdefault(metric, {}).setdefault(who, {})[rep] = v
    return data


def med(values):
    return statistics.median(values) if values else None


def ratio(series, who):
    """Median over repeats of ours/anchor, each taken within one repeat."""
    ours, other = series.get("ours", {}), series.get(who, {})
    # An anchor figure <= 0 (an added latency lost in the noise of a loaded machine) has no
    # meaningful ratio: that repeat is left out of the ratio, the medians still show it.
    per_rep = [ours[r] / other[r] for r in ours if r in other and other[r] > 0]
    return med(per_rep), len(per_rep)


def fmt(v, digits=2):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def verdict(kind, goal, anchors, ours_med, ratios, meds):
    if kind == "abs_le":
        if ours_med is None:
            return "n/a"
        return "met" if ours_med <= goal else f"missed (x{ours_med / goal:.2f} of goal)"
    misses, missing = [], []
    for a in anchors:
        r = ratios.get(a)
        if r is None and kind == "ratio_lt" and ours_med is not None and meds.get(a) is not None:
            if ours_med >= meds[a]:  # no usable ratio: compare the medians themselves
                misses.append(f"{a}: {fmt(ours_med)} vs {fmt(meds[a])}")
            continue
        if r is None:
            missing.append(a)
            continue
        ok = r >= goal if kind == "ratio_ge" else (r <= goal if kind == "ratio_le" else r < goal)
        if not ok:
            misses.append(f"{a} {r:.2f}")
    if misses:
        return "missed (" + ", ".join(misses) + ")"
    if missing:
        return "n/a (" + ", ".join(missing) + " missing)"
    return "met"


def goal_text(kind, goal, anchors):
    short = "/".join("st" if a == "stunnel" else "hap" for a in anchors)
    if kind == "abs_le":
        return f"<= {goal:g}"
    op = {"ratio_ge": ">=", "ratio_le": "<=", "ratio_lt": "<"}[kind]
    return f"ours/{short} {op} {goal:g}"


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    data = load(argv[1:])
    print("=== issue 11: medians over the n repeats of each row; ratios = median of the per-repeat ratios")
    head = f"{'row':<47} {'n':>2} {'unit':>8} {'ours':>8} {'stunnel':>8} {'haproxy':>8} {'o/st':>6} {'o/hap':>6}  {'goal':<20} verdict"
    print(head)
    print("-" * len(head))
    for label, key, kind, goal, anchors, unit in ROWS:
        series = data.get(key)
        if series is None:
            continue  # this script does not measure the row (run.sh prints them all)
        meds = {w: med(list(series.get(w, {}).values())) for w in WHO}
        ratios = {w: ratio(series, w)[0] for w in ("stunnel", "haproxy")}
        n = len(series.get("ours", {}))
        print(f"{label:<47} {n:>2} {unit:>8} {fmt(meds['ours']):>8} {fmt(meds['stunnel']):>8} {fmt(meds['haproxy']):>8} "
              f"{fmt(ratios['stunnel']):>6} {fmt(ratios['haproxy']):>6}  {goal_text(kind, goal, anchors):<20} "
              f"{verdict(kind, goal, anchors, meds['ours'], ratios, meds)}")
    unknown = sorted(set(data) - {r[1] for r in ROWS})
    if unknown:
        print("(figures without a row: " + ", ".join(unknown) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
