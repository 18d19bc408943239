//! `kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg` content checks.
//!
//! The API server only checks that `.dockerconfigjson` is JSON; kubelet then silently
//! ignores what it cannot use, so a broken pull secret shows up much later as an
//! `ImagePullBackOff`. These checks catch the usual mistakes at creation time. Both
//! formats share the per-registry checks: `.dockercfg` is the map of registries itself,
//! `.dockerconfigjson` wraps the same map in `auths`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::{Input, Violation, data_field};
use crate::registry::Registry;

const CONFIG_JSON_KEY: &str = ".dockerconfigjson";
const LEGACY_KEY: &str = ".dockercfg";
const AUTHS: &str = "auths";

const MISSING: &str = "required value is missing";
const NO_WHITESPACE: &str = "must not contain whitespace or line breaks";

pub fn validate_config_json(input: &Input<'_>, out: &mut Vec<Violation>) {
    let Some(root) = parse_object(input, CONFIG_JSON_KEY, out) else {
        return;
    };
    let auths_field = format!("{}.{AUTHS}", data_field(CONFIG_JSON_KEY));
    match root.get(AUTHS) {
        // An empty `auths` is legitimate: `credHelpers`/`credsStore` configs have one.
        Some(Value::Object(auths)) => check_registries(input, &auths_field, auths, out),
        Some(_) => out.push(Violation::deny(
            auths_field,
            "must be an object mapping registry hosts to credentials",
        )),
        // kubelet reads only `auths`: registries at the top level are ignored silently.
        None if root.values().any(looks_like_credentials) => out.push(Violation::deny(
            auths_field,
            "required value is missing; the registries are at the top level as in the legacy \
             .dockercfg format: wrap them in \"auths\" or use type kubernetes.io/dockercfg",
        )),
        None => out.push(Violation::deny(auths_field, MISSING)),
    }
}

pub fn validate_legacy_cfg(input: &Input<'_>, out: &mut Vec<Violation>) {
    let Some(root) = parse_object(input, LEGACY_KEY, out) else {
        return;
    };
    let field = data_field(LEGACY_KEY);
    // The mirror image of the missing-`auths` mistake: `auths` would otherwise be taken
    // for a registry host named "auths" with no credentials.
    if let Some(Value::Object(_)) = root.get(AUTHS) {
        out.push(Violation::deny(
            field,
            "holds the .dockerconfigjson format (an \"auths\" object); use type \
             kubernetes.io/dockerconfigjson with key .dockerconfigjson",
        ));
        return;
    }
    check_registries(input, &field, &root, out);
}

/// The JSON object stored under `data[key]`, or `None` after reporting why there is none.
fn parse_object(
    input: &Input<'_>,
    key: &str,
    out: &mut Vec<Violation>,
) -> Option<Map<String, Value>> {
    let field = data_field(key);
    let Some(bytes) = input.data(key) else {
        out.push(Violation::deny(field, MISSING));
        return None;
    };
    let problem = match std::str::from_utf8(bytes).map(serde_json::from_str::<Value>) {
        Ok(Ok(Value::Object(root))) => return Some(root),
        Ok(Ok(_)) => "must be a JSON object".to_owned(),
        // Only the position: serde_json's messages may quote the input.
        Ok(Err(e)) => format!(
            "is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ),
        Err(_) => "is not valid UTF-8".to_owned(),
    };
    out.push(Violation::deny(field, problem));
    None
}

fn looks_like_credentials(value: &Value) -> bool {
    value.as_object().is_some_and(|e| {
        ["auth", "username", "password"]
            .iter()
            .any(|k| e.contains_key(*k))
    })
}

/// Checks every `registry: credentials` pair of `registries`, whose path is `prefix`.
fn check_registries(
    input: &Input<'_>,
    prefix: &str,
    registries: &Map<String, Value>,
    out: &mut Vec<Violation>,
) {
    let allowed = &input.rules.image_pull.allowed_registries;
    for (key, entry) in registries {
        // Registry hosts are not secret, so the key may appear in the path.
        let field = format!("{prefix}[{key:?}]");
        match Registry::parse(key) {
            Err(problem) => out.push(Violation::deny(&field, problem)),
            Ok(registry) if !allowed.is_empty() && !allowed.iter().any(|p| registry.matches(p)) => {
                out.push(Violation::deny(
                    &field,
                    format!(
                        "registry is not allowed in this project (allowed: {})",
                        allowed.join(", ")
                    ),
                ))
            }
            Ok(_) => {}
        }
        check_credentials(&field, entry, out);
    }
}

/// Checks one registry's credentials as kubelet reads them: `auth` (base64 of
/// `user:password`) and/or `username` + `password`. No value reaches a message.
fn check_credentials(field: &str, entry: &Value, out: &mut Vec<Violation>) {
    let Value::Object(entry) = entry else {
        out.push(Violation::deny(
            field,
            "must be an object with \"auth\" or \"username\" and \"password\"",
        ));
        return;
    };
    let member = |name: &str, out: &mut Vec<Violation>| match entry.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => {
            out.push(Violation::deny(
                format!("{field}.{name}"),
                "must be a string",
            ));
            Err(())
        }
    };
    // Evaluate all three before bailing out, so every wrong type is reported.
    let (auth, username, password) = (
        member("auth", out),
        member("username", out),
        member("password", out),
    );
    let (Ok(auth), Ok(username), Ok(password)) = (auth, username, password) else {
        return;
    };
    if auth.is_none() && username.is_none() && password.is_none() {
        out.push(Violation::deny(
            field,
            "has no credentials: set \"auth\" (base64 of user:password) \
             or \"username\" and \"password\"",
        ));
        return;
    }
    for (name, value) in [("username", username), ("password", password)] {
        let name_field = format!("{field}.{name}");
        match value {
            None if auth.is_none() => out.push(Violation::deny(name_field, MISSING)),
            None => {}
            Some("") => out.push(Violation::deny(name_field, "must not be empty")),
            Some(v) if v.chars().any(char::is_whitespace) => {
                out.push(Violation::deny(name_field, NO_WHITESPACE))
            }
            Some(_) => {}
        }
    }
    let Some(auth) = auth else {
        return;
    };
    let auth_field = format!("{field}.auth");
    let (user, pass) = match decode_auth(auth) {
        Ok(pair) => pair,
        Err(problem) => {
            out.push(Violation::deny(auth_field, problem));
            return;
        }
    };
    if user.is_empty() {
        out.push(Violation::deny(&auth_field, "user name must not be empty"));
    }
    if pass.is_empty() {
        out.push(Violation::deny(&auth_field, "password must not be empty"));
    }
    // Typically `echo user:password | base64`, which encodes echo's trailing newline.
    if user.iter().chain(&pass).any(u8::is_ascii_whitespace) {
        out.push(Violation::deny(
            &auth_field,
            "user name or password contains whitespace or a line break \
             (encoded with echo without -n?)",
        ));
    }
    // kubelet uses `auth` when it is set; differing fields mean one of them is stale.
    let differs =
        |given: Option<&str>, decoded: &[u8]| given.is_some_and(|g| g.as_bytes() != decoded);
    if differs(username, &user) || differs(password, &pass) {
        out.push(Violation::deny(
            auth_field,
            "auth does not match username and password",
        ));
    }
}

/// Splits a decoded `auth` at its first colon, as kubelet does (passwords may hold colons).
fn decode_auth(auth: &str) -> Result<(Vec<u8>, Vec<u8>), &'static str> {
    if auth.is_empty() {
        return Err("must not be empty");
    }
    // Wrapped base64 (`base64` without `-w0`) is the usual copy-paste mistake.
    if auth.chars().any(char::is_whitespace) {
        return Err(NO_WHITESPACE);
    }
    let decoded = STANDARD.decode(auth).map_err(|_| "not valid base64")?;
    let colon = decoded
        .iter()
        .position(|b| *b == b':')
        .ok_or("must be base64 of user:password")?;
    Ok((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use crate::registry::NOT_A_HOST;
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kube::core::admission::AdmissionReview;
    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;
    use crate::policy::{SecretRules, Severity};
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
        let input = Input {
            secret,
            rules: &rules,
            now: OffsetDateTime::UNIX_EPOCH,
        };
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
    const PORT_RANGE: &str = "port must be between 1 and 65535";
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
                &[(&e("not a host"), NOT_A_HOST)],
            ),
            case(
                "port out of range",
                one("registry.example.com:99999", only_auth()),
                &[(&e("registry.example.com:99999"), PORT_RANGE)],
            ),
            case(
                "port zero",
                one("ghcr.io:0", only_auth()),
                &[(&e("ghcr.io:0"), PORT_RANGE)],
            ),
            case(
                "empty port",
                one("ghcr.io:", only_auth()),
                &[(&e("ghcr.io:"), PORT_RANGE)],
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
                    (&e(""), NOT_A_HOST),
                    (&e("-a.example.com"), NOT_A_HOST),
                    (&e("999.1.1.1"), NOT_A_HOST),
                    (&e("[zz]:5000"), NOT_A_HOST),
                    (&e("a_b.example.com"), NOT_A_HOST),
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

    #[test]
    fn no_secret_value_in_any_violation() {
        for c in cases() {
            let mut secrets = vec![USER.to_owned(), PASS.to_owned(), auth(), "7f3a9".to_owned()];
            if let Ok(doc) = serde_json::from_slice::<Value>(&c.doc) {
                values(&doc, &mut secrets);
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
}
