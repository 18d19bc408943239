use super::*;
use crate::policy::spec::{SecretSelection, SecretUseRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels(pairs)),
        ..LabelSelector::default()
    }
}

fn rule(name: &str, secrets: SecretSelection, accounts: &[&str]) -> SecretUseRule {
    SecretUseRule {
        name: name.into(),
        secrets,
        service_accounts: accounts.iter().map(|a| a.to_string()).collect(),
        pod_selector: None,
    }
}

fn names(n: &[&str]) -> SecretSelection {
    SecretSelection {
        names: n.iter().map(|s| s.to_string()).collect(),
        ..SecretSelection::default()
    }
}

fn compile(default: UseDefault, rules: Vec<SecretUseRule>) -> SecretUse {
    SecretUse::compile(
        &SecretUseRules {
            mode: None,
            default,
            rules,
        },
        Mode::Enforce,
    )
}

fn user<'a>(account: &'a str, labels: &'a Labels) -> User<'a> {
    User {
        service_account: account,
        labels,
    }
}

#[test]
fn a_rule_limits_the_secrets_it_selects_and_leaves_the_rest_to_the_default() {
    let rules = compile(
        UseDefault::Allow,
        vec![rule("ci-only", names(&["deploy-key"]), &["ci-runner"])],
    );
    let none = Labels::new();
    let seen = SecretMeta::default();
    let ok = |secret, account| decide(Some(&rules), secret, Some(&seen), &user(account, &none));
    assert_eq!(ok("deploy-key", "ci-runner"), Ok(()));
    assert_eq!(
        ok("deploy-key", "default"),
        Err(Refusal::NotGranted {
            rules: vec![Arc::from("ci-only")]
        })
    );
    assert_eq!(ok("other", "default"), Ok(()), "unselected: default Allow");

    let strict = compile(
        UseDefault::Deny,
        vec![rule("ci-only", names(&["deploy-key"]), &["ci-runner"])],
    );
    assert_eq!(
        decide(
            Some(&strict),
            "other",
            Some(&seen),
            &user("ci-runner", &none)
        ),
        Err(Refusal::DefaultDeny)
    );
}

#[test]
fn any_selecting_rule_may_grant_and_pod_labels_only_narrow() {
    let mut web = rule(
        "web",
        SecretSelection {
            name_patterns: vec![Pattern::new("tls-.*").expect("pattern")],
            ..SecretSelection::default()
        },
        &["web"],
    );
    web.pod_selector = Some(selector(&[("tier", "front")]));
    let rules = compile(
        UseDefault::Allow,
        vec![web, rule("ops", names(&["tls-admin"]), &["ops"])],
    );
    let front = labels(&[("tier", "front")]);
    let back = labels(&[("tier", "back")]);
    let seen = SecretMeta::default();
    let ok = |secret, account, l| decide(Some(&rules), secret, Some(&seen), &user(account, l));
    assert_eq!(ok("tls-admin", "ops", &back), Ok(()));
    assert_eq!(ok("tls-admin", "web", &front), Ok(()));
    assert!(ok("tls-admin", "web", &back).is_err(), "labels narrow");
    assert!(ok("tls-public", "ops", &front).is_err());
}

#[test]
fn label_rules_need_the_secret_to_be_known() {
    let rules = compile(
        UseDefault::Allow,
        vec![rule(
            "prod",
            SecretSelection {
                selector: Some(selector(&[("tier", "prod")])),
                ..SecretSelection::default()
            },
            &["deployer"],
        )],
    );
    let none = Labels::new();
    let prod = SecretMeta {
        labels: labels(&[("tier", "prod")]),
        ..SecretMeta::default()
    };
    let dev = SecretMeta::default();
    assert!(decide(Some(&rules), "db", Some(&prod), &user("app", &none)).is_err());
    assert_eq!(
        decide(Some(&rules), "db", Some(&prod), &user("deployer", &none)),
        Ok(())
    );
    assert_eq!(
        decide(Some(&rules), "db", Some(&dev), &user("app", &none)),
        Ok(())
    );
    assert_eq!(
        decide(Some(&rules), "db", None, &user("app", &none)),
        Err(Refusal::Undecided),
        "unknown secret: a label rule might select it"
    );
}

#[test]
fn the_owner_annotation_narrows_and_never_widens() {
    let rules = compile(
        UseDefault::Allow,
        vec![rule("ci-only", names(&["deploy-key"]), &["ci-runner"])],
    );
    let none = Labels::new();
    let owner = |value: &str| SecretMeta {
        allowed_service_accounts: Some(value.into()),
        ..SecretMeta::default()
    };
    let narrowed = owner("ci-runner, release");
    assert_eq!(
        decide(
            Some(&rules),
            "deploy-key",
            Some(&narrowed),
            &user("ci-runner", &none)
        ),
        Ok(())
    );
    assert!(
        decide(
            Some(&rules),
            "deploy-key",
            Some(&narrowed),
            &user("release", &none)
        )
        .is_err(),
        "the annotation cannot widen the project's rule"
    );
    assert_eq!(
        decide(None, "x", Some(&owner("a")), &user("b", &none)),
        Err(Refusal::OwnerExcludes),
        "applies without project rules too"
    );
    for malformed in ["", "a,,b", "A", "a b", "-a"] {
        assert_eq!(
            decide(None, "x", Some(&owner(malformed)), &user("a", &none)),
            Err(Refusal::OwnerAnnotationMalformed),
            "{malformed:?}"
        );
    }
}

#[test]
fn messages_name_secret_account_and_rule() {
    let refusal = Refusal::NotGranted {
        rules: vec![Arc::from("ci-only")],
    };
    let message = refusal.message("deploy-key", "default");
    for part in ["\"deploy-key\"", "\"default\"", "\"ci-only\""] {
        assert!(message.contains(part), "{message}");
    }
}

#[test]
fn an_empty_selector_selects_every_secret_even_unseen_ones() {
    let rules = compile(
        UseDefault::Allow,
        vec![rule(
            "all",
            SecretSelection {
                selector: Some(LabelSelector::default()),
                ..SecretSelection::default()
            },
            &["app"],
        )],
    );
    let none = Labels::new();
    assert_eq!(decide(Some(&rules), "x", None, &user("app", &none)), Ok(()));
    assert!(matches!(
        decide(Some(&rules), "x", None, &user("other", &none)),
        Err(Refusal::NotGranted { .. })
    ));
}
