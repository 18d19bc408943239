use hyper::header::HeaderValue;

use super::login::pick_challenge;
use super::target::{Origin, token_of, token_request};
use super::*;

fn origin(host: &str, port: u16) -> Origin {
    // `Origin`'s fields are private to `login`; build through a key.
    let key = match (host.contains(':'), port) {
        (false, 443) => host.to_owned(),
        (false, _) => format!("{host}:{port}"),
        (true, _) => format!("[{host}]:{port}"),
    };
    Origin::of_key(&key).expect("a contactable key")
}

#[test]
fn keys_are_contacted_at_their_host() {
    for (key, host, port) in [
        ("ghcr.io", "ghcr.io", 443),
        ("https://GHCR.io/v1/", "ghcr.io", 443),
        (
            "http://registry.example.com:5000/team/app",
            "registry.example.com",
            5000,
        ),
        ("127.0.0.1:05000", "127.0.0.1", 5000),
        ("docker.io", "registry-1.docker.io", 443),
        ("index.docker.io", "registry-1.docker.io", 443),
        ("https://index.docker.io/v1/", "registry-1.docker.io", 443),
        ("registry-1.docker.io", "registry-1.docker.io", 443),
    ] {
        let got = Origin::of_key(key).expect(key);
        assert_eq!(got, origin(host, port), "{key}");
    }
    let v6 = Origin::of_key("[::1]:5000").expect("an IPv6 key");
    assert_eq!(format!("{v6:?}"), r#"Origin { host: "::1", port: 5000 }"#);
}

#[test]
fn glob_and_unparseable_keys_are_not_contacted() {
    assert!(Origin::of_key("*.example.com").is_err());
    assert!(Origin::of_key("*.example.com:5000").is_err());
    assert!(Origin::of_key("user:pass@ghcr.io").is_err());
    assert!(Origin::of_key("not a host").is_err());
}

#[test]
fn token_requests_follow_docker() {
    let (at, path) = token_request(
        "https://auth.example.com/token",
        Some("registry.example.com"),
        b"robot$ci@x",
    )
    .expect("https realm");
    assert_eq!(at, origin("auth.example.com", 443));
    assert_eq!(
        path,
        "/token?service=registry.example.com&account=robot%24ci%40x"
    );

    // A query in the realm is kept; no service, no username: nothing added for them.
    let (at, path) =
        token_request("https://127.0.0.1:8443/t?client=x", None, b"").expect("https realm");
    assert_eq!(at, origin("127.0.0.1", 8443));
    assert_eq!(path, "/t?client=x");
    let (_, path) =
        token_request("https://a.example.com", Some("s p&"), b"u").expect("https realm");
    assert_eq!(path, "/?service=s%20p%26&account=u");
}

#[test]
fn token_realms_must_be_https() {
    let http = token_request("http://auth.example.com/token", Some("s"), b"u");
    let reason = http.expect_err("plain http is refused");
    assert!(reason.contains("http://"), "{reason}");
    assert!(reason.contains("clear"), "{reason}");
    for realm in [
        "ftp://auth.example.com/token",
        "/token",
        "auth.example.com/token",
        "https://user:pw@auth.example.com/token",
        "",
    ] {
        assert!(token_request(realm, None, b"u").is_err(), "{realm:?}");
    }
}

#[test]
fn tokens_are_read_as_docker_reads_them() {
    let text = |b: &[u8]| token_of(b).map(|t| String::from_utf8_lossy(t.expose()).into_owned());
    assert_eq!(text(br#"{"token":"t1"}"#).as_deref(), Some("t1"));
    assert_eq!(text(br#"{"access_token":"a1"}"#).as_deref(), Some("a1"));
    assert_eq!(
        text(br#"{"token":"t1","access_token":"a1","expires_in":300}"#).as_deref(),
        Some("a1")
    );
    assert_eq!(text(br#"{"token":"","access_token":""}"#), None);
    assert_eq!(text(br#"{"token":5}"#), None);
    assert_eq!(text(b"<html>"), None);
    assert_eq!(text(b""), None);
}

#[test]
fn bearer_is_preferred_and_bad_headers_are_skipped() {
    let h = |s: &'static str| HeaderValue::from_static(s);
    let picked = pick_challenge(&[h("Basic realm=x"), h(r#"Bearer realm="https://a/t""#)])
        .expect("a challenge");
    assert_eq!(picked.scheme, "bearer");
    let picked =
        pick_challenge(&[h("Bearer realm=\"open"), h("basic realm=r")]).expect("a challenge");
    assert_eq!(picked.scheme, "basic");
    assert!(pick_challenge(&[h("Negotiate"), h("Digest realm=r")]).is_none());
    assert!(pick_challenge(&[]).is_none());
}

#[test]
fn outcomes_read_as_sentences_and_label_results() {
    let cases = [
        (
            Outcome::Ok,
            Some("ok"),
            "registry ghcr.io accepted the credentials",
        ),
        (
            Outcome::Anonymous,
            Some("anonymous"),
            "registry ghcr.io allows anonymous access; the credentials were not tested",
        ),
        (
            Outcome::rejected("HTTP 401"),
            Some("rejected"),
            "registry ghcr.io rejected the credentials (HTTP 401)",
        ),
        (
            Outcome::unreachable("connection refused"),
            Some("unreachable"),
            "registry ghcr.io is unreachable: connection refused",
        ),
        (
            Outcome::not_checked("the entry holds no credentials"),
            None,
            "registry ghcr.io was not checked: the entry holds no credentials",
        ),
    ];
    for (outcome, result, message) in cases {
        assert_eq!(outcome.result(), result);
        assert_eq!(outcome.message("ghcr.io"), message);
    }
    let json = serde_json::to_string(&Outcome::rejected("HTTP 403")).expect("serialises");
    assert_eq!(json, r#"{"outcome":"rejected","reason":"HTTP 403"}"#);
    assert_eq!(
        serde_json::to_string(&Outcome::Ok).expect("serialises"),
        r#"{"outcome":"ok"}"#
    );
}

#[test]
fn config_errors_name_the_problem() {
    let config = |pem: &[u8]| CheckerConfig {
        system_roots: false,
        extra_ca_pem: Some(pem.to_vec()),
        ..CheckerConfig::default()
    };
    let registry = prometheus::Registry::new();
    let err = |c: &CheckerConfig| {
        CredentialChecker::new(c, &registry)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(err(&config(b"")).contains("no certificate"));
    assert!(
        err(&config(
            b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"
        ))
        .contains("PEM")
    );
    let none = CheckerConfig {
        system_roots: false,
        ..CheckerConfig::default()
    };
    assert!(err(&none).contains("no trusted CA"));
    let zero = CheckerConfig {
        concurrency: 0,
        ..config(b"")
    };
    assert!(err(&zero).contains("concurrency"));
}

#[test]
fn pull_secrets_are_found_by_type_and_key() {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;

    let secret = |ty: &str, key: &str| Secret {
        type_: Some(ty.to_owned()),
        data: Some(BTreeMap::from([(
            key.to_owned(),
            ByteString(b"{}".to_vec()),
        )])),
        metadata: kube::api::ObjectMeta {
            namespace: Some("ns".to_owned()),
            name: Some("pull".to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    let s = secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson");
    let found = PullSecret::from_secret(&s).expect("a pull secret");
    assert_eq!(
        (found.namespace, found.name, found.config_json, found.data),
        ("ns", "pull", true, &b"{}"[..])
    );
    let s = secret("kubernetes.io/dockercfg", ".dockercfg");
    assert!(
        !PullSecret::from_secret(&s)
            .expect("a legacy pull secret")
            .config_json
    );
    for (ty, key) in [
        ("kubernetes.io/dockercfg", ".dockerconfigjson"),
        ("kubernetes.io/dockerconfigjson", ".dockercfg"),
        ("Opaque", ".dockerconfigjson"),
    ] {
        assert!(
            PullSecret::from_secret(&secret(ty, key)).is_none(),
            "{ty} {key}"
        );
    }
    // The document is not printed.
    let s = secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson");
    let debug = format!("{:?}", PullSecret::from_secret(&s));
    assert!(!debug.contains("{}"), "{debug}");
}
