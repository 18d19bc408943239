//! Table-driven tests of the policy checks parsing cannot express.

use super::*;

/// Parses a spec from YAML, as a policy file would hold it.
fn spec(yaml: &str) -> ProjectPolicySpec {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("test spec does not parse: {e}"))
}

#[test]
fn the_default_policy_is_valid() {
    assert_eq!(
        problems(&ProjectPolicySpec::default()),
        Vec::<String>::new()
    );
}

#[test]
fn each_problem_is_reported_with_its_path() {
    let cases: &[(&str, &str)] = &[
        (
            "secrets: {allowedTypes: [Opaque, '']}",
            "spec.secrets.allowedTypes[1]: must not be empty",
        ),
        (
            "secrets: {ssh: {minRsaBits: 512}}",
            "spec.secrets.ssh.minRsaBits: 512 is outside 1024..16384",
        ),
        (
            "secrets: {ssh: {minRsaBits: 32768}}",
            "spec.secrets.ssh.minRsaBits: 32768 is outside 1024..16384",
        ),
        (
            "secrets: {ssh: {allowedAlgorithms: [dsa]}}",
            "spec.secrets.ssh.allowedAlgorithms[0]: \"dsa\" is not one of ed25519, ecdsa, rsa",
        ),
        (
            "gitSync: {secretName: git-key, containers: []}",
            "spec.gitSync.containers: must name at least one container (omit it for the default, git-sync)",
        ),
        (
            "imagePullSecrets: [{secretName: pull, registries: ['https://ghcr.io']}]",
            "spec.imagePullSecrets[0].registries[0]: \"https://ghcr.io\" is not a registry host[:port] or *.domain[:port]",
        ),
        (
            "secrets: {imagePull: {allowedRegistries: ['*']}}",
            "spec.secrets.imagePull.allowedRegistries[0]: \"*\" is not a registry host[:port] or *.domain[:port]",
        ),
        (
            "imagePullSecrets: [{secretName: pull}, {secretName: pull, registries: [ghcr.io]}]",
            "spec.imagePullSecrets[1].secretName: \"pull\" is listed twice; give one entry all its registries",
        ),
        (
            "secrets: {name: {prefix: Team-}}",
            "spec.secrets.name.prefix: \"Team-\" can never start a secret name (lowercase letters, digits, '-' and '.', starting with a letter or digit)",
        ),
        (
            "secrets: {name: {prefix: team-a., forbidDots: true}}",
            "spec.secrets.name.prefix: \"team-a.\" contains '.', which forbidDots refuses in every name",
        ),
        (
            "secrets: {name: {prefix: team-a-, maxLength: 7}}",
            "spec.secrets.name.maxLength: 7 leaves no room after the 7-character prefix \"team-a-\"",
        ),
        (
            "secrets: {name: {prefix: team-a-, pattern: 'team-b-[a-z]+'}}",
            "spec.secrets.name.pattern: \"team-b-[a-z]+\" cannot match a name that starts with the prefix \"team-a-\"",
        ),
        (
            "namespaces: [Team_A]",
            "spec.namespaces[0]: \"Team_A\" is not a namespace name",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(problems(&spec(yaml)), vec![(*want).to_owned()], "{yaml}");
    }
}

#[test]
fn usable_specs_pass() {
    let cases = [
        "imagePullSecrets: [{secretName: pull, registries: [ghcr.io, 'registry.local:5000', '*.example.com', docker.io]}]",
        "secrets: {name: {prefix: team-a-, pattern: 'team-a-[a-z0-9-]+', maxLength: 40, forbidDots: true}}",
        "secrets: {name: {prefix: team-a-, pattern: '[a-z]+-a-.*'}}",
        "secrets: {ssh: {minRsaBits: 4096, allowedAlgorithms: [ed25519, rsa]}}",
        "gitSync: {secretName: git-key, containers: [git-sync, git-sync-init]}",
        "namespaces: [team-a, team-b]",
    ];
    for yaml in cases {
        assert_eq!(problems(&spec(yaml)), Vec::<String>::new(), "{yaml}");
    }
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let found = problems(&spec(
        "secrets: {allowedTypes: [''], ssh: {minRsaBits: 1}}\ngitSync: {secretName: k, containers: []}",
    ));
    assert_eq!(found.len(), 3, "{found:?}");
}

#[test]
fn a_non_ascii_prefix_is_a_problem_not_a_panic() {
    let found = problems(&spec("secrets: {name: {prefix: 'aé', pattern: 'ab'}}"));
    assert!(!found.is_empty());
    assert!(!pattern_may_start_with("ab", "aé"));
    assert!(pattern_may_start_with("ab", "a"));
}
