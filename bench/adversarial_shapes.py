"""Worst-case AdmissionReview bodies for bench/adversarial.py (issue 13).

Each shape is a function `(ctx) -> Shape` that builds one request body as the API server
would send it: compact JSON, `data` values base64, inside the API server's own limits
(checked by `check_limits` on every body):

- metadata.annotations: at most 256 KiB in total (sum of key and value lengths), keys are
  qualified names (name part <= 63 characters, optional DNS-subdomain prefix <= 253);
- Secret data: at most 1 MiB in total, keys and decoded values counted; keys match
  `[-._a-zA-Z0-9]+`;
- the request body: under 3 MiB (also secretgate's own --max-body-bytes default).

Generators are deterministic: every random byte comes from `random.Random(seed)` with a
fixed seed per shape. Only the TLS shape reads material made at run time (the development
certificates and an RSA key from the `openssl` CLI), whose sizes do not change between runs.
`ctx.smoke` selects small sizes (for the CI smoke run on a debug build).
"""

import base64
import json
import random
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
ANNOTATIONS_LIMIT = 256 * KIB  # apimachinery TotalAnnotationSizeLimitB
SECRET_DATA_LIMIT = 1 * MIB  # core/v1 MaxSecretSize
BODY_LIMIT = 3 * MIB  # API server request body limit; secretgate --max-body-bytes default
BODY_MARGIN = 4 * KIB  # stay clearly under it

NAMESPACE = "tenant-x"  # the project with every check on (bench/adversarial-policy.yaml)
DISPLAY_NAME = "secretgate.io/display-name"
GIT_SYNC_CONTAINERS = "secretgate.io/git-sync-containers"
TIME = "2026-11-23T16:36:12Z"

DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class Context:
    fixtures: Path
    certs: Path  # the run's development certificates (ca.crt, tls.crt)
    work: Path  # scratch directory (generated keys)
    smoke: bool = False


@dataclass
class Shape:
    name: str
    path: str  # /validate, /mutate or /validate-pods
    body: bytes
    about: str
    params: dict = field(default_factory=dict)
    limits: dict = field(default_factory=dict)
    heavy: bool = True  # False for the baseline row


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def keys(n, width, first="", alphabet=ALNUM):
    """`n` distinct fixed-width keys: `first` then `width` characters of `alphabet`."""
    base = len(alphabet)
    if base**width < n:
        raise ValueError(f"{n} keys do not fit in {width} characters")
    out = []
    for i in range(n):
        digits = []
        for _ in range(width):
            i, r = divmod(i, base)
            digits.append(alphabet[r])
        out.append(first + "".join(reversed(digits)))
    return out


def dumps(obj) -> bytes:
    """Compact JSON as the API server writes it: Go's encoding/json, no spaces, map keys
    sorted (the API server re-encodes every object it sends to a webhook)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, sort_keys=True).encode()


def envelope(kind, name, obj, operation="CREATE", old=None, uid=None, namespace=NAMESPACE):
    resource = {"Secret": "secrets", "Pod": "pods"}[kind]
    gvk = {"group": "", "version": "v1", "kind": kind}
    gvr = {"group": "", "version": "v1", "resource": resource}
    options_kind = "CreateOptions" if operation == "CREATE" else "UpdateOptions"
    return {
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid or f"adversarial-{name}",
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {"username": "tenant-x-ci", "uid": "tenant-x-ci-uid",
                         "groups": ["tenant-x-devs", "system:authenticated"]},
            "object": obj,
            "oldObject": old,
            "dryRun": False,
            "options": {"kind": options_kind, "apiVersion": "meta.k8s.io/v1",
                        "fieldManager": "kubectl-create", "fieldValidation": "Strict"},
        },
    }


def managed_entry(fields_v1, manager="kubectl-create"):
    return {"manager": manager, "operation": "Update", "apiVersion": "v1", "time": TIME,
            "fieldsType": "FieldsV1", "fieldsV1": fields_v1}


def secret_fields(data_keys=(), annotation_keys=(), label_keys=()):
    """The managedFields entry the API server writes for a created Secret."""
    meta = {}
    if annotation_keys:
        meta["f:annotations"] = {".": {}, **{f"f:{k}": {} for k in annotation_keys}}
    if label_keys:
        meta["f:labels"] = {".": {}, **{f"f:{k}": {} for k in label_keys}}
    fields = {"f:type": {}}
    if data_keys:
        fields["f:data"] = {".": {}, **{f"f:{k}": {} for k in data_keys}}
    if meta:
        fields["f:metadata"] = meta
    return fields


def secret(name, secret_type, data, annotations=None, labels=None, managed=None, uid="x"):
    """A Secret as the API server hands it to a webhook; `data` values are raw bytes."""
    annotations = {DISPLAY_NAME: "adversarial benchmark", **(annotations or {})}
    labels = {"app": "adversarial", **(labels or {})}
    if managed is None:
        managed = [managed_entry(secret_fields(data, annotations, labels))]
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"00000000-0000-4000-8000-{uid.encode().hex()[:12]:0>12}",
            "creationTimestamp": TIME,
            "labels": labels,
            "annotations": annotations,
            "managedFields": managed,
        },
        "data": {k: b64(v) for k, v in data.items()},
        "type": secret_type,
    }


def secret_review(name, secret_type, data, **kw):
    operation = kw.pop("operation", "CREATE")
    old = kw.pop("old", None)
    obj = secret(name, secret_type, data, uid=name, **kw)
    return envelope("Secret", name, obj, operation=operation, old=old)


def fit(build, n, limit=BODY_LIMIT - BODY_MARGIN):
    """The largest body `build(m)` for m <= n that stays under `limit` bytes."""
    body = build(n)
    while len(body) > limit:
        n = int(n * limit / len(body) * 0.998)
        body = build(n)
    return n, body


def check_limits(body: bytes) -> dict:
    """Asserts that `body` is something the API server could send; returns the sizes."""
    if len(body) >= BODY_LIMIT:
        raise AssertionError(f"body is {len(body)} bytes, over 3 MiB")
    # Go reads up to 10,000 levels; Python's json needs a higher recursion limit for that.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 25_000))
    try:
        review = json.loads(body)
    finally:
        sys.setrecursionlimit(limit)
    sizes = {"body_bytes": len(body)}
    for which in ("object", "oldObject"):
        obj = review["request"].get(which)
        if not obj:
            continue
        meta = obj.get("metadata", {})
        ann = meta.get("annotations") or {}
        total = sum(len(k.encode()) + len(v.encode()) for k, v in ann.items())
        if total > ANNOTATIONS_LIMIT:
            raise AssertionError(f"{which}: annotations are {total} bytes, over 256 KiB")
        for k in ann:
            prefix, _, name = k.rpartition("/")
            if not (QUALIFIED_NAME.match(name) and len(name) <= 63) or (
                    prefix and not (DNS_SUBDOMAIN.match(prefix) and len(prefix) <= 253)):
                raise AssertionError(f"{which}: annotation key {k!r} is not a qualified name")
        sizes[f"{which}_annotation_bytes"] = total
        sizes[f"{which}_annotations"] = len(ann)
        if obj.get("kind") == "Secret":
            data = obj.get("data") or {}
            total = 0
            for k, v in data.items():
                if not DATA_KEY.match(k):
                    raise AssertionError(f"{which}: data key {k!r} is not valid")
                total += len(k.encode()) + len(base64.b64decode(v))
            if total > SECRET_DATA_LIMIT:
                raise AssertionError(f"{which}: data is {total} bytes, over 1 MiB")
            sizes[f"{which}_data_bytes"] = total
            sizes[f"{which}_data_entries"] = len(data)
    return sizes


# --- 1 -----------------------------------------------------------------------------------

def annotations_x_data(ctx):
    """Tens of thousands of small annotations × tens of thousands of 8-byte data values."""
    rng = random.Random(1)
    # Key (4) + value (9) = 13 bytes each: 20,000 fit in 256 KiB with the display name.
    budget = ANNOTATIONS_LIMIT - len(DISPLAY_NAME) - len("adversarial benchmark")
    n_ann = min(20_000 if not ctx.smoke else 400, budget // 13)
    annotations = {k: "".join(rng.choice(ALNUM) for _ in range(9))
                   for k in keys(n_ann, 3, "a")}
    values = [rng.randbytes(8) for _ in range(80_000)]
    data_keys = keys(80_000, 3, "d")

    def build(n):
        data = dict(zip(data_keys[:n], values[:n]))
        return dumps(secret_review("x-annotations-data", "Opaque", data,
                                   annotations=annotations))

    n_data, body = fit(build, 80_000 if not ctx.smoke else 800)
    return Shape(
        "1-annotations-x-data", "/validate", body,
        f"Opaque Secret, {n_ann:,} annotations of 9-byte values × {n_data:,} data values "
        "of 8 bytes (the smallest length searched for), no value copied anywhere",
        {"annotations": n_ann, "data_entries": n_data})


# --- 2 -----------------------------------------------------------------------------------

def long_annotation_x_long_values(ctx):
    """One ~256 KiB annotation × 8 data values of ~128 KiB that nearly match it."""
    ann_len = ANNOTATIONS_LIMIT - len(DISPLAY_NAME) - len("adversarial benchmark") - len("note")
    count = 8
    if ctx.smoke:
        ann_len, count = 16 * KIB, 4
    value_len = (ann_len // 2) if ctx.smoke else (SECRET_DATA_LIMIT - 2 * count) // count
    # Same leading bytes as the annotation, a different last byte: a naive substring
    # search compares ~128 KiB at each of ~128 K positions before it fails.
    data = {f"v{i}": b"A" * (value_len - 1) + b"BCDEFGHIJ"[i:i + 1] for i in range(count)}
    body = dumps(secret_review("x-long-annotation", "Opaque", data,
                               annotations={"note": "A" * ann_len}))
    return Shape(
        "2-long-annotation-x-long-values", "/validate", body,
        f"one annotation of {ann_len // KIB} KiB ('A'×n) × {count} data values of "
        f"{value_len // KIB} KiB ('A'×(n-1) + one other byte): near misses",
        {"annotation_bytes": ann_len, "data_entries": count, "value_bytes": value_len})


def long_annotation_x_many_values(ctx):
    """One ~256 KiB annotation × ~15,000 data values of 64 bytes that nearly match it."""
    ann_len = ANNOTATIONS_LIMIT - len(DISPLAY_NAME) - len("adversarial benchmark") - len("note")
    value_len = 64
    if ctx.smoke:
        ann_len = 4 * KIB
    n = (SECRET_DATA_LIMIT // (value_len + 3)) if not ctx.smoke else 200
    # Distinct values (a fix may not just deduplicate), each 'A'×56 + 8 counter bytes.
    data = {k: b"A" * (value_len - 8) + i.to_bytes(8, "big")
            for i, k in enumerate(keys(n, 3, "", ALNUM))}
    body = dumps(secret_review("x-many-near-misses", "Opaque", data,
                               annotations={"note": "A" * ann_len}))
    return Shape(
        "2b-long-annotation-x-many-values", "/validate", body,
        f"one annotation of {ann_len // KIB} KiB × {n:,} distinct 64-byte data values "
        "sharing its first 56 bytes (cost = windows × values, not value length)",
        {"annotation_bytes": ann_len, "data_entries": n, "value_bytes": value_len})


# --- 3, 4 --------------------------------------------------------------------------------

def dockerconfig(entries):
    """`{"auths":{...}}` with `entries` as (key, raw JSON value) pairs, compact."""
    inner = ",".join(f'"{k}":{v}' for k, v in entries)
    return ('{"auths":{' + inner + "}}").encode()


def dockerconfigjson_invalid_keys(ctx):
    """~1 MiB .dockerconfigjson with 100,000 registry keys that are not hosts."""
    n = 100_000 if not ctx.smoke else 2_000
    # `"!abc":{}` is 10 bytes: 100,000 of them fill the 1 MiB data limit.
    config = dockerconfig((k, "{}") for k in keys(n, 3, "!"))
    body = dumps(secret_review("x-dockerconfig-invalid", "kubernetes.io/dockerconfigjson",
                               {".dockerconfigjson": config}))
    return Shape(
        "3-dockerconfigjson-invalid-keys", "/validate", body,
        f".dockerconfigjson of {len(config) // KIB} KiB, {n:,} auths keys that are not "
        "registry hosts (`!abc`), each with no credentials",
        {"registries": n, "config_bytes": len(config)})


def dockerconfigjson_disallowed(ctx):
    """~1 MiB .dockerconfigjson with 100,000 valid registry hosts the project does not allow."""
    n = 100_000 if not ctx.smoke else 2_000
    # Hosts `a0b1`: a DNS label, not in allowedRegistries. To fit 100,000 entries in
    # 1 MiB, entries are `{}` (no credentials), which adds a finding each.
    rest = keys(36**3, 3, "", LOWER36)
    hosts = [LOWER36[10 + i // 36**3] + rest[i % 36**3] for i in range(n)]
    config = dockerconfig((h, "{}") for h in hosts)
    body = dumps(secret_review("x-dockerconfig-disallowed", "kubernetes.io/dockerconfigjson",
                               {".dockerconfigjson": config}))
    return Shape(
        "4-dockerconfigjson-disallowed-registries", "/validate", body,
        f".dockerconfigjson of {len(config) // KIB} KiB, {n:,} valid registry hosts not in "
        "the project's allowedRegistries (6 patterns), entries without credentials",
        {"registries": n, "config_bytes": len(config)})


# --- 5 -----------------------------------------------------------------------------------

def fixture_data(ctx, name, key):
    review = json.loads((ctx.fixtures / name).read_text())
    return base64.b64decode(review["request"]["object"]["data"][key])


def ssh_known_hosts(ctx):
    """ssh-auth secret: a private key and a known_hosts of 10,000 lines, some broken."""
    rng = random.Random(5)
    lines_wanted = 10_000 if not ctx.smoke else 500
    private = fixture_data(ctx, "secret-create-ssh-auth-rsa-pem-legacy.json", "ssh-privatekey")
    known = fixture_data(ctx, "secret-create-opaque-ssh-key-git-sync-keys.json", "known_hosts")
    key_type, key_b64 = known.decode().split()[1:3]

    def rand_b64(n):
        return b64(rng.randbytes(n))

    lines = []
    for i in range(lines_wanted):
        kind = i % 10
        host = f"git{i}.example.com"
        if kind < 5:  # valid: host list and key
            line = f"{host},10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255} {key_type} {key_b64}"
        elif kind == 5:  # valid: hashed host
            line = f"|1|{rand_b64(20)}|{rand_b64(20)} {key_type} {key_b64}"
        elif kind == 6:  # valid: marker
            line = f"@cert-authority *.{host} {key_type} {key_b64}"
        elif kind == 7:  # broken: truncated key
            line = f"{host} {key_type} {key_b64[:40]}"
        elif kind == 8:  # broken: unknown key type, bad base64
            line = f"{host} ssh-unknown {rand_b64(30)}!!"
        else:  # broken: no key at all
            line = f"{host} {key_type}"
        lines.append(line)
    text = ("\n".join(lines) + "\n").encode()
    budget = SECRET_DATA_LIMIT - len(private) - len("ssh-privatekey") - len("known_hosts")
    if len(text) > budget:
        raise AssertionError(f"known_hosts is {len(text)} bytes, over the {budget} left")
    data = {"ssh-privatekey": private, "known_hosts": text}
    body = dumps(secret_review("x-ssh-known-hosts", "kubernetes.io/ssh-auth", data))
    return Shape(
        "5-ssh-known-hosts-10k", "/validate", body,
        f"ssh-auth secret: RSA-2048 PEM key (below the project's 3072 bits, not ed25519) + "
        f"known_hosts of {lines_wanted:,} lines ({len(text) // KIB} KiB; 70% valid, "
        "30% broken)",
        {"lines": lines_wanted, "known_hosts_bytes": len(text)})


# --- 6 -----------------------------------------------------------------------------------

def rsa_key(ctx, bits=4096):
    """A throwaway RSA key made with the openssl CLI (~1 s), cached in the work directory."""
    path = ctx.work / f"rsa-{bits}.key"
    if not path.exists():
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA",
                        "-pkeyopt", f"rsa_keygen_bits:{bits}", "-out", str(path)],
                       check=True, capture_output=True)
    return path.read_bytes()


def tls_long_chain(ctx):
    """TLS secret: leaf + ~1,700 chain certificates (~1 MiB) and a key that does not match."""
    leaf = (ctx.certs / "tls.crt").read_bytes()
    chain_cert = (ctx.certs / "ca.crt").read_bytes()
    key = rsa_key(ctx) if not ctx.smoke else (ctx.certs / "ca.key").read_bytes()
    budget = SECRET_DATA_LIMIT - len("tls.crt") - len("tls.key") - len(key) - len(leaf)
    n = budget // len(chain_cert) if not ctx.smoke else 50
    data = {"tls.crt": leaf + chain_cert * n, "tls.key": key}
    body = dumps(secret_review("x-tls-long-chain", "kubernetes.io/tls", data))
    key_kind = "RSA-4096" if not ctx.smoke else "ECDSA P-256"
    return Shape(
        "6-tls-long-chain-mismatched-key", "/validate", body,
        f"TLS secret: leaf + {n:,} copies of a CA certificate ({len(data['tls.crt']) // KIB} "
        f"KiB of PEM) and an {key_kind} key that does not match the leaf",
        {"certificates": n + 1, "crt_bytes": len(data["tls.crt"]), "key": key_kind})


# --- 7 -----------------------------------------------------------------------------------

REGISTRIES = [
    "registry.example.com:5000", "r{i}.example.com", "ghcr.io", "quay.io",
    "mirror{i}.internal.example.net:5000", "docker.io", "unlisted{i}.example.org",
]


def pod_many_containers(ctx):
    """Pod CREATE: 1,000 containers + 500 initContainers, long images, env, volumes."""
    # Smoke: still enough git-sync mounts that an uncapped patch passes 64 KiB.
    n_containers, n_init, n_volumes = (1000, 500, 1000) if not ctx.smoke else (300, 200, 100)
    path_part = "/".join(f"component-{j:02d}" for j in range(18))  # ~250 characters

    def container(i, prefix):
        registry = REGISTRIES[i % len(REGISTRIES)].format(i=i % 97)
        name = f"{prefix}{i:04d}"
        return {
            "name": name,
            "image": f"{registry}/team-x/{path_part}/service-{i}:v1.{i}.0-build.{i * 7919}",
            "env": [{"name": f"SETTING_{j}", "value": f"value-{i}-{j}-" + "x" * 16}
                    for j in range(8)],
            "resources": {},
            "volumeMounts": [{"name": f"vol-{(i + j) % n_volumes:04d}",
                              "mountPath": f"/mnt/{name}/{j}"} for j in range(3)]
            + [{"name": "kube-api-access-x1", "readOnly": True,
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent",
        }

    containers = [container(i, "c") for i in range(n_containers)]
    init = [container(i, "init") for i in range(n_init)]
    names = [c["name"] for c in containers + init]
    volumes = [{"name": f"vol-{i:04d}", "emptyDir": {}} for i in range(n_volumes)]
    volumes.append({"name": "kube-api-access-x1", "projected": {"sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}],
        "defaultMode": 420}})
    pod = {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": "x-many-containers", "namespace": NAMESPACE,
            # Every container is a git-sync container: one mount each in the patch.
            "annotations": {GIT_SYNC_CONTAINERS: ",".join(names)},
            "managedFields": [managed_entry({"f:metadata": {"f:annotations": {
                ".": {}, f"f:{GIT_SYNC_CONTAINERS}": {}}}, "f:spec": {}})],
        },
        "spec": {
            "volumes": volumes,
            "initContainers": init,
            "containers": containers,
            "restartPolicy": "Always",
            "serviceAccountName": "default",
        },
    }
    body = dumps(envelope("Pod", "x-many-containers", pod))
    return Shape(
        "7-pod-many-containers", "/mutate", body,
        f"Pod CREATE: {n_containers:,} containers + {n_init:,} initContainers with "
        f"~{len(containers[0]['image'])}-character images from 7 registry kinds, 8 env "
        f"and 4 mounts each, {n_volumes:,} volumes; all named as git-sync containers",
        {"containers": n_containers, "init_containers": n_init, "volumes": n_volumes})


# --- 12 ------------------------------------------------------------------------------------

def pod_many_secret_references(ctx):
    """Pod CREATE for /validate-pods: tens of thousands of env secretKeyRefs to the most
    different secrets a pod may use (1,024; more is refused outright), each name matched
    by one of the policy's 64 rules × 16 patterns."""
    n = 24_000 if not ctx.smoke else 2_000
    distinct = 1024
    env = [{"name": f"V{i}", "valueFrom": {"secretKeyRef": {
        "name": f"svc-{i % 63:02d}-{i % 16:02d}-{'n' * 30}{i % distinct}", "key": "k"}}}
        for i in range(n)]
    pod = {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "x-many-refs", "namespace": NAMESPACE},
        "spec": {
            "containers": [{"name": "app", "image": "ghcr.io/x/app:1", "env": env}],
            "serviceAccountName": "default", "serviceAccount": "default",
        },
    }
    body = dumps(envelope("Pod", "x-many-refs", pod))
    return Shape(
        "12-pod-many-secret-references", "/validate-pods", body,
        f"Pod CREATE (secret-use webhook): {n:,} env secretKeyRefs to {distinct:,} "
        "different secrets whose names match one of 1,008 patterns of 63 rules, plus a "
        "label rule",
        {"references": n, "distinct_secrets": distinct})


# --- 8, 9 --------------------------------------------------------------------------------

def deep_json(ctx):
    """Opaque Secret whose managedFields[0].fieldsV1 nests objects 9,000 deep."""
    depth = 9_000 if not ctx.smoke else 1_000  # Go's encoding/json stops at 10,000
    obj = secret("x-deep-json", "Opaque", {"k": b"value"}, uid="x-deep-json",
                 managed=[managed_entry("__DEEP__")])
    nested = '{"f:a":' * depth + "{}" + "}" * depth
    text = dumps(envelope("Secret", "x-deep-json", obj)).decode()
    body = text.replace('"__DEEP__"', nested, 1).encode()
    return Shape(
        "8a-deep-json-managedfields", "/validate", body,
        f"Opaque Secret, managedFields[0].fieldsV1 = objects nested {depth:,} deep "
        "(free-form JSON secretgate skips)",
        {"depth": depth})


def wide_json(ctx):
    """Opaque Secret whose managedFields[0].fieldsV1 is one object with ~230,000 members."""
    all_keys = keys(300_000, 4, "f:")

    def build(n):
        fields = {"f:data": {".": {}, **{k: {} for k in all_keys[:n]}}}
        obj = secret("x-wide-json", "Opaque", {"k": b"value"}, uid="x-wide-json",
                     managed=[managed_entry(fields)])
        return dumps(envelope("Secret", "x-wide-json", obj))

    n, body = fit(build, 300_000 if not ctx.smoke else 5_000)
    return Shape(
        "8b-wide-json-managedfields", "/validate", body,
        f"Opaque Secret, managedFields[0].fieldsV1 with one object of {n:,} members",
        {"members": n})


def many_managed_fields(ctx):
    """Opaque Secret with tens of thousands of managedFields entries."""
    managers = keys(40_000, 4, "m-")

    def build(n):
        entries = [managed_entry({"f:metadata": {"f:labels": {f"f:l{m}": {}}}}, m)
                   for m in managers[:n]]
        obj = secret("x-managed-fields", "Opaque", {"k": b"value"}, uid="x-managed-fields",
                     managed=entries)
        return dumps(envelope("Secret", "x-managed-fields", obj))

    n, body = fit(build, 40_000 if not ctx.smoke else 1_000)
    return Shape(
        "9-many-managedfields", "/validate", body,
        f"Opaque Secret with {n:,} managedFields entries (one manager each)",
        {"entries": n})


# --- 10 ----------------------------------------------------------------------------------

def normal_review(ctx):
    """The recorded dockerconfigjson Secret CREATE: the baseline row."""
    body = (ctx.fixtures / "secret-create-dockerconfigjson-valid.json").read_bytes()
    return Shape(
        "10-normal-dockerconfigjson", "/validate", body,
        "recorded fixture secret-create-dockerconfigjson-valid.json (team-a), the "
        "baseline; also the 'normal review' sent concurrently", {}, heavy=False)


# --- 11 ----------------------------------------------------------------------------------

def update_ratchet(ctx):
    """Secret UPDATE whose old and new objects carry the same ~100,000 findings."""
    n = 100_000 if not ctx.smoke else 1_000

    def build(m):
        config = dockerconfig((k, "{}") for k in keys(m, 3, "!"))
        data = {".dockerconfigjson": config}
        old = secret("x-update-ratchet", "kubernetes.io/dockerconfigjson", data,
                     uid="x-update-ratchet", managed=[])
        return dumps(secret_review("x-update-ratchet", "kubernetes.io/dockerconfigjson",
                                   data, operation="UPDATE", old=old, managed=[]))

    n, body = fit(build, n)
    return Shape(
        "11-update-ratchet", "/validate", body,
        f"Secret UPDATE of shape 3 with {n:,} invalid registry keys in both oldObject and "
        "object (every new finding is looked up among the old ones)",
        {"registries": n})


SHAPES = [
    ("1-annotations-x-data", annotations_x_data),
    ("2-long-annotation-x-long-values", long_annotation_x_long_values),
    ("2b-long-annotation-x-many-values", long_annotation_x_many_values),
    ("3-dockerconfigjson-invalid-keys", dockerconfigjson_invalid_keys),
    ("4-dockerconfigjson-disallowed-registries", dockerconfigjson_disallowed),
    ("5-ssh-known-hosts-10k", ssh_known_hosts),
    ("6-tls-long-chain-mismatched-key", tls_long_chain),
    ("7-pod-many-containers", pod_many_containers),
    ("8a-deep-json-managedfields", deep_json),
    ("8b-wide-json-managedfields", wide_json),
    ("9-many-managedfields", many_managed_fields),
    ("10-normal-dockerconfigjson", normal_review),
    ("11-update-ratchet", update_ratchet),
    ("12-pod-many-secret-references", pod_many_secret_references),
]


def selected(only=None):
    """(name, generator) pairs; `only` keeps the names given in full or by number (`2b`)."""
    return [(name, make) for name, make in SHAPES
            if not only or any(name == o or name.startswith(o + "-") for o in only)]


def build(ctx, name, make):
    shape = make(ctx)
    assert shape.name == name, (shape.name, name)
    shape.limits = check_limits(shape.body)
    return shape
