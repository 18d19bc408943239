#!/usr/bin/env python3
"""Load benchmark: secretgate against a same-stack echo ceiling, in one run.

Starts two servers from the same binary on loopback: the echo (`serve --echo`: same
TLS, HTTP, body handling, envelope decode, response encode, logs and metrics, but no
policy evaluation) and secretgate with a realistic policy. Drives both with h2load
(Debian package nghttp2-client) over HTTPS with keep-alive, over HTTP/1.1 and HTTP/2,
using recorded AdmissionReview requests from ../shared/fixtures/admission as bodies.
Runs alternate echo and secretgate in A B B A order so machine noise hits both alike;
ratios are medians of per-pair ratios.

Also measures: p99 at half secretgate's maximum rate, server CPU time per request,
RSS idle / under load / with a large snapshot, and start-up time to ready.

    python3 bench/load.py                 # full run (about 25 minutes), release build
    python3 bench/load.py --smoke         # seconds-long CI version

Prints a table and writes JSON (--out, default bench/results.json).
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from harness import FIXTURES, POLICY, ROOT, Server, check_answer, derived_fixtures, log, make_certs

# (workload, webhook path, fixture, answer must carry no warnings). Each is sent once to
# secretgate first and must be allowed (harness.check_answer): a row must not measure a
# refusal by accident. The last two are derived from recorded fixtures
# (harness.derived_fixtures) and reviewed under team-c's secretUse rules.
WORKLOADS = [
    ("secret-dockerconfigjson", "/validate", "secret-create-dockerconfigjson-valid.json", False),
    ("secret-tls-rsa", "/validate", "secret-create-tls-rsa-pkcs8.json", False),
    ("pod-git-sync", "/mutate", "pod-create-git-sync-container.json", False),
    ("pod-secret-use", "/validate-pods", "pod-secret-use.json", True),
    ("deployment-secret-use", "/validate-pods", "deployment-secret-use.json", True),
]
# (protocol, h2load flags): HTTP/1.1 is what the API server uses through a Service.
PROTOCOLS = [
    ("http/1.1", ["--h1", "-c", "32"]),
    ("h2", ["-c", "4", "-m", "16"]),
]


def h2load(server, path, body, proto_flags, seconds, rps=None):
    """One timed run; returns req/s, latency percentiles (µs), failures, CPU µs/req."""
    with tempfile.NamedTemporaryFile(suffix=".log") as per_request:
        args = ["h2load", *proto_flags, "-D", str(int(seconds)), "-d", str(body),
                "-H", "content-type: application/json",
                "--log-file", per_request.name,
                f"https://127.0.0.1:{server.port}{path}?timeout=10s"]
        if rps:
            clients = int(proto_flags[proto_flags.index("-c") + 1])
            args[1:1] = ["--rps", f"{max(rps / clients, 1):.2f}"]
        cpu_before = server.cpu_seconds()
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        cpu = server.cpu_seconds() - cpu_before
        latencies = sorted(
            int(line.split("\t")[2]) for line in open(per_request.name) if line.strip()
        )
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    if not done or not latencies:
        raise SystemExit(f"cannot read h2load output:\n{out}")
    succeeded, errored = int(done.group(4)), int(done.group(6))
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    # h2load counts a status when its header arrives (even after the timed window) and
    # counts 4xx/5xx answers as "failed" too; "errored" is a request left without an answer.
    not_2xx = sum(int(g) for g in status.groups()[1:]) if status else succeeded

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))]

    return {
        "requests": succeeded,
        "non_2xx_or_failed": not_2xx + errored,
        "req_per_s": succeeded / seconds,
        "p50_us": pct(50), "p99_us": pct(99), "p999_us": pct(99.9),
        "cpu_us_per_req": cpu * 1e6 / max(succeeded, 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", type=Path, help="secretgate binary (default: build target/release/secretgate)")
    ap.add_argument("--seconds", type=int, default=10, help="length of each timed run")
    ap.add_argument("--pairs", type=int, default=3, help="A B B A pairs per workload and protocol")
    ap.add_argument("--smoke", action="store_true", help="1-second runs, one pair: for CI")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    ap.add_argument("--baseline", type=Path,
                    help="another secretgate binary to run with the same policy in the echo's "
                         "place (e.g. a build without a feature): the ratio is then binary / "
                         "baseline, and the echo columns are the baseline's")
    ap.add_argument("--workloads", help="comma-separated workload names (default: all): "
                    + ", ".join(w[0] for w in WORKLOADS))
    args = ap.parse_args()
    workloads = WORKLOADS
    if args.workloads:
        wanted = args.workloads.split(",")
        unknown = set(wanted) - {w[0] for w in WORKLOADS}
        if unknown:
            raise SystemExit(f"unknown workloads: {', '.join(sorted(unknown))}")
        workloads = [w for w in WORKLOADS if w[0] in wanted]
    if args.smoke:
        args.seconds, args.pairs = 1, 1
    if not shutil.which("h2load"):
        raise SystemExit("h2load not found: apt-get install nghttp2-client")
    binary = args.binary
    if binary is None:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)
        binary = ROOT / "target" / "release" / "secretgate"
    policy = POLICY if "--policy" in subprocess.run([binary, "serve", "--help"], capture_output=True, text=True).stdout else None

    work = Path(tempfile.mkdtemp(prefix="secretgate-bench-"))
    certs = work / "certs"
    make_certs(binary, certs)

    # With --baseline, the echo's place (port, columns, A B B A order) is another build's
    # secretgate: a same-run comparison of two builds, e.g. of an allocator.
    echo = Server(args.baseline or binary, certs, 18443, args.baseline is None, policy,
                  work / "echo.log")
    product = Server(binary, certs, 28443, False, policy, work / "secretgate.log")
    results = {
        "machine": machine(),
        "settings": {"seconds": args.seconds, "pairs": args.pairs, "binary": str(binary),
                     "workloads": [w[0] for w in workloads],
                     "baseline": str(args.baseline) if args.baseline else "echo (serve --echo)",
                     "policy": str(policy.relative_to(ROOT)) if policy else "embedded default",
                     "pinning": "none (pinning lowered throughput 10-25% here without reducing noise)"},
        "startup_to_ready_ms": round(product.ready_after * 1000, 1),
        "rss_idle_kib": product.rss_kib(),
        "echo_rss_idle_kib": echo.rss_kib(),
        "runs": [],
    }
    derived = derived_fixtures(work / "derived")
    try:
        for workload, path, fixture, clean in workloads:
            body = derived.get(fixture, FIXTURES / fixture)
            if clean and not policy:
                log(f"{workload}: skipped (a binary without --policy has none of these rules)")
                continue
            check_answer(product.port, certs, path, body, clean)
            if args.baseline:
                check_answer(echo.port, certs, path, body, clean)
            for proto, flags in PROTOCOLS:
                echo_runs, product_runs, ratios = [], [], []
                for _ in range(args.pairs):
                    a1 = h2load(echo, path, body, flags, args.seconds)
                    b1 = h2load(product, path, body, flags, args.seconds)
                    b2 = h2load(product, path, body, flags, args.seconds)
                    a2 = h2load(echo, path, body, flags, args.seconds)
                    echo_runs += [a1, a2]
                    product_runs += [b1, b2]
                    ratios += [b1["req_per_s"] / a1["req_per_s"], b2["req_per_s"] / a2["req_per_s"]]
                max_rps = statistics.median(r["req_per_s"] for r in product_runs)
                # Open-loop runs at half secretgate's maximum, the echo at the same rate,
                # so what the load generator and machine add shows in both.
                half = h2load(product, path, body, flags, args.seconds, rps=max_rps / 2)
                half_echo = h2load(echo, path, body, flags, args.seconds, rps=max_rps / 2)
                row = {
                    "workload": workload, "protocol": proto, "fixture": fixture,
                    "echo": summarize(echo_runs), "secretgate": summarize(product_runs),
                    "ratio_req_per_s": round(statistics.median(ratios), 3),
                    "half_rate": {"target_req_per_s": round(max_rps / 2), **{k: round(v, 1) for k, v in half.items()}},
                    "half_rate_echo": {k: round(v, 1) for k, v in half_echo.items()},
                }
                results["runs"].append(row)
                log(f"{workload:24} {proto:8} echo {row['echo']['req_per_s']:>8.0f}/s  "
                    f"secretgate {row['secretgate']['req_per_s']:>8.0f}/s  ratio {row['ratio_req_per_s']:.3f}  "
                    f"p99@half {half['p99_us']} µs")
        results["rss_under_load_peak_kib"] = product.rss_kib("VmHWM")
        results["echo_rss_under_load_peak_kib"] = echo.rss_kib("VmHWM")
    finally:
        echo.stop()
        product.stop()
    if policy:
        results["large_snapshot"] = large_snapshot(binary, certs, work, args.smoke)
    failures = sum(r[k]["non_2xx_or_failed"] for r in results["runs"] for k in ("echo", "secretgate"))
    results["failed_requests"] = failures
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    log(f"JSON written to {args.out}")
    if failures:
        raise SystemExit(f"{failures} requests failed or got a non-2xx answer")


def large_snapshot(binary, certs, work, smoke):
    """RSS and start-up with 10,000 namespaces and 50,000 secrets' metadata in memory."""
    namespaces, secrets = (1000, 5000) if smoke else (10000, 50000)
    path = work / "large-policy.yaml"
    with open(path, "w") as f:
        f.write(POLICY.read_text())
        for n in range(namespaces):
            f.write(f"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-{n:05}\n"
                    f"  labels:\n    project: team-{n % 50}\n")
        for s in range(secrets):
            f.write(f"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{s:06}\n"
                    f"  namespace: ns-{s % namespaces:05}\ntype: Opaque\n")
    server = Server(binary, certs, 38443, False, path, work / "large.log")
    try:
        return {"namespaces": namespaces, "secrets": secrets,
                "startup_to_ready_ms": round(server.ready_after * 1000, 1), "rss_kib": server.rss_kib()}
    finally:
        server.stop()


def summarize(runs):
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    return {
        "req_per_s": round(med("req_per_s")), "p50_us": med("p50_us"), "p99_us": med("p99_us"),
        "p999_us": med("p999_us"), "cpu_us_per_req": round(med("cpu_us_per_req"), 1),
        "non_2xx_or_failed": sum(r["non_2xx_or_failed"] for r in runs),
    }


def table(results):
    lines = [
        "| workload | protocol | echo req/s | secretgate req/s | ratio | echo p50/p99/p99.9 µs | secretgate p50/p99/p99.9 µs | CPU µs/req echo → secretgate | p99 at half rate µs, echo → secretgate |",
        "| --- | --- | ---: | ---: | ---: | --- | --- | --- | ---: |",
    ]
    for r in results["runs"]:
        e, s = r["echo"], r["secretgate"]
        lines.append(
            f"| {r['workload']} | {r['protocol']} | {e['req_per_s']} | {s['req_per_s']} | {r['ratio_req_per_s']:.3f} "
            f"| {e['p50_us']}/{e['p99_us']}/{e['p999_us']} | {s['p50_us']}/{s['p99_us']}/{s['p999_us']} "
            f"| {e['cpu_us_per_req']} → {s['cpu_us_per_req']} | {r['half_rate_echo']['p99_us']} → {r['half_rate']['p99_us']} |")
    lines.append("")
    lines.append(f"start-up to ready: {results['startup_to_ready_ms']} ms; RSS idle {results['rss_idle_kib']} KiB, "
                 f"peak under load {results.get('rss_under_load_peak_kib', 0)} KiB "
                 f"(echo or baseline: idle {results.get('echo_rss_idle_kib', 0)} KiB, "
                 f"peak {results.get('echo_rss_under_load_peak_kib', 0)} KiB)")
    big = results.get("large_snapshot")
    if big:
        lines.append(f"large snapshot ({big['namespaces']} namespaces, {big['secrets']} secrets): "
                     f"ready in {big['startup_to_ready_ms']} ms, RSS {big['rss_kib']} KiB")
    return "\n".join(lines)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": os.uname().release,
            "h2load": subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.strip()}


if __name__ == "__main__":
    main()
