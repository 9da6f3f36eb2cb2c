#!/usr/bin/env python3
"""bench/report.py: turns bench/run.sh's raw results (one JSON object per proxy and scenario)
into the ratio table, a summary JSON and SVG bar charts. Python standard library only.

    python3 bench/report.py --meta '{...}' --jsonl run-STAMP.jsonl --out bench/results/run-STAMP
    python3 bench/report.py --jsonl A.jsonl --jsonl B.jsonl --out OUT  # runs pooled, rounds in a row
    python3 bench/report.py --parse-h2load h2load-output.txt     # h2load's text as JSON

writes OUT.txt (the table, also printed), OUT.json (summary + raw), OUT.svg (every scenario)
and OUT-charts/SCENARIO.svg (one chart per scenario). With several rounds (run.sh's ROUNDS),
each figure is the median over the rounds, and a block gives the spread (lowest and highest)
and ringgate/nginx round by round. Rows with a "tool" (H2LOAD=1: h2load and ringgate-load on
a listener without client verification) make the cross-check block. Rows with an "idle_count"
(idle-memory, idle-memory-64k at each of run.sh's IDLE_COUNTS) are one scenario per count,
named SCENARIO@COUNT; rows with "upstream_tls" (up-mtls-*: the TLS upstream's access log) add
the upstream handshakes per request and the share resumed.
"""

import argparse
import html
import json
import os
import re
import statistics
import sys

PROXIES = ["nginx", "haproxy", "ringgate"]
COLORS = {"nginx": "#2e7d32", "haproxy": "#1565c0", "ringgate": "#ef6c00"}

# scenario: (title, metric label, unit, higher is better, target on ringgate/nginx[, target on
# ringgate/nginx CPU time per request])
SCENARIOS = {
    "ka-small": ("keep-alive, small responses", "requests/s", "req/s", True, (">=", 1.3)),
    "ka-64k": ("keep-alive, 64 KiB responses", "requests/s", "req/s", True, (">=", 1.3)),
    "hs-full-ecdsa": ("full mTLS handshakes, ECDSA P-256", "handshakes/s", "hs/s", True, (">=", 1.5)),
    "hs-full-rsa": ("full mTLS handshakes, RSA-2048", "handshakes/s", "hs/s", True, (">=", 1.5)),
    "hs-resumed-tls13": ("resumed handshakes, TLS 1.3", "handshakes/s", "hs/s", True, (">=", 1.5)),
    "hs-resumed-tls12": ("resumed handshakes, TLS 1.2", "handshakes/s", "hs/s", True, (">=", 1.5)),
    "rate-latency": ("latency at a fixed rate", "p99 latency", "us", False, ("<=", 1.0)),
    "ws-echo": ("WebSocket echo, one message in flight per connection", "messages/s", "msg/s", True, None),
    "idle-memory": ("memory per idle mTLS connection", "RSS per connection", "bytes", False, ("<=", 1.0)),
    "idle-memory-64k": ("memory per idle connection after 64 KiB", "RSS per connection", "bytes", False, ("<=", 1.0)),
    # Mutual TLS on both sides (the service mesh): ka-small's load, proxied to an nginx that
    # requires a client certificate, through a pool of upstream TLS connections or one (resumed)
    # handshake per request. Reported, not judged (no target yet).
    "up-mtls-pool": ("mTLS upstream, pooled connections", "requests/s", "req/s", True, None),
    "up-mtls-close": ("mTLS upstream, a connection per request", "requests/s", "req/s", True, None),
    # HTTP/2 (ALPN h2) on mTLS connections: at least nginx's requests/s at less CPU per request.
    "h2-small": ("HTTP/2, small responses, 1 stream per connection", "requests/s", "req/s", True, (">=", 1.0), ("<", 1.0)),
    "h2-small-10": ("HTTP/2, small responses, 10 streams per connection", "requests/s", "req/s", True, (">=", 1.0), ("<", 1.0)),
    "h2-64k": ("HTTP/2, 64 KiB responses, 1 stream per connection", "requests/s", "req/s", True, (">=", 1.0), ("<", 1.0)),
    # gRPC unary calls (HTTP/2 over mTLS to the proxy, HTTP/2 cleartext to ringgate-grpc-echo):
    # a call counts when it is echoed with grpc-status 0. Reported, not judged (no target yet).
    "grpc-unary": ("gRPC unary echo, 1 stream per connection", "calls/s", "calls/s", True, None),
    "grpc-unary-10": ("gRPC unary echo, 10 streams per connection", "calls/s", "calls/s", True, None),
}
ORDER = list(SCENARIOS)
IDLE = ("idle-memory", "idle-memory-64k")
W = 22  # the scenario column (idle-memory-64k@19900)


def base(sc):
    """The scenario's name without its idle count (idle-memory-64k@10000 -> idle-memory-64k)."""
    return sc.split("@", 1)[0]


def idle_count(sc):
    return int(sc.split("@", 1)[1]) if "@" in sc else None


def is_idle(sc):
    return base(sc) in IDLE


def ordered(keys):
    """Scenario keys in the table's order, an idle scenario's counts ascending."""
    rank = {k: i for i, k in enumerate(ORDER)}
    return sorted((k for k in keys if base(k) in rank), key=lambda k: (rank[base(k)], idle_count(k) or 0))


def load(paths):
    """Rows by (proxy, scenario), one per round; cross-check rows by (proxy, scenario, tool).
    Several files (runs) are pooled: each run's rounds are numbered after the previous run's."""
    rows, cross = {}, {}
    offset = 0
    for path in paths:
        offset = load_one(path, offset, rows, cross)
    return rows, cross


def load_one(path, offset, rows, cross):
    last = offset
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"report: skipping a bad line: {e}", file=sys.stderr)
                continue
            r["round"] = r.get("round", 1) + offset
            last = max(last, r["round"])
            if r.get("idle_count"):
                r["scenario"] = f"{r['scenario']}@{r['idle_count']}"
            if r.get("tool"):
                cross.setdefault((r["proxy"], r["scenario"], r["tool"]), []).append(r)
            else:
                rows.setdefault((r["proxy"], r["scenario"]), []).append(r)
    return last


def parse_h2load(text):
    """h2load's summary as ringgate-load's JSON fields (requests, rps, latency, statuses)."""

    def num(pattern, conv=float, default=0):
        m = re.search(pattern, text, re.M)
        return conv(m.group(1)) if m else default

    def us(v):
        m = re.fullmatch(r"([0-9.]+)(us|ms|s)", v)
        if not m:
            return None
        return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]

    out = {
        "tool": "h2load",
        "duration_s": num(r"finished in ([0-9.]+)s"),
        "rps": num(r"finished in [0-9.]+s, ([0-9.]+) req/s"),
        "requests": num(r"^requests: .*?([0-9]+) succeeded", int),
        "requests_done": num(r"^requests: .*?([0-9]+) done", int),
        "errors": {
            "failed": num(r"^requests: .*?([0-9]+) failed", int),
            "errored": num(r"^requests: .*?([0-9]+) errored", int),
            "timeout": num(r"^requests: .*?([0-9]+) timeout", int),
        },
        "statuses": {},
    }
    out["errors_total"] = sum(out["errors"].values())
    m = re.search(r"^status codes: (.*)$", text, re.M)
    if m:
        for n, k in re.findall(r"([0-9]+) ([0-9]xx)", m.group(1)):
            if int(n):
                out["statuses"][k] = int(n)
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if m:
        out["latency_us"] = {"min": us(m.group(1)), "max": us(m.group(2)), "mean": us(m.group(3))}
    return out


def figures(r):
    """The figures of one proxy in one scenario."""
    res = r.get("result") or {}
    hz = r.get("clk_tck") or 100
    cpu_s = r.get("cpu_ticks", 0) / hz
    req = res.get("requests", 0) or 0
    hs = res.get("handshakes", {}) or {}
    full, resumed = hs.get("full", 0) or 0, hs.get("resumed", 0) or 0
    lat = res.get("latency_us", {}) or {}
    f = {
        "rps": res.get("rps", 0.0) or 0.0,
        "requests": req,
        "errors": res.get("errors_total", 0) or 0,
        "errors_by_cause": {k: v for k, v in (res.get("errors") or {}).items() if v},
        "statuses": res.get("statuses", {}),
        "p50_us": lat.get("p50"),
        "p90_us": lat.get("p90"),
        "p99_us": lat.get("p99"),
        "p999_us": lat.get("p999"),
        "max_us": lat.get("max"),
        "hs_full": full,
        "hs_resumed": resumed,
        "cpu_s": cpu_s,
        "cpu_us_per_request": cpu_s * 1e6 / req if req else None,
        "cpu_us_per_handshake": cpu_s * 1e6 / (full + resumed) if full + resumed else None,
        "h2": res.get("h2"),
        "grpc": res.get("grpc"),
        "round": r.get("round", 1),
    }
    if r.get("upstream_cpu_ticks") is not None and r["scenario"].startswith("grpc-"):
        dur = res.get("duration_s") or 0
        f["upstream_cpu_share"] = r["upstream_cpu_ticks"] / hz / dur if dur else None
    up = r.get("upstream_tls")
    if up is not None:
        f["up_requests"] = up.get("requests", 0) or 0
        f["up_handshakes"] = up.get("handshakes", 0) or 0
        f["up_resumed"] = up.get("resumed", 0) or 0
        f["up_non200"] = up.get("non200", 0) or 0
        f["up_with_sni"] = up.get("with_sni", 0) or 0
        f["up_protocols"] = up.get("protocols") or {}
        up_shares(f)
    if is_idle(r["scenario"]):
        idle = res.get("idle") or {}
        est = idle.get("established", 0) or 0
        delta = (r.get("rss_after_kb", 0) - r.get("rss_before_kb", 0)) * 1024
        f["idle_established"] = est
        f["rss_before_kb"] = r.get("rss_before_kb")
        f["rss_after_kb"] = r.get("rss_after_kb")
        f["bytes_per_connection"] = delta / est if est else None
    return f


def up_shares(f):
    """Upstream TLS handshakes per request (of those the upstream logged) and the share resumed."""
    req, hs = f.get("up_requests") or 0, f.get("up_handshakes") or 0
    f["up_hs_per_request"] = hs / req if req else None
    f["up_resumed_share"] = (f.get("up_resumed") or 0) / hs if hs else None


# Figures that are medians over the rounds (the others are added up).
MEDIAN = ["rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "cpu_s", "cpu_us_per_request",
          "cpu_us_per_handshake", "bytes_per_connection", "rss_before_kb", "rss_after_kb",
          "upstream_cpu_share"]
UP_SUMS = ["up_requests", "up_handshakes", "up_resumed", "up_non200", "up_with_sni"]


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def aggregate(fs):
    """One proxy's figures in one scenario over its rounds: medians, sums, and per round."""
    if len(fs) == 1:
        f = dict(fs[0])
        f["rounds"] = [fs[0]]
        return f
    f = {k: med([x.get(k) for x in fs]) for k in MEDIAN if any(k in x for x in fs)}
    for k in ("requests", "errors", "hs_full", "hs_resumed", "idle_established"):
        if any(k in x for x in fs):
            f[k] = sum(x.get(k) or 0 for x in fs)
    if any("up_requests" in x for x in fs):
        # Over all the rounds' upstream requests, as the errors are.
        for k in UP_SUMS:
            f[k] = sum(x.get(k) or 0 for x in fs)
        up_shares(f)
    for k in ("errors_by_cause", "statuses", "up_protocols"):
        if k == "up_protocols" and not any(k in x for x in fs):
            continue
        acc = {}
        for x in fs:
            for kk, v in (x.get(k) or {}).items():
                acc[kk] = acc.get(kk, 0) + v
        f[k] = acc
    h2s = [x["h2"] for x in fs if x.get("h2")]
    if h2s:
        f["h2"] = {k: sum(h.get(k) or 0 for h in h2s) for k in ("connections", "goaways", "retried")}
        f["h2"]["streams"] = h2s[0].get("streams")
    grpcs = [x["grpc"] for x in fs if x.get("grpc")]
    if grpcs:
        acc = {}
        for g in grpcs:
            for k, v in (g.get("grpc_statuses") or {}).items():
                acc[k] = acc.get(k, 0) + v
        f["grpc"] = {"message_size": grpcs[0].get("message_size"), "grpc_statuses": acc}
    f["rounds"] = fs
    return f


def primary(sc, f):
    if f is None:
        return None
    if sc == "rate-latency":
        return f["p99_us"]
    if is_idle(sc):
        return f["bytes_per_connection"]
    return f["rps"]


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float) and digits:
        return f"{v:.{digits}f}"
    return f"{v:,.0f}".replace(",", "")


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def cpu_key(sc):
    return "cpu_us_per_handshake" if sc.startswith("hs-") else "cpu_us_per_request"


def meets(r, target):
    if r is None:
        return None
    op, bound = target
    return {">=": r >= bound, "<=": r <= bound, "<": r < bound, ">": r > bound}[op]


def per_round_ratios(sc, per, key):
    """ringgate/nginx round by round (each round ran nginx, then ringgate)."""
    if "ringgate" not in per or "nginx" not in per:
        return []
    ng = {f["round"]: f for f in per["nginx"]["rounds"]}
    out = []
    for f in per["ringgate"]["rounds"]:
        n = ng.get(f["round"])
        if n is None:
            continue
        a = primary(sc, f) if key is None else f.get(key)
        b = primary(sc, n) if key is None else n.get(key)
        out.append(ratio(a, b))
    return out


def build(meta, rows):
    present = [p for p in PROXIES if any(k[0] == p for k in rows)]
    summary = {"meta": meta, "proxies": present, "scenarios": {}}
    for sc in ordered({k[1] for k in rows}):
        per = {
            p: aggregate(sorted((figures(r) for r in rows[(p, sc)]), key=lambda f: f["round"]))
            for p in present
            if (p, sc) in rows
        }
        if not per:
            continue
        spec = SCENARIOS[base(sc)]
        title, metric, unit, higher, target = spec[:5]
        cpu_target = spec[5] if len(spec) > 5 else None
        if idle_count(sc):
            title += f", {idle_count(sc)} connections"
        vals = {p: primary(sc, per.get(p)) for p in present}
        rg = vals.get("ringgate")
        r_n = ratio(rg, vals.get("nginx"))
        r_h = ratio(rg, vals.get("haproxy"))
        cpu = {p: per[p].get(cpu_key(sc)) for p in per}
        cpu_r_n = ratio(cpu.get("ringgate"), cpu.get("nginx"))
        # A scenario without a target (ws-echo) is reported, not judged.
        met = None
        goal = "-"
        if target is not None:
            op, bound = target
            goal = f"ringgate/nginx {op} {bound}"
            met = meets(r_n, target)
            if cpu_target is not None:
                goal += f", cpu {cpu_target[0]} {cpu_target[1]}"
                cpu_met = meets(cpu_r_n, cpu_target)
                met = None if met is None or cpu_met is None else met and cpu_met
        summary["scenarios"][sc] = {
            "rounds": max(len(f["rounds"]) for f in per.values()),
            "cpu_ringgate_over_nginx": cpu_r_n,
            "ratio_per_round": per_round_ratios(sc, per, None),
            "cpu_ratio_per_round": per_round_ratios(sc, per, cpu_key(sc)),
            "title": title,
            "metric": metric,
            "unit": unit,
            "higher_is_better": higher,
            "values": vals,
            "ringgate_over_nginx": r_n,
            "ringgate_over_haproxy": r_h,
            "target": goal,
            "target_met": met,
            "figures": {p: {k: v for k, v in f.items() if k != "rounds"} for p, f in per.items()},
            "figures_per_round": {p: f["rounds"] for p, f in per.items()},
            "args": next(iter(rows[(p, sc)][0]["args"] for p in present if (p, sc) in rows)),
        }
    return summary


def build_cross(cross):
    """The cross-check: per scenario and proxy, each tool's requests/s and the proxy's CPU."""
    out = {}
    rank = {k: i for i, k in enumerate(ORDER + PROXIES)}  # cross-checks: h2 scenarios only
    for (p, sc, tool), rs in sorted(cross.items(), key=lambda kv: (rank.get(kv[0][1], 99), rank.get(kv[0][0], 99), kv[0][2])):
        f = aggregate([figures(r) for r in rs])
        out.setdefault(sc, {}).setdefault(p, {})[tool] = {
            "rps": f["rps"],
            "requests": f["requests"],
            "errors": f["errors"],
            "statuses": f["statuses"],
            "cpu_us_per_request": f["cpu_us_per_request"],
            "args": rs[0].get("args"),
        }
    return out


def table(s):
    m = s["meta"]
    pr = s["proxies"]
    out = []
    out.append(
        f"ringgate vs nginx vs HAProxy, {m.get('date')}, kernel {m.get('kernel')}, "
        f"{m.get('cpus')} CPUs ({m.get('cpu_model')})"
    )
    line = (
        f"proxy on CPU {m.get('proxy_cpu')} (1 worker / 1 thread), ringgate-load "
        f"(-t {m.get('load_threads')}) on CPU {m.get('load_cpu')}, upstream nginx on CPU "
        f"{m.get('upstream_cpu')}; -c {m.get('connections')} -d {m.get('duration')}"
    )
    if "rate-latency" in s["scenarios"]:
        line += f"; fixed rate {m.get('rate')} req/s ({m.get('rate_fraction')} of nginx's keep-alive maximum)"
    if any(is_idle(sc) for sc in s["scenarios"]):
        if m.get("idle_counts"):
            line += f"; idle connections: {m.get('idle_counts')}"
            if m.get("idle_capped"):
                line += f" ({m.get('idle_capped')}: the open-file limit)"
        elif m.get("idle_connections"):
            line += f"; {m.get('idle_connections')} idle connections"
    out.append(line)
    out.append(
        f"ringgate {m.get('ringgate')}, nginx {m.get('nginx')}, HAProxy {m.get('haproxy')}, "
        f"{m.get('openssl')}; mTLS with client certificates (ECDSA P-256 client, CA)"
    )
    if m.get("rounds", 1) > 1:
        out.append(
            f"{m.get('rounds')} rounds, each proxy in turn in each round; every figure is the median "
            "of the rounds (the spread is below)"
        )
    if any(sc.startswith("h2-") for sc in s["scenarios"]):
        out.append(
            f"h2 scenarios: ALPN h2 on the same mTLS listener; h2-small and h2-64k -c {m.get('connections')} "
            f"with 1 stream each, h2-small-10 -c {m.get('h2_connections')} with {m.get('h2_streams')} streams each"
        )
    if any(sc.startswith("grpc-") for sc in s["scenarios"]):
        ka = m.get("grpc_nginx_keepalive")
        out.append(
            f"gRPC scenarios: unary calls of a {m.get('grpc_message_size')}-byte message to ringgate-grpc-echo "
            f"(h2c, upstream CPU), grpc-unary -c {m.get('connections')} with 1 stream each, grpc-unary-10 "
            f"-c {m.get('h2_connections')} with {m.get('h2_streams')} streams each; nginx grpc_pass "
            + (f"with upstream keepalive {ka}" if ka else "without upstream keepalive")
            + (f"; ringgate's configuration: {m.get('grpc_ringgate_config')}" if m.get("grpc_ringgate_config") else "")
        )
    if any(base(sc).startswith("up-mtls-") for sc in s["scenarios"]):
        out.append(
            "up-mtls scenarios: ka-small's load to a location proxied with a client certificate (TLS 1.2-1.3) to an "
            "nginx on the upstream CPU that requires one; up-mtls-pool through a pool of upstream connections "
            f"(nginx/ringgate keepalive {m.get('up_mtls_keepalive', 32)}, HAProxy http-reuse safe, pool-max-conn "
            f"{m.get('up_mtls_keepalive', 32)}), up-mtls-close a connection per request (nginx/ringgate HTTP/1.0, "
            "no keepalive; HAProxy http-reuse never, option http-server-close); 'up hs/req' and 'up resumed' "
            "from the upstream's access log ($connection_requests = 1: a handshake; $ssl_session_reused)"
        )
    out.append(f"command: {m.get('command')}")
    out.append("")
    w = W
    head = f"{'scenario':<{W}} {'metric':<14}" + "".join(f"{p:>11}" for p in pr)
    head += f" {'rg/nginx':>9} {'rg/haproxy':>10}  target"
    out.append(head)
    for sc, d in s["scenarios"].items():
        line = f"{sc:<{w}} {d['unit']:<14}" + "".join(f"{fmt(d['values'].get(p)):>11}" for p in pr)
        rn, rh = d["ringgate_over_nginx"], d["ringgate_over_haproxy"]
        line += f" {fmt(rn, 2) if rn is not None else '-':>9} {fmt(rh, 2) if rh is not None else '-':>10}"
        met = d["target_met"]
        line += f"  {d['target'].replace('ringgate/nginx ', '')} " + (
            "MET" if met else "MISSED" if met is not None else "-"
        )
        out.append(line)
        if sc == "rate-latency":
            for q, key in (("p50", "p50_us"), ("p99.9", "p999_us"), ("achieved", "rps")):
                vals = {p: d["figures"].get(p, {}).get(key) for p in pr}
                unit = "req/s" if key == "rps" else "us"
                line = f"{'':<{w}} {q + ' ' + unit:<14}" + "".join(f"{fmt(vals.get(p)):>11}" for p in pr)
                rn = ratio(vals.get("ringgate"), vals.get("nginx"))
                rh = ratio(vals.get("ringgate"), vals.get("haproxy"))
                line += f" {fmt(rn, 2) if rn is not None else '-':>9} {fmt(rh, 2) if rh is not None else '-':>10}"
                out.append(line)
        if any(f.get("up_requests") is not None for f in d["figures"].values()):
            # The TLS upstream's side: handshakes per request it served, and the share resumed.
            for q, key, digits, scale in (("up hs/req", "up_hs_per_request", 3, 1), ("up resumed %", "up_resumed_share", 1, 100)):
                vals = {p: d["figures"].get(p, {}).get(key) for p in pr}
                cells = "".join(
                    f"{fmt(vals[p] * scale, digits) if vals.get(p) is not None else '-':>11}" for p in pr
                )
                out.append(f"{'':<{w}} {q:<14}" + cells)
    out.append("")
    out.append("CPU time of the proxy under test (utime+stime of all its processes, /proc/PID/stat)")
    out.append(f"{'scenario':<{W}} {'per':<14}" + "".join(f"{p:>11}" for p in pr) + f" {'rg/nginx':>9} {'rg/haproxy':>10}")
    for sc, d in s["scenarios"].items():
        if is_idle(sc):
            continue
        key = cpu_key(sc)
        per = ("us/handshake" if sc.startswith("hs-") else "us/message" if sc == "ws-echo"
               else "us/call" if sc.startswith("grpc-") else "us/request")
        vals = {p: d["figures"].get(p, {}).get(key) for p in pr}
        line = f"{sc:<{W}} {per:<14}" + "".join(f"{fmt(vals.get(p), 1):>11}" for p in pr)
        rn = ratio(vals.get("ringgate"), vals.get("nginx"))
        rh = ratio(vals.get("ringgate"), vals.get("haproxy"))
        line += f" {fmt(rn, 2) if rn is not None else '-':>9} {fmt(rh, 2) if rh is not None else '-':>10}"
        out.append(line)
    out.append("")
    out.append("handshakes (full/resumed), errors and non-200 statuses")
    for sc, d in s["scenarios"].items():
        parts = []
        for p in pr:
            f = d["figures"].get(p)
            if f is None:
                continue
            x = f"{p}: "
            if sc.startswith("hs-") or is_idle(sc):
                x += f"{f['hs_full']}/{f['hs_resumed']} hs, "
            x += f"{f['errors']} errors"
            if f["errors_by_cause"]:
                x += " (" + ", ".join(f"{k} {v}" for k, v in f["errors_by_cause"].items()) + ")"
            ok = "101" if sc == "ws-echo" else "200"
            bad = {k: v for k, v in (f["statuses"] or {}).items() if k != ok}
            if bad:
                x += " statuses " + ", ".join(f"{k}: {v}" for k, v in bad.items())
            if is_idle(sc):
                x += f", {f.get('idle_established')} open, RSS {fmt(f.get('rss_before_kb'))} -> {fmt(f.get('rss_after_kb'))} kB"
            if f.get("up_requests") is not None:
                protos = " ".join(f"{k} {v}" for k, v in sorted((f.get("up_protocols") or {}).items()))
                x += (
                    f", upstream: {f['up_requests']} requests, {f['up_handshakes']} handshakes "
                    f"({f['up_resumed']} resumed{', ' + protos if protos else ''}, {f['up_with_sni']} with SNI)"
                )
                if f.get("up_non200"):
                    x += f", {f['up_non200']} non-200 at the upstream"
            if f.get("h2"):
                h = f["h2"]
                x += f", h2 {h.get('connections')} conns/{h.get('goaways')} GOAWAY/{h.get('retried')} retried"
            if f.get("grpc"):
                gs = f["grpc"].get("grpc_statuses") or {}
                x += ", grpc-status " + (" ".join(f"{k}: {v}" for k, v in sorted(gs.items())) or "-")
            if f.get("upstream_cpu_share") is not None:
                x += f", echo at {100 * f['upstream_cpu_share']:.0f}% of its core"
            parts.append(x)
        out.append(f"{sc:<{W}} " + "; ".join(parts))
    if any(d["rounds"] > 1 for d in s["scenarios"].values()):
        out.append("")
        out.append(
            "spread over the rounds: lowest-highest of each proxy; ringgate/nginx in each round "
            "(nginx ran right before ringgate) and their median"
        )
        for sc, d in s["scenarios"].items():
            if d["rounds"] < 2:
                continue
            for what, key, rr in (
                (d["unit"], None, d["ratio_per_round"]),
                ("cpu " + ("us/hs" if sc.startswith("hs-") else "us/call" if sc.startswith("grpc-") else "us/req"),
                 cpu_key(sc), d["cpu_ratio_per_round"]),
            ):
                if is_idle(sc) and key is not None:
                    continue
                cells = []
                for p in pr:
                    fs = d["figures_per_round"].get(p) or []
                    v = [primary(sc, f) if key is None else f.get(key) for f in fs]
                    v = [x for x in v if x is not None]
                    if v:
                        digits = 0 if key is None else 1
                        cells.append(f"{p} {fmt(min(v), digits)}-{fmt(max(v), digits)}")
                ratios = " ".join(fmt(x, 2) if x is not None else "-" for x in rr)
                m = med(rr)
                known = [x for x in rr if x is not None]
                paired = (
                    f"; rg/nginx median {fmt(m, 2)} ({fmt(min(known), 2)}-{fmt(max(known), 2)}), by round {ratios}"
                    if m is not None
                    else ""
                )
                out.append(f"{sc:<{W}} {what:<14} " + ", ".join(cells) + paired)
        out.append("")
        out.append("by round: each proxy's figure and its CPU per request (the medians are in the tables above)")
        for sc, d in s["scenarios"].items():
            if d["rounds"] < 2 or is_idle(sc):
                continue
            key = cpu_key(sc)
            by = {}
            for p in pr:
                for f in d["figures_per_round"].get(p) or []:
                    by.setdefault(f["round"], {})[p] = f
            for rnd in sorted(by):
                cells = []
                for p in pr:
                    f = by[rnd].get(p)
                    if f is None:
                        continue
                    c = f.get(key)
                    cells.append(
                        f"{p} {fmt(primary(sc, f), 0)} {d['unit']} at {fmt(c, 1) if c is not None else '-'} us"
                        + (f" ({f['errors']} errors)" if f.get("errors") else "")
                    )
                out.append(f"{sc:<{W}} round {rnd:<8} " + ", ".join(cells))
    cross = s.get("cross") or {}
    if cross:
        out.append("")
        out.append("cross-check on a listener without client verification (h2load sends no certificate)")
        out.append(f"{'scenario':<{W}} {'proxy':<9} {'ringgate-load':>13} {'h2load':>10} {'ratio':>6}  cpu us/req (ringgate-load / h2load); errors")
        for sc, byp in cross.items():
            for p, tools in byp.items():
                a, b = tools.get("ringgate-load", {}), tools.get("h2load", {})
                r = ratio(a.get("rps"), b.get("rps"))
                out.append(
                    f"{sc:<{W}} {p:<9} {fmt(a.get('rps')):>13} {fmt(b.get('rps')):>10} {fmt(r, 2) if r else '-':>6}  "
                    f"{fmt(a.get('cpu_us_per_request'), 1)} / {fmt(b.get('cpu_us_per_request'), 1)}; "
                    f"{a.get('errors', '-')} / {b.get('errors', '-')}"
                )
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- SVG


def esc(s):
    return html.escape(str(s), quote=True)


def nice_max(v):
    if v <= 0:
        return 1.0
    import math

    e = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def short(v):
    if v is None:
        return "n/a"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.1f}k"
    if v >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}"


def panel(x, y, w, h, title, subtitle, groups, proxies):
    """A bar chart: groups = [(label, {proxy: value})]."""
    el = [f'<g transform="translate({x},{y})">']
    el.append(f'<rect width="{w}" height="{h}" fill="#fff" stroke="#ccc"/>')
    el.append(f'<text x="{w / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">{esc(title)}</text>')
    el.append(f'<text x="{w / 2}" y="37" text-anchor="middle" font-size="11" fill="#555">{esc(subtitle)}</text>')
    left, right, top, bottom = 56, 12, 50, 40
    pw, ph = w - left - right, h - top - bottom
    vmax = nice_max(max([v for _, vals in groups for v in vals.values() if v is not None] or [1]))
    for i in range(5):
        gy = top + ph - ph * i / 4
        el.append(f'<line x1="{left}" x2="{left + pw}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="#eee"/>')
        el.append(f'<text x="{left - 4}" y="{gy + 4:.1f}" text-anchor="end" font-size="10" fill="#555">{esc(short(vmax * i / 4))}</text>')
    gw = pw / max(len(groups), 1)
    bw = min(40, gw * 0.8 / max(len(proxies), 1))
    for gi, (label, vals) in enumerate(groups):
        gx = left + gi * gw + (gw - bw * len(proxies)) / 2
        for pi, p in enumerate(proxies):
            v = vals.get(p)
            bx = gx + pi * bw
            if v is None:
                el.append(f'<text x="{bx + bw / 2:.1f}" y="{top + ph - 4}" text-anchor="middle" font-size="9" fill="#999">n/a</text>')
                continue
            bh = ph * v / vmax
            el.append(
                f'<rect x="{bx + 1:.1f}" y="{top + ph - bh:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" fill="{COLORS[p]}">'
                f"<title>{esc(p)}: {esc(short(v))}</title></rect>"
            )
            el.append(f'<text x="{bx + bw / 2:.1f}" y="{top + ph - bh - 3:.1f}" text-anchor="middle" font-size="10">{esc(short(v))}</text>')
        if label:
            el.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{top + ph + 14}" text-anchor="middle" font-size="11">{esc(label)}</text>')
    # legend
    lx = left
    for p in proxies:
        el.append(f'<rect x="{lx}" y="{h - 16}" width="10" height="10" fill="{COLORS[p]}"/>')
        el.append(f'<text x="{lx + 14}" y="{h - 7}" font-size="11">{esc(p)}</text>')
        lx += 80
    el.append("</g>")
    return el


def scenario_groups(sc, d, proxies):
    if sc == "rate-latency":
        return [
            (q, {p: d["figures"].get(p, {}).get(k) for p in proxies})
            for q, k in (("p50", "p50_us"), ("p99", "p99_us"), ("p99.9", "p999_us"))
        ]
    return [("", {p: d["values"].get(p) for p in proxies})]


def subtitle(sc, d):
    better = "higher is better" if d["higher_is_better"] else "lower is better"
    unit = "us" if sc == "rate-latency" else d["unit"]
    rn = d["ringgate_over_nginx"]
    extra = f"; ringgate/nginx {rn:.2f}" if rn is not None else ""
    return f"{d['metric']} ({unit}), {better}{extra}"


def svg_doc(w, h, body):
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'font-family="sans-serif">\n<rect width="{w}" height="{h}" fill="#fafafa"/>\n'
        + "\n".join(body)
        + "\n</svg>\n"
    )


def chart_panels(s):
    """(file name, title, subtitle, groups) per chart: one per scenario, except that an idle
    scenario's counts are the groups of one chart."""
    pr = s["proxies"]
    panels, idle = [], {}
    for sc, d in s["scenarios"].items():
        if is_idle(sc) and idle_count(sc):
            b = base(sc)
            if b not in idle:
                idle[b] = []
                panels.append((b, None, None, idle[b]))
            idle[b].append((sc, d))
            continue
        panels.append((sc, d["title"], subtitle(sc, d), scenario_groups(sc, d, pr)))
    out = []
    for name, title, sub, groups in panels:
        if title is None:
            members = groups
            ratios = " / ".join(
                f"{d['ringgate_over_nginx']:.2f}" if d["ringgate_over_nginx"] is not None else "-" for _, d in members
            )
            title = SCENARIOS[name][0]
            sub = f"bytes per connection by count, lower is better; rg/nginx {ratios}"
            groups = [(str(idle_count(sc)), {p: d["values"].get(p) for p in pr}) for sc, d in members]
        out.append((name, title, sub, groups))
    return out


def charts(s, out):
    pr = s["proxies"]
    scs = chart_panels(s)
    pw, ph, cols = 400, 280, 3
    rows = (len(scs) + cols - 1) // cols
    body = [
        f'<text x="10" y="22" font-size="16" font-weight="bold">{esc("ringgate vs nginx vs HAProxy, " + str(s["meta"].get("date")))}</text>'
    ]
    os.makedirs(out + "-charts", exist_ok=True)
    for i, (sc, title, sub, groups) in enumerate(scs):
        x, y = 10 + (i % cols) * (pw + 10), 34 + (i // cols) * (ph + 10)
        body += panel(x, y, pw, ph, title, sub, groups, pr)
        one = panel(0, 0, pw, ph, title, sub, groups, pr)
        with open(os.path.join(out + "-charts", sc + ".svg"), "w") as f:
            f.write(svg_doc(pw, ph, one))
    with open(out + ".svg", "w") as f:
        f.write(svg_doc(cols * (pw + 10) + 10, 34 + rows * (ph + 10), body))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meta", default="{}")
    ap.add_argument("--jsonl", action="append", help="a run's raw results; several are pooled")
    ap.add_argument("--out")
    ap.add_argument("--parse-h2load", metavar="FILE", help="print h2load's output as JSON and exit")
    a = ap.parse_args()
    if a.parse_h2load:
        with open(a.parse_h2load, errors="replace") as f:
            print(json.dumps(parse_h2load(f.read())))
        return
    if not a.jsonl or not a.out:
        ap.error("--jsonl and --out are required")
    meta = json.loads(a.meta)
    rows, cross = load(a.jsonl)
    s = build(meta, rows)
    s["cross"] = build_cross(cross)
    t = table(s)
    sys.stdout.write(t)
    with open(a.out + ".txt", "w") as f:
        f.write(t)
    s["raw"] = [r for rs in rows.values() for r in rs] + [r for rs in cross.values() for r in rs]
    with open(a.out + ".json", "w") as f:
        json.dump(s, f, indent=1)
    charts(s, a.out)
    print(f"\nwritten: {a.out}.txt {a.out}.json {a.out}.svg {a.out}-charts/", file=sys.stderr)


if __name__ == "__main__":
    main()
