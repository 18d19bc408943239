"""The part of image/check.py that runs the image's binary: from the unpacked layers, as
user 65532:65532, in a chroot that holds the image's files and nothing else (no libc, no
/proc, no /dev), so whatever runs here needs nothing the image lacks.

  - `/secretgate --version` prints `secretgate VERSION` (Cargo.toml's);
  - `/secretgate serve` (the image's CMD, file mode, development certificates in a
    directory owned by 65532) answers /readyz and completes a TLS handshake on its HTTPS
    port, then exits 0 on SIGTERM;
  - name lookups of the static glibc: `/secretgate audit` against a kubeconfig whose
    server is a DNS name, with /etc/resolv.conf pointing at a stub DNS server on
    127.0.0.153 (as a runtime writes resolv.conf into a pod), and once more through
    /etc/hosts (`localhost`): the stub must see the query, and the client must reach the
    HTTPS port above (an HTTP error from it, not a lookup or connect error).

Needs root (chroot, port 53 on 127.0.0.153).
"""

import os
import signal
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.request
from pathlib import Path

USER = "65532:65532"
DNS_ADDRESS = "127.0.0.153"
DNS_NAME = "apiserver.secretgate.test"
# The environment the image's config gives: PATH only (no HOME, no KUBECONFIG).
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


class CheckFailed(Exception):
    pass


def ok(message: str) -> None:
    print(f"image check: ok   {message}")


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)
    ok(message)


def unpack(tree: dict[str, tuple[tarfile.TarInfo, bytes | None]], rootfs: Path) -> None:
    for name in sorted(tree):
        member, data = tree[name]
        path = rootfs / name
        if member.isdir():
            path.mkdir(mode=member.mode)
        else:
            path.write_bytes(data or b"")
        os.chmod(path, member.mode)


def in_image(rootfs: Path, *args: str) -> list[str]:
    return ["chroot", f"--userspec={USER}", str(rootfs), *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StubDns:
    """Answers A queries for DNS_NAME with 127.0.0.1; AAAA with no address; else NXDOMAIN."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((DNS_ADDRESS, 53))
        self.sock.settimeout(0.2)
        self.seen: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                query, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            try:
                self.sock.sendto(self.answer(query), peer)
            except (IndexError, ValueError):
                continue  # not a query this stub understands: no answer

    def answer(self, query: bytes) -> bytes:
        labels, i = [], 12
        while query[i] != 0:
            labels.append(query[i + 1 : i + 1 + query[i]].decode("ascii").lower())
            i += 1 + query[i]
        question = query[12 : i + 5]
        qtype = int.from_bytes(query[i + 1 : i + 3], "big")
        name = ".".join(labels)
        self.seen.append(name)
        header = query[:2]
        if name != DNS_NAME:
            return header + b"\x81\x83" + b"\x00\x01\x00\x00\x00\x00\x00\x00" + question
        if qtype != 1:  # AAAA and others: the name exists, with no such record
            return header + b"\x81\x80" + b"\x00\x01\x00\x00\x00\x00\x00\x00" + question
        record = b"\xc0\x0c" + b"\x00\x01\x00\x01" + (60).to_bytes(4, "big") + b"\x00\x04" + bytes([127, 0, 0, 1])
        return header + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00" + question + record

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def wait_ready(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise CheckFailed(f"serve exited ({server.returncode}) in the image:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise CheckFailed(f"serve in the image did not answer {url} with 200 in 60 s:\n{log.read_text()}")


def audit_through(rootfs: Path, server_host: str, https_port: int) -> subprocess.CompletedProcess:
    kubeconfig = rootfs / "check" / f"kubeconfig-{server_host}"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: check\n"
        f"clusters:\n- name: check\n  cluster:\n    server: https://{server_host}:{https_port}\n"
        "    insecure-skip-tls-verify: true\n"
        "users:\n- name: check\n  user:\n    token: image-check\n"
        "contexts:\n- name: check\n  context:\n    cluster: check\n    user: check\n"
    )
    os.chown(kubeconfig, 65532, 65532)
    return subprocess.run(
        in_image(rootfs, "/secretgate", "audit", "--kubeconfig", f"/check/{kubeconfig.name}"),
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )


def check_lookup(rootfs: Path, host: str, https_port: int, how: str) -> None:
    """serve answers the Kubernetes API paths with 404: an audit that gets a 404 has
    resolved the name, connected and completed TLS."""
    result = audit_through(rootfs, host, https_port)
    output = result.stdout + result.stderr
    expect(
        result.returncode == 2 and "404" in output,
        f"{how}: `audit` in the image resolved {host} and got serve's HTTP 404"
        + ("" if "404" in output else f" (exit {result.returncode}: {output.strip()[-400:]})"),
    )


def run(tree: dict, version: str, scratch: Path) -> None:
    if os.geteuid() != 0:
        raise CheckFailed("running the binary in a chroot of the image needs root")
    rootfs = scratch / "rootfs"
    rootfs.mkdir()
    unpack(tree, rootfs)

    result = subprocess.run(in_image(rootfs, "/secretgate", "--version"), capture_output=True, text=True, timeout=30, env=ENV)
    expect(
        result.returncode == 0 and result.stdout.strip() == f"secretgate {version}",
        f"`/secretgate --version` in the image as {USER} prints {result.stdout.strip()!r}"
        + (f" (stderr: {result.stderr.strip()})" if result.returncode else ""),
    )

    # Only in this copy: a directory 65532 may write, and what a container runtime adds.
    (rootfs / "check").mkdir()
    os.chown(rootfs / "check", 65532, 65532)
    (rootfs / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
    (rootfs / "etc" / "resolv.conf").write_text(f"nameserver {DNS_ADDRESS}\noptions timeout:2 attempts:2\n")

    https_port, metrics_port = free_port(), free_port()
    log = scratch / "serve.log"
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            in_image(
                rootfs,
                "/secretgate",
                "serve",
                "--listen",
                f"127.0.0.1:{https_port}",
                "--metrics-listen",
                f"127.0.0.1:{metrics_port}",
                "--dev-certs-dir",
                "/check/certs",
            ),
            stdin=subprocess.DEVNULL,
            env=ENV,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    dns = None
    try:
        wait_ready(f"http://127.0.0.1:{metrics_port}/readyz", server, log)
        ok(f"`/secretgate serve` in the image as {USER} answers /readyz with 200")
        context = ssl.create_default_context(cafile=str(rootfs / "check" / "certs" / "ca.crt"))
        with socket.create_connection(("127.0.0.1", https_port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                expect(tls.version() is not None, f"its HTTPS port completes a verified TLS handshake ({tls.version()})")

        dns = StubDns()
        check_lookup(rootfs, DNS_NAME, https_port, "DNS via /etc/resolv.conf")
        expect(DNS_NAME in dns.seen, f"the stub DNS server on {DNS_ADDRESS} was asked for {DNS_NAME}")
        check_lookup(rootfs, "localhost", https_port, "/etc/hosts")

        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=40)
        expect(code == 0, f"serve exits {code} on SIGTERM")
    finally:
        if dns is not None:
            dns.close()
        if server.poll() is None:
            server.kill()
            server.wait()
