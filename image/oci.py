#!/usr/bin/env python3
"""Writes secretgate's container image as an OCI image layout and an oci-archive, with no
Docker daemon and nothing but Python's standard library.

The image is one layer, distroless-like and the same tree the Dockerfile's final stage
makes:
  /secretgate                          the static binary (0755)
  /etc/passwd, /etc/group              root, nobody and nonroot (65532), no login shell
  /etc/nsswitch.conf                   hosts: files dns (read by the static glibc)
  /etc/ssl/certs/ca-certificates.crt   Debian's CA bundle (registry logins, kube API)
No shell, no package manager, no other file.

Reproducible: entries sorted, owner 0:0, mtimes and the config's `created` from
SOURCE_DATE_EPOCH (default: the commit time of HEAD), gzip with mtime 0 and no file name.
The same binary and commit give byte-identical blobs, so the same manifest digest.

Usage: image/oci.py --binary PATH --out DIR [--ca-bundle PATH] [--revision SHA]
Writes DIR/layout/ (an OCI image layout), DIR/secretgate-oci.tar (the same as an
oci-archive, for `skopeo copy oci-archive:…`) and DIR/digest (the manifest's digest, which
a registry reports after the push).
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROOTFS_ETC = ROOT / "image" / "rootfs" / "etc"
SOURCE = "https://github.com/secretgate/secretgate"
USER = "65532:65532"
ENTRYPOINT = ["/secretgate"]
CMD = ["serve"]
PORTS = ["8443/tcp", "9090/tcp"]
# What BuildKit puts in every Linux image's config, the Dockerfile's too.
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ARCHIVE = "secretgate-oci.tar"


def crate_version() -> str:
    with open(ROOT / "Cargo.toml", "rb") as f:
        return tomllib.load(f)["package"]["version"]


def git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def source_date_epoch() -> int:
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        return int(env)
    committed = git("log", "-1", "--format=%ct")
    return int(committed) if committed else 0


def layer_tar(binary: Path, ca_bundle: Path, mtime: int) -> bytes:
    """The one layer: directories and files, sorted, owned by 0:0, all with one mtime."""
    entries: list[tuple[str, bytes | None, int]] = [
        ("etc", None, 0o755),
        ("etc/group", (ROOTFS_ETC / "group").read_bytes(), 0o644),
        ("etc/nsswitch.conf", (ROOTFS_ETC / "nsswitch.conf").read_bytes(), 0o644),
        ("etc/passwd", (ROOTFS_ETC / "passwd").read_bytes(), 0o644),
        ("etc/ssl", None, 0o755),
        ("etc/ssl/certs", None, 0o755),
        ("etc/ssl/certs/ca-certificates.crt", ca_bundle.read_bytes(), 0o644),
        ("secretgate", binary.read_bytes(), 0o755),
    ]
    assert [e[0] for e in entries] == sorted(e[0] for e in entries)
    buf = io.BytesIO()
    # PAX keeps large uid/gid and long names exact; no PAX headers are written for these.
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def rfc3339(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build(binary: Path, ca_bundle: Path, out: Path, revision: str | None = None) -> dict:
    version = crate_version()
    revision = revision or git("rev-parse", "HEAD") or "unknown"
    epoch = source_date_epoch()
    created = rfc3339(epoch)

    tar_bytes = layer_tar(binary, ca_bundle, epoch)
    # mtime=0 and no file name in the gzip header: the blob depends on the content only.
    # Level 6 (gzip's default): level 9 was 0.6% smaller and took 2.7 times as long.
    layer_gz = gzip.compress(tar_bytes, compresslevel=6, mtime=0)

    labels = {
        "org.opencontainers.image.title": "secretgate",
        "org.opencontainers.image.description": "Kubernetes admission webhook for Secrets and pull secrets",
        "org.opencontainers.image.source": SOURCE,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.created": created,
    }
    config = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": USER,
            "Env": [PATH_ENV],
            "Entrypoint": ENTRYPOINT,
            "Cmd": CMD,
            "ExposedPorts": {port: {} for port in PORTS},
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [digest(tar_bytes)]},
        "history": [{"created": created, "created_by": "image/oci.py (image/build.sh)"}],
    }
    config_bytes = canonical(config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest(layer_gz),
                "size": len(layer_gz),
            }
        ],
        "annotations": {k: v for k, v in labels.items() if k != "org.opencontainers.image.description"},
    }
    manifest_bytes = canonical(manifest)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": digest(manifest_bytes),
                "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                # The tag `skopeo copy oci-archive:FILE:TAG` and `oci:DIR:TAG` name.
                "annotations": {"org.opencontainers.image.ref.name": version},
            }
        ],
    }

    files = {
        "oci-layout": canonical({"imageLayoutVersion": "1.0.0"}),
        "index.json": canonical(index),
    }
    for blob in (layer_gz, config_bytes, manifest_bytes):
        files["blobs/sha256/" + hashlib.sha256(blob).hexdigest()] = blob

    layout = out / "layout"
    shutil.rmtree(layout, ignore_errors=True)
    for name, data in files.items():
        path = layout / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    # The oci-archive: the layout as a tar, itself reproducible.
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(n).parent) for n in files if Path(n).parent != Path(".")} | {"blobs"})
        for name in sorted(dirs + list(files)):
            info = tarfile.TarInfo(name)
            info.mtime = epoch
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if name in files:
                info.mode, info.size = 0o644, len(files[name])
                tar.addfile(info, io.BytesIO(files[name]))
            else:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
    (out / ARCHIVE).write_bytes(archive.getvalue())
    (out / "digest").write_text(digest(manifest_bytes) + "\n")

    return {
        "archive": str(out / ARCHIVE),
        "manifest_digest": digest(manifest_bytes),
        "version": version,
        "revision": revision,
        "layer_compressed_bytes": len(layer_gz),
        "layer_uncompressed_bytes": len(tar_bytes),
        "compressed_bytes": len(layer_gz) + len(config_bytes) + len(manifest_bytes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, required=True, help="the static secretgate binary")
    parser.add_argument("--out", type=Path, required=True, help="output directory (e.g. target/image)")
    parser.add_argument(
        "--ca-bundle",
        type=Path,
        default=Path("/etc/ssl/certs/ca-certificates.crt"),
        help="CA certificates, copied to the same path in the image (Debian's ca-certificates)",
    )
    parser.add_argument("--revision", help="the revision label (default: git rev-parse HEAD)")
    args = parser.parse_args()
    for path in (args.binary, args.ca_bundle):
        if not path.is_file():
            print(f"error: {path} is not a file", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    summary = build(args.binary, args.ca_bundle, args.out, args.revision)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    mib = 1024 * 1024
    print(f"image: {summary['archive']} ({summary['version']}, revision {summary['revision']})")
    print(f"image: manifest digest {summary['manifest_digest']}")
    print(
        f"image: {summary['compressed_bytes'] / mib:.2f} MiB compressed (layer + config + manifest),"
        f" {summary['layer_uncompressed_bytes'] / mib:.2f} MiB uncompressed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
