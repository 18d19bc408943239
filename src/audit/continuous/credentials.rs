//! Credential health inside the audit: which pull secrets are tried (a project whose
//! policy has `credentialHealth`, a secret of a pull-secret type), and the checker's
//! outcomes as report results (rule `registry-login`).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kube::api::DynamicObject;
use time::OffsetDateTime;

use super::ledger::SecretKey;
use crate::credentials::{CredentialChecker, Outcome, PullSecret};
use crate::policy::Resolved;
use crate::reports::result::{ReportResult, Resource, Status, registry_login};

/// A pull secret's document and what its policy allows, held only until the logins end.
pub struct Pull {
    config_json: bool,
    document: Vec<u8>,
    registries: Vec<String>,
    pub interval: Duration,
}

/// The pull secret to try in `secret`, when its governing policy asks for credential
/// checks (a broken policy asks for nothing).
pub fn wanted(secret: &DynamicObject, governing: &Resolved) -> Option<Pull> {
    if governing.broken.is_some() {
        return None;
    }
    let health = governing.spec.credential_health.as_ref()?;
    let (config_json, key) = match secret.data.get("type")?.as_str()? {
        "kubernetes.io/dockerconfigjson" => (true, ".dockerconfigjson"),
        "kubernetes.io/dockercfg" => (false, ".dockercfg"),
        _ => return None,
    };
    let encoded = secret.data.get("data")?.get(key)?.as_str()?;
    // Not base64: the review already says so; nothing to log in with.
    let document = STANDARD.decode(encoded).ok()?;
    Some(Pull {
        config_json,
        document,
        registries: health.registries.clone(),
        interval: Duration::from_secs(u64::from(health.interval_seconds)),
    })
}

/// Logs in (or reuses a recent outcome) for each registry of `pull` the policy lists.
pub async fn check(
    checker: &CredentialChecker,
    key: &SecretKey,
    pull: Pull,
    policy: &str,
    resource: Resource,
) -> Vec<ReportResult> {
    let secret = PullSecret {
        namespace: &key.namespace,
        name: &key.name,
        config_json: pull.config_json,
        data: &pull.document,
    };
    let checks = checker
        .check(&secret, &pull.registries, pull.interval)
        .await;
    drop(pull);
    let now = OffsetDateTime::now_utc();
    checks
        .iter()
        .map(|c| {
            registry_login(
                policy,
                resource.clone(),
                &c.registry,
                status(&c.outcome),
                &c.message(),
                now,
            )
        })
        .collect()
}

/// How a login's outcome reads in a report.
fn status(outcome: &Outcome) -> Status {
    match outcome {
        Outcome::Ok => Status::Pass,
        Outcome::Rejected { .. } => Status::Fail,
        Outcome::Unreachable { .. } => Status::Error,
        // Nothing was proven either way.
        Outcome::Anonymous | Outcome::NotChecked { .. } => Status::Skip,
    }
}
