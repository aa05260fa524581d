#!/usr/bin/env python3
"""make bench-budgets: run the benchmarks and compare them with perf/budgets.json.

    python3 scripts/check_budgets.py [--quick] [--skip-criterion] [--skip-proxy] [--no-build]

1. criterion benches (every [[bench]] in Cargo.toml; short warm-up/measurement in --quick),
2. the proxy load run (scripts/lib/bench_proxy.py: direct vs nginx vs gait, same upstream, same
   run) and gait's RSS with N open MCP sessions,
3. compare with perf/budgets.json: PASS/FAIL per budget, a results table, a JSON report in
   $CARGO_TARGET_DIR/bench-budgets/report.json, `N passed, N failed`, exit 1 on any failure.
A budget whose measurement is missing (no matching bench, proxy run failed) fails.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "lib"))

RESULTS = {"passed": 0, "failed": 0, "lines": []}


def check(name, ok, why=""):
    key = "passed" if ok else "failed"
    RESULTS[key] += 1
    line = f"PASS {name}" + (f" ({why})" if ok and why else "") if ok else f"FAIL {name}: {why}"
    RESULTS["lines"].append(line)
    print(line, flush=True)
    return ok


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def bench_targets():
    names = re.findall(r'\[\[bench\]\]\s*\nname\s*=\s*"([^"]+)"', open(os.path.join(ROOT, "Cargo.toml")).read())
    return names or ["gate"]


def run_criterion(quick):
    warm, meas = ("0.5", "1") if quick else ("2", "5")
    ok = True
    for name in bench_targets():
        cmd = ["cargo", "bench", "--quiet", "--bench", name, "--", "--warm-up-time", warm,
               "--measurement-time", meas, "--noplot"]
        print(f"# {' '.join(cmd)}", flush=True)
        t0 = time.monotonic()
        env = dict(os.environ)
        if quick:
            env.setdefault("SESSION_BENCH_SCALE", "0.1")  # benches/session.rs sizes
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600, env=env)
        print(f"# bench {name}: exit {r.returncode} in {time.monotonic() - t0:.0f}s", flush=True)
        if r.returncode != 0:
            check(f"criterion_bench_{name}_runs", False, (r.stdout + r.stderr)[-400:])
            ok = False
    return ok


def criterion_estimates(since):
    """{full_id: ops_per_sec} from criterion's JSON output written after `since`."""
    out = {}
    for est in glob.glob(os.path.join(target_dir(), "criterion", "**", "new", "estimates.json"), recursive=True):
        if os.path.getmtime(est) < since:
            continue
        d = os.path.dirname(est)
        try:
            meta = json.load(open(os.path.join(d, "benchmark.json")))
            e = json.load(open(est))
        except (OSError, ValueError):
            continue
        ns = (e.get("slope") or e["mean"])["point_estimate"]
        elements = 1
        thr = meta.get("throughput") or {}
        if isinstance(thr, dict) and "Elements" in thr:
            elements = thr["Elements"]
        out[meta.get("full_id") or meta.get("title") or d] = {"ns_per_iter": ns, "elements": elements,
                                                              "ops_per_sec": elements * 1e9 / ns}
    return out


def check_micro(budgets, est):
    rows = []
    for b in budgets.get("micro", []):
        pats = [re.compile(p, re.I) for p in b["id_patterns"]]
        hits = {k: v for k, v in est.items() if any(p.search(k) for p in pats)}
        if not hits:
            check(f"micro_{b['name']}", False, f"no criterion benchmark id matches {b['id_patterns']} "
                  f"({b['bench']}); ids seen: {sorted(est)[:12]}")
            continue
        for k, v in sorted(hits.items()):
            rows.append((b["name"], k, v["ops_per_sec"], b["min_ops_per_sec"]))
            check(f"micro_{b['name']}[{k}]", v["ops_per_sec"] >= b["min_ops_per_sec"],
                  f"{v['ops_per_sec']:,.0f} ops/s vs budget >= {b['min_ops_per_sec']:,} "
                  f"({v['ns_per_iter']:.0f} ns/iter)")
    return rows


def check_proxy(budgets, quick):
    import bench_proxy  # noqa: E402  (scripts/lib)
    p = budgets["proxy"]
    m = budgets["memory"]
    out = os.path.join(target_dir(), "bench-budgets", "proxy.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    argv = ["--out", out, "--upstream", p.get("upstream", "fast"), "--connections", str(p["connections"]),
            "--seconds", str(p["quick_seconds"] if quick else p["seconds"]),
            "--sessions", str(m["quick_open_sessions"] if quick else m["open_sessions"])]
    if quick:
        argv.append("--quick")
    try:
        rc = bench_proxy.main(argv)
        res = json.load(open(out))
    except Exception as e:  # noqa: BLE001 - a failed load run fails every proxy budget
        check("proxy_load_run", False, f"{type(e).__name__}: {e}")
        return None
    check("proxy_load_run", rc == 0)
    dv = res["derived"]
    ck = f"c{p['connections']}"
    check("proxy_throughput_ratio_vs_direct", dv["gait_ratio"] >= p["throughput_ratio_vs_direct_min"],
          f"gait {dv['gait_ratio']:.2f}x direct vs budget >= {p['throughput_ratio_vs_direct_min']}")
    if p.get("throughput_ratio_must_exceed_nginx"):
        check("proxy_throughput_above_nginx", dv["gait_ratio"] > dv["nginx_ratio"],
              f"gait {dv['gait_ratio']:.2f}x vs nginx {dv['nginx_ratio']:.2f}x direct")
    # A negative "added" latency means the direct baseline's tail was noise (a stall on a shared
    # machine), not that gait is faster than no proxy: such a run proves nothing and fails.
    for q, key in (("p50", "added_latency_c1_p50_us_max"), ("p99", "added_latency_c1_p99_us_max")):
        added = dv[f"gait_added_{q}_us_c1"]
        if added < 0:
            check(f"proxy_added_latency_c1_{q}", False,
                  f"inconclusive: +{added} us (the direct baseline's {q} at 1 conn was above gait's: noise)")
        else:
            check(f"proxy_added_latency_c1_{q}", added <= p[key], f"+{added} us vs budget <= {p[key]} us")
    if "gait_nosession_ratio" in dv:
        print(f"INFO gait without an MCP session (no journal fsync per call; reported, not budgeted): "
              f"{dv['gait_nosession_ratio']:.2f}x direct, added p50/p99 at 1 conn "
              f"+{dv['gait_nosession_added_p50_us_c1']}/+{dv['gait_nosession_added_p99_us_c1']} us", flush=True)
    for k, what in (("bare", "bare hyper pass-through (examples/bare_proxy; the floor any hyper proxy pays)"),
                    ("gait_segments", "gait with --trace-sink segments, inside an MCP session")):
        if f"{k}_ratio" in dv:
            print(f"INFO {what} (reported, not budgeted): {dv[k + '_ratio']:.2f}x direct, added p50/p99 at "
                  f"1 conn +{dv[k + '_added_p50_us_c1']}/+{dv[k + '_added_p99_us_c1']} us", flush=True)
    errs = max(res["paths"]["gait"][c]["error_rate"] for c in ("c1", ck))
    check("proxy_error_rate", errs <= p["error_rate_max"], f"gait error rate {errs:.4f}")
    mem = res["memory"]
    rss_mib = mem["rss_kib"] / 1024
    check("rss_with_open_sessions", rss_mib <= m["rss_mib_max"] and mem["failures"] == 0,
          f"{rss_mib:.1f} MiB with {mem['sessions']} sessions ({mem['failures']} failed) vs budget <= {m['rss_mib_max']} MiB")
    return res


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-criterion", action="store_true")
    ap.add_argument("--skip-proxy", action="store_true")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--budgets", default=os.path.join(ROOT, "perf", "budgets.json"))
    a = ap.parse_args(argv)
    quick = a.quick or os.environ.get("BENCH_QUICK", "0") not in ("", "0")
    budgets = json.load(open(a.budgets))
    t_start = time.time()
    if not a.no_build and not a.skip_proxy:
        r = subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "gait", "--example", "demo_upstream",
                            "--example", "bare_proxy"],
                           cwd=ROOT)
        if not check("release_build", r.returncode == 0, f"exit {r.returncode}"):
            print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
            return 1
    micro_rows = []
    if not a.skip_criterion:
        since = time.time() - 1
        run_criterion(quick)
        micro_rows = check_micro(budgets, criterion_estimates(since))
    proxy = None if a.skip_proxy else check_proxy(budgets, quick)

    if micro_rows:
        print("\n| budget | criterion id | measured ops/s | budget ops/s |\n|---|---|---|---|")
        for name, k, ops, lim in micro_rows:
            print(f"| {name} | {k} | {ops:,.0f} | >= {lim:,} |")
    # (the proxy table was printed by bench_proxy above)
    report = {"schema_id": "gait.perf.budget_report", "schema_version": "1.0.0", "quick": quick,
              "elapsed_s": round(time.time() - t_start, 1), "checks": RESULTS["lines"],
              "micro": [dict(zip(("budget", "id", "ops_per_sec", "min_ops_per_sec"), r)) for r in micro_rows],
              "proxy": proxy}
    out = os.path.join(target_dir(), "bench-budgets", "report.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"# report: {out}")
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 0 if RESULTS["failed"] == 0 and RESULTS["passed"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
