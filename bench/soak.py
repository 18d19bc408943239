#!/usr/bin/env python3
"""Soak: secretgate under steady mixed load for a long time, reporting RSS over time.

Starts `secretgate serve` on loopback with bench/policy.yaml and drives it with h2load
(nghttp2-client) in rounds: each round takes the next workload (every recorded request
fixture in turn, plus malformed bodies), alternates HTTP/1.1 and HTTP/2, and opens new
connections (so TLS handshakes, denials, warnings, patches and 400s all run). Between
rounds it samples the server's RSS from /proc. Growth is the last samples' median minus
the median after warm-up; a leak shows as steady growth, allocator noise does not.

    python3 bench/soak.py --binary target/release/secretgate --seconds 600   # documented run
    python3 bench/soak.py --smoke                                            # CI: ~20 s, asserts

Writes JSON (--out, default target/soak.json, with every round's counts) and exits 1 if
growth exceeds --max-growth-mib, any request got no answer, a round stalled (under half
its rate answered), or any answer had the wrong status class (a fixture must get 2xx, a
malformed body 4xx, nothing 5xx).
"""

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import FIXTURES, POLICY, ROOT, Server, log, make_certs

PORT = 18743


def workloads(work):
    """(name, path, body file, expected 2xx) for every request fixture and bad bodies."""
    out = []
    for f in sorted(FIXTURES.glob("*.json")):
        if f.name.startswith("response-"):
            continue
        path = "/mutate" if f.name.startswith(("pod-", "reject-pod")) else "/validate"
        out.append((f.stem, path, f, True))
    bad = {
        "not-json": b"{not json",
        "nested": b"[" * 5000,
        "wrong-version": b'{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"x"}}',
    }
    # Rounds 2, 5 and 8 are malformed bodies, so even the 20-s smoke sends each kind.
    for n, (name, body) in enumerate(bad.items()):
        p = work / f"{name}.json"
        p.write_bytes(body)
        out.insert(1 + 3 * n, (name, "/validate", p, False))
    return out


def round_once(port, path, body, h2, seconds, rps):
    flags = ["-c", "2", "-m", "8"] if h2 else ["--h1", "-c", "4"]
    args = ["h2load", *flags, "-D", str(seconds), "--rps", str(rps), "-d", str(body),
            "-H", "content-type: application/json",
            f"https://127.0.0.1:{port}{path}?timeout=10s"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    done = re.search(r"requests: \d+ total, (\d+) started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not done or not codes:
        raise SystemExit(f"cannot read h2load output:\n{out}")
    started, finished, succeeded, failed, errored, timeout = map(int, done.groups())
    c2, c3, c4, c5 = (int(g) for g in codes.groups())
    clients = 2 if h2 else 4
    return {
        "started": started, "done": finished, "answered": c2 + c3 + c4 + c5,
        # h2load's "failed" also counts every 4xx and 5xx answer; "errored" (which
        # includes "timeout") is a stream closed without a complete answer.
        "no_answer": errored, "timeout": timeout,
        # A server that accepts but stops answering leaves requests neither done nor
        # failed: a round far below its rate is a stall.
        "stalled": c2 + c3 + c4 + c5 < 0.5 * rps * clients * seconds,
        "2xx": c2, "4xx": c4, "5xx": c5,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "secretgate"))
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--round-seconds", type=int, default=5)
    ap.add_argument("--rps", type=int, default=100, help="per h2load client")
    ap.add_argument("--max-growth-mib", type=float, default=None)
    ap.add_argument("--smoke", action="store_true", help="20 s, 2 s rounds, growth < 16 MiB")
    ap.add_argument("--out", default=str(ROOT / "target" / "soak.json"))
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.round_seconds = 20, 2
        args.max_growth_mib = 16.0 if args.max_growth_mib is None else args.max_growth_mib
    if not shutil.which("h2load"):
        raise SystemExit("h2load not found: apt-get install nghttp2-client")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        certs = make_certs(args.binary, work / "certs")
        server = Server(args.binary, certs, PORT, False, POLICY, work / "server.log")
        try:
            loads = workloads(work)
            samples, rounds = [], []
            totals = {"answered": 0, "no_answer": 0, "stalled": 0, "unexpected": 0}
            started = time.time()
            samples.append({"t": 0.0, "rss_kib": server.rss_kib(), "requests": 0})
            i = 0
            while time.time() - started < args.seconds:
                name, path, body, want_2xx = loads[i % len(loads)]
                h2 = i % 2 == 1
                r = round_once(PORT, path, body, h2=h2, seconds=args.round_seconds, rps=args.rps)
                i += 1
                totals["answered"] += r["answered"]
                totals["no_answer"] += r["no_answer"]
                # A 5xx is never right; a bad body must get 4xx, a fixture 2xx.
                wrong = r["5xx"] + (r["4xx"] if want_2xx else r["2xx"])
                totals["unexpected"] += wrong
                rounds.append({"workload": name, "protocol": "h2" if h2 else "http/1.1", **r})
                totals["stalled"] += int(r["stalled"])
                if wrong or r["no_answer"] or r["stalled"]:
                    log(f"{name} over {rounds[-1]['protocol']}: {r}")
                samples.append({"t": round(time.time() - started, 1),
                                "rss_kib": server.rss_kib(), "requests": totals["answered"]})
                if len(samples) % 10 == 0:
                    s = samples[-1]
                    log(f"{s['t']:7.1f}s  rss {s['rss_kib'] / 1024:6.1f} MiB  requests {s['requests']}")
        finally:
            # Exits non-zero unless the server stops cleanly (code 0) on SIGTERM.
            server.stop()

    # Warm-up: the first fifth of the run (every workload seen once, pools filled).
    n = len(samples)
    warm = [s["rss_kib"] for s in samples[max(1, n // 5): max(2, n // 5 + 3)]]
    last = [s["rss_kib"] for s in samples[-3:]]
    growth_mib = (statistics.median(last) - statistics.median(warm)) / 1024
    result = {
        "seconds": args.seconds, "round_count": i, **totals,
        "rss_start_mib": samples[0]["rss_kib"] / 1024,
        "rss_after_warmup_mib": statistics.median(warm) / 1024,
        "rss_end_mib": statistics.median(last) / 1024,
        "rss_max_mib": max(s["rss_kib"] for s in samples) / 1024,
        "growth_after_warmup_mib": round(growth_mib, 2),
        "samples": samples,
        "rounds": rounds,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"soak {args.seconds}s, {i} rounds: {totals['answered']} answered, "
          f"{totals['no_answer']} without an answer, {totals['stalled']} stalled rounds, "
          f"{totals['unexpected']} unexpected statuses; RSS "
          f"{result['rss_start_mib']:.1f} → {result['rss_after_warmup_mib']:.1f} (warm) → "
          f"{result['rss_end_mib']:.1f} MiB (max {result['rss_max_mib']:.1f}); growth after "
          f"warm-up {growth_mib:+.2f} MiB")
    failed = totals["no_answer"] or totals["unexpected"] or totals["stalled"]
    if args.max_growth_mib is not None and growth_mib > args.max_growth_mib:
        log(f"RSS grew {growth_mib:.2f} MiB > {args.max_growth_mib} MiB")
        failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
