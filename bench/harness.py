"""What the bench scripts share: a secretgate server on loopback, started and stopped
the way the harnesses need (load.py, soak.py, instructions.py, adversarial.py)."""

import copy
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "admission"
POLICY = ROOT / "bench" / "policy.yaml"
# The namespace of bench/policy.yaml's team-c project (secretUse rules), where the derived
# fixtures put recorded team-a requests.
RULES_NAMESPACE = "team-c"
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


def derived_fixtures(out_dir):
    """Request bodies for the newer /validate-pods rules, written to `out_dir`, derived
    from recorded fixtures (README of the fixtures folder says how each was recorded):

    - pod-secret-use.json: pod-create-existing-imagepullsecrets.json (an admin creates a
      pod pulling registry.example.com:5000/team/app with imagePullSecrets regcred) in
      namespace team-c;
    - deployment-secret-use.json: the Deployment of inputs/deployment.yaml as the API
      server sends it on CREATE (the envelope of the same admin request; the pod template
      as defaulted in the pod the ReplicaSet created from it,
      pod-create-by-replicaset-controller.json, without what pod admission adds: service
      account, token volume, tolerations, priority), in namespace team-c. No Deployment
      review was recorded.

    Returns {file name: path}."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pod_review = json.loads((FIXTURES / "pod-create-existing-imagepullsecrets.json").read_text())
    pod_review["request"]["namespace"] = RULES_NAMESPACE
    pod_review["request"]["object"]["metadata"]["namespace"] = RULES_NAMESPACE

    rs_pod = json.loads((FIXTURES / "pod-create-by-replicaset-controller.json").read_text())
    spec = copy.deepcopy(rs_pod["request"]["object"]["spec"])
    for added_by_pod_admission in ("volumes", "serviceAccountName", "serviceAccount", "tolerations",
                                   "priority", "preemptionPolicy"):
        spec.pop(added_by_pod_admission, None)
    for container in spec["containers"]:
        container.pop("volumeMounts", None)
    deployment = {
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": RULES_NAMESPACE, "generation": 1,
                     "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": spec},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
        },
        "status": {},
    }
    envelope = copy.deepcopy(pod_review)
    request = envelope["request"]
    request["uid"] = "5d1e4c2a-9b7f-4e1a-8c3d-2f6a0b9e7d41"
    gvk = {"group": "apps", "version": "v1", "kind": "Deployment"}
    gvr = {"group": "apps", "version": "v1", "resource": "deployments"}
    request.update(kind=gvk, requestKind=gvk, resource=gvr, requestResource=gvr, name="web",
                   object=deployment)
    paths = {}
    for name, review in (("pod-secret-use.json", pod_review),
                         ("deployment-secret-use.json", envelope)):
        paths[name] = out_dir / name
        paths[name].write_text(json.dumps(review))
    return paths


def check_answer(port, certs, path, body, clean):
    """Sends `body` once and refuses a row that would measure the wrong path: anything but
    HTTP 200 with an AdmissionReview that allows the request (its uid echoed), and with
    `clean`, one without warnings either (a warning means a rule took another branch)."""
    ctx = ssl.create_default_context(cafile=str(Path(certs) / "ca.crt"))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    data = Path(body).read_bytes()
    try:
        conn.request("POST", path, body=data, headers={"content-type": "application/json"})
        reply = conn.getresponse()
        text = reply.read()
    finally:
        conn.close()
    where = f"{path} with {Path(body).name}"
    if reply.status != 200:
        raise SystemExit(f"{where}: HTTP {reply.status}: {text[:500]!r}")
    response = json.loads(text).get("response") or {}
    if response.get("uid") != json.loads(data)["request"]["uid"]:
        raise SystemExit(f"{where}: the answer's uid is not the request's: {text[:500]!r}")
    if response.get("allowed") is not True:
        raise SystemExit(f"{where}: not allowed: {response.get('status')}")
    if clean and response.get("warnings"):
        raise SystemExit(f"{where}: allowed with warnings: {response['warnings']}")
    return response
