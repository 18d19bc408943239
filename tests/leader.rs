//! Leader election against an in-memory Lease API (kube-rs's tower-test pattern): one
//! Lease whose `resourceVersion` grows with every write, answering GET, POST and PUT with
//! 404 and 409 as the API server does. Each elector has its own client, so the fake can
//! fail or stall one replica's requests while the other's go through.
//!
//! Two electors: only one leads; the leader's release on shutdown hands over well before
//! the lease could expire; a leader that stops renewing (task dropped, API failing or not
//! answering) is replaced once the lease expires, never while it still leads; a 409 on
//! renewal neither ends a valid leadership nor lets a second leader in. And the status
//! writes of cluster mode happen only on the leader, which writes on taking over what was
//! left unwritten.
//!
//! No assertion is about speed: conditions are awaited with generous timeouts, and "never
//! two leaders" is watched by a task sampling both handles throughout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{Request, Response};
use kube::client::Body;
use secretgate::leader::{Elector, Leadership, LeaseConfig, Switch};
use secretgate::metrics::Metrics;
use secretgate::policy::Snapshot;
use secretgate::policy::watch::{Targets, leader_writes, run};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const NAMESPACE: &str = "secretgate-system";
const LEASE: &str = "secretgate";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/secretgate-system/leases";
/// Long enough for any condition on a loaded CI machine.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// The fake Lease API

/// How the fake treats one replica's requests.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// 500 Internal Server Error.
    Fail,
    /// Never answered.
    Stall,
    /// The next PUT finds the object changed by someone else (its version bumped, the
    /// holder unchanged) and gets 409.
    ConflictNextPut,
}

#[derive(Default)]
struct Cluster {
    /// The Lease as stored, with `metadata.resourceVersion`.
    lease: Option<Value>,
    version: u64,
    faults: Vec<(String, Fault)>,
    /// 409s answered.
    conflicts: usize,
}

impl Cluster {
    fn holder(&self) -> Option<String> {
        self.lease.as_ref().and_then(|l| {
            l["spec"]["holderIdentity"]
                .as_str()
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
        })
    }

    fn spec(&self) -> Value {
        self.lease
            .as_ref()
            .map_or(Value::Null, |l| l["spec"].clone())
    }

    fn fault(&self, replica: &str) -> Fault {
        self.faults
            .iter()
            .find(|(r, _)| r == replica)
            .map_or(Fault::None, |(_, f)| *f)
    }

    fn set_fault(&mut self, replica: &str, fault: Fault) {
        self.faults.retain(|(r, _)| r != replica);
        self.faults.push((replica.to_owned(), fault));
    }

    /// Stores `lease` as the next version.
    fn store(&mut self, mut lease: Value) -> Value {
        self.version += 1;
        lease["metadata"]["resourceVersion"] = json!(self.version.to_string());
        lease["metadata"]["name"] = json!(LEASE);
        lease["metadata"]["namespace"] = json!(NAMESPACE);
        self.lease = Some(lease.clone());
        lease
    }

    /// Someone other than the electors writes the spec (an intruder, `kubectl edit`).
    fn overwrite_spec(&mut self, spec: Value) {
        let mut lease = self.lease.clone().expect("a lease");
        lease["spec"] = spec;
        self.store(lease);
    }

    /// The API server's answer to one request.
    fn answer(&mut self, replica: &str, method: &str, uri: &str, body: &[u8]) -> (u16, Value) {
        let named = uri.split('?').next() == Some(&format!("{LEASES}/{LEASE}"));
        match (method, named) {
            ("GET", true) => match &self.lease {
                Some(lease) => (200, lease.clone()),
                None => status(404, "NotFound"),
            },
            ("POST", false) => {
                if self.lease.is_some() {
                    self.conflicts += 1;
                    return status(409, "AlreadyExists");
                }
                let lease: Value = serde_json::from_slice(body).expect("lease JSON");
                (201, self.store(lease))
            }
            ("PUT", true) => {
                let lease: Value = serde_json::from_slice(body).expect("lease JSON");
                if self.fault(replica) == Fault::ConflictNextPut {
                    self.set_fault(replica, Fault::None);
                    let current = self.lease.clone().expect("a lease");
                    self.store(current);
                }
                let Some(current) = &self.lease else {
                    return status(404, "NotFound");
                };
                if lease["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                    self.conflicts += 1;
                    return status(409, "Conflict");
                }
                (200, self.store(lease))
            }
            _ => panic!("unexpected request {method} {uri}"),
        }
    }
}

fn status(code: u16, reason: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": reason, "reason": reason, "code": code}),
    )
}

/// A client whose requests `replica` sends to the shared fake.
fn client(replica: &str, cluster: &Arc<Mutex<Cluster>>) -> kube::Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let (replica, cluster) = (replica.to_owned(), cluster.clone());
    tokio::spawn(async move {
        let mut stalled = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let body = request.into_body().collect_bytes().await.expect("body");
            let fault = cluster.lock().unwrap().fault(&replica);
            let (code, value) = match fault {
                Fault::Stall => {
                    stalled.push(send);
                    continue;
                }
                Fault::Fail => status(500, "InternalError"),
                Fault::None | Fault::ConflictNextPut => cluster
                    .lock()
                    .unwrap()
                    .answer(&replica, &method, &uri, &body),
            };
            send.send_response(
                Response::builder()
                    .status(code)
                    .body(Body::from(value.to_string().into_bytes()))
                    .expect("response"),
            );
        }
    });
    kube::Client::new(service, "default")
}

// ---------------------------------------------------------------------------------------
// Electors

/// One replica's elector, running.
struct Replica {
    leadership: Leadership,
    metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Replica {
    fn start(identity: &str, cluster: &Arc<Mutex<Cluster>>, timing: Timing) -> Self {
        let config = LeaseConfig {
            duration: timing.duration,
            renew_deadline: timing.renew_deadline,
            renew_interval: Duration::from_millis(100),
            retry_period: Duration::from_millis(50),
            ..LeaseConfig::new(NAMESPACE, LEASE, identity.to_owned())
        };
        let metrics = Arc::new(Metrics::new(prometheus::Registry::new()).expect("metrics"));
        let elector = Elector::new(client(identity, cluster), config)
            .expect("valid timing")
            .with_metrics(metrics.clone());
        let leadership = elector.leadership();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(elector.run(async move {
            let _ = stopped.await;
        }));
        Self {
            leadership,
            metrics,
            stop: Some(stop),
            task,
        }
    }

    /// SIGTERM: stop and release; returns when the elector has finished.
    async fn shut_down(&mut self) {
        let _ = self.stop.take().expect("running").send(());
        tokio::time::timeout(PATIENCE, &mut self.task)
            .await
            .expect("the elector stops")
            .expect("no panic");
    }

    fn transitions(&self, event: &str) -> u64 {
        self.metrics
            .leader_transitions
            .with_label_values(&[event])
            .get()
    }
}

#[derive(Clone, Copy)]
struct Timing {
    duration: Duration,
    renew_deadline: Duration,
}

/// Expiry within a couple of seconds: for take-overs that wait for it.
const SHORT: Timing = Timing {
    duration: Duration::from_secs(1),
    renew_deadline: Duration::from_millis(600),
};

/// Expiry far beyond [`PATIENCE`]: a take-over within it cannot be an expiry.
const LONG: Timing = Timing {
    duration: Duration::from_secs(120),
    renew_deadline: Duration::from_secs(60),
};

/// Samples every handle until dropped; remembers whether two ever led at once.
struct Monitor {
    overlap: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Monitor {
    fn watch(handles: Vec<Leadership>) -> Self {
        let overlap = Arc::new(AtomicBool::new(false));
        let seen = overlap.clone();
        let task = tokio::spawn(async move {
            loop {
                if handles.iter().filter(|h| h.is_leader()).count() > 1 {
                    seen.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        Self { overlap, task }
    }

    #[track_caller]
    fn assert_never_two_leaders(&self) {
        assert!(
            !self.overlap.load(Ordering::SeqCst),
            "two replicas led at the same time"
        );
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits (at most [`PATIENCE`]) for `done`; false if it never held.
async fn eventually(done: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done()
}

/// Lets several renewal rounds pass (no assertion depends on how many).
async fn some_renewals() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

// ---------------------------------------------------------------------------------------
// Scenarios

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_of_two_replicas_leads_and_it_holds_the_lease() {
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    // Both start against no lease: both try to create it, one gets 409 AlreadyExists.
    let a = Replica::start("a", &cluster, SHORT);
    let b = Replica::start("b", &cluster, SHORT);
    let monitor = Monitor::watch(vec![a.leadership.clone(), b.leadership.clone()]);

    assert!(
        eventually(|| a.leadership.is_leader() || b.leadership.is_leader()).await,
        "one replica leads"
    );
    some_renewals().await;
    some_renewals().await;
    monitor.assert_never_two_leaders();
    let (leader, follower) = if a.leadership.is_leader() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert!(!follower.leadership.is_leader());
    let cluster = cluster.lock().unwrap();
    let holder = cluster.holder().expect("a holder");
    assert_eq!(
        holder == "a",
        std::ptr::eq(leader, &a),
        "the leader holds the lease"
    );
    assert_eq!(cluster.spec()["leaseDurationSeconds"], 1);
    assert_eq!(cluster.spec()["leaseTransitions"], 0);
    assert!(cluster.version > 2, "the leader renews");
    assert_eq!(
        (leader.metrics.leader.get(), follower.metrics.leader.get()),
        (1, 0)
    );
    assert_eq!(leader.transitions("acquired"), 1);
    assert_eq!(follower.transitions("acquired"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_releases_on_shutdown_and_the_other_takes_over_at_once() {
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    let mut a = Replica::start("a", &cluster, LONG);
    assert!(eventually(|| a.leadership.is_leader()).await, "a leads");
    let b = Replica::start("b", &cluster, LONG);
    let monitor = Monitor::watch(vec![a.leadership.clone(), b.leadership.clone()]);
    some_renewals().await;
    assert!(!b.leadership.is_leader(), "b waits while a holds the lease");

    a.shut_down().await;
    assert!(!a.leadership.is_leader(), "a stopped writing");
    assert_eq!(a.transitions("released"), 1);
    assert_eq!(a.metrics.leader.get(), 0);
    // The lease lasts two minutes: only the release explains a take-over within PATIENCE.
    assert!(
        eventually(|| b.leadership.is_leader()).await,
        "b takes the released lease"
    );
    monitor.assert_never_two_leaders();
    let cluster = cluster.lock().unwrap();
    assert_eq!(cluster.holder().as_deref(), Some("b"));
    assert_eq!(cluster.spec()["leaseTransitions"], 1);
    assert_eq!(cluster.spec()["leaseDurationSeconds"], 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_by_a_follower_changes_nothing() {
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    let a = Replica::start("a", &cluster, LONG);
    assert!(eventually(|| a.leadership.is_leader()).await, "a leads");
    let mut b = Replica::start("b", &cluster, LONG);
    some_renewals().await;
    b.shut_down().await;
    assert_eq!(b.transitions("released"), 0);
    some_renewals().await;
    assert!(a.leadership.is_leader());
    assert_eq!(cluster.lock().unwrap().holder().as_deref(), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_stops_renewing_is_replaced_once_the_lease_expires() {
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    let a = Replica::start("a", &cluster, SHORT);
    assert!(eventually(|| a.leadership.is_leader()).await, "a leads");
    let b = Replica::start("b", &cluster, SHORT);
    some_renewals().await;
    assert!(!b.leadership.is_leader());

    // The task is dropped (a crash, an abort): no release, no more renewals.
    a.task.abort();
    assert!(
        eventually(|| !a.leadership.is_leader()).await,
        "a stopped elector reads as not leader"
    );
    assert!(
        eventually(|| b.leadership.is_leader()).await,
        "b takes the expired lease"
    );
    let cluster = cluster.lock().unwrap();
    assert_eq!(cluster.holder().as_deref(), Some("b"));
    assert_eq!(cluster.spec()["leaseTransitions"], 1);
}

/// The leader's requests fail (`Fail`) or hang (`Stall`) while the other replica's go
/// through: the leader steps down at its renew deadline, before the lease expires for the
/// other, which then takes over.
async fn leader_cut_off(fault: Fault) {
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    let a = Replica::start("a", &cluster, SHORT);
    assert!(eventually(|| a.leadership.is_leader()).await, "a leads");
    let b = Replica::start("b", &cluster, SHORT);
    let monitor = Monitor::watch(vec![a.leadership.clone(), b.leadership.clone()]);
    some_renewals().await;

    cluster.lock().unwrap().set_fault("a", fault);
    assert!(
        eventually(|| b.leadership.is_leader()).await,
        "b takes over ({fault:?})"
    );
    monitor.assert_never_two_leaders();
    assert!(!a.leadership.is_leader());
    assert_eq!(a.transitions("lost"), 1);
    assert_eq!(cluster.lock().unwrap().holder().as_deref(), Some("b"));

    // Once a's requests go through again, it follows: b keeps the lease.
    cluster.lock().unwrap().set_fault("a", Fault::None);
    some_renewals().await;
    monitor.assert_never_two_leaders();
    assert!(b.leadership.is_leader() && !a.leadership.is_leader());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renewals_fail_steps_down_before_the_other_takes_over() {
    leader_cut_off(Fault::Fail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renewals_hang_steps_down_before_the_other_takes_over() {
    leader_cut_off(Fault::Stall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_on_renewal_with_the_lease_still_held_keeps_the_leader() {
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    let a = Replica::start("a", &cluster, SHORT);
    assert!(eventually(|| a.leadership.is_leader()).await, "a leads");
    let b = Replica::start("b", &cluster, SHORT);
    let monitor = Monitor::watch(vec![a.leadership.clone(), b.leadership.clone()]);

    cluster
        .lock()
        .unwrap()
        .set_fault("a", Fault::ConflictNextPut);
    assert!(
        eventually(|| cluster.lock().unwrap().conflicts >= 1).await,
        "a's renewal got a 409"
    );
    some_renewals().await;
    monitor.assert_never_two_leaders();
    assert!(
        a.leadership.is_leader(),
        "a re-read, still held it, renewed"
    );
    assert!(!b.leadership.is_leader());
    assert_eq!(a.transitions("lost"), 0);
    assert_eq!(cluster.lock().unwrap().holder().as_deref(), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_on_renewal_with_the_lease_taken_steps_down_at_once() {
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    let a = Replica::start("a", &cluster, LONG);
    assert!(eventually(|| a.leadership.is_leader()).await, "a leads");
    let b = Replica::start("b", &cluster, LONG);
    let monitor = Monitor::watch(vec![a.leadership.clone(), b.leadership.clone()]);

    // Someone else takes the lease (another deployment sharing its name, kubectl edit).
    cluster.lock().unwrap().overwrite_spec(json!({
        "holderIdentity": "intruder", "leaseDurationSeconds": 3600, "leaseTransitions": 5
    }));
    // a learns it at its next renewal (409, then a read): well before its renew deadline.
    assert!(
        eventually(|| !a.leadership.is_leader()).await,
        "a steps down"
    );
    assert_eq!(a.transitions("lost"), 1);
    some_renewals().await;
    monitor.assert_never_two_leaders();
    assert!(!b.leadership.is_leader(), "the intruder's lease is valid");
    assert_eq!(
        cluster.lock().unwrap().holder().as_deref(),
        Some("intruder")
    );
}

// ---------------------------------------------------------------------------------------
// Status writes in cluster mode

#[test]
fn only_the_leader_writes_statuses() {
    use secretgate::policy::ProjectPolicyStatus;
    use secretgate::policy::cluster::StatusUpdate;
    let update = StatusUpdate {
        name: "team-a".into(),
        status: ProjectPolicyStatus::default(),
    };
    assert_eq!(
        leader_writes(vec![update.clone()], true),
        vec![update.clone()]
    );
    assert!(leader_writes(vec![update], false).is_empty());
}

/// Answers the four LISTs of cluster mode (one invalid policy, whose status differs),
/// holds WATCHes open, and reports PATCHes.
async fn policy_api(
    mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>,
    patches: mpsc::UnboundedSender<String>,
) {
    let mut open = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        let uri = request.uri().to_string();
        if uri.contains("watch=true") {
            open.push(send);
            continue;
        }
        let list = |kind: &str, api_version: &str, items: Value| {
            json!({"apiVersion": api_version, "kind": kind,
                   "metadata": {"resourceVersion": "1"}, "items": items})
        };
        let body = if request.method() == "PATCH" {
            let _ = patches.send(uri);
            json!({"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                   "metadata": {"name": "broken"}})
        } else if uri.starts_with("/apis/secretgate.io/v1alpha1/projectpolicies") {
            list(
                "ProjectPolicyList",
                "secretgate.io/v1alpha1",
                json!([{"apiVersion": "secretgate.io/v1alpha1", "kind": "ProjectPolicy",
                        "metadata": {"name": "broken", "generation": 2},
                        "spec": {"namespaces": ["b"], "secrets": {"ssh": {"minRsaBits": 1}}}}]),
            )
        } else if uri.starts_with("/api/v1/serviceaccounts") {
            list("ServiceAccountList", "v1", json!([]))
        } else {
            list("PartialObjectMetadataList", "meta.k8s.io/v1", json!([]))
        };
        send.send_response(
            Response::builder()
                .body(Body::from(body.to_string().into_bytes()))
                .expect("response"),
        );
    }
}

#[tokio::test]
async fn a_follower_writes_no_status_and_writes_the_pending_ones_on_becoming_leader() {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let (patches_tx, mut patches) = mpsc::unbounded_channel();
    tokio::spawn(policy_api(handle, patches_tx));
    let (switch, leadership) = Switch::new(false);
    let targets = Targets {
        policies: Arc::new(ArcSwap::from_pointee(Snapshot::with_default())),
        ready: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new(prometheus::Registry::new()).expect("metrics")),
        leadership,
        instance: None,
        audit: None,
        mode_labels: None,
        pull_secret_registries: false,
        admission_policies: None,
    };
    tokio::spawn(run(kube::Client::new(service, "default"), targets.clone()));

    let ready = targets.ready.clone();
    assert!(eventually(|| ready.load(Ordering::Acquire)).await, "synced");
    // The snapshot (admission's) is built on a follower too.
    assert_eq!(targets.policies.load().policy_count(), 0);
    some_renewals().await;
    assert!(patches.try_recv().is_err(), "a follower writes no status");

    // Nothing changes in the cluster: only the new leadership makes the status written.
    switch.set(true, "acquired");
    let uri = tokio::time::timeout(PATIENCE, patches.recv())
        .await
        .expect("the new leader writes the pending status")
        .expect("a patch");
    assert!(
        uri.starts_with("/apis/secretgate.io/v1alpha1/projectpolicies/broken/status"),
        "{uri}"
    );
}
