#!/usr/bin/env python3
"""Worst case: what one tenant's request costs (issue 13).

Builds AdmissionReview bodies that stay inside the API server's own limits but are shaped
to cost the most (bench/adversarial_shapes.py: annotations × data values, near-miss
substrings, 100,000 registry keys, 10,000 known_hosts lines, a 1 MiB certificate chain,
1,500 containers, deep/wide/many managedFields, …) and measures each against a running
secretgate with bench/adversarial-policy.yaml (every check on for namespace tenant-x):

- server CPU per review (/proc/PID/stat utime+stime around the reviews) and wall time per
  review, reviews sent one after another on one keep-alive HTTPS connection;
- response body size, longest log line (JSON format; text format in the concurrent phase),
  peak RSS (VmHWM of a fresh server per shape);
- a normal review sent at the same time: while 2 client processes send the shape in a
  loop, another client sends the recorded dockerconfigjson review every 50 ms on its own
  connection, and /healthz is probed every 50 ms on the metrics port (plain HTTP) and on
  the TLS port, each probe on a new connection like the kubelet's.

Each shape gets fresh servers, so one shape's stuck review cannot spill into the next.
A request gets --timeout seconds (30); a review that outlives it is reported as a miss,
and its server-side cost is read from its log line when it ends within --finish-wait.

    cargo build --release --locked          # --binary defaults to $CARGO_TARGET_DIR/release
    python3 bench/adversarial.py --out bench/adversarial-$(git rev-parse --short HEAD).json
    python3 bench/adversarial.py --smoke --binary target/debug/secretgate    # CI, ~15 s
    python3 bench/adversarial.py --only 3 7 10                                # some shapes
    python3 bench/adversarial.py --table bench/adversarial-553c37f.json       # a saved run

Prints a markdown table (stdout) and writes JSON (--out). Exit status 1 on a hard error:
a connection error or a review left without an answer, a status other than 200, a server
that crashed, a response over 64 KiB or a log line over --log-line-cap-kib. CPU and
latency targets are flagged in the table; --strict fails on those too.
"""

import argparse
import http.client
import json
import math
import multiprocessing
import os
import platform
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import adversarial_shapes as shapes
from harness import FIXTURES, ROOT, Server, log, make_certs

POLICY = ROOT / "bench" / "adversarial-policy.yaml"
NORMAL = FIXTURES / "secret-create-dockerconfigjson-valid.json"
BASE_PORT = 19443  # + 2 per shape; metrics port = port + 1000 (harness)

# Targets (issue 13). The log-line cap is containerd's default max_container_log_line_size:
# a longer line is split into partial lines that log shippers may not join again.
CPU_MS = 20.0
RESPONSE_KIB = 64.0
NORMAL_MS = 10.0
HEALTHZ_MS = 1000.0  # the kubelet's default probe timeoutSeconds
LOG_LINE_KIB = 16.0
RSS_MIB = 256.0  # charts/secretgate resources.limits.memory: above it the pod is OOM-killed

NETWORK_ERRORS = (OSError, http.client.HTTPException)


def tls_context(ca):
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols(["http/1.1"])  # what the API server uses through a Service
    return ctx


class Client:
    """One keep-alive HTTPS connection; reconnects after an error."""

    def __init__(self, port, ctx, timeout):
        self.port, self.ctx, self.timeout = port, ctx, timeout
        self.conn = None

    def post(self, path, body):
        """(status, body, seconds). Raises on a connection error or timeout."""
        if self.conn is None:
            self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                                    timeout=self.timeout)
        started = time.perf_counter()
        try:
            self.conn.request("POST", f"{path}?timeout=10s", body=body,
                              headers={"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            data = resp.read()
        except BaseException:
            self.close()
            raise
        return resp.status, data, time.perf_counter() - started

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def is_timeout(e):
    return isinstance(e, (TimeoutError, socket.timeout))


class LogScanner:
    """Reads a server log from an offset, line by line, without holding long lines: keeps
    each line's length, its first 8 KiB (uid, message) and last 512 bytes (duration)."""

    def __init__(self, path):
        self.path = Path(path)
        self.offset = self.path.stat().st_size
        self.length, self.head, self.tail = 0, b"", b""
        self.lines = []  # (length, head, tail)

    def read(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            while chunk := f.read(1 << 20):
                self.offset += len(chunk)
                start = 0
                while True:
                    nl = chunk.find(b"\n", start)
                    piece = chunk[start: nl if nl >= 0 else len(chunk)]
                    self.length += len(piece)
                    if len(self.head) < 8192:
                        self.head += piece[: 8192 - len(self.head)]
                    self.tail = (self.tail + piece[-512:])[-512:]
                    if nl < 0:
                        break
                    self.lines.append((self.length, self.head, self.tail))
                    self.length, self.head, self.tail = 0, b"", b""
                    start = nl + 1
        return self

    def reviews(self, uid):
        """The review lines for `uid`: length, server-side duration (µs) and verdict."""
        out = []
        for length, head, tail in self.lines:
            if uid.encode() in head and b"review" in head:
                duration = re.search(rb'duration_us[=":]+(\d+)', tail)
                verdict = re.search(rb'verdict[=":]+(\w+)', head)
                out.append({"length": length,
                            "duration_us": int(duration.group(1)) if duration else None,
                            "verdict": verdict.group(1).decode() if verdict else None})
        return out

    def longest(self):
        return max((length for length, _, _ in self.lines), default=0)


def request_uid(body):
    """request.uid without decoding (json.loads would choke on the deep shape): the
    generated shapes' `adversarial-…` uid (keys are sorted, so the object's own uid may
    come first), else the first "uid" (the recorded fixture)."""
    found = re.search(rb'"uid":\s*"(adversarial-[^"]+)"', body) or re.search(
        rb'"uid":\s*"([^"]+)"', body)
    return found.group(1).decode()


def verdict_of(status, data):
    """A short description of the answer: HTTP status, allowed/denied, findings."""
    try:
        resp = json.loads(data)["response"]
    except (ValueError, KeyError, TypeError):
        return f"{status} (not an AdmissionReview)"
    if resp.get("patch"):
        what = "patched"
    elif resp.get("allowed"):
        what = "allowed"
    else:
        what = f"denied {resp.get('status', {}).get('code', '?')}"
    warnings = len(resp.get("warnings") or [])
    return f"{status} {what}" + (f", {warnings} warnings" if warnings else "")


def start_server(args, certs, port, work, name, log_format):
    return Server(args.binary, certs, port, False, args.policy, work / f"{name}.{log_format}.log",
                  extra_args=["--log-format", log_format])


def cpu_of(server):
    try:
        return server.cpu_seconds()
    except OSError:  # the process is gone
        return float("nan")


def hwm_of(server):
    try:
        return server.rss_kib("VmHWM")
    except OSError:
        return 0


def crashed(server):
    code = server.proc.poll()
    return None if code is None else code


def sequential(args, server, ctx, shape, normal):
    """N reviews of the shape, one after another on one connection, on a fresh server."""
    client = Client(server.port, ctx, args.timeout)
    out = {"errors": []}
    try:
        client.post("/validate", normal)  # handshake and first-request paths
    except NETWORK_ERRORS as e:
        out["errors"].append(f"warm-up review: {e!r}")
        return out
    scanner = LogScanner(server.log.name)
    hwm_before = hwm_of(server)
    cpu_before = cpu_of(server)
    walls, sizes, statuses = [], [], []
    timed_out = False
    started = time.perf_counter()
    while len(walls) < args.reviews and (not walls or time.perf_counter() - started < args.budget):
        try:
            status, data, seconds = client.post(shape.path, shape.body)
        except NETWORK_ERRORS as e:
            if is_timeout(e):
                timed_out = True
                out["errors"].append(f"no answer within {args.timeout:.0f} s")
            else:
                out["errors"].append(f"connection error: {e!r}")
            break
        walls.append(seconds)
        sizes.append(len(data))
        statuses.append(status)
        if len(walls) == 1:
            out["answer"] = verdict_of(status, data)
    client.close()
    uid = request_uid(shape.body)
    expected = len(walls) + int(timed_out)
    finished_late = None
    if timed_out:
        # The server goes on reviewing after the client gave up: wait for its log line,
        # so the CPU it took is known (or a lower bound after --finish-wait).
        deadline = time.perf_counter() + args.finish_wait
        while time.perf_counter() < deadline and crashed(server) is None:
            if len(scanner.read().reviews(uid)) >= expected:
                finished_late = True
                break
            time.sleep(0.5)
        else:
            finished_late = False
    cpu = cpu_of(server) - cpu_before
    lines = scanner.read().reviews(uid)
    durations = [line["duration_us"] for line in lines if line["duration_us"] is not None]
    if finished_late and lines:
        out["answer"] = f"none in {args.timeout:.0f} s (server: {lines[-1]['verdict']})"
    elif timed_out:
        out["answer"] = f"none in {args.timeout:.0f} s"
    completed = len(walls) + int(bool(finished_late))
    out.update({
        "reviews": len(walls),
        "timed_out": timed_out,
        "finished_after_timeout": finished_late,
        "cpu_ms_per_review": cpu * 1000 / max(completed, 1),
        "cpu_ms_is_lower_bound": timed_out and not finished_late,
        "wall_ms_median": statistics.median(walls) * 1000 if walls else None,
        "wall_ms_max": max(walls) * 1000 if walls else None,
        "server_ms_max": max(durations) / 1000 if durations else None,
        "response_bytes_max": max(sizes) if sizes else None,
        "statuses": sorted(set(statuses)),
        # The longest of this shape's review lines (None: none was written), and the
        # longest line of any kind (what a log pipeline gets).
        "log_line_bytes_max_json": max((line["length"] for line in lines), default=None),
        "log_line_bytes_max_any_json": scanner.longest(),
        "rss_hwm_kib_before": hwm_before,
        "rss_hwm_kib": hwm_of(server),
    })
    if timed_out and not finished_late:
        out["server_ms_max"] = None
    return out


def heavy_loop(port, ca, path, body, timeout, stop, done, missed):
    """Child process: send the shape until told to stop. Niced, so that on a small machine
    the load generator yields to the server and to the clients that measure."""
    os.nice(10)
    client = Client(port, tls_context(ca), timeout)
    while not stop.is_set():
        try:
            client.post(path, body)
            with done.get_lock():
                done.value += 1
        except NETWORK_ERRORS:
            with missed.get_lock():
                missed.value += 1


def timed_loop(interval, until, request):
    """Calls `request()` every `interval` s until `until`; returns (latencies, failures)."""
    latencies, failures = [], []
    next_at = time.perf_counter()
    while time.perf_counter() < until:
        started = time.perf_counter()
        try:
            request()
            latencies.append(time.perf_counter() - started)
        except NETWORK_ERRORS as e:
            latencies.append(time.perf_counter() - started)
            failures.append("timeout" if is_timeout(e) else repr(e))
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
        next_at = max(next_at, time.perf_counter() - interval)
    return latencies, failures


def concurrent(args, server, ctx, shape, normal):
    """The shape in a loop from --heavy-clients processes; meanwhile a normal review every
    50 ms on its own connection and /healthz probes on both ports (new connection each)."""
    mp = multiprocessing.get_context("fork")
    stop = mp.Event()
    done, missed = mp.Value("i", 0), mp.Value("i", 0)
    procs = [mp.Process(target=heavy_loop, daemon=True,
                        args=(server.port, args.ca, shape.path, shape.body, args.timeout,
                              stop, done, missed))
             for _ in range(args.heavy_clients)]
    scanner = LogScanner(server.log.name)
    for p in procs:
        p.start()
    until = time.perf_counter() + args.concurrent_seconds
    normal_client = Client(server.port, ctx, args.normal_timeout)
    results = {}

    def normal_request():
        status, _, _ = normal_client.post("/validate", normal)
        if status != 200:
            raise http.client.HTTPException(f"status {status}")

    def probe(tls):
        def request():
            if tls:
                conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx,
                                                   timeout=args.normal_timeout)
            else:
                conn = http.client.HTTPConnection("127.0.0.1", server.metrics_port,
                                                  timeout=args.normal_timeout)
            try:
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    raise http.client.HTTPException(f"status {resp.status}")
            finally:
                conn.close()
        return request

    def run(name, request):
        results[name] = timed_loop(args.interval, until, request)

    threads = [threading.Thread(target=run, args=("normal", normal_request)),
               threading.Thread(target=run, args=("healthz_metrics", probe(False))),
               threading.Thread(target=run, args=("healthz_tls", probe(True)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    normal_client.close()
    stop.set()
    for p in procs:
        p.join(timeout=1.0)
        if p.is_alive():  # blocked in a review that has not ended: our own child
            p.terminate()
            p.join()
    heavy_lines = scanner.read().reviews(request_uid(shape.body))

    def summary(name):
        latencies, failures = results[name]
        ms = sorted(x * 1000 for x in latencies)
        return {
            "requests": len(ms),
            "max_ms": ms[-1] if ms else None,
            "p99_ms": ms[max(0, math.ceil(len(ms) * 0.99) - 1)] if ms else None,  # nearest rank
            "p50_ms": statistics.median(ms) if ms else None,
            "failures": len(failures),
            "timeouts": failures.count("timeout"),
            "errors": sorted(set(f for f in failures if f != "timeout"))[:3],
        }

    return {
        "heavy_clients": args.heavy_clients,
        "heavy_reviews_done": done.value,
        "heavy_requests_failed": missed.value,
        "normal": summary("normal"),
        "healthz_metrics": summary("healthz_metrics"),
        "healthz_tls": summary("healthz_tls"),
        "heavy_reviews_logged": len(heavy_lines),
        "log_line_bytes_max_text": max((line["length"] for line in heavy_lines), default=None),
        "log_line_bytes_max_any_text": scanner.longest(),
        "rss_hwm_kib": hwm_of(server),
    }


def measure(args, certs, work, index, shape, normal, ctx):
    row = {"shape": shape.name, "path": shape.path, "about": shape.about,
           "params": shape.params, "limits": shape.limits, "body_bytes": len(shape.body),
           "hard_errors": [], "misses": []}
    port = BASE_PORT + 2 * index
    server = start_server(args, certs, port, work, shape.name, "json")
    try:
        row["sequential"] = seq = sequential(args, server, ctx, shape, normal)
    finally:
        code = crashed(server)
        server.stop(timeout=2, force=True)
    if code is not None:
        row["hard_errors"].append(f"server exited with {code} during the reviews")
    server = start_server(args, certs, port + 1, work, shape.name, "text")
    try:
        row["concurrent"] = conc = concurrent(args, server, ctx, shape, normal)
    finally:
        code = crashed(server)
        server.stop(timeout=2, force=True)
    if code is not None:
        row["hard_errors"].append(f"server exited with {code} during the concurrent phase")

    row["hard_errors"] += seq["errors"]
    if seq.get("statuses") and seq["statuses"] != [200]:
        row["hard_errors"].append(f"HTTP status {seq['statuses']}")
    if (seq.get("response_bytes_max") or 0) > RESPONSE_KIB * 1024:
        row["hard_errors"].append(f"response over {RESPONSE_KIB:.0f} KiB")
    cap = args.log_line_cap_kib * 1024
    if max(seq.get("log_line_bytes_max_any_json", 0), conc["log_line_bytes_max_any_text"]) > cap:
        row["hard_errors"].append(f"log line over {args.log_line_cap_kib:g} KiB")
    if conc["normal"]["timeouts"] or conc["normal"]["errors"]:
        row["hard_errors"].append("a normal review sent at the same time got no answer")
    if seq.get("cpu_ms_per_review", 0) >= CPU_MS or seq.get("timed_out"):
        row["misses"].append(f"CPU per review ≥ {CPU_MS:g} ms")
    if (conc["normal"]["max_ms"] or 0) >= NORMAL_MS:
        row["misses"].append(f"normal review at the same time ≥ {NORMAL_MS:g} ms")
    healthz = max(conc[k]["max_ms"] or 0 for k in ("healthz_metrics", "healthz_tls"))
    if max(seq.get("rss_hwm_kib", 0), conc["rss_hwm_kib"]) >= RSS_MIB * 1024:
        row["misses"].append(f"peak RSS ≥ {RSS_MIB:g} MiB (the chart's memory limit)")
    if healthz >= HEALTHZ_MS or conc["healthz_metrics"]["failures"] or conc["healthz_tls"]["failures"]:
        row["misses"].append(f"/healthz ≥ {HEALTHZ_MS:g} ms")
    return row


# --- output --------------------------------------------------------------------------------

def num(x, digits=1):
    return "—" if x is None else f"{x:,.{digits}f}"


def flag(text, miss):
    return f"{text} ✗" if miss else text


def table(rows, cap_kib):
    head = ("| shape | body KiB | CPU ms/review | wall ms/review | response KiB | "
            "longest log line KiB (json / text) | peak RSS MiB (1 / 2 at a time) | "
            "concurrent normal review "
            "max (p99) ms | healthz max ms (metrics / TLS) | answer |")
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        s, c = r["sequential"], r["concurrent"]
        n = s.get("reviews", 0)
        cpu = s.get("cpu_ms_per_review")
        if s.get("timed_out"):
            cpu_text = (f"> {num(cpu, 0)}" if s.get("cpu_ms_is_lower_bound") else num(cpu, 0))
            wall = (f"{num(s.get('server_ms_max'), 0)} (client timeout)"
                    if s.get("finished_after_timeout") else "timeout (still running)")
            cpu_cell = flag(f"{cpu_text} (n={n + int(bool(s.get('finished_after_timeout')))})", True)
        else:
            cpu_cell = flag(f"{num(cpu, 2 if (cpu or 0) < 10 else 1)} (n={n})", (cpu or 0) >= CPU_MS)
            wall = num(s.get("wall_ms_median"), 2 if (s.get("wall_ms_median") or 0) < 10 else 1)
        resp = s.get("response_bytes_max")
        resp_cell = flag(num(resp / 1024 if resp is not None else None),
                         (resp or 0) > RESPONSE_KIB * 1024)
        lj, lt = s.get("log_line_bytes_max_json"), c["log_line_bytes_max_text"]
        log_cell = flag(f"{num(lj / 1024 if lj else None)} / {num(lt / 1024 if lt else None)}",
                        max(s.get("log_line_bytes_max_any_json", 0),
                            c["log_line_bytes_max_any_text"]) > cap_kib * 1024)
        rss, rss2 = s.get("rss_hwm_kib"), c["rss_hwm_kib"]
        rss_cell = flag(f"{num(rss / 1024 if rss else None)} / {num(rss2 / 1024)}",
                        max(rss or 0, rss2) >= RSS_MIB * 1024)
        nm = c["normal"]
        normal_cell = f"{num(nm['max_ms'])} ({num(nm['p99_ms'])})"
        if nm["timeouts"]:
            normal_cell += f", {nm['timeouts']} timeout" + ("s" if nm["timeouts"] > 1 else "")
        normal_cell = flag(normal_cell, (nm["max_ms"] or 0) >= NORMAL_MS or nm["failures"])
        hm, ht = c["healthz_metrics"], c["healthz_tls"]
        hz_cell = flag(f"{num(hm['max_ms'])} / {num(ht['max_ms'])}",
                       max(hm["max_ms"] or 0, ht["max_ms"] or 0) >= HEALTHZ_MS
                       or hm["failures"] or ht["failures"])
        answer = s.get("answer", "; ".join(s.get("errors", [])) or "—")
        lines.append(f"| {r['shape']} | {num(r['body_bytes'] / 1024)} | "
                     f"{cpu_cell} | {wall} | {resp_cell} | {log_cell} | "
                     f"{rss_cell} | {normal_cell} | {hz_cell} | {answer} |")
    return "\n".join(lines)


def legend(cap_kib):
    return (f"Targets: CPU < {CPU_MS:g} ms/review, response < {RESPONSE_KIB:g} KiB, log line ≤ "
            f"{cap_kib:g} KiB, normal review sent at the same time < {NORMAL_MS:g} ms, /healthz < "
            f"{HEALTHZ_MS:g} ms, peak RSS < {RSS_MIB:g} MiB (chart limit); ✗ = missed. "
            "n = reviews measured; '—' = no review of the shape finished.")


def machine():
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version()}


def git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    ap.add_argument("--binary", type=Path, default=target / "release" / "secretgate")
    ap.add_argument("--policy", type=Path, default=POLICY)
    ap.add_argument("--out", type=Path, default=ROOT / "target" / "adversarial.json")
    ap.add_argument("--smoke", action="store_true",
                    help="small bodies, 1-2 reviews per shape, 1-s concurrent phase: for CI")
    ap.add_argument("--strict", action="store_true", help="also fail on CPU/latency target misses")
    ap.add_argument("--only", nargs="+", metavar="SHAPE",
                    help="shape names or number prefixes (e.g. 3 7 10)")
    ap.add_argument("--reviews", type=int, default=200, help="most reviews per shape, sequential")
    ap.add_argument("--budget", type=float, default=5.0,
                    help="seconds of sequential reviews per shape (at least one review)")
    ap.add_argument("--timeout", type=float, default=30.0, help="client timeout per heavy review")
    ap.add_argument("--normal-timeout", type=float, default=10.0,
                    help="timeout of the normal review and probes (the webhook's timeoutSeconds)")
    ap.add_argument("--finish-wait", type=float, default=180.0,
                    help="after a timeout, seconds to wait for the server to finish that review")
    ap.add_argument("--concurrent-seconds", type=float, default=5.0)
    ap.add_argument("--heavy-clients", type=int, default=2,
                    help="processes sending the shape in the concurrent phase (2 = the "
                         "runtime's worker threads on a 2-core machine)")
    ap.add_argument("--interval", type=float, default=0.05,
                    help="seconds between normal reviews and between probes")
    ap.add_argument("--log-line-cap-kib", type=float, default=LOG_LINE_KIB)
    ap.add_argument("--table", type=Path, metavar="JSON",
                    help="print the table of a saved run (--out of an earlier run) and exit")
    args = ap.parse_args()
    if args.table:
        saved = json.loads(args.table.read_text())
        print(legend(saved["targets"]["log_line_kib"]) + "\n")
        print(table(saved["shapes"], saved["targets"]["log_line_kib"]))
        return
    if args.smoke:
        args.reviews, args.budget, args.concurrent_seconds = 2, 0.5, 1.0
        args.finish_wait = min(args.finish_wait, 30.0)
    if not args.binary.exists():
        raise SystemExit(f"{args.binary} not found: cargo build --release --locked, or --binary")
    if not shutil.which("openssl") and not args.smoke:
        raise SystemExit("openssl not found (the TLS shape makes an RSA key with it)")

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="secretgate-adversarial-"))
    certs = make_certs(args.binary, work / "certs")
    args.ca = certs / "ca.crt"
    ctx = tls_context(args.ca)
    normal = NORMAL.read_bytes()
    gen = shapes.Context(fixtures=FIXTURES, certs=certs, work=work, smoke=args.smoke)
    selected = shapes.selected(args.only)
    if not selected:
        raise SystemExit(f"no shape matches {args.only}")
    rows = []
    for index, (name, make) in enumerate(selected):
        t = time.perf_counter()
        shape = shapes.build(gen, name, make)
        generated = time.perf_counter() - t
        log(f"{name}: {len(shape.body) / 1024:.0f} KiB body (built in {generated:.2f} s)")
        row = measure(args, certs, work, index, shape, normal, ctx)
        row["generate_seconds"] = round(generated, 3)
        row["seconds"] = round(time.perf_counter() - t, 1)
        rows.append(row)
        s = row["sequential"]
        log(f"  cpu {num(s.get('cpu_ms_per_review'))} ms/review (n={s.get('reviews')}), "
            f"response {num((s.get('response_bytes_max') or 0) / 1024)} KiB, normal max "
            f"{num(row['concurrent']['normal']['max_ms'])} ms, {row['seconds']} s"
            + (f"; HARD: {row['hard_errors']}" if row["hard_errors"] else ""))
        del shape
    elapsed = time.perf_counter() - started

    result = {
        "command": "python3 bench/adversarial.py " + " ".join(
            a for a in sys.argv[1:]),
        "commit": git_commit(),
        "binary": str(args.binary),
        "version": subprocess.run([str(args.binary), "--version"], capture_output=True,
                                  text=True).stdout.strip(),
        "machine": machine(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "targets": {"cpu_ms_per_review": CPU_MS, "response_kib": RESPONSE_KIB,
                    "normal_review_concurrent_max_ms": NORMAL_MS, "healthz_max_ms": HEALTHZ_MS,
                    "log_line_kib": args.log_line_cap_kib, "peak_rss_mib": RSS_MIB},
        "seconds": round(elapsed, 1),
        "shapes": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    shutil.rmtree(work, ignore_errors=True)

    print(legend(args.log_line_cap_kib) + "\n")
    print(table(rows, args.log_line_cap_kib))
    hard = [(r["shape"], e) for r in rows for e in r["hard_errors"]]
    misses = [(r["shape"], m) for r in rows for m in r["misses"]]
    print(f"\n{len(rows)} shapes in {elapsed:.0f} s; {len(hard)} hard errors, "
          f"{len(misses)} target misses; JSON: {args.out}")
    for shape, e in hard:
        log(f"hard error: {shape}: {e}")
    raise SystemExit(1 if hard or (args.strict and misses) else 0)


if __name__ == "__main__":
    main()
