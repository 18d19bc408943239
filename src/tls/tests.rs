use std::path::Path;

use super::*;
use crate::certs::DevCertificates;

fn generate() -> DevCertificates {
    DevCertificates::generate(&["localhost".to_owned()]).expect("generate")
}

/// The PEM body of `pem` (its base64 lines, or everything between the armour of a PEM
/// squeezed on one line).
fn body(pem: &str) -> String {
    pem.replace("\\n", "\n")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

/// Whether `text` holds a list of byte values (`[45, 45, 45, …`), as a Debug of a
/// `Vec<u8>` prints a file's bytes.
fn has_byte_list(text: &str) -> bool {
    let numbers: Vec<&str> = text.split(", ").collect();
    numbers.windows(4).any(|w| {
        w[1..3]
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }) || text.contains("[45,")
}

/// Fails if any rendering of `err` holds 8 bytes in a row of `secret` or a byte list.
fn assert_quotes_nothing(case: &str, err: &Error, secret: &str) {
    for shown in [format!("{err}"), format!("{err:#}"), format!("{err:?}")] {
        assert!(!has_byte_list(&shown), "{case}: byte list in {shown}");
        let secret = secret.as_bytes();
        for run in secret.windows(8) {
            let run = std::str::from_utf8(run).expect("ASCII");
            assert!(
                !shown.contains(run),
                "{case}: {run:?} of the file in {shown}"
            );
        }
    }
}

/// A broken certificate or key file, what the error must say, and the content it must
/// not repeat.
struct Case {
    name: &'static str,
    cert: String,
    key: String,
    says: &'static [&'static str],
    secret: String,
}

fn cases() -> Vec<Case> {
    let good = generate();
    let other = generate();
    let one_line = good.tls_key.trim_end().replace('\n', "\\n");
    let garbage = "Zm9vYmFyYmF6cXV4IHNlY3JldCBnYXJiYWdlIHRoYXQgaXMgbm90IGEga2V5".repeat(3);
    let bad_base64 = format!(
        "-----BEGIN PRIVATE KEY-----\n{}!!{}\n-----END PRIVATE KEY-----\n",
        &body(&good.tls_key)[..40],
        &body(&good.tls_key)[40..80]
    );
    let not_a_key = format!("-----BEGIN PRIVATE KEY-----\n{garbage}\n-----END PRIVATE KEY-----\n");
    vec![
        Case {
            name: "key on one line with literal \\n",
            cert: good.tls_cert.clone(),
            key: one_line.clone(),
            says: &["tls.key", "literal \\n"],
            secret: body(&one_line),
        },
        Case {
            name: "key on one line, literal \\n after the END line",
            cert: good.tls_cert.clone(),
            key: format!("{one_line}\\n"),
            says: &["tls.key", "literal \\n"],
            secret: body(&one_line),
        },
        Case {
            name: "certificate on one line",
            cert: good.tls_cert.trim_end().replace('\n', "\\n"),
            key: good.tls_key.clone(),
            says: &["tls.crt", "literal \\n"],
            secret: body(&good.tls_cert),
        },
        Case {
            name: "garbage key",
            cert: good.tls_cert.clone(),
            key: garbage.clone(),
            says: &["no PEM private key found in", "tls.key"],
            secret: garbage.clone(),
        },
        Case {
            name: "armoured garbage key",
            cert: good.tls_cert.clone(),
            key: not_a_key,
            says: &["tls.key", "does not parse as an RSA, ECDSA or Ed25519 key"],
            secret: garbage.clone(),
        },
        Case {
            name: "key that is not base64",
            cert: good.tls_cert.clone(),
            key: bad_base64.clone(),
            says: &["tls.key", "not valid base64"],
            secret: body(&bad_base64),
        },
        Case {
            name: "certificate in the key file",
            cert: good.tls_cert.clone(),
            key: good.tls_cert.clone(),
            says: &["no PEM private key found in", "tls.key", "swapped"],
            secret: body(&good.tls_cert),
        },
        Case {
            name: "key in the certificate file",
            cert: good.tls_key.clone(),
            key: good.tls_key.clone(),
            says: &["no PEM certificate found in", "tls.crt", "swapped"],
            secret: body(&good.tls_key),
        },
        Case {
            name: "key of another pair",
            cert: good.tls_cert.clone(),
            key: other.tls_key.clone(),
            says: &["does not match the certificate in", "tls.key", "tls.crt"],
            secret: body(&other.tls_key),
        },
        Case {
            name: "empty key file",
            cert: good.tls_cert.clone(),
            key: String::new(),
            says: &["no PEM private key found in", "tls.key", "empty"],
            secret: String::new(),
        },
    ]
}

fn write_pair(dir: &Path, cert: &str, key: &str) -> (PathBuf, PathBuf) {
    let (cert_path, key_path) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert_path, cert).expect("write cert");
    std::fs::write(&key_path, key).expect("write key");
    (cert_path, key_path)
}

fn assert_case(case: &Case, err: &Error) {
    let shown = format!("{err:#}");
    for want in case.says {
        assert!(
            shown.contains(want),
            "{}: want {want:?} in {shown}",
            case.name
        );
    }
    assert_quotes_nothing(case.name, err, &case.secret);
}

#[test]
fn start_up_errors_name_the_file_and_never_its_content() {
    for case in cases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = write_pair(dir.path(), &case.cert, &case.key);
        let err = CertStore::load(&cert, &key).expect_err(case.name);
        assert_case(&case, &err);
    }
}

#[tokio::test]
async fn reload_errors_name_the_file_and_never_its_content() {
    let good = generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_pair(dir.path(), &good.tls_cert, &good.tls_key);
    let store = CertStore::load(&cert, &key).expect("a good pair loads");
    let in_force = store.current.load_full();
    for case in cases() {
        write_pair(dir.path(), &case.cert, &case.key);
        let err = store.reload().await.expect_err(case.name);
        assert_case(&case, &err);
        assert!(
            Arc::ptr_eq(&in_force, &store.current.load_full()),
            "{}",
            case.name
        );
    }
}

#[test]
fn client_ca_errors_never_quote_the_file() {
    let good = generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_pair(dir.path(), &good.tls_cert, &good.tls_key);
    let store = Arc::new(CertStore::load(&cert, &key).expect("a good pair loads"));
    let ca = dir.path().join("ca.crt");
    for (name, text) in [
        ("one line", good.ca_cert.trim_end().replace('\n', "\\n")),
        ("a key", good.ca_key.clone()),
    ] {
        std::fs::write(&ca, &text).expect("write CA");
        let err = server_config(store.clone(), Some(&ca)).expect_err(name);
        assert!(err.to_string().contains("ca.crt"), "{name}: {err}");
        assert_quotes_nothing(name, &err, &body(&text));
    }
}
