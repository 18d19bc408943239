//! Carries out a [`Plan`](super::Plan)'s actions against the API server, one at a time.
//!
//! - **Create**: the source is read (GET), the copy built from it and POSTed. A 409 means
//!   someone created a secret of that name since the plan: skipped ([`Outcome::Raced`]),
//!   the next pass plans again (and reports a conflict if that secret is not a copy).
//! - **Update**: the same copy PUT with the `resourceVersion` the plan saw (optimistic
//!   concurrency: a 409, or a 404 because the copy is gone, is [`Outcome::Raced`]).
//!   A copy that cannot be changed in place is deleted and created again
//!   ([`Outcome::Recreated`]): when the source is `immutable` (its copies are too), or
//!   when the PUT is refused as invalid (422: the copy in the cluster is immutable, or
//!   the source's `type` changed, and both fields are immutable). The delete carries the
//!   planned `resourceVersion` as a precondition, so only the copy the plan saw goes; if
//!   the create then fails, the copy is missing until the next pass creates it.
//! - **Delete**: DELETE with the planned uid as a precondition, so a secret created in
//!   the copy's place since is never deleted (409: [`Outcome::Raced`]); a copy already
//!   gone is [`Outcome::AlreadyGone`].
//!
//! A source whose GET answers 404 is [`Outcome::SourceGone`] for every copy of it (the
//! next plan sees it missing). Each source is read at most once per [`apply`] call and
//! its values are dropped when the call returns; they are never logged, never in an
//! error and never in `Debug` output. A copy carries the source's `type`, `data` and
//! `immutable`, and none of its labels or annotations (in particular never
//! `kubectl.kubernetes.io/last-applied-configuration`, which may hold the values).
//!
//! One failed action does not stop the others: each error is returned, naming the copy
//! and the API server's reason and code (not its message, which could quote what was
//! sent). Requests go through [`Client::request_text`], not kube's typed calls, which log
//! an answer they cannot decode: an answer about a Secret holds its values.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{DeleteParams, GetParams, ObjectMeta, PostParams, Preconditions};
use kube::core::Request;

use super::{
    Action, Copy, MANAGED_BY, MANAGED_BY_LABEL, POLICY_ANNOTATION, SOURCE_ANNOTATION,
    SOURCE_HASH_ANNOTATION, SOURCE_VERSION_ANNOTATION,
};
use crate::policy::SecretReference;

/// What became of one action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// The copy was created.
    Created,
    /// The copy was replaced in place.
    Updated,
    /// The copy could not change in place: deleted and created again.
    Recreated,
    /// The copy was deleted.
    Deleted,
    /// The copy to delete was gone already.
    AlreadyGone,
    /// The target changed since the plan (409, or the copy to update is gone): nothing
    /// written, the next pass plans again.
    Raced,
    /// The source does not exist any more: nothing written.
    SourceGone,
    /// An error, in [`Applied::errors`].
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Created,
        Outcome::Updated,
        Outcome::Recreated,
        Outcome::Deleted,
        Outcome::AlreadyGone,
        Outcome::Raced,
        Outcome::SourceGone,
        Outcome::Failed,
    ];

    /// A metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Recreated => "recreated",
            Outcome::Deleted => "deleted",
            Outcome::AlreadyGone => "already_gone",
            Outcome::Raced => "raced",
            Outcome::SourceGone => "source_gone",
            Outcome::Failed => "failed",
        }
    }

    /// Whether the outcome wrote to the cluster.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Outcome::Created | Outcome::Updated | Outcome::Recreated | Outcome::Deleted
        )
    }
}

/// What an [`apply`] call did: how many actions ended how, and every error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Actions by outcome (outcomes no action had are absent).
    pub counts: BTreeMap<Outcome, usize>,
    /// One per [`Outcome::Failed`] action, in the order of the actions.
    pub errors: Vec<ApplyError>,
}

impl Applied {
    /// How many actions ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.counts.get(&outcome).copied().unwrap_or(0)
    }

    /// How many actions wrote to the cluster.
    pub fn writes(&self) -> usize {
        self.counts
            .iter()
            .filter(|(o, _)| o.is_write())
            .map(|(_, n)| n)
            .sum()
    }

    fn record(&mut self, result: Result<Outcome, ApplyError>) {
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                self.errors.push(e);
                Outcome::Failed
            }
        };
        *self.counts.entry(outcome).or_default() += 1;
    }
}

/// Why a request failed. Never the API server's message: it could quote what was sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The API server answered with this code and reason (e.g. 500 `InternalError`).
    Api { code: u16, reason: String },
    /// No usable answer: the connection failed, or the answer could not be read (the
    /// kind of failure only; a decoding error could quote the answer).
    Transport(&'static str),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Api { code, reason } if reason.is_empty() => {
                write!(f, "the API server answered {code}")
            }
            Cause::Api { code, reason } => write!(f, "the API server answered {code} {reason}"),
            Cause::Transport(kind) => write!(f, "no usable answer from the API server ({kind})"),
        }
    }
}

impl Cause {
    fn of(error: &kube::Error) -> Self {
        match error {
            kube::Error::Api(status) => Cause::Api {
                code: status.code,
                // The reason is a CamelCase word; clipped all the same.
                reason: crate::admission::clip(&status.reason, 64).into_owned(),
            },
            kube::Error::HyperError(_) => Cause::Transport("connection"),
            kube::Error::Service(_) => Cause::Transport("service"),
            kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => {
                Cause::Transport("undecodable answer")
            }
            kube::Error::BuildRequest(_) | kube::Error::HttpError(_) => {
                Cause::Transport("request not built")
            }
            _ => Cause::Transport("client"),
        }
    }
}

/// The write an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    /// The delete of a copy about to be created again.
    Replace,
    Delete,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Replace => "replace",
            Op::Delete => "delete",
        })
    }
}

/// An action that failed. Names the copy (`namespace/name`), never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The source could not be read (not a 404: that is [`Outcome::SourceGone`]).
    #[error("cannot read source {from} for copy {target}: {cause}")]
    ReadSource {
        target: String,
        from: String,
        cause: Cause,
    },
    #[error("cannot {op} copy {target}: {cause}")]
    Write {
        op: Op,
        target: String,
        cause: Cause,
    },
    /// The plan knew no uid (delete) or resourceVersion (replace) to make the write
    /// conditional on: nothing is deleted unconditionally.
    #[error("will not {op} copy {target}: no uid or resourceVersion to make it conditional")]
    NoPrecondition { op: Op, target: String },
}

impl ApplyError {
    /// `namespace/name` of the copy.
    pub fn target(&self) -> &str {
        match self {
            ApplyError::ReadSource { target, .. }
            | ApplyError::Write { target, .. }
            | ApplyError::NoPrecondition { target, .. } => target,
        }
    }
}

/// Carries out `actions` in order, one request at a time; see the module documentation.
pub async fn apply(client: &Client, actions: &[Action]) -> Applied {
    let mut sources = Sources::default();
    let mut applied = Applied::default();
    for action in actions {
        let result = match action {
            Action::Create(copy) => write(client, &mut sources, copy, None).await,
            Action::Update {
                copy,
                resource_version,
            } => {
                write(
                    client,
                    &mut sources,
                    copy,
                    Some(resource_version.as_deref()),
                )
                .await
            }
            Action::Delete {
                namespace,
                name,
                uid,
            } => delete(client, namespace, name, uid.as_deref()).await,
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, "instance secret copy not written");
        }
        applied.record(result);
    }
    applied
}

/// `sha256:<hex>` of a secret's type and data: what [`SOURCE_HASH_ANNOTATION`] holds.
///
/// The digest is over, in order, each as an 8-byte big-endian length followed by the
/// bytes: the type (`Opaque` when unset or empty, as the API server defaults it), then
/// for each data entry in byte order of the keys, the key and then the value. (The
/// number of entries comes first, as 8 bytes big-endian.) Entries need not come sorted.
pub fn source_hash<'a>(
    type_: Option<&str>,
    data: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> String {
    let mut entries: Vec<(&str, &[u8])> = data.into_iter().collect();
    entries.sort_unstable();
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let type_ = type_.filter(|t| !t.is_empty()).unwrap_or("Opaque");
    field(&mut digest, type_.as_bytes());
    digest.update(&(entries.len() as u64).to_be_bytes());
    for (key, value) in entries {
        field(&mut digest, key.as_bytes());
        field(&mut digest, value);
    }
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest.finish().as_ref() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// One length-prefixed field of [`source_hash`]'s input.
fn field(digest: &mut ring::digest::Context, bytes: &[u8]) {
    digest.update(&(bytes.len() as u64).to_be_bytes());
    digest.update(bytes);
}

/// What a copy takes from its source. Holds the values: no `Debug` that shows them.
struct Source {
    type_: Option<String>,
    data: Option<BTreeMap<String, ByteString>>,
    immutable: bool,
    version: Option<String>,
    hash: String,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("type", &self.type_)
            .field("keys", &self.data.as_ref().map_or(0, BTreeMap::len))
            .field("immutable", &self.immutable)
            .field("version", &self.version)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Keeps only what a copy takes; the source's metadata (labels, annotations) drops.
    fn from_secret(secret: Secret) -> Self {
        let hash = source_hash(
            secret.type_.as_deref(),
            secret
                .data
                .iter()
                .flatten()
                .map(|(k, v)| (k.as_str(), v.0.as_slice())),
        );
        Self {
            type_: secret.type_,
            data: secret.data,
            immutable: secret.immutable == Some(true),
            version: secret.metadata.resource_version,
            hash,
        }
    }

    /// The copy `copy` describes, with `resource_version` (for a PUT).
    fn copy(&self, copy: &Copy, resource_version: Option<String>) -> Secret {
        let labels = BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())]);
        let mut annotations = BTreeMap::from([
            (POLICY_ANNOTATION.to_owned(), copy.policy.to_string()),
            (SOURCE_ANNOTATION.to_owned(), reference(&copy.source)),
            (SOURCE_HASH_ANNOTATION.to_owned(), self.hash.clone()),
        ]);
        if let Some(version) = &self.version {
            annotations.insert(SOURCE_VERSION_ANNOTATION.to_owned(), version.clone());
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(copy.name.clone()),
                namespace: Some(copy.namespace.clone()),
                resource_version,
                labels: Some(labels),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            type_: self.type_.clone(),
            data: self.data.clone(),
            immutable: self.immutable.then_some(true),
            string_data: None,
        }
    }
}

/// A source as read in this call.
#[derive(Debug)]
enum Read {
    Found(Source),
    Gone,
    Failed(Cause),
}

/// The sources read so far in one [`apply`] call.
#[derive(Debug, Default)]
struct Sources(HashMap<SecretReference, Read>);

impl Sources {
    async fn get(&mut self, client: &Client, from: &SecretReference) -> &Read {
        if !self.0.contains_key(from) {
            let request = secrets(&from.namespace).get(&from.name, &GetParams::default());
            let read = match send(client, request).await {
                // Decoded here, not by kube: it logs an answer it cannot decode.
                Ok(text) => match serde_json::from_str::<Secret>(&text) {
                    Ok(secret) => Read::Found(Source::from_secret(secret)),
                    Err(_) => Read::Failed(Cause::Transport("undecodable answer")),
                },
                Err(e) if status(&e) == Some(404) => Read::Gone,
                Err(e) => Read::Failed(Cause::of(&e)),
            };
            self.0.insert(from.clone(), read);
        }
        &self.0[from]
    }
}

/// Requests on the Secrets of `namespace`.
fn secrets(namespace: &str) -> Request {
    Request::new(<Secret as kube::Resource>::url_path(&(), Some(namespace)))
}

/// Sends a request and returns the answer's body as text. Not through [`kube::Api`]: its typed
/// calls log the whole answer when it does not decode, and an answer about a Secret holds
/// its values.
async fn send(
    client: &Client,
    request: Result<axum::http::Request<Vec<u8>>, kube::core::request::Error>,
) -> Result<String, kube::Error> {
    client
        .request_text(request.map_err(kube::Error::BuildRequest)?)
        .await
}

/// Sends a write and drops its answer (the object written, values included).
async fn write_request(
    client: &Client,
    request: Result<axum::http::Request<Vec<u8>>, kube::core::request::Error>,
) -> Result<(), kube::Error> {
    send(client, request).await.map(drop)
}

/// The body of a create or replace.
fn body(secret: &Secret) -> Vec<u8> {
    // A Secret always serializes.
    serde_json::to_vec(secret).unwrap_or_default()
}

fn failed(op: Op, target: &str, error: &kube::Error) -> ApplyError {
    ApplyError::Write {
        op,
        target: target.to_owned(),
        cause: Cause::of(error),
    }
}

fn reference(r: &SecretReference) -> String {
    format!("{}/{}", r.namespace, r.name)
}

/// The HTTP code of an API error (from its reason when the Status has no code).
fn status(error: &kube::Error) -> Option<u16> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    match (status.code, status.reason.as_str()) {
        (0, "NotFound") => Some(404),
        (0, "AlreadyExists" | "Conflict") => Some(409),
        (0, "Invalid") => Some(422),
        (0, _) => None,
        (code, _) => Some(code),
    }
}

/// Create (`resource_version` `None`) or update (`Some`) the copy.
async fn write(
    client: &Client,
    sources: &mut Sources,
    copy: &Copy,
    resource_version: Option<Option<&str>>,
) -> Result<Outcome, ApplyError> {
    let target = format!("{}/{}", copy.namespace, copy.name);
    let from = reference(&copy.source);
    let source = match sources.get(client, &copy.source).await {
        Read::Found(source) => source,
        Read::Gone => {
            tracing::debug!(copy = %target, source = %from, "source gone: copy not written");
            return Ok(Outcome::SourceGone);
        }
        Read::Failed(cause) => {
            return Err(ApplyError::ReadSource {
                target,
                from,
                cause: cause.clone(),
            });
        }
    };
    let api = secrets(&copy.namespace);
    let pp = PostParams::default();
    let written = |outcome: Outcome| {
        tracing::info!(
            copy = %target,
            source = %from,
            policy = %copy.policy,
            source_version = source.version.as_deref().unwrap_or(""),
            "instance secret copy {}",
            outcome.as_str()
        );
        Ok(outcome)
    };
    let raced = |why: &str| {
        tracing::debug!(copy = %target, "{why}: the next pass plans again");
        Ok(Outcome::Raced)
    };
    let Some(resource_version) = resource_version else {
        let request = api.create(&pp, body(&source.copy(copy, None)));
        return match write_request(client, request).await {
            Ok(()) => written(Outcome::Created),
            Err(e) if status(&e) == Some(409) => raced("created by someone since the plan"),
            Err(e) => Err(failed(Op::Create, &target, &e)),
        };
    };
    if !source.immutable {
        let updated = source.copy(copy, resource_version.map(str::to_owned));
        let request = api.replace(&copy.name, &pp, body(&updated));
        drop(updated);
        match write_request(client, request).await {
            Ok(()) => return written(Outcome::Updated),
            Err(e) if status(&e) == Some(409) => return raced("changed since the plan"),
            Err(e) if status(&e) == Some(404) => return raced("deleted since the plan"),
            // Immutable in the cluster, or a type change: replaced below.
            Err(e) if status(&e) == Some(422) => {}
            Err(e) => {
                return Err(failed(Op::Update, &target, &e));
            }
        }
    }
    let Some(resource_version) = resource_version else {
        return Err(ApplyError::NoPrecondition {
            op: Op::Replace,
            target: target.clone(),
        });
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: Some(resource_version.to_owned()),
            uid: None,
        }),
        ..DeleteParams::default()
    };
    match write_request(client, api.delete(&copy.name, &params)).await {
        Ok(()) => {}
        Err(e) if status(&e) == Some(404) => {}
        Err(e) if status(&e) == Some(409) => return raced("changed since the plan"),
        Err(e) => {
            return Err(failed(Op::Replace, &target, &e));
        }
    }
    let request = api.create(&pp, body(&source.copy(copy, None)));
    match write_request(client, request).await {
        Ok(()) => written(Outcome::Recreated),
        Err(e) if status(&e) == Some(409) => raced("created by someone since the delete"),
        Err(e) => Err(failed(Op::Create, &target, &e)),
    }
}

async fn delete(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
) -> Result<Outcome, ApplyError> {
    let target = format!("{namespace}/{name}");
    let Some(uid) = uid else {
        return Err(ApplyError::NoPrecondition {
            op: Op::Delete,
            target,
        });
    };
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version: None,
            uid: Some(uid.to_owned()),
        }),
        ..DeleteParams::default()
    };
    match write_request(client, secrets(namespace).delete(name, &params)).await {
        Ok(()) => {
            tracing::info!(copy = %target, "instance secret copy deleted");
            Ok(Outcome::Deleted)
        }
        Err(e) if status(&e) == Some(404) => Ok(Outcome::AlreadyGone),
        Err(e) if status(&e) == Some(409) => {
            tracing::debug!(copy = %target, "replaced since the plan: not deleted");
            Ok(Outcome::Raced)
        }
        Err(e) => Err(failed(Op::Delete, &target, &e)),
    }
}

#[cfg(test)]
mod tests;
