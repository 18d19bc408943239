//! Events where users look: when the Secret webhook denies a Secret that names an owner
//! (a cert-manager Certificate, a SealedSecret, an ExternalSecret…), an
//! `events.k8s.io/v1` Event of type Warning is written on that owner, so the refusal
//! shows in `kubectl describe` of the object the user manages, not only in the
//! controller's logs (`serve --owner-events`, cluster mode).
//!
//! The review never waits for it: admission only offers a [`Notice`] to a bounded channel
//! ([`Sender::offer`], a `try_send`; when full the notice is dropped and counted), and a
//! background task ([`run`]) writes the Events. That task limits each owner to one write
//! a minute ([`limiter`]): denials in between are counted and folded into the Event's
//! `series` (`kubectl describe` shows "x5 over 3m"), and a global budget bounds the writes
//! per second whatever the number of owners. Every replica emits for the reviews it
//! served: a denial happens on one replica only, so leader election would lose some.
//!
//! A denied Secret with no owner gets no Event, even when a service account wrote it:
//! there is no object to describe (an Event on the namespace would show where nobody
//! looks), and the writer received the denial itself.
//!
//! What travels is the owner's reference and the denial message, which names fields and
//! rules but never a value (`admission`), clipped to the Event's 1 KiB note.
//!
//! `secretgate_owner_events_total{outcome}` counts every denial that named an owner once:
//! `emitted` (an Event was created or its series advanced for it), `rate_limited` (folded
//! into the series of the Event already written, or over the global budget), `dropped`
//! (channel full) or `failed` (the API server refused the write).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::mpsc;

mod emit;
pub mod limiter;

pub use emit::{event, run};
use limiter::Limits;

/// `reason` of the Events.
pub const REASON: &str = "SecretDenied";
/// `action` of the Events: what failed on the owner's behalf.
pub const ACTION: &str = "Admit";
/// `reportingController` of the Events.
pub const REPORTING_CONTROLLER: &str = "secretgate.io/webhook";
/// The annotation cert-manager puts on the Secrets it writes, naming their Certificate
/// (cert-manager sets no ownerReference unless `--enable-certificate-owner-ref`).
pub const CERT_MANAGER_ANNOTATION: &str = "cert-manager.io/certificate-name";
/// Longest note the API server accepts on an events.k8s.io/v1 Event, in bytes.
pub const MAX_NOTE_BYTES: usize = 1024;

/// Owners whose references are longer than the API server allows are not real objects:
/// no Event is written for them (and the limiter never holds long keys).
const MAX_API_VERSION: usize = 316;
const MAX_KIND: usize = 128;
const MAX_NAME: usize = 253;

/// The object a denied Secret belongs to: the fields of its reference, nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// Known from an ownerReference; `None` from an annotation.
    pub uid: Option<String>,
    /// The uid is looked up before the Event is written (`kubectl describe` finds Events
    /// by the object's uid): owners named by the cert-manager annotation.
    pub look_up_uid: bool,
}

impl Owner {
    /// The owner a Secret names: its controller ownerReference (else its first one), else
    /// the Certificate cert-manager's annotation names, in the Secret's namespace.
    /// External Secrets and Sealed Secrets set ownerReferences (with `controller: true`).
    pub fn of(meta: &ObjectMeta) -> Option<Owner> {
        let references = meta.owner_references.as_deref().unwrap_or_default();
        let reference = references
            .iter()
            .find(|r| r.controller == Some(true))
            .or_else(|| references.first());
        let owner = match reference {
            Some(r) => Owner {
                api_version: r.api_version.clone(),
                kind: r.kind.clone(),
                name: r.name.clone(),
                uid: Some(r.uid.clone()).filter(|uid| !uid.is_empty()),
                look_up_uid: false,
            },
            None => {
                let name = meta.annotations.as_ref()?.get(CERT_MANAGER_ANNOTATION)?;
                Owner {
                    api_version: "cert-manager.io/v1".to_owned(),
                    kind: "Certificate".to_owned(),
                    name: name.clone(),
                    uid: None,
                    look_up_uid: true,
                }
            }
        };
        let fits = |s: &str, max: usize| !s.is_empty() && s.len() <= max;
        (fits(&owner.api_version, MAX_API_VERSION)
            && fits(&owner.kind, MAX_KIND)
            && fits(&owner.name, MAX_NAME)
            && owner.uid.as_ref().is_none_or(|u| u.len() <= MAX_NAME))
        .then_some(owner)
    }
}

/// What a denied review hands to the emitter: the owner, its namespace (the Secret's),
/// and the note, already value-free and within [`MAX_NOTE_BYTES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub namespace: String,
    pub owner: Owner,
    pub note: String,
}

impl Notice {
    /// The notice for a denied write of Secret `secret` in `namespace` (operation as the
    /// review names it), `None` when the Secret names no owner. `message` is the denial
    /// the API server returns to the writer: field paths and rules, no values.
    pub fn for_denial(
        meta: &ObjectMeta,
        namespace: &str,
        secret: &str,
        operation: &str,
        message: &str,
    ) -> Option<Notice> {
        let owner = Owner::of(meta)?;
        let note = format!("secretgate denied {operation} of Secret {secret}: {message}");
        Some(Notice {
            namespace: namespace.to_owned(),
            owner,
            note: clip_bytes(&note, MAX_NOTE_BYTES),
        })
    }
}

/// `text` cut to at most `max` bytes on a character boundary, the cut marked with `…`.
pub fn clip_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `secretgate_owner_events_total{outcome}`.
#[derive(Clone)]
pub struct OwnerEventMetrics {
    outcomes: IntCounterVec,
}

impl OwnerEventMetrics {
    pub const OUTCOMES: [&'static str; 4] = ["emitted", "rate_limited", "dropped", "failed"];

    pub fn new(registry: &Registry) -> prometheus::Result<Self> {
        let outcomes = IntCounterVec::new(
            Opts::new(
                "secretgate_owner_events_total",
                "Denied Secrets naming an owner, by what became of the Event on the owner \
                 (emitted, rate_limited, dropped, failed).",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(outcomes.clone()))?;
        for outcome in Self::OUTCOMES {
            outcomes.with_label_values(&[outcome]);
        }
        Ok(Self { outcomes })
    }

    pub fn count(&self, outcome: &'static str) {
        self.outcomes.with_label_values(&[outcome]).inc();
    }

    /// The count of `outcome` so far (tests, logs).
    pub fn get(&self, outcome: &str) -> u64 {
        self.outcomes.with_label_values(&[outcome]).get()
    }
}

/// The review side of the channel: cheap to clone, never waits.
#[derive(Clone)]
pub struct Sender {
    tx: mpsc::Sender<Notice>,
    metrics: OwnerEventMetrics,
}

impl Sender {
    /// Hands `notice` to the emitter, or drops it (counted) when the channel is full or
    /// the emitter has stopped: a review never waits for an Event.
    pub fn offer(&self, notice: Notice) {
        if self.tx.try_send(notice).is_err() {
            self.metrics.count("dropped");
        }
    }
}

/// The emitter's side of the channel.
pub type Receiver = mpsc::Receiver<Notice>;

/// Notices waiting for the emitter at most: beyond this, denials get no Event.
pub const CHANNEL_CAPACITY: usize = 256;

/// A channel of `capacity` notices.
pub fn channel(capacity: usize, metrics: OwnerEventMetrics) -> (Sender, Receiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (Sender { tx, metrics }, rx)
}

/// How the emitter writes.
#[derive(Clone, Debug)]
pub struct Config {
    /// `reportingInstance` of the Events: the pod's name (at most 128 bytes).
    pub instance: String,
    pub limits: Limits,
    /// Event writes per second across all owners, and the burst allowed above it.
    pub writes_per_second: f64,
    pub burst: f64,
}

impl Config {
    /// One write per owner per minute, at most 10 a second (bursts of 50) in all.
    pub fn new(instance: &str) -> Self {
        Self {
            instance: clip_bytes(instance, 128),
            limits: Limits {
                interval: Duration::from_secs(60),
                series_window: Duration::from_secs(6 * 60),
                capacity: 4096,
            },
            writes_per_second: 10.0,
            burst: 50.0,
        }
    }

    /// `POD_NAME` (the chart sets it from the downward API), else `secretgate`.
    pub fn from_env() -> Self {
        let instance = std::env::var("POD_NAME")
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "secretgate".to_owned());
        Self::new(&instance)
    }
}

#[cfg(test)]
mod tests;
