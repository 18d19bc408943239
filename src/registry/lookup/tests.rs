use super::*;

fn key(k: &str) -> KeyringKey {
    KeyringKey::parse(k, true).unwrap_or_else(|| panic!("{k} should parse"))
}

#[test]
fn images_normalize_as_parse_normalized_named() {
    let cases = [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:1.25", "docker.io/library/nginx"),
        ("library/nginx", "docker.io/library/nginx"),
        ("bitnami/redis:7", "docker.io/bitnami/redis"),
        ("docker.io/nginx", "docker.io/library/nginx"),
        ("index.docker.io/team/app", "docker.io/team/app"),
        ("ghcr.io/org/app:v1", "ghcr.io/org/app"),
        ("ghcr.io/org/app@sha256:abcd", "ghcr.io/org/app"),
        ("ghcr.io/org/app:v1@sha256:abcd", "ghcr.io/org/app"),
        ("registry:5000/app:1", "registry:5000/app"),
        ("registry:5000/app", "registry:5000/app"),
        ("localhost/app", "localhost/app"),
    ];
    for (image, name) in cases {
        assert_eq!(normalized_name(image).as_deref(), Some(name), "{image}");
    }
    assert_eq!(normalized_name(""), None);
}

#[test]
fn keys_are_kept_as_add_keeps_them() {
    let k = key("https://index.docker.io/v1/");
    assert!(k.is_default_registry());
    assert_eq!(&*key("ghcr.io/v2/org").path, "/org");
    assert_eq!(&*key("ghcr.io/").path, "");
    assert_eq!(key("http://registry:5000").port.as_deref(), Some("5000"));
    for unread in [
        "robot:token@ghcr.io",
        "ghcr.io/%41",
        "ghcr.io?x",
        "not a host",
        "HTTPS://ghcr.io",
    ] {
        assert_eq!(KeyringKey::parse(unread, true), None, "{unread}");
    }
}

#[test]
fn lookup_matches_as_urls_match_str() {
    let cases: &[(&str, &str, Lookup)] = &[
        ("ghcr.io", "ghcr.io/org/app:v1", Lookup::Credentials),
        ("https://ghcr.io", "ghcr.io/org/app", Lookup::Credentials),
        ("ghcr.io/org", "ghcr.io/org/app", Lookup::Credentials),
        // A plain string prefix, as the kubelet compares paths.
        (
            "ghcr.io/org",
            "ghcr.io/organisation/app",
            Lookup::Credentials,
        ),
        ("ghcr.io/other", "ghcr.io/org/app", Lookup::None),
        (
            "*.example.com",
            "registry.example.com/app",
            Lookup::Credentials,
        ),
        ("*.example.com", "example.com/app", Lookup::None),
        ("*.example.com", "a.b.example.com/app", Lookup::None),
        (
            "reg*.example.com",
            "registry.example.com/app",
            Lookup::Credentials,
        ),
        // Case-sensitive, like filepath.Match.
        ("GHCR.io", "ghcr.io/org/app", Lookup::None),
        // Ports compare as strings.
        ("registry:5000", "registry:5000/app", Lookup::Credentials),
        ("registry:05000", "registry:5000/app", Lookup::None),
        ("registry", "registry:5000/app", Lookup::None),
        ("ghcr.io:443", "ghcr.io/app", Lookup::None),
        // Docker Hub: by URL under docker.io, else the index.docker.io fallback.
        ("docker.io", "nginx", Lookup::Credentials),
        ("https://index.docker.io/v1/", "nginx", Lookup::Credentials),
        (
            "https://index.docker.io/v1/",
            "team/app",
            Lookup::Credentials,
        ),
        ("index.docker.io", "ghcr.io/app", Lookup::None),
        ("registry-1.docker.io", "nginx", Lookup::None),
        ("quay.io", "nginx", Lookup::None),
    ];
    for (k, image, expected) in cases {
        let k = key(k);
        assert_eq!(lookup(&[&k], image), *expected, "{k:?} for {image}");
    }
}

#[test]
fn entries_without_credentials_are_anonymous_and_hide_the_fallback() {
    let anonymous = KeyringKey::parse("docker.io", false).unwrap();
    let hub = key("https://index.docker.io/v1/");
    assert_eq!(lookup(&[&anonymous], "nginx"), Lookup::Anonymous);
    // A URL match (even anonymous) means the fallback is not consulted.
    assert_eq!(lookup(&[&anonymous, &hub], "nginx"), Lookup::Anonymous);
    let with = key("ghcr.io");
    let without = KeyringKey::parse("ghcr.io/org", false).unwrap();
    assert_eq!(
        lookup(&[&without, &with], "ghcr.io/org/app"),
        Lookup::Credentials
    );
    assert_eq!(lookup(&[], "ghcr.io/org/app"), Lookup::None);
}

#[test]
fn globs_match_one_label() {
    for (glob, label, expected) in [
        ("*", "anything", true),
        ("*", "", true),
        ("a*", "abc", true),
        ("*c", "abc", true),
        ("a*c", "abc", true),
        ("a*c", "ac", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "acb", false),
        ("abc", "abd", false),
        ("a*a", "a", false),
    ] {
        assert_eq!(glob_match(glob, label), expected, "{glob} ~ {label}");
    }
}
