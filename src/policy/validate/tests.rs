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
            "namespaceSelector: {matchLabels: {secretgate.io/mode: Warn}}",
            "spec.namespaceSelector: must not select on secretgate.io/mode: secretgate writes that label from the policies themselves",
        ),
        (
            "exemptions: {serviceAccounts: [ci-bot]}",
            "spec.exemptions.serviceAccounts[0]: \"ci-bot\" is not namespace/name of a service account",
        ),
        (
            "exemptions: {usernames: ['']}",
            "spec.exemptions.usernames[0]: must be 1 to 253 characters",
        ),
        (
            "credentialHealth: {registries: []}",
            "spec.credentialHealth.registries: required value is missing (list the registries the audit may log in to)",
        ),
        (
            "credentialHealth: {registries: [ghcr.io], intervalSeconds: 10}",
            "spec.credentialHealth.intervalSeconds: 10 is below the minimum of 60",
        ),
        (
            "credentialHealth: {registries: ['https://ghcr.io']}",
            "spec.credentialHealth.registries[0]: \"https://ghcr.io\" is not a registry host[:port] or *.domain[:port]",
        ),
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

/// A `secretUse` with `rules` (a YAML flow list, then any other fields of secretUse) and
/// the rest of the spec in `extra`.
fn secret_use(rules: &str, extra: &str) -> ProjectPolicySpec {
    spec(&format!("secretUse: {{rules: {rules}}}\n{extra}"))
}

#[test]
fn each_secret_use_problem_is_reported_with_its_path() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "[{name: '', secrets: {names: [deploy-key]}, serviceAccounts: [ci]}]",
            "",
            "spec.secretUse.rules[0].name: must not be empty (denials and reports name the rule)",
        ),
        (
            "[{name: Deploy_Key, secrets: {names: [deploy-key]}, serviceAccounts: [ci]}]",
            "",
            "spec.secretUse.rules[0].name: \"Deploy_Key\" is not a rule name (a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)",
        ),
        (
            "[{name: ci, secrets: {names: [a]}, serviceAccounts: [ci]}, {name: ci, secrets: {names: [b]}, serviceAccounts: [ci]}]",
            "",
            "spec.secretUse.rules[1].name: \"ci\" is also the name of spec.secretUse.rules[0]; rule names are unique in a policy",
        ),
        (
            "[{name: ci, secrets: {}, serviceAccounts: [ci]}]",
            "",
            "spec.secretUse.rules[0].secrets: selects no secret; give it names, namePatterns or a selector (selector: {} selects every secret)",
        ),
        (
            "[{name: ci, secrets: {names: [], namePatterns: []}, serviceAccounts: [ci]}]",
            "",
            "spec.secretUse.rules[0].secrets: selects no secret; give it names, namePatterns or a selector (selector: {} selects every secret)",
        ),
        (
            "[{name: ci, secrets: {names: [deploy-key, Deploy_Key]}, serviceAccounts: [ci]}]",
            "",
            "spec.secretUse.rules[0].secrets.names[1]: \"Deploy_Key\" is not a secret name",
        ),
        (
            "[{name: ci, secrets: {names: [deploy-key, deploy-key]}, serviceAccounts: [ci]}]",
            "",
            "spec.secretUse.rules[0].secrets.names[1]: \"deploy-key\" is listed twice in this rule",
        ),
        (
            "[{name: ci, secrets: {namePatterns: ['ci-.*', ' ']}, serviceAccounts: [ci]}]",
            "",
            "spec.secretUse.rules[0].secrets.namePatterns[1]: must not be empty (it would match no secret name)",
        ),
        (
            "[{name: ci, secrets: {selector: {matchExpressions: [{key: team, operator: Matches, values: [a]}]}}, serviceAccounts: [ci]}]",
            "",
            "spec.secretUse.rules[0].secrets.selector.matchExpressions[0].operator: \"Matches\" is not one of In, NotIn, Exists, DoesNotExist",
        ),
        (
            "[{name: ci, secrets: {names: [a]}, serviceAccounts: [ci], podSelector: {matchExpressions: [{key: app, operator: In}]}}]",
            "",
            "spec.secretUse.rules[0].podSelector.matchExpressions[0].values: operator In needs at least one value",
        ),
        (
            "[{name: ci, secrets: {names: [a]}, serviceAccounts: []}]",
            "",
            "spec.secretUse.rules[0].serviceAccounts: must name at least one service account; to let no pod use a secret, leave it out of every rule with secretUse.default: Deny, or have its owner set the annotation secretgate.io/allowed-service-accounts",
        ),
        (
            "[{name: ci, secrets: {names: [a]}, serviceAccounts: [ci, CI_Runner]}]",
            "",
            "spec.secretUse.rules[0].serviceAccounts[1]: \"CI_Runner\" is not a service account name (a DNS-1123 subdomain)",
        ),
        (
            "[{name: ci, secrets: {names: [a]}, serviceAccounts: ['system:serviceaccount:ci:runner']}]",
            "",
            "spec.secretUse.rules[0].serviceAccounts[0]: \"system:serviceaccount:ci:runner\" is a user name; give the service account's name only (it is in the pod's namespace)",
        ),
        (
            "[{name: ci, secrets: {names: [a]}, serviceAccounts: [ci, ci]}]",
            "",
            "spec.secretUse.rules[0].serviceAccounts[1]: \"ci\" is listed twice in this rule",
        ),
        (
            "[{name: ci, secrets: {names: [a, b]}, serviceAccounts: [ci, deploy]}, {name: ci-copy, secrets: {names: [c, b]}, serviceAccounts: [deploy, ci]}]",
            "",
            "spec.secretUse.rules[1].secrets.names[1]: \"b\" is already granted to the same service accounts by rule \"ci\" (spec.secretUse.rules[0])",
        ),
        (
            "[{name: ci, secrets: {names: [deploy-key], namePatterns: ['ci-.*']}, serviceAccounts: [ci]}], default: Deny",
            "imagePullSecrets: [{secretName: ci-pull}, {secretName: pull}]",
            "spec.imagePullSecrets[1].secretName: \"pull\" can never be injected: secretUse.default is Deny and no secretUse rule selects it (add it to a rule's secrets.names, with the service accounts whose pods get it)",
        ),
        (
            "[{name: ci, secrets: {names: [deploy-key]}, serviceAccounts: [ci]}], default: Deny",
            "gitSync: {secretName: git-key}",
            "spec.gitSync.secretName: \"git-key\" can never be injected: secretUse.default is Deny and no secretUse rule selects it (add it to a rule's secrets.names, with the service accounts whose pods get it)",
        ),
    ];
    for (rules, extra, want) in cases {
        let spec = secret_use(rules, extra);
        assert_eq!(problems(&spec), vec![(*want).to_owned()], "{rules} {extra}");
    }
}

#[test]
fn secret_use_lists_are_bounded() {
    let rule =
        |i: usize| format!("{{name: r{i}, secrets: {{names: [s{i}]}}, serviceAccounts: [ci]}}");
    let rules: Vec<String> = (0..=MAX_USE_RULES).map(rule).collect();
    assert_eq!(
        problems(&secret_use(&format!("[{}]", rules.join(", ")), "")),
        vec![format!(
            "spec.secretUse.rules: {} entries; at most {MAX_USE_RULES}",
            MAX_USE_RULES + 1
        )]
    );
    let many = |n: usize, prefix: &str| {
        (0..n)
            .map(|i| format!("{prefix}{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cases = [
        (
            format!(
                "[{{name: r, secrets: {{names: [{}]}}, serviceAccounts: [ci]}}]",
                many(MAX_ENTRIES + 1, "s")
            ),
            format!(
                "spec.secretUse.rules[0].secrets.names: {} entries; at most {MAX_ENTRIES}",
                MAX_ENTRIES + 1
            ),
        ),
        (
            format!(
                "[{{name: r, secrets: {{namePatterns: [{}]}}, serviceAccounts: [ci]}}]",
                many(MAX_NAME_PATTERNS + 1, "p")
            ),
            format!(
                "spec.secretUse.rules[0].secrets.namePatterns: {} entries; at most {MAX_NAME_PATTERNS}",
                MAX_NAME_PATTERNS + 1
            ),
        ),
        (
            format!(
                "[{{name: r, secrets: {{names: [s]}}, serviceAccounts: [{}]}}]",
                many(MAX_ENTRIES + 1, "sa")
            ),
            format!(
                "spec.secretUse.rules[0].serviceAccounts: {} entries; at most {MAX_ENTRIES}",
                MAX_ENTRIES + 1
            ),
        ),
    ];
    for (rules, want) in cases {
        assert_eq!(problems(&secret_use(&rules, "")), vec![want], "{rules}");
    }
}

#[test]
fn usable_secret_use_specs_pass() {
    let cases = [
        // The example: only ci-runner may use deploy-key.
        (
            "[{name: ci-only, secrets: {names: [deploy-key]}, serviceAccounts: [ci-runner]}]",
            "",
        ),
        (
            "[{name: ci, secrets: {names: [deploy-key, ci-pull], namePatterns: ['git-.*']}, serviceAccounts: [ci-runner, ci.runner], podSelector: {matchLabels: {app: ci}, matchExpressions: [{key: tier, operator: NotIn, values: [web]}]}}], default: Deny, mode: Warn",
            "imagePullSecrets: [{secretName: ci-pull}]\ngitSync: {secretName: git-key}",
        ),
        // An empty selector selects every secret: all of them are kept to ci-runner.
        (
            "[{name: all, secrets: {selector: {}}, serviceAccounts: [ci-runner]}]",
            "",
        ),
        // A label selector might select the injected secret: nothing to say.
        (
            "[{name: labelled, secrets: {selector: {matchLabels: {use: ci}}}, serviceAccounts: [ci]}], default: Deny",
            "imagePullSecrets: [{secretName: pull}]",
        ),
        // The same secret for other service accounts, or the same ones with other pods.
        (
            "[{name: a, secrets: {names: [k]}, serviceAccounts: [ci]}, {name: b, secrets: {names: [k]}, serviceAccounts: [deploy]}, {name: c, secrets: {names: [k]}, serviceAccounts: [ci], podSelector: {matchLabels: {app: x}}}]",
            "",
        ),
        // Default Deny without injections, and no rules at all.
        ("[], default: Deny", ""),
    ];
    for (rules, extra) in cases {
        assert_eq!(
            problems(&secret_use(rules, extra)),
            Vec::<String>::new(),
            "{rules} {extra}"
        );
    }
}

#[test]
fn secret_use_problems_are_all_reported_and_quote_clipped_text() {
    let long = "X".repeat(100_000);
    let found = problems(&secret_use(
        &format!(
            "[{{name: '{long}', secrets: {{names: ['{long}']}}, serviceAccounts: ['{long}', 'é']}}]"
        ),
        "",
    ));
    assert_eq!(found.len(), 4, "{found:?}");
    for problem in &found {
        assert!(problem.len() < 400, "{problem}");
    }
}

#[test]
fn each_instance_secret_problem_is_reported_with_its_path() {
    let cases: &[(&str, &str)] = &[
        (
            "instanceSecrets: [{source: {namespace: Platform, name: regcred}}]",
            "spec.instanceSecrets[0].source.namespace: \"Platform\" is not a namespace name",
        ),
        (
            "instanceSecrets: [{source: {namespace: secretgate, name: Regcred}}]",
            "spec.instanceSecrets[0].source.name: \"Regcred\" is not a secret name",
        ),
        (
            "instanceSecrets: [{source: {namespace: secretgate, name: ''}}]",
            "spec.instanceSecrets[0].source.name: \"\" is not a secret name",
        ),
        (
            "instanceSecrets: [{source: {namespace: secretgate, name: regcred}, targetName: reg_cred}]",
            "spec.instanceSecrets[0].targetName: \"reg_cred\" is not a secret name",
        ),
        (
            "instanceSecrets: [{source: {namespace: secretgate, name: regcred}},\
             {source: {namespace: other, name: pull}, targetName: regcred}]",
            "spec.instanceSecrets[1].targetName: \"regcred\" is already provided by spec.instanceSecrets[0]",
        ),
        (
            "instanceSecrets: [{source: {namespace: secretgate, name: pull}, targetName: regcred},\
             {source: {namespace: other, name: regcred}}]",
            "spec.instanceSecrets[1].source.name: \"regcred\" is already provided by spec.instanceSecrets[0] (give one of them a targetName)",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(problems(&spec(yaml)), vec![(*want).to_owned()], "{yaml}");
    }
}

#[test]
fn usable_instance_secrets_pass() {
    let cases = [
        "instanceSecrets: [{source: {namespace: secretgate, name: regcred}}]",
        // The same source under two names; two sources of the same name under two names.
        "instanceSecrets: [{source: {namespace: secretgate, name: regcred}},\
         {source: {namespace: secretgate, name: regcred}, targetName: regcred-2},\
         {source: {namespace: other, name: regcred}, targetName: other-regcred}]",
        // A secret name the API server allows, with a label longer than 63 characters.
        &format!(
            "instanceSecrets: [{{source: {{namespace: secretgate, name: {}.b}}}}]",
            "a".repeat(64)
        ),
        // Provided and injected, and the only secret pods may use: what it is for.
        "instanceSecrets: [{source: {namespace: secretgate, name: regcred}},\
         {source: {namespace: secretgate, name: git}, targetName: git-key}]\n\
         imagePullSecrets: [{secretName: regcred}]\ngitSync: {secretName: git-key}\n\
         secretUse: {default: Deny, rules: [{name: all, secrets: {names: [regcred, git-key]}, serviceAccounts: [default]}]}",
    ];
    for yaml in cases {
        assert_eq!(problems(&spec(yaml)), Vec::<String>::new(), "{yaml}");
    }
}

#[test]
fn instance_secrets_are_bounded_and_every_problem_reported() {
    let entries: Vec<String> = (0..=MAX_INSTANCE_SECRETS)
        .map(|i| format!("{{source: {{namespace: secretgate, name: s{i}}}}}"))
        .collect();
    let found = problems(&spec(&format!("instanceSecrets: [{}]", entries.join(", "))));
    assert_eq!(
        found,
        vec![format!(
            "spec.instanceSecrets: {} entries; at most {MAX_INSTANCE_SECRETS}",
            MAX_INSTANCE_SECRETS + 1
        )]
    );
    let found = problems(&spec(
        "instanceSecrets: [{source: {namespace: A, name: B}, targetName: C}, {source: {namespace: a, name: b}}, {source: {namespace: a, name: b}}]",
    ));
    assert_eq!(found.len(), 4, "{found:?}");
    // A long value is quoted clipped.
    let long = "X".repeat(1000);
    let found = problems(&spec(&format!(
        "instanceSecrets: [{{source: {{namespace: a, name: {long}}}}}]"
    )));
    assert!(found[0].len() < 200, "{found:?}");
}
