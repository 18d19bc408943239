//! The background task: takes notices off the channel, asks the limiter, writes Events
//! (`POST`, then merge `PATCH`es of `series`), and flushes suppressed denials into their
//! Event's series once their interval has passed.
//!
//! kube-runtime's `events::Recorder` does the create-then-series part too, but it is not
//! used here: its cache of Events grows with every owner seen in six minutes (no bound),
//! it patches the series only when another event is published (suppressed denials would
//! never be counted), and a series PATCH of an Event that expired fails for good instead
//! of creating a new one.

use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};

use super::limiter::{Budget, Decision, Key, Limiter};
use super::{ACTION, Config, Notice, OwnerEventMetrics, REASON, REPORTING_CONTROLLER, Receiver};
use crate::telemetry::Escaped;

/// The Event for `notice`, regarding its owner (with `uid` when known), written by
/// `instance` at `now`. Its name is the owner's, made a DNS subdomain, plus the time.
pub fn event(notice: &Notice, uid: Option<String>, instance: &str, now: Timestamp) -> Event {
    let owner = &notice.owner;
    Event {
        metadata: ObjectMeta {
            name: Some(event_name(&owner.name, now)),
            namespace: Some(notice.namespace.clone()),
            ..ObjectMeta::default()
        },
        regarding: Some(ObjectReference {
            api_version: Some(owner.api_version.clone()),
            kind: Some(owner.kind.clone()),
            name: Some(owner.name.clone()),
            namespace: Some(notice.namespace.clone()),
            uid,
            ..ObjectReference::default()
        }),
        type_: Some("Warning".to_owned()),
        reason: Some(REASON.to_owned()),
        action: Some(ACTION.to_owned()),
        note: Some(notice.note.clone()),
        event_time: Some(MicroTime(now)),
        reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        ..Event::default()
    }
}

/// `<owner>.<nanoseconds in hex>`, as client-go names Events, with the owner's name cut
/// and reduced to what a DNS subdomain allows (owner names of some kinds are not).
fn event_name(owner: &str, now: Timestamp) -> String {
    let cleaned: String = owner
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .take(200)
        .collect();
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let base = if cleaned.is_empty() {
        "secret"
    } else {
        cleaned
    };
    format!("{base}.{:x}", now.as_nanosecond())
}

fn key(notice: &Notice) -> Key {
    Key {
        namespace: notice.namespace.clone(),
        api_version: notice.owner.api_version.clone(),
        kind: notice.owner.kind.clone(),
        name: notice.owner.name.clone(),
    }
}

fn note_hash(note: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    note.hash(&mut hasher);
    hasher.finish()
}

/// Emits Events for the notices `rx` receives until every sender is gone.
pub async fn run(client: Client, mut rx: Receiver, config: Config, metrics: OwnerEventMetrics) {
    let mut limiter = Limiter::new(config.limits);
    let mut budget = Budget::new(config.writes_per_second, config.burst, Instant::now());
    let writer = Writer {
        client,
        instance: config.instance.clone(),
    };
    let tick = (config.limits.interval / 4).max(Duration::from_millis(50));
    let mut flush = tokio::time::interval(tick);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            notice = rx.recv() => match notice {
                Some(notice) => {
                    let key = key(&notice);
                    let now = Instant::now();
                    let decision = limiter.decide(&key, note_hash(&notice.note), now);
                    let outcome = match decision {
                        Decision::Suppress => "rate_limited",
                        _ if !budget.take(now) => "rate_limited",
                        decision => writer.write(&mut limiter, &key, &notice, decision).await,
                    };
                    metrics.count(outcome);
                }
                None => break,
            },
            _ = flush.tick() => {
                for (key, decision) in limiter.due(Instant::now()) {
                    if let Decision::Series { event, count } = decision
                        && let Err(e) = writer.series(&key.namespace, &event, count).await
                    {
                        // Suppressed denials were counted already; a lost series update
                        // only undercounts the Event.
                        if matches!(&e, kube::Error::Api(s) if s.is_not_found()) {
                            limiter.forget_event(&key);
                        }
                        tracing::debug!(event = %Escaped::new(&event, 300), error = %e, "owner event series not updated");
                    }
                }
            }
        }
    }
}

struct Writer {
    client: Client,
    instance: String,
}

impl Writer {
    /// Carries out a create or series decision; the outcome to count.
    async fn write(
        &self,
        limiter: &mut Limiter,
        key: &Key,
        notice: &Notice,
        decision: Decision,
    ) -> &'static str {
        let result = match decision {
            Decision::Series { event, count } => {
                match self.series(&notice.namespace, &event, count).await {
                    // Expired or deleted: this denial starts a new Event.
                    Err(kube::Error::Api(s)) if s.is_not_found() => {
                        limiter.forget_event(key);
                        self.create(notice)
                            .await
                            .map(|name| limiter.created(key, name))
                    }
                    other => other,
                }
            }
            Decision::Create => self
                .create(notice)
                .await
                .map(|name| limiter.created(key, name)),
            Decision::Suppress => return "rate_limited",
        };
        match result {
            Ok(()) => "emitted",
            Err(e) => {
                tracing::warn!(
                    namespace = %Escaped::new(&notice.namespace, 64),
                    kind = %Escaped::new(&notice.owner.kind, 128),
                    name = %Escaped::new(&notice.owner.name, 253),
                    error = %e,
                    "cannot write the Event on the denied Secret's owner"
                );
                "failed"
            }
        }
    }

    /// Creates the Event; its name.
    async fn create(&self, notice: &Notice) -> Result<String, kube::Error> {
        let uid = match (&notice.owner.uid, notice.owner.look_up_uid) {
            (Some(uid), _) => Some(uid.clone()),
            (None, true) => self.owner_uid(notice).await,
            (None, false) => None,
        };
        let event = event(notice, uid, &self.instance, Timestamp::now());
        let events: Api<Event> = Api::namespaced(self.client.clone(), &notice.namespace);
        let created = events.create(&PostParams::default(), &event).await?;
        Ok(created
            .metadata
            .name
            .or(event.metadata.name)
            .unwrap_or_default())
    }

    /// Sets the series of Event `name` to `count` occurrences, last observed now.
    async fn series(&self, namespace: &str, name: &str, count: i32) -> Result<(), kube::Error> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({
            "series": {"count": count, "lastObservedTime": MicroTime(Timestamp::now())}
        });
        events
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }

    /// The uid of an owner named by annotation, read from its metadata (`get`), so
    /// `kubectl describe`, which selects Events by uid, shows the Event. Without it (no
    /// such object, no RBAC) the Event is still written, for `kubectl events`.
    async fn owner_uid(&self, notice: &Notice) -> Option<String> {
        let owner = &notice.owner;
        let (group, version) = match owner.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", owner.api_version.as_str()),
        };
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &owner.kind));
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &notice.namespace, &resource);
        match api.get_metadata(&owner.name).await {
            Ok(object) => object.metadata.uid,
            Err(e) => {
                tracing::debug!(
                    kind = %Escaped::new(&owner.kind, 128),
                    name = %Escaped::new(&owner.name, 253),
                    error = %e,
                    "owner's uid not found; the Event names it without"
                );
                None
            }
        }
    }
}
