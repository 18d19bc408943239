"""What the bench scripts share: a secretgate server on loopback, started and stopped
the way the harnesses need (load.py, soak.py, instructions.py, adversarial.py)."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "admission"
POLICY = ROOT / "bench" / "policy.yaml"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def make_certs(binary, out_dir):
    """Development certificates for 127.0.0.1 and localhost in `out_dir`."""
    subprocess.run([str(binary), "certs", "--out-dir", str(out_dir),
                    "--name", "localhost", "--name", "127.0.0.1"],
                   check=True, capture_output=True)
    return Path(out_dir)


class Server:
    """One secretgate process on loopback."""

    def __init__(self, binary, certs, port, echo, policy, log_path, wrapper=(), ready_timeout=30.0,
                 extra_args=()):
        self.port = port
        self.metrics_port = port + 1000
        args = [
            *wrapper, str(binary), "serve",
            "--listen", f"127.0.0.1:{port}",
            "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
            "--tls-cert", str(certs / "tls.crt"),
            "--tls-key", str(certs / "tls.key"),
        ]
        if echo:
            args.append("--echo")
        if policy:
            args += ["--policy", str(policy)]
        args += list(extra_args)  # e.g. ["--log-format", "json"]
        self.log = open(log_path, "w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)
        self.ready_after = self.wait_ready(ready_timeout)

    def wait_ready(self, timeout=30.0):
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server on {self.port} exited: see {self.log.name}")
            try:
                with urllib.request.urlopen(url, timeout=0.5) as r:
                    if r.status == 200:
                        return time.perf_counter() - self.started
            except OSError:
                time.sleep(0.001)
        raise SystemExit(f"server on {self.port} not ready within {timeout}s")

    def cpu_seconds(self):
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime

    def rss_kib(self, key="VmRSS"):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def stop(self, timeout=30, force=False):
        """SIGTERM, then wait. By default a server that does not stop in time, or exits
        non-zero, ends the run; with `force` it is killed and the exit code returned
        (a server busy in a review that never ends, or one that crashed)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.log.close()
            if force:
                return None
            raise SystemExit(f"server on {self.port} did not stop on SIGTERM")
        self.log.close()
        if code != 0 and not force:
            raise SystemExit(f"server on {self.port} exited {code} on SIGTERM")
        return code
