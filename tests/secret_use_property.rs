//! Property: a pod (or a Deployment) that `/validate-pods` allows uses only secrets its
//! service account may use, and one it refuses uses at least one it may not, for
//! generated policies and pod specs covering every kind of secret reference. The oracle
//! is written from the rules' definition, not from secretgate's code.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use secretgate::admission::{self, Context, Webhook};
use secretgate::policy::{ProjectPolicySpec, SecretMeta, Snapshot};
use serde_json::{Value, json};

const SECRETS: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];
const ACCOUNTS: [&str; 3] = ["sa0", "sa1", "sa2"];
/// Kinds of reference the generator places (see `place`).
const KINDS: usize = 12;

#[derive(Clone, Debug)]
struct Rule {
    secrets: BTreeSet<usize>,
    accounts: BTreeSet<usize>,
}

#[derive(Clone, Debug)]
struct Case {
    default_deny: bool,
    rules: Vec<Rule>,
    /// Per secret: the owner's allowed accounts, if annotated.
    owners: BTreeMap<usize, BTreeSet<usize>>,
    account: usize,
    /// (kind of reference, secret)
    references: Vec<(usize, usize)>,
    as_deployment: bool,
}

fn set(max: usize, min: usize) -> impl Strategy<Value = BTreeSet<usize>> {
    proptest::collection::btree_set(0..max, min..=max)
}

fn case() -> impl Strategy<Value = Case> {
    let rule = (set(SECRETS.len(), 1), set(ACCOUNTS.len(), 1))
        .prop_map(|(secrets, accounts)| Rule { secrets, accounts });
    (
        any::<bool>(),
        proptest::collection::vec(rule, 0..4),
        proptest::collection::btree_map(0..SECRETS.len(), set(ACCOUNTS.len(), 1), 0..3),
        0..ACCOUNTS.len(),
        proptest::collection::vec((0..KINDS, 0..SECRETS.len()), 0..7),
        any::<bool>(),
    )
        .prop_map(
            |(default_deny, rules, owners, account, references, as_deployment)| Case {
                default_deny,
                rules,
                owners,
                account,
                references,
                as_deployment,
            },
        )
}

/// The rules as written: a secret some rule names may be used by the accounts of those
/// rules; one no rule names follows the default; the owner's list narrows.
fn oracle_allows(case: &Case, secret: usize) -> bool {
    let selecting: Vec<&Rule> = case
        .rules
        .iter()
        .filter(|r| r.secrets.contains(&secret))
        .collect();
    let project = if selecting.is_empty() {
        !case.default_deny
    } else {
        selecting.iter().any(|r| r.accounts.contains(&case.account))
    };
    let owner = case
        .owners
        .get(&secret)
        .is_none_or(|allowed| allowed.contains(&case.account));
    project && owner
}

/// Adds a reference of `kind` to `secret` to the pod spec.
fn place(spec: &mut Value, kind: usize, secret: &str) {
    let push = |spec: &mut Value, key: &str, item: Value| {
        spec[key].as_array_mut().expect("array").push(item);
    };
    let volume = |source: Value| {
        let mut v = json!({"name": format!("v-{secret}")});
        if let (Some(v), Some(s)) = (v.as_object_mut(), source.as_object()) {
            v.extend(s.clone());
        }
        v
    };
    let container_env = |spec: &mut Value, list: &str, item: (&str, Value)| {
        let c = &mut spec[list][0][item.0];
        if !c.is_array() {
            *c = json!([]);
        }
        c.as_array_mut().expect("array").push(item.1);
    };
    let key_ref = json!({"name": "E", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}});
    let env_from = json!({"secretRef": {"name": secret}});
    match kind {
        0 => push(
            spec,
            "volumes",
            volume(json!({"secret": {"secretName": secret}})),
        ),
        1 => push(
            spec,
            "volumes",
            volume(json!({"projected": {"sources": [{"secret": {"name": secret}}]}})),
        ),
        2 => push(
            spec,
            "volumes",
            volume(json!({"csi": {"driver": "d", "nodePublishSecretRef": {"name": secret}}})),
        ),
        3 => push(
            spec,
            "volumes",
            volume(
                json!({"rbd": {"monitors": ["m"], "image": "i", "secretRef": {"name": secret}}}),
            ),
        ),
        4 => push(
            spec,
            "volumes",
            volume(
                json!({"scaleIO": {"gateway": "g", "system": "s", "secretRef": {"name": secret}}}),
            ),
        ),
        5 => push(spec, "imagePullSecrets", json!({"name": secret})),
        6 => container_env(spec, "containers", ("env", key_ref)),
        7 => container_env(spec, "containers", ("envFrom", env_from)),
        8 => container_env(spec, "initContainers", ("env", key_ref)),
        9 => container_env(spec, "initContainers", ("envFrom", env_from)),
        10 => container_env(spec, "ephemeralContainers", ("envFrom", env_from)),
        _ => push(
            spec,
            "volumes",
            volume(json!({"cephfs": {"monitors": ["m"], "secretRef": {"name": secret}}})),
        ),
    }
}

fn review(case: &Case) -> Value {
    let account = ACCOUNTS[case.account];
    let mut spec = json!({
        "serviceAccountName": account,
        "serviceAccount": account,
        "containers": [{"name": "c", "image": "nginx"}],
        "initContainers": [{"name": "i", "image": "busybox"}],
        "ephemeralContainers": [{"name": "e", "image": "busybox"}],
        "volumes": [],
        "imagePullSecrets": [],
    });
    for &(kind, secret) in &case.references {
        place(&mut spec, kind, SECRETS[secret]);
    }
    let resource = if case.as_deployment {
        json!({"group": "apps", "version": "v1", "resource": "deployments"})
    } else {
        json!({"group": "", "version": "v1", "resource": "pods"})
    };
    let (gvk, object) = if case.as_deployment {
        if let Some(s) = spec.as_object_mut() {
            s.remove("ephemeralContainers");
        }
        (
            json!({"group": "apps", "version": "v1", "kind": "Deployment"}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "p", "namespace": "ns"},
                   "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": spec}}}),
        )
    } else {
        (
            json!({"group": "", "version": "v1", "kind": "Pod"}),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "p", "namespace": "ns"}, "spec": spec}),
        )
    };
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u-1", "kind": gvk, "resource": resource, "namespace": "ns",
                    "name": "p", "operation": "CREATE", "userInfo": {}, "object": object}})
}

fn snapshot(case: &Case) -> Snapshot {
    let rules: Vec<Value> = case
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({"name": format!("r{i}"),
               "secrets": {"names": r.secrets.iter().map(|&s| SECRETS[s]).collect::<Vec<_>>()},
               "serviceAccounts": r.accounts.iter().map(|&a| ACCOUNTS[a]).collect::<Vec<_>>()})
        })
        .collect();
    let spec: ProjectPolicySpec = serde_json::from_value(json!({"secretUse": {
        "default": if case.default_deny { "Deny" } else { "Allow" },
        "rules": rules,
    }}))
    .expect("spec");
    let mut snapshot = Snapshot::with_fallback("p", spec);
    for (i, name) in SECRETS.iter().enumerate() {
        let owner = case.owners.get(&i).map(|allowed| {
            let names: Vec<&str> = allowed.iter().map(|&a| ACCOUNTS[a]).collect();
            names.join(",").into_boxed_str()
        });
        snapshot.secrets.insert_meta(
            "ns",
            name,
            SecretMeta {
                allowed_service_accounts: owner,
                ..SecretMeta::default()
            },
        );
    }
    snapshot
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn allowed_exactly_when_every_reference_is_allowed(case in case()) {
        let snapshot = snapshot(&case);
        let ctx = Context { policies: &snapshot, now: time::OffsetDateTime::now_utc() };
        let body = serde_json::to_vec(&review(&case)).expect("json");
        let answer = admission::review(Webhook::ValidatePods, &body, &ctx);
        prop_assert_eq!(answer.http_status, 200, "{}", String::from_utf8_lossy(&answer.body));
        let response: Value = serde_json::from_slice(&answer.body).expect("response");
        let allowed = response["response"]["allowed"].as_bool().expect("allowed");
        let refused: BTreeSet<&str> = case
            .references
            .iter()
            .filter(|&&(kind, _)| !(case.as_deployment && kind == 10))
            .filter(|&&(_, s)| !oracle_allows(&case, s))
            .map(|&(_, s)| SECRETS[s])
            .collect();
        prop_assert_eq!(allowed, refused.is_empty(), "{:?} → {}", refused, response);
        // Every refused secret is named, up to the cap on findings shown.
        let message = response["response"]["status"]["message"].as_str().unwrap_or_default();
        for secret in refused.iter().take(3) {
            prop_assert!(message.contains(&format!("{secret:?}")), "{} missing: {}", secret, message);
        }
    }
}
