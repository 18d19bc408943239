#!/usr/bin/env python3
"""Checks the oci-archive image/build.sh wrote, reading it as a registry or runtime would
(index.json -> manifest -> config and layers), and fails on the first thing that is off:

  - every blob matches its digest and size;
  - the config: user 65532:65532, entrypoint ["/secretgate"], cmd ["serve"], ports
    8443/tcp and 9090/tcp, the OCI labels source, version (= Cargo.toml's) and revision;
  - the layers hold exactly the expected files (the binary, passwd, group,
    nsswitch.conf, the CA bundle), so no shell, no package manager, nothing else; owner
    0:0, no setuid or setgid bit; /etc/passwd gives no account a shell;
  - the binary is static (no ELF program interpreter);
  - the compressed image (config + layers) is under 15 MB;
  - the same binary and commit give the same manifest digest (image/oci.py run again);
  - then image/runtime_check.py runs the binary from the unpacked layers, as user 65532
    in a chroot holding nothing else: --version, serve, a DNS lookup.

Usage: image/check.py [ARCHIVE]   (default: $CARGO_TARGET_DIR/image/secretgate-oci.tar)
"""

import datetime
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "image"))

import runtime_check  # noqa: E402
from runtime_check import CheckFailed, expect, ok  # noqa: E402

MAX_COMPRESSED_BYTES = 15_000_000
EXPECTED = {
    "etc": ("dir", 0o755),
    "etc/group": ("file", 0o644),
    "etc/nsswitch.conf": ("file", 0o644),
    "etc/passwd": ("file", 0o644),
    "etc/ssl": ("dir", 0o755),
    "etc/ssl/certs": ("dir", 0o755),
    "etc/ssl/certs/ca-certificates.crt": ("file", 0o644),
    "secretgate": ("file", 0o755),
}
SHELLS = {"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox"}
PACKAGE_MANAGERS = {"apt", "apt-get", "dpkg", "apk", "yum", "dnf", "rpm", "microdnf", "pip"}


def crate_version() -> str:
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["package"]["version"]


def read_archive(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def blob(files: dict[str, bytes], descriptor: dict) -> bytes:
    algorithm, _, hexdigest = descriptor["digest"].partition(":")
    if algorithm != "sha256":
        raise CheckFailed(f"unexpected digest algorithm in {descriptor['digest']}")
    data = files.get(f"blobs/sha256/{hexdigest}")
    if data is None:
        raise CheckFailed(f"blob {descriptor['digest']} is missing from the archive")
    if hashlib.sha256(data).hexdigest() != hexdigest or len(data) != descriptor["size"]:
        raise CheckFailed(f"blob {descriptor['digest']} does not match its digest or size")
    return data


def is_static_elf(data: bytes) -> bool:
    """True for an x86-64 ELF with no PT_INTERP program header (static or static-pie)."""
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    for i in range(phnum):
        p_type = int.from_bytes(data[phoff + i * phentsize : phoff + i * phentsize + 4], "little")
        if p_type == 3:  # PT_INTERP
            return False
    return True


def check_config(config: dict, version: str) -> None:
    cfg = config.get("config", {})
    expect(config.get("os") == "linux" and config.get("architecture") == "amd64", "platform linux/amd64")
    expect(cfg.get("User") == "65532:65532", f"user is 65532:65532 (got {cfg.get('User')!r})")
    expect(cfg.get("Entrypoint") == ["/secretgate"], f"entrypoint is [\"/secretgate\"] (got {cfg.get('Entrypoint')!r})")
    expect(cfg.get("Cmd") == ["serve"], f"cmd is [\"serve\"] (got {cfg.get('Cmd')!r})")
    ports = sorted(cfg.get("ExposedPorts", {}))
    expect(ports == ["8443/tcp", "9090/tcp"], f"exposed ports 8443/tcp and 9090/tcp (got {ports})")
    labels = cfg.get("Labels", {})
    expect(
        labels.get("org.opencontainers.image.source", "").startswith("https://"),
        f"label org.opencontainers.image.source = {labels.get('org.opencontainers.image.source')!r}",
    )
    expect(
        labels.get("org.opencontainers.image.version") == version,
        f"label org.opencontainers.image.version = {labels.get('org.opencontainers.image.version')!r}"
        f" (Cargo.toml: {version})",
    )
    revision = labels.get("org.opencontainers.image.revision", "")
    expect(len(revision) == 40 and all(c in "0123456789abcdef" for c in revision), f"label revision = {revision!r}")


def check_layers(layers: list[bytes], config: dict) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    diff_ids = config.get("rootfs", {}).get("diff_ids", [])
    expect(len(diff_ids) == len(layers), f"{len(layers)} layer(s), one diff_id each")
    tree: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    for layer, diff_id in zip(layers, diff_ids):
        raw = gzip.decompress(layer)
        if "sha256:" + hashlib.sha256(raw).hexdigest() != diff_id:
            raise CheckFailed("an uncompressed layer does not match its diff_id")
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("./").rstrip("/")
                data = tar.extractfile(member).read() if member.isfile() else None
                tree[name] = (member, data)
    names = set(tree)
    shells = sorted(n for n in names if Path(n).name in SHELLS)
    expect(not shells, f"no shell in the layers (found {shells or 'none'})")
    managers = sorted(n for n in names if Path(n).name in PACKAGE_MANAGERS)
    expect(not managers, f"no package manager in the layers (found {managers or 'none'})")
    extra, missing = sorted(names - set(EXPECTED)), sorted(set(EXPECTED) - names)
    expect(
        not extra and not missing,
        f"exactly the expected {len(EXPECTED)} entries (extra: {extra or 'none'}, missing: {missing or 'none'})",
    )
    for name, (kind, mode) in EXPECTED.items():
        member, _ = tree[name]
        actual = "dir" if member.isdir() else "file" if member.isfile() else "other"
        if actual != kind or member.mode != mode or member.uid != 0 or member.gid != 0:
            raise CheckFailed(
                f"/{name}: {actual} {oct(member.mode)} {member.uid}:{member.gid}, want {kind} {oct(mode)} 0:0"
            )
    ok("owner 0:0 and modes as expected, no setuid or setgid bit")
    passwd = tree["etc/passwd"][1].decode()
    users = {line.split(":")[2]: line.split(":") for line in passwd.splitlines() if line}
    expect("65532" in users and users["65532"][3] == "65532", "/etc/passwd has user 65532 with group 65532")
    expect(
        all(fields[6] == "/sbin/nologin" for fields in users.values()),
        "no account in /etc/passwd has a login shell",
    )
    expect(
        any(line.split(":")[2] == "65532" for line in tree["etc/group"][1].decode().splitlines() if line),
        "/etc/group has group 65532",
    )
    expect(b"BEGIN CERTIFICATE" in tree["etc/ssl/certs/ca-certificates.crt"][1], "CA bundle at /etc/ssl/certs/ca-certificates.crt")
    expect(is_static_elf(tree["secretgate"][1]), "/secretgate is an ELF with no program interpreter (static)")
    return tree


def check_reproducible(binary: bytes, config: dict, manifest_digest: str, scratch: Path) -> None:
    """oci.py again from the binary in the image, with its revision and creation time:
    the same manifest digest, byte for byte."""
    path = scratch / "secretgate"
    path.write_bytes(binary)
    out = scratch / "again"
    labels = config["config"]["Labels"]
    created = datetime.datetime.strptime(config["created"], "%Y-%m-%dT%H:%M:%SZ")
    epoch = int(created.replace(tzinfo=datetime.timezone.utc).timestamp())
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "image" / "oci.py"),
            "--binary",
            str(path),
            "--out",
            str(out),
            "--revision",
            labels["org.opencontainers.image.revision"],
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
    )
    again = (out / "digest").read_text().strip()
    expect(again == manifest_digest, f"reproducible: a second build gives the same manifest digest {again}")


def main() -> int:
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    archive = Path(sys.argv[1]) if len(sys.argv) > 1 else target_dir / "image" / "secretgate-oci.tar"
    version = crate_version()
    try:
        files = read_archive(archive)
        layout = json.loads(files["oci-layout"])
        expect(layout.get("imageLayoutVersion") == "1.0.0", f"{archive} is an OCI image layout 1.0.0")
        index = json.loads(files["index.json"])
        expect(len(index.get("manifests", [])) == 1, "index.json names one manifest")
        descriptor = index["manifests"][0]
        manifest = json.loads(blob(files, descriptor))
        config = json.loads(blob(files, manifest["config"]))
        layers = [blob(files, layer) for layer in manifest["layers"]]
        ok("every blob matches its digest and size")
        check_config(config, version)
        tree = check_layers(layers, config)

        compressed = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
        uncompressed = sum(len(data or b"") for _, data in tree.values())
        mb = 1_000_000
        expect(
            compressed < MAX_COMPRESSED_BYTES,
            f"compressed size {compressed / mb:.2f} MB ({compressed} bytes) is under"
            f" {MAX_COMPRESSED_BYTES / mb:.0f} MB; uncompressed {uncompressed / mb:.2f} MB",
        )
        with tempfile.TemporaryDirectory(prefix="secretgate-image-check-") as scratch:
            check_reproducible(tree["secretgate"][1], config, descriptor["digest"], Path(scratch))
            runtime_check.run(tree, version, Path(scratch))
    except CheckFailed as e:
        print(f"image check: FAIL {e}", file=sys.stderr)
        return 1
    except (KeyError, ValueError, OSError, tarfile.TarError, subprocess.CalledProcessError) as e:
        print(f"image check: FAIL cannot read {archive}: {e!r}", file=sys.stderr)
        return 1
    print(f"image check: {archive} passed ({descriptor['digest']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
