//! `secretgate unregister`: deletes webhook configurations by name. The chart runs it as
//! a Helm `pre-delete` hook, because `helm uninstall` removes the pods while the
//! ValidatingWebhookConfigurations (failurePolicy Fail) linger, refusing the requests
//! they match with no server left to answer; a configuration left behind by an aborted
//! uninstall would keep doing so for good.
//!
//! Idempotent: a configuration already gone (404) counts as deleted, so the hook can run
//! again after a partial failure.

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::Client;
use kube::api::{Api, DeleteParams};

/// Which kind of webhook configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Validating,
    Mutating,
}

impl Kind {
    /// The resource, as kubectl names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Validating => "validatingwebhookconfiguration",
            Kind::Mutating => "mutatingwebhookconfiguration",
        }
    }
}

/// A webhook configuration to delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    pub name: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?}", self.kind.as_str(), self.name)
    }
}

/// How a delete ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Deleted,
    /// There was none by that name (deleted before, or never installed).
    AlreadyGone,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot delete {target}")]
    Delete {
        target: Target,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The targets of `--validating` and `--mutating`, validating first.
pub fn targets(validating: &[String], mutating: &[String]) -> Vec<Target> {
    let of = |kind, names: &[String]| {
        names
            .iter()
            .map(move |name| Target {
                kind,
                name: name.clone(),
            })
            .collect::<Vec<_>>()
    };
    let mut all = of(Kind::Validating, validating);
    all.extend(of(Kind::Mutating, mutating));
    all
}

/// Deletes one configuration.
pub async fn delete(client: &Client, target: &Target) -> Result<Outcome> {
    let params = DeleteParams::default();
    let deleted = match target.kind {
        Kind::Validating => Api::<ValidatingWebhookConfiguration>::all(client.clone())
            .delete(&target.name, &params)
            .await
            .map(|_| ()),
        Kind::Mutating => Api::<MutatingWebhookConfiguration>::all(client.clone())
            .delete(&target.name, &params)
            .await
            .map(|_| ()),
    };
    match deleted {
        Ok(()) => Ok(Outcome::Deleted),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(Outcome::AlreadyGone),
        Err(source) => Err(Error::Delete {
            target: target.clone(),
            source,
        }),
    }
}

/// Deletes every target, going on after a failure so one refusal leaves no other
/// configuration behind; each result in order.
pub async fn run(client: &Client, targets: &[Target]) -> Vec<Result<Outcome>> {
    let mut results = Vec::with_capacity(targets.len());
    for target in targets {
        results.push(delete(client, target).await);
    }
    results
}
