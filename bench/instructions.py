#!/usr/bin/env python3
"""Instructions per review, counted by valgrind (callgrind): secretgate against its echo.

Wall-clock figures on a shared 2-core machine move by tens of percent from run to run;
instruction counts do not (the same binary and inputs give the same count whatever else
the machine is doing). This starts `serve --echo` and `serve` (bench/policy.yaml) under
callgrind, warms each up, zeroes the counters, sends N reviews per workload over
HTTP/1.1 keep-alive (h2load, 4 connections), dumps the counters, and prints instructions
per review for both and their ratio. Everything the process does is counted: TLS, HTTP,
decoding, evaluation, encoding, the log line and metrics.

    python3 bench/instructions.py --binary target/release/secretgate

Needs valgrind and h2load (Debian packages valgrind, nghttp2-client). Writes JSON (--out,
default target/instructions.json).
"""

import argparse
import base64
import http.client
import json
import ssl
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import FIXTURES, POLICY, ROOT, Server, check_answer, derived_fixtures, make_certs

PORT = 18760

# (workload, webhook path, fixture, answer must carry no warnings). Each is sent once to
# secretgate first and must be allowed (harness.check_answer): a row must not measure a
# refusal by accident. The last two are derived from recorded fixtures
# (harness.derived_fixtures) and reviewed under team-c's secretUse rules.
WORKLOADS = [
    ("secret-opaque", "/validate", "secret-create-generic-from-literal.json", False),
    ("secret-dockerconfigjson", "/validate", "secret-create-dockerconfigjson-valid.json", False),
    ("secret-tls-rsa", "/validate", "secret-create-tls-rsa-pkcs8.json", False),
    ("pod-kubectl-run", "/mutate", "pod-create-kubectl-run-nginx.json", False),
    ("pod-git-sync", "/mutate", "pod-create-git-sync-container.json", False),
    ("pod-secret-use", "/validate-pods", "pod-secret-use.json", True),
    ("deployment-secret-use", "/validate-pods", "deployment-secret-use.json", True),
]


# Key checks whose verdicts secretgate caches (src/secrets/verdict_cache.rs): measured
# again with a unique secret per request, so every review runs the full key check.
COLD = [
    ("secret-tls-rsa-cold", "/validate", "secret-create-tls-rsa-pkcs8.json", "tls.key"),
]


def unique_bodies(fixture, field, start, n):
    """`n` copies of a recorded review whose `field` differs in a leading line of spaces
    and tabs (the counter in binary), which PEM readers skip: same verdict, new digest."""
    review = json.loads(Path(fixture).read_bytes())
    data = review["request"]["object"]["data"]
    value = base64.b64decode(data[field])
    for i in range(start, start + n):
        pad = format(i, "024b").replace("0", " ").replace("1", "\t").encode()
        data[field] = base64.b64encode(pad + b"\n" + value).decode()
        yield json.dumps(review).encode()


def send_all(path, bodies, certs):
    """Sends each body on one keep-alive connection; every answer must be allowed."""
    ctx = ssl.create_default_context(cafile=str(Path(certs) / "ca.crt"))
    conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=ctx, timeout=120)
    try:
        for body in bodies:
            conn.request("POST", path, body=body, headers={"content-type": "application/json"})
            reply = conn.getresponse()
            answer = json.loads(reply.read())
            if reply.status != 200 or answer["response"].get("allowed") is not True:
                raise SystemExit(f"{path}: a unique body was not allowed: {answer}")
    finally:
        conn.close()


def load(path, body, n):
    out = subprocess.run(
        ["h2load", "--h1", "-c", "4", "-n", str(n), "-d", str(body),
         "-H", "content-type: application/json", f"https://127.0.0.1:{PORT}{path}"],
        capture_output=True, text=True, check=True).stdout
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done", out)
    if not done or int(done.group(1)) != n:
        raise SystemExit(f"h2load did not finish {n} requests:\n{out}")


def total_instructions(dump):
    text = Path(dump).read_text()
    m = re.search(r"^summary: (\d+)", text, re.M) or re.search(r"^totals: (\d+)", text, re.M)
    if not m:
        raise SystemExit(f"no totals in {dump}")
    return int(m.group(1))


def measure(binary, echo, work, n):
    out_file = work / ("echo" if echo else "gate") / "callgrind.out"
    out_file.parent.mkdir()
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]
    server = Server(binary, work / "certs", PORT, echo, POLICY, out_file.parent / "server.log",
                    wrapper=valgrind, ready_timeout=120.0)
    pid = str(server.proc.pid)
    derived = derived_fixtures(work / "derived")
    results = {}
    try:
        for name, path, fixture, clean in WORKLOADS:
            body = derived.get(fixture, FIXTURES / fixture)
            if not echo:
                check_answer(PORT, work / "certs", path, body, clean)
            load(path, body, 200)  # warm-up: connections, allocator, lazy statics
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            load(path, body, n)
            subprocess.run(["callgrind_control", "-d", name, pid], check=True,
                           capture_output=True)
            dumps = sorted(out_file.parent.glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime)
            results[name] = total_instructions(dumps[-1]) / n
        for name, path, fixture, field in COLD:
            fixture = FIXTURES / fixture
            send_all(path, unique_bodies(fixture, field, 0, 50), work / "certs")  # warm-up
            subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
            send_all(path, unique_bodies(fixture, field, 50, n), work / "certs")
            subprocess.run(["callgrind_control", "-d", name, pid], check=True,
                           capture_output=True)
            dumps = sorted(out_file.parent.glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime)
            results[name] = total_instructions(dumps[-1]) / n
    except BaseException:
        # The first error is the one to report, with what the server logged last.
        server.stop(force=True)
        tail = (out_file.parent / "server.log").read_text(errors="replace")[-2000:]
        print(f"server log ({'echo' if echo else 'secretgate'}), last lines:\n{tail}", file=sys.stderr)
        raise
    server.stop()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "secretgate"))
    ap.add_argument("--requests", type=int, default=2000, help="per workload and server")
    ap.add_argument("--out", default=str(ROOT / "target" / "instructions.json"))
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "h2load"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: apt-get install valgrind nghttp2-client")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_certs(args.binary, work / "certs")
        echo = measure(args.binary, True, work, args.requests)
        gate = measure(args.binary, False, work, args.requests)
    rows = []
    print(f"{'workload':26} {'echo instr/review':>18} {'secretgate':>12} {'ratio':>6}")
    for name, *_ in WORKLOADS + COLD:
        rows.append({"workload": name, "echo": round(echo[name]), "secretgate": round(gate[name]),
                     "ratio": round(echo[name] / gate[name], 3)})
        r = rows[-1]
        print(f"{name:26} {r['echo']:>18,} {r['secretgate']:>12,} {r['ratio']:>6.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"requests": args.requests, "rows": rows}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
