use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::core::admission::AdmissionReview;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::*;
use crate::policy::{SecretRules, Severity};
use crate::registry::{NOT_A_HOST, PORT_RANGE};
use crate::secrets::{DOCKER_CFG, DOCKER_CONFIG_JSON};

/// Planted credentials: neither they nor any part of them may reach a violation.
const USER: &str = "robot-PLANTED-u";
const PASS: &str = "PLANTED-7f3a9";
const REG: &str = "registry.example.com:5000";
const ENTRY: &str = r#"data[.dockerconfigjson].auths["registry.example.com:5000"]"#;
const AUTHS_FIELD: &str = "data[.dockerconfigjson].auths";
const LEGACY_HINT: &str = "required value is missing; the registries are at the top level \
    as in the legacy .dockercfg format: wrap them in \"auths\" or use type \
    kubernetes.io/dockercfg";

fn b64(s: &str) -> String {
    STANDARD.encode(s)
}

fn auth() -> String {
    b64(&format!("{USER}:{PASS}"))
}

/// What `kubectl create secret docker-registry` writes for one server.
fn kubectl_entry() -> Value {
    json!({"username": USER, "password": PASS, "email": "PLANTED@example.com", "auth": auth()})
}

fn auths(entries: Value) -> Vec<u8> {
    json!({ "auths": entries }).to_string().into_bytes()
}

fn one(registry: &str, entry: Value) -> Vec<u8> {
    auths(json!({ registry: entry }))
}

fn secret(ty: &str, key: &str, value: Vec<u8>) -> Secret {
    Secret {
        type_: Some(ty.to_owned()),
        data: Some(BTreeMap::from([(key.to_owned(), ByteString(value))])),
        ..Default::default()
    }
}

/// Runs this module's check for the secret's type, as `secrets::validate` dispatches.
fn check(secret: &Secret, allowed: &[&str]) -> Vec<Violation> {
    let mut rules = SecretRules::default();
    rules.image_pull.allowed_registries = allowed.iter().map(|s| s.to_string()).collect();
    let input = Input::new(secret, &rules, OffsetDateTime::UNIX_EPOCH);
    let mut out = Vec::new();
    match input.secret_type() {
        DOCKER_CFG => validate_legacy_cfg(&input, &mut out),
        _ => validate_config_json(&input, &mut out),
    }
    out
}

struct Case {
    name: &'static str,
    ty: &'static str,
    doc: Vec<u8>,
    allowed: &'static [&'static str],
    want: Vec<(String, String)>,
}

fn case(name: &'static str, doc: Vec<u8>, want: &[(&str, &str)]) -> Case {
    let want = want
        .iter()
        .map(|(f, m)| (f.to_string(), m.to_string()))
        .collect();
    Case {
        name,
        ty: DOCKER_CONFIG_JSON,
        doc,
        allowed: &[],
        want,
    }
}

fn entry_field(registry: &str, member: &str) -> String {
    format!("{AUTHS_FIELD}[{registry:?}]{member}")
}

const NOT_ALLOWED: &str =
    "registry is not allowed in this project (allowed: ghcr.io, *.example.com)";
const NO_CREDENTIALS: &str = "has no credentials: set \"auth\" (base64 of user:password) \
    or \"username\" and \"password\"";
const ECHO_NEWLINE: &str = "user name or password contains whitespace or a line break \
    (encoded with echo without -n?)";
const HOLDS_AUTHS: &str = "holds the .dockerconfigjson format (an \"auths\" object); \
    use type kubernetes.io/dockerconfigjson with key .dockerconfigjson";
const POLICY: &[&str] = &["ghcr.io", "*.example.com"];

/// A case for `type` with policy `allowed`.
fn typed(mut c: Case, ty: &'static str, allowed: &'static [&'static str]) -> Case {
    c.ty = ty;
    c.allowed = allowed;
    c
}

fn allow(c: Case, allowed: &'static [&'static str]) -> Case {
    typed(c, DOCKER_CONFIG_JSON, allowed)
}

fn legacy(c: Case) -> Case {
    typed(c, DOCKER_CFG, &[])
}

fn bytes(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn cases() -> Vec<Case> {
    let (auth_f, user_f, pass_f) = (
        format!("{ENTRY}.auth"),
        format!("{ENTRY}.username"),
        format!("{ENTRY}.password"),
    );
    let (auth_f, user_f, pass_f) = (auth_f.as_str(), user_f.as_str(), pass_f.as_str());
    let only_auth = || json!({ "auth": auth() });
    let kubectl = kubectl_entry;
    let auth_of = |s: &str| json!({ "auth": b64(s) });
    let mut wrapped = auth();
    wrapped.insert(8, '\n');
    let e = |registry: &str| entry_field(registry, "");
    // Keys that do not parse are named by position, never quoted.
    let at = |n: usize| format!("{AUTHS_FIELD}[entry {n}]");
    vec![
        case("kubectl docker-registry shape", one(REG, kubectl()), &[]),
        case("auth only", one(REG, only_auth()), &[]),
        case(
            "username and password only",
            one(REG, json!({ "username": USER, "password": PASS })),
            &[],
        ),
        case(
            "password with a colon",
            one(REG, auth_of(&format!("{USER}:a:{PASS}"))),
            &[],
        ),
        case(
            "no auths key, legacy shape",
            bytes(json!({ REG: kubectl() })),
            &[(AUTHS_FIELD, LEGACY_HINT)],
        ),
        case(
            "no auths key, empty object",
            b"{}".to_vec(),
            &[(AUTHS_FIELD, MISSING)],
        ),
        case(
            "credHelpers with empty auths",
            bytes(json!({ "auths": {}, "credHelpers": { "1.dkr.ecr.aws": "ecr-login" } })),
            &[],
        ),
        case(
            "auths is an array",
            bytes(json!({ "auths": [REG] })),
            &[(
                AUTHS_FIELD,
                "must be an object mapping registry hosts to credentials",
            )],
        ),
        case(
            "auth not base64",
            one(REG, json!({ "auth": format!("{USER}:{PASS}!!") })),
            &[(auth_f, "not valid base64")],
        ),
        case(
            "auth without colon",
            one(REG, auth_of(PASS)),
            &[(auth_f, "must be base64 of user:password")],
        ),
        case(
            "auth and username/password disagree",
            one(
                REG,
                json!({
                    "username": USER,
                    "password": PASS,
                    "auth": b64(&format!("{USER}:PLANTED-other")),
                }),
            ),
            &[(auth_f, "auth does not match username and password")],
        ),
        case(
            "auth and username disagree",
            one(REG, json!({ "username": "PLANTED-x", "auth": auth() })),
            &[(auth_f, "auth does not match username and password")],
        ),
        case(
            "empty password",
            one(REG, json!({ "username": USER, "password": "" })),
            &[(pass_f, "must not be empty")],
        ),
        case(
            "empty password in auth",
            one(REG, auth_of(&format!("{USER}:"))),
            &[(auth_f, "password must not be empty")],
        ),
        case(
            "empty user in auth",
            one(REG, auth_of(&format!(":{PASS}"))),
            &[(auth_f, "user name must not be empty")],
        ),
        case(
            "whitespace in password",
            one(
                REG,
                json!({ "username": USER, "password": "PLANTED 7f3a9" }),
            ),
            &[(pass_f, NO_WHITESPACE)],
        ),
        case(
            "newline at end of username",
            one(
                REG,
                json!({ "username": "robot-PLANTED\n", "password": PASS }),
            ),
            &[(user_f, NO_WHITESPACE)],
        ),
        case(
            "newline in auth",
            one(REG, json!({ "auth": wrapped })),
            &[(auth_f, NO_WHITESPACE)],
        ),
        case(
            "auth encodes echo's newline",
            one(REG, auth_of(&format!("{USER}:{PASS}\n"))),
            &[(auth_f, ECHO_NEWLINE)],
        ),
        case(
            "empty auth",
            one(REG, json!({ "auth": "" })),
            &[(auth_f, "must not be empty")],
        ),
        case(
            "no credentials",
            one(REG, json!({ "email": "PLANTED@example.com" })),
            &[(ENTRY, NO_CREDENTIALS)],
        ),
        case(
            "username without password",
            one(REG, json!({ "username": USER })),
            &[(pass_f, MISSING)],
        ),
        case(
            "entry not an object",
            one(REG, json!(PASS)),
            &[(
                ENTRY,
                "must be an object with \"auth\" or \"username\" and \"password\"",
            )],
        ),
        case(
            "members not strings",
            one(
                REG,
                json!({ "auth": 7, "username": [USER], "password": PASS }),
            ),
            &[(auth_f, "must be a string"), (user_f, "must be a string")],
        ),
        case(
            "every problem of an entry",
            one(
                REG,
                json!({ "username": "", "password": PASS, "auth": "!!" }),
            ),
            &[(user_f, "must not be empty"), (auth_f, "not valid base64")],
        ),
        case(
            "not a host",
            one("not a host", only_auth()),
            &[(&at(1), NOT_A_HOST)],
        ),
        case(
            "port out of range",
            one("registry.example.com:99999", only_auth()),
            &[(&at(1), PORT_RANGE)],
        ),
        case(
            "port zero",
            one("ghcr.io:0", only_auth()),
            &[(&at(1), PORT_RANGE)],
        ),
        case(
            "empty port",
            one("ghcr.io:", only_auth()),
            &[(&at(1), PORT_RANGE)],
        ),
        case(
            "bad host names",
            auths(json!({
                "-a.example.com": only_auth(),
                "a_b.example.com": only_auth(),
                "999.1.1.1": only_auth(),
                "[zz]:5000": only_auth(),
                "": only_auth(),
            })),
            &[
                (&at(1), NOT_A_HOST),
                (&at(2), NOT_A_HOST),
                (&at(3), NOT_A_HOST),
                (&at(4), NOT_A_HOST),
                (&at(5), NOT_A_HOST),
            ],
        ),
        case(
            "good host forms",
            auths(json!({
                "[::1]:5000": only_auth(),
                "10.0.0.1:5000": only_auth(),
                "https://ghcr.io/v2/": only_auth(),
                "http://localhost:5000": only_auth(),
                "Quay.IO": only_auth(),
            })),
            &[],
        ),
        case(
            "docker hub default server",
            one("https://index.docker.io/v1/", kubectl()),
            &[],
        ),
        allow(
            case("allowed exact host", one("ghcr.io", kubectl()), &[]),
            POLICY,
        ),
        allow(
            case("allowed ignores case", one("GHCR.io", kubectl()), &[]),
            POLICY,
        ),
        allow(
            case("allowed host:port", one(REG, kubectl()), &[]),
            &["ghcr.io", REG],
        ),
        allow(
            case("allowed wildcard with port", one(REG, kubectl()), &[]),
            &["*.example.com:5000"],
        ),
        allow(
            case(
                "allowed wildcard, subdomain",
                one("a.b.example.com", kubectl()),
                &[],
            ),
            POLICY,
        ),
        allow(
            case(
                "allowed docker hub",
                one("https://index.docker.io/v1/", kubectl()),
                &[],
            ),
            &["docker.io"],
        ),
        allow(
            case(
                "allowed docker hub, other alias",
                one("docker.io", kubectl()),
                &[],
            ),
            &["registry-1.docker.io"],
        ),
        allow(
            case(
                "denied: other host",
                one("quay.io", kubectl()),
                &[(&e("quay.io"), NOT_ALLOWED)],
            ),
            POLICY,
        ),
        allow(
            case(
                "denied: port not in pattern",
                one(REG, kubectl()),
                &[(ENTRY, NOT_ALLOWED)],
            ),
            POLICY,
        ),
        allow(
            case(
                "denied: wildcard does not match apex",
                one("example.com", kubectl()),
                &[(&e("example.com"), NOT_ALLOWED)],
            ),
            POLICY,
        ),
        allow(
            case(
                "denied: suffix without dot",
                one("badexample.com", kubectl()),
                &[(&e("badexample.com"), NOT_ALLOWED)],
            ),
            POLICY,
        ),
        legacy(case(
            "legacy dockercfg valid",
            bytes(json!({ REG: kubectl() })),
            &[],
        )),
        legacy(case(
            "legacy dockercfg broken",
            bytes(json!({ "registry.example.com": { "auth": "!!", "email": "PLANTED@x.io" } })),
            &[(
                r#"data[.dockercfg]["registry.example.com"].auth"#,
                "not valid base64",
            )],
        )),
        legacy(case(
            "legacy dockercfg holding auths",
            one(REG, kubectl()),
            &[("data[.dockercfg]", HOLDS_AUTHS)],
        )),
        legacy(case(
            "legacy non-UTF-8",
            vec![0xff, 0xfe, b'{'],
            &[("data[.dockercfg]", "is not valid UTF-8")],
        )),
        case(
            "non-UTF-8 bytes",
            b"{\"auths\":{\"r.io\":{\"auth\":\"\xff\xfe\"}}}".to_vec(),
            &[("data[.dockerconfigjson]", "is not valid UTF-8")],
        ),
        case(
            "truncated JSON",
            format!("{{\"auths\":{{\"{REG}\":{{\"auth\":\"{}", auth()).into_bytes(),
            &[(
                "data[.dockerconfigjson]",
                "is not valid JSON (line 1, column 87)",
            )],
        ),
        case(
            "JSON but not an object",
            bytes(json!([PASS])),
            &[("data[.dockerconfigjson]", "must be a JSON object")],
        ),
    ]
}

/// A document written by hand, so keys may repeat; `A` stands for a good `auth`.
fn text(doc: &str) -> Vec<u8> {
    doc.replace("\"A\"", &format!("{:?}", auth())).into_bytes()
}

const ROOT: &str = "data[.dockerconfigjson]";
const GLOB_NOT_ALLOWED: &str = "the kubelet uses these credentials for every registry this \
    pattern matches, and not all of them are allowed in this project \
    (allowed: ghcr.io, *.example.com)";

/// Documents the kubelet (Go `encoding/json`) reads differently from a plain reading,
/// and keys that must be named by position.
fn kubelet_cases() -> Vec<Case> {
    let ghcr = |member: &str| format!("{AUTHS_FIELD}[\"ghcr.io\"]{member}");
    vec![
        case(
            "auths twice: the kubelet merges both",
            text(r#"{"auths":{"ghcr.io":{"auth":"A"}},"auths":{}}"#),
            &[(
                ROOT,
                "key \"auths\" appears 2 times; the kubelet merges them",
            )],
        ),
        allow(
            case(
                "Auths beside auths: the kubelet reads both",
                text(r#"{"auths":{},"Auths":{"evil.io":{"auth":"A"}}}"#),
                &[
                    (
                        ROOT,
                        "key \"Auths\" differs from \"auths\" only by case; the kubelet reads both",
                    ),
                    (
                        "data[.dockerconfigjson].Auths[\"evil.io\"]",
                        "registry is not allowed in this project (allowed: ghcr.io, *.example.com)",
                    ),
                ],
            ),
            POLICY,
        ),
        case(
            "AUTHS alone",
            text(r#"{"AUTHS":{"ghcr.io":{"auth":"A"}}}"#),
            &[(
                ROOT,
                "key \"AUTHS\" differs from \"auths\" only by case; the kubelet reads it as \"auths\"",
            )],
        ),
        case(
            "auths with a long s, Go's case folding",
            text("{\"auth\u{17F}\":{\"ghcr.io\":{\"auth\":\"A\"}}}"),
            &[(
                ROOT,
                "key \"auth\u{17F}\" differs from \"auths\" only by case; the kubelet reads it as \"auths\"",
            )],
        ),
        case(
            "three auths",
            text(r#"{"auths":{},"Auths":{},"auths":{}}"#),
            &[
                (
                    ROOT,
                    "key \"Auths\" differs from \"auths\" only by case; the kubelet reads all 3",
                ),
                (
                    ROOT,
                    "key \"auths\" appears 2 times; the kubelet merges them",
                ),
            ],
        ),
        case(
            "Auth beside auth: the last one wins",
            text(r#"{"auths":{"ghcr.io":{"auth":"A","Auth":"!!"}}}"#),
            &[
                (
                    &ghcr(""),
                    "key \"Auth\" differs from \"auth\" only by case; the kubelet reads both; \
                     the last one wins",
                ),
                (&ghcr(".auth"), "not valid base64"),
            ],
        ),
        case(
            "auth twice",
            text(r#"{"auths":{"ghcr.io":{"auth":"!!","auth":"A"}}}"#),
            &[(
                &ghcr(""),
                "key \"auth\" appears 2 times; the kubelet keeps the last",
            )],
        ),
        case(
            "a null leaves the field as it was",
            text(r#"{"auths":{"ghcr.io":{"auth":"A","auth":null}}}"#),
            &[(
                &ghcr(""),
                "key \"auth\" appears 2 times; the kubelet keeps the last",
            )],
        ),
        case(
            "Username and Password alone",
            text(&format!(
                r#"{{"auths":{{"ghcr.io":{{"Username":"{USER}","PASSWORD":"{PASS}"}}}}}}"#
            )),
            &[
                (
                    &ghcr(""),
                    "key \"Username\" differs from \"username\" only by case; the kubelet reads \
                     it as \"username\"",
                ),
                (
                    &ghcr(""),
                    "key \"PASSWORD\" differs from \"password\" only by case; the kubelet reads \
                     it as \"password\"",
                ),
            ],
        ),
        case(
            "a case variant that is not a string",
            text(r#"{"auths":{"ghcr.io":{"auth":"A","AUTH":7}}}"#),
            &[
                (
                    &ghcr(""),
                    "key \"AUTH\" differs from \"auth\" only by case; the kubelet reads both; \
                     the last one wins",
                ),
                (&ghcr(".auth"), "must be a string"),
            ],
        ),
        case(
            "email in another case",
            text(r#"{"auths":{"ghcr.io":{"auth":"A","Email":"PLANTED@x.io"}}}"#),
            &[(
                &ghcr(""),
                "key \"Email\" differs from \"email\" only by case; the kubelet reads it as \"email\"",
            )],
        ),
        case(
            "other keys repeated",
            text(
                r#"{"auths":{"ghcr.io":{"auth":"A","x-PLANTED":1,"x-PLANTED":2}},"credsStore":"a","credsStore":"b"}"#,
            ),
            &[
                (
                    ROOT,
                    "the key at position 3 repeats the key at position 2; JSON readers disagree \
                     on which one counts",
                ),
                (
                    &ghcr(""),
                    "the key at position 3 repeats the key at position 2; JSON readers disagree \
                     on which one counts",
                ),
            ],
        ),
        case(
            "registry key twice: the kubelet keeps the last",
            text(r#"{"auths":{"ghcr.io":{"auth":"!!"},"ghcr.io":{"auth":"A"}}}"#),
            &[
                (&ghcr(".auth"), "not valid base64"),
                (
                    &ghcr(""),
                    "repeats the registry key of data[.dockerconfigjson].auths[\"ghcr.io\"]; the \
                     kubelet keeps only the last",
                ),
            ],
        ),
        case(
            "registry key in two auths, named by position",
            text(
                r#"{"auths":{"Quay.IO":{"auth":"A"}},"auths":{"x.io":{"auth":"A"},"Quay.IO":{"auth":"A"}}}"#,
            ),
            &[
                (
                    ROOT,
                    "key \"auths\" appears 2 times; the kubelet merges them",
                ),
                (
                    "data[.dockerconfigjson].auths[entry 2]",
                    "repeats the registry key of data[.dockerconfigjson].auths[entry 1]; the \
                     kubelet keeps only the last",
                ),
            ],
        ),
        case(
            "user info in the key",
            text(r#"{"auths":{"https://robot:PLANTED-tok@ghcr.io":{"auth":"A"}}}"#),
            &[(
                "data[.dockerconfigjson].auths[entry 1]",
                crate::registry::USER_INFO,
            )],
        ),
        case(
            "an auth value as the key",
            text(r#"{"auths":{"ghcr.io":{"auth":"A"},"cm9ib3Q6UExBTlRFRC10b2tlbg":{"auth":"A"}}}"#),
            &[(
                "data[.dockerconfigjson].auths[entry 2]",
                crate::registry::SINGLE_NAME,
            )],
        ),
        case(
            "a long path is named by position",
            text(r#"{"auths":{"ghcr.io/planted0123456789abcdef0123456789":{"auth":"!!"}}}"#),
            &[(
                "data[.dockerconfigjson].auths[entry 1].auth",
                "not valid base64",
            )],
        ),
        allow(
            case(
                "port 05000 is not port 5000 to the kubelet",
                text(r#"{"auths":{"registry.corp.io:05000":{"auth":"A"}}}"#),
                &[(
                    "data[.dockerconfigjson].auths[\"registry.corp.io:05000\"]",
                    "registry is not allowed in this project (allowed: registry.corp.io:5000)",
                )],
            ),
            &["registry.corp.io:5000"],
        ),
        allow(
            case(
                "a glob key reaches registries outside the policy",
                text(r#"{"auths":{"*.io":{"auth":"A"}}}"#),
                &[("data[.dockerconfigjson].auths[\"*.io\"]", GLOB_NOT_ALLOWED)],
            ),
            POLICY,
        ),
        allow(
            case(
                "a glob key inside the policy's wildcard",
                text(
                    r#"{"auths":{"*.example.com":{"auth":"A"},"https://ghcr.io/v2/":{"auth":"A"}}}"#,
                ),
                &[],
            ),
            POLICY,
        ),
        allow(
            case(
                "a trailing dot is another host to the kubelet",
                text(r#"{"auths":{"ghcr.io.":{"auth":"A"}}}"#),
                &[("data[.dockerconfigjson].auths[entry 1]", NOT_A_HOST)],
            ),
            POLICY,
        ),
        case(
            "an email that is not a string fails the kubelet's decode",
            text(r#"{"auths":{"ghcr.io":{"auth":"A","email":7}}}"#),
            &[(&ghcr(".email"), "must be a string")],
        ),
        case(
            "HttpHeaders of another shape fails the kubelet's decode",
            text(r#"{"auths":{"ghcr.io":{"auth":"A"}},"HttpHeaders":{"ghcr.io":{"auth":"A"}}}"#),
            &[(
                "data[.dockerconfigjson].HttpHeaders",
                "must be an object mapping header names to strings",
            )],
        ),
        case(
            "HttpHeaders as docker writes it",
            text(r#"{"auths":{"ghcr.io":{"auth":"A"}},"HttpHeaders":{"User-Agent":"x"}}"#),
            &[],
        ),
        legacy(case(
            "legacy registry key twice",
            text(r#"{"Quay.IO":{"auth":"A"},"Quay.IO":{"auth":"A"}}"#),
            &[(
                "data[.dockercfg][entry 2]",
                "repeats the registry key of data[.dockercfg][entry 1]; the kubelet keeps only \
                 the last",
            )],
        )),
        legacy(case(
            "legacy with Auths",
            text(r#"{"Auths":{"ghcr.io":{"auth":"A"}}}"#),
            &[("data[.dockercfg]", HOLDS_AUTHS)],
        )),
        legacy(case(
            "legacy user info",
            text(r#"{"robot:PLANTED@ghcr.io":{"auth":"A"}}"#),
            &[("data[.dockercfg][entry 1]", crate::registry::USER_INFO)],
        )),
    ]
}

#[test]
fn kubelet_reading() {
    for c in kubelet_cases() {
        let got: Vec<_> = check(&secret(c.ty, key_of(c.ty), c.doc), c.allowed)
            .into_iter()
            .map(|v| (v.field, v.message))
            .collect();
        assert_eq!(got, c.want, "case {:?}", c.name);
    }
}

#[test]
fn table() {
    for c in cases() {
        let got: Vec<_> = check(&secret(c.ty, key_of(c.ty), c.doc), c.allowed)
            .into_iter()
            .inspect(|v| assert_eq!(v.severity, Severity::Deny, "{}", c.name))
            .map(|v| (v.field, v.message))
            .collect();
        assert_eq!(got, c.want, "case {:?}", c.name);
    }
}

fn key_of(ty: &str) -> &'static str {
    if ty == DOCKER_CFG {
        LEGACY_KEY
    } else {
        CONFIG_JSON_KEY
    }
}

/// Every string value in a document (not the keys: registry hosts may be shown).
fn values(v: &Value, acc: &mut Vec<String>) {
    match v {
        Value::String(s) => acc.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| values(v, acc)),
        Value::Object(o) => o.values().for_each(|v| values(v, acc)),
        _ => {}
    }
}

fn all_values(v: &Json, acc: &mut Vec<String>) {
    match v {
        Json::String(s) => acc.push(s.clone()),
        Json::Object(o) => o.iter().for_each(|(_, v)| all_values(v, acc)),
        _ => {}
    }
}

#[test]
fn no_secret_value_in_any_violation() {
    for c in cases().into_iter().chain(kubelet_cases()) {
        let mut secrets = vec![USER.to_owned(), PASS.to_owned(), auth(), "7f3a9".to_owned()];
        if let Ok(doc) = serde_json::from_slice::<Value>(&c.doc) {
            values(&doc, &mut secrets);
        }
        // Every occurrence of a repeated key too.
        if let Ok(doc) = Json::parse(std::str::from_utf8(&c.doc).unwrap_or_default()) {
            all_values(&doc, &mut secrets);
        }
        secrets.retain(|s| s.trim().len() >= 4 && s != "ecr-login");
        for v in check(&secret(c.ty, key_of(c.ty), c.doc), c.allowed) {
            let text = format!("{} {}", v.field, v.message);
            assert!(!text.contains("PLANTED"), "case {:?} leaks: {text}", c.name);
            for s in &secrets {
                assert!(
                    !text.contains(s.trim()),
                    "case {:?} leaks a value: {text}",
                    c.name
                );
            }
        }
    }
}

#[test]
fn missing_key() {
    let other = secret(DOCKER_CONFIG_JSON, "config.json", b"{}".to_vec());
    let got = check(&other, &[]);
    assert_eq!(
        got,
        vec![Violation::deny("data[.dockerconfigjson]", MISSING)]
    );
    let other = secret(DOCKER_CFG, CONFIG_JSON_KEY, b"{}".to_vec());
    assert_eq!(
        check(&other, &[]),
        vec![Violation::deny("data[.dockercfg]", MISSING)]
    );
}

fn fixture(name: &str) -> Secret {
    let path = format!(
        "{}/../shared/fixtures/admission/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let review: AdmissionReview<Secret> = serde_json::from_slice(&bytes).expect(name);
    review
        .request
        .and_then(|r| r.object)
        .expect("request.object")
}

#[test]
fn recorded_fixtures() {
    let entry = |reg: &str, member: &str| entry_field(reg, member);
    // (fixture, allowed registries, expected (field, message) pairs)
    type Expected = Vec<(String, &'static str)>;
    let cases: &[(&str, &[&str], Expected)] = &[
        ("secret-create-dockerconfigjson-valid.json", &[], vec![]),
        (
            "secret-create-dockerconfigjson-default-server.json",
            &[],
            vec![],
        ),
        (
            "secret-create-dockerconfigjson-from-file-auth-only.json",
            &[],
            vec![],
        ),
        (
            "secret-create-dockerconfigjson-credhelpers-empty-auths.json",
            &[],
            vec![],
        ),
        (
            "secret-create-dry-run-server-dockerconfigjson.json",
            &[],
            vec![],
        ),
        (
            "secret-create-dockerconfigjson-no-auths-key.json",
            &[],
            vec![(AUTHS_FIELD.into(), LEGACY_HINT)],
        ),
        (
            "secret-create-dockerconfigjson-auth-not-base64.json",
            &[],
            vec![(entry(REG, ".auth"), "not valid base64")],
        ),
        (
            "secret-create-dockerconfigjson-auth-no-colon.json",
            &[],
            vec![(entry("ghcr.io", ".auth"), "must be base64 of user:password")],
        ),
        (
            "secret-create-dockerconfigjson-auths-is-array.json",
            &[],
            vec![(
                AUTHS_FIELD.into(),
                "must be an object mapping registry hosts to credentials",
            )],
        ),
        // Its auth encodes `robot$team-a:s3cr3t-t0ken`, its fields say robot / s3cr3t.
        (
            "secret-create-dockercfg-legacy.json",
            &[],
            vec![(
                r#"data[.dockercfg]["registry.example.com"].auth"#.into(),
                "auth does not match username and password",
            )],
        ),
        (
            "secret-create-dockerconfigjson-default-server.json",
            &["docker.io"],
            vec![],
        ),
        (
            "secret-create-dockerconfigjson-valid.json",
            &["*.example.com:5000"],
            vec![],
        ),
        (
            "secret-create-dockerconfigjson-valid.json",
            &["*.example.com"],
            vec![(
                entry(REG, ""),
                "registry is not allowed in this project (allowed: *.example.com)",
            )],
        ),
    ];
    for (name, allowed, want) in cases {
        let got: Vec<_> = check(&fixture(name), allowed)
            .into_iter()
            .map(|v| (v.field, v.message))
            .collect();
        let want: Vec<_> = want
            .iter()
            .map(|(f, m)| (f.clone(), m.to_string()))
            .collect();
        assert_eq!(got, want, "{name} with allowed {allowed:?}");
    }
}

// ---------------------------------------------------------------------------------------
// `registry_credentials`: what the kubelet's keyring gets.

/// `(key, username, password)` of each credential, as text.
fn creds(config_json: bool, doc: &str) -> Vec<(String, String, String)> {
    registry_credentials(config_json, doc.as_bytes())
        .iter()
        .map(|c| {
            let text = |b: &SecretBytes| String::from_utf8_lossy(b.expose()).into_owned();
            (c.key.clone(), text(&c.username), text(&c.password))
        })
        .collect()
}

fn triple(key: &str, user: &str, pass: &str) -> (String, String, String) {
    (key.to_owned(), user.to_owned(), pass.to_owned())
}

#[test]
fn credentials_from_auth_or_username_and_password() {
    // Written as text: `json!` would sort the keys.
    let doc = format!(
        r#"{{"auths": {{
            "ghcr.io": {{"username": "u1", "password": "p1"}},
            "quay.io": {{"auth": "{}"}},
            "registry.example.com:5000": {{"username": "old", "password": "old", "auth": "{}"}},
            "docker.io": {{"auth": "", "username": "u4", "password": "p4"}}
        }}}}"#,
        b64("u2:p:2"),
        b64("u3:p3")
    );
    // `auth` wins over stale fields, as `DockerConfigEntry.UnmarshalJSON` decides; an
    // empty `auth` is no `auth`; document order is kept.
    assert_eq!(
        creds(true, &doc),
        [
            triple("ghcr.io", "u1", "p1"),
            triple("quay.io", "u2", "p:2"),
            triple("registry.example.com:5000", "u3", "p3"),
            triple("docker.io", "u4", "p4"),
        ]
    );
}

#[test]
fn credentials_follow_go_field_matching_and_repeats() {
    // Case-folded field names, the last string wins, `null` leaves a field as it was.
    let doc = r#"{"AUTHS": {"ghcr.io": {"UserName": "a", "username": "u", "PASSWORD": "p",
        "password": null}}}"#;
    assert_eq!(creds(true, doc), [triple("ghcr.io", "u", "p")]);
    // `authſ` is `auths` to Go.
    let doc = r#"{"auth\u017f": {"ghcr.io": {"username": "u", "password": "p"}}}"#;
    assert_eq!(creds(true, doc), [triple("ghcr.io", "u", "p")]);
    // Every `auths` is merged; a registry key given again keeps its last entry.
    let doc = r#"{"auths": {"ghcr.io": {"username": "u1", "password": "p1"},
                            "quay.io": {"username": "q", "password": "q"}},
                  "Auths": {"ghcr.io": {"username": "u2", "password": "p2"}}}"#;
    assert_eq!(
        creds(true, doc),
        [triple("ghcr.io", "u2", "p2"), triple("quay.io", "q", "q")]
    );
    // A `null` auths sets the map to nil: what came before is gone.
    let doc = r#"{"auths": {"ghcr.io": {"username": "u", "password": "p"}}, "auths": null,
                  "auths": {"quay.io": {"username": "q", "password": "q"}}}"#;
    assert_eq!(creds(true, doc), [triple("quay.io", "q", "q")]);
    // Other top-level fields are ignored; the registries must be under `auths`.
    let doc = r#"{"credsStore": "x", "ghcr.io": {"username": "u", "password": "p"}}"#;
    assert_eq!(creds(true, doc), []);
}

#[test]
fn credentials_decode_auth_as_the_kubelet_does() {
    // Unpadded (`RawStdEncoding`), wrapped lines, and a password with colons.
    let unpadded = STANDARD
        .encode("user:pa:ss")
        .trim_end_matches('=')
        .to_owned();
    assert_ne!(
        unpadded,
        STANDARD.encode("user:pa:ss"),
        "the fixture needs padding"
    );
    let wrapped = format!("{}\n{}", &auth()[..8], &auth()[8..]);
    let doc = json!({"auths": {
        "a.example.com": {"auth": unpadded},
        "b.example.com": {"auth": wrapped},
    }})
    .to_string();
    assert_eq!(
        creds(true, &doc),
        [
            triple("a.example.com", "user", "pa:ss"),
            triple("b.example.com", USER, PASS),
        ]
    );
}

#[test]
fn credentials_are_none_where_go_fails_to_decode() {
    for doc in [
        "not json",
        "[]",
        r#"{"auths": []}"#,
        r#"{"auths": {"ghcr.io": "user:pass"}}"#,
        r#"{"auths": {"ghcr.io": {"username": 1, "password": "p"}}}"#,
        // A wrong type in a field never used still fails the decode.
        r#"{"auths": {"ghcr.io": {"username": "u", "password": "p", "email": true}}}"#,
        r#"{"auths": {"ghcr.io": {"auth": "!!!"}}}"#,
        r#"{"auths": {"ghcr.io": {"auth": "dXNlcg=="}}}"#,
        r#"{"auths": {"ghcr.io": {"username": "u", "password": "p"}}, "HttpHeaders": []}"#,
        // One broken entry takes the others with it.
        r#"{"auths": {"ghcr.io": {"username": "u", "password": "p"}, "quay.io": 3}}"#,
    ] {
        assert_eq!(creds(true, doc), [], "{doc}");
    }
    assert_eq!(creds(true, "null"), []);
    assert_eq!(creds(false, "null"), []);
}

#[test]
fn credentials_from_legacy_dockercfg() {
    let doc = format!(
        r#"{{"https://index.docker.io/v1/": {{"auth": "{}", "email": "e@example.com"}},
            "ghcr.io": {{"username": "u", "password": "p"}},
            "empty.example.com": null}}"#,
        auth()
    );
    assert_eq!(
        creds(false, &doc),
        [
            triple("https://index.docker.io/v1/", USER, PASS),
            triple("ghcr.io", "u", "p"),
            triple("empty.example.com", "", ""),
        ]
    );
    // `.dockerconfigjson` read as legacy: `auths` is a registry key whose entry has no
    // credential fields.
    let doc = json!({"auths": {"ghcr.io": {"auth": auth()}}}).to_string();
    assert_eq!(creds(false, &doc), [triple("auths", "", "")]);
}

#[test]
fn credentials_keep_glob_and_path_keys_as_written() {
    let doc = json!({"auths": {
        "*.example.com": {"username": "g", "password": "g"},
        "https://registry.example.com/team/": {"username": "t", "password": "t"},
        "registry.example.com": {"username": "r", "password": "r"},
    }})
    .to_string();
    let got = registry_credentials(true, doc.as_bytes());
    let keys: Vec<&str> = got.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "*.example.com",
            "https://registry.example.com/team/",
            "registry.example.com"
        ]
    );
    let glob = RegistryKey::parse(keys[0]).expect("a glob key parses");
    assert!(glob.is_glob());
    assert!(glob.allowed_by(&["*.example.com"]));
    assert!(!glob.allowed_by(&["registry.example.com"]));
}

#[test]
fn credential_debug_output_holds_no_value() {
    let doc = json!({"auths": {
        "ghcr.io": {"auth": auth()},
        // A credential pasted as the key: not quotable, never printed.
        "https://robot:PLANTED-key-token@ghcr.io": {"username": USER, "password": PASS},
    }})
    .to_string();
    let got = registry_credentials(true, doc.as_bytes());
    assert_eq!(got.len(), 2);
    let debug = format!("{got:?} {:#?}", got[0]);
    assert!(debug.contains("ghcr.io"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    for planted in [USER, PASS, "PLANTED", &auth()] {
        assert!(!debug.contains(planted), "{planted} in {debug}");
    }
}
