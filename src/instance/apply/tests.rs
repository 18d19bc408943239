//! The source hash (its encoding, stable, independent of key order, type included) and
//! what the executor's types print.

use super::*;

fn hash(type_: Option<&str>, data: &[(&str, &[u8])]) -> String {
    source_hash(type_, data.iter().copied())
}

/// The encoding the documentation describes, written out by hand.
fn by_hand(type_: &str, data: &[(&str, &[u8])]) -> String {
    let mut input = Vec::new();
    let mut field = |bytes: &[u8]| {
        input.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        input.extend_from_slice(bytes);
    };
    field(type_.as_bytes());
    input.extend_from_slice(&(data.len() as u64).to_be_bytes());
    for (k, v) in data {
        input.extend_from_slice(&(k.len() as u64).to_be_bytes());
        input.extend_from_slice(k.as_bytes());
        input.extend_from_slice(&(v.len() as u64).to_be_bytes());
        input.extend_from_slice(v);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[test]
fn the_hash_is_sha256_of_the_documented_encoding() {
    let data: &[(&str, &[u8])] = &[("a", b"1"), ("b", b"22")];
    let got = hash(Some("Opaque"), data);
    assert_eq!(got, by_hand("Opaque", data));
    assert_eq!(got.len(), "sha256:".len() + 64);
    assert!(got.starts_with("sha256:"));
    // Fixed values (computed with Python's hashlib): the encoding never changes silently,
    // copies in clusters carry it.
    assert_eq!(
        got,
        "sha256:d9b5d1bf60493ca637f9605e0cadc339a2522f924e5774586166f71df9448af0"
    );
    assert_eq!(
        hash(Some("Opaque"), &[]),
        "sha256:6d947a19ebf02721b444fdac6c406a056180ae89dc5b60002106a4607d2d9d1d"
    );
}

#[test]
fn the_hash_is_stable_and_independent_of_key_order() {
    let a = hash(
        Some("Opaque"),
        &[("user", b"u"), ("pass", b"p"), ("x", b"")],
    );
    let b = hash(
        Some("Opaque"),
        &[("x", b""), ("pass", b"p"), ("user", b"u")],
    );
    assert_eq!(a, b);
    assert_eq!(
        a,
        hash(
            Some("Opaque"),
            &[("user", b"u"), ("pass", b"p"), ("x", b"")]
        )
    );
}

#[test]
fn the_hash_covers_the_type_and_every_byte() {
    let data: &[(&str, &[u8])] = &[(".dockerconfigjson", b"{}")];
    let base = hash(Some("kubernetes.io/dockerconfigjson"), data);
    assert_ne!(base, hash(Some("Opaque"), data), "type included");
    assert_ne!(
        base,
        hash(
            Some("kubernetes.io/dockerconfigjson"),
            &[(".dockerconfigjson", b"{ }")]
        )
    );
    assert_ne!(
        base,
        hash(
            Some("kubernetes.io/dockerconfigjson"),
            &[(".dockercfg", b"{}")]
        )
    );
    // Unset and empty types are Opaque, as the API server defaults them.
    assert_eq!(hash(None, data), hash(Some("Opaque"), data));
    assert_eq!(hash(Some(""), data), hash(Some("Opaque"), data));
}

#[test]
fn the_hash_is_unambiguous_where_concatenation_is_not() {
    // Same concatenated bytes, different secrets.
    assert_ne!(
        hash(Some("Opaque"), &[("ab", b"c")]),
        hash(Some("Opaque"), &[("a", b"bc")])
    );
    assert_ne!(
        hash(Some("Opaque"), &[("a", b"b"), ("c", b"d")]),
        hash(Some("Opaque"), &[("a", b"bcd")])
    );
    assert_ne!(
        hash(Some("Opaqu"), &[("e", b"")]),
        hash(Some("Opaque"), &[])
    );
    assert_ne!(
        hash(Some("Opaque"), &[("k", b"")]),
        hash(Some("Opaque"), &[])
    );
}

fn source() -> Source {
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "type": "kubernetes.io/basic-auth",
        "immutable": true,
        "metadata": {"name": "creds", "namespace": "secretgate", "resourceVersion": "42",
                     "labels": {"team": "platform"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                     "{\"data\":{\"password\":\"UExBTlRFRA==\"}}"}},
        // base64 of PLANTED-user / PLANTED-pass
        "data": {"username": "UExBTlRFRC11c2Vy", "password": "UExBTlRFRC1wYXNz"}
    }))
    .expect("secret");
    Source::from_secret(secret)
}

#[test]
fn a_copy_takes_type_data_and_immutable_but_no_source_metadata() {
    let source = source();
    let copy = Copy {
        namespace: "team-a".into(),
        name: "creds-copy".into(),
        policy: "team-a".into(),
        source: SecretReference {
            namespace: "secretgate".into(),
            name: "creds".into(),
        },
        source_version: Some("41".into()),
    };
    let secret = source.copy(&copy, Some("7".into()));
    let json = serde_json::to_value(&secret).expect("json");
    assert_eq!(json["metadata"]["name"], "creds-copy");
    assert_eq!(json["metadata"]["namespace"], "team-a");
    assert_eq!(json["metadata"]["resourceVersion"], "7");
    assert_eq!(
        json["metadata"]["labels"],
        serde_json::json!({"app.kubernetes.io/managed-by": "secretgate"})
    );
    assert_eq!(
        json["metadata"]["annotations"],
        serde_json::json!({
            "secretgate.io/policy": "team-a",
            "secretgate.io/source": "secretgate/creds",
            // As read now, not as planned.
            "secretgate.io/source-version": "42",
            "secretgate.io/source-hash": hash(Some("kubernetes.io/basic-auth"),
                &[("username", b"PLANTED-user"), ("password", b"PLANTED-pass")]),
        })
    );
    assert_eq!(json["type"], "kubernetes.io/basic-auth");
    assert_eq!(json["immutable"], true);
    assert_eq!(
        json["data"],
        serde_json::json!({"username": "UExBTlRFRC11c2Vy", "password": "UExBTlRFRC1wYXNz"})
    );
}

#[test]
fn debug_output_has_no_values() {
    let source = source();
    let sources = Sources(HashMap::from([(
        SecretReference {
            namespace: "secretgate".into(),
            name: "creds".into(),
        },
        Read::Found(source),
    )]));
    let text = format!("{sources:?}");
    assert!(text.contains("keys: 2"), "{text}");
    for planted in ["PLANTED", "UExBTlRFR", "password", "username"] {
        assert!(!text.contains(planted), "{planted} in {text}");
    }
}

#[test]
fn errors_name_the_copy_and_the_code_not_the_message() {
    let error = kube::Error::Api(Box::new(
        kube::core::Status::failure("PLANTED message quoting a value", "InternalError")
            .with_code(500),
    ));
    let e = failed(Op::Update, "team-a/regcred", &error);
    let text = e.to_string();
    assert_eq!(
        text,
        "cannot update copy team-a/regcred: the API server answered 500 InternalError"
    );
    assert_eq!(e.target(), "team-a/regcred");
    assert!(!format!("{e:?}").contains("PLANTED"));
    let decode = serde_json::from_str::<Secret>("{\"data\": PLANTED}").expect_err("bad json");
    let e = failed(Op::Create, "team-a/x", &kube::Error::SerdeError(decode));
    assert_eq!(
        e.to_string(),
        "cannot create copy team-a/x: no usable answer from the API server (undecodable answer)"
    );
}

#[test]
fn applied_counts_outcomes_and_errors() {
    let mut applied = Applied::default();
    applied.record(Ok(Outcome::Created));
    applied.record(Ok(Outcome::Created));
    applied.record(Ok(Outcome::Raced));
    applied.record(Ok(Outcome::Deleted));
    applied.record(Err(ApplyError::NoPrecondition {
        op: Op::Delete,
        target: "a/b".into(),
    }));
    assert_eq!(applied.count(Outcome::Created), 2);
    assert_eq!(applied.count(Outcome::Raced), 1);
    assert_eq!(applied.count(Outcome::Failed), 1);
    assert_eq!(applied.count(Outcome::Updated), 0);
    assert_eq!(applied.writes(), 3);
    assert_eq!(applied.errors.len(), 1);
    let labels: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    assert_eq!(
        labels,
        [
            "created",
            "updated",
            "recreated",
            "deleted",
            "already_gone",
            "raced",
            "source_gone",
            "failed"
        ]
    );
}
