//! One leadership term of the continuous audit: passes over the caches, reviews of what
//! is due, report writes. See the parent module for the schedule.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use time::OffsetDateTime;

use super::budget::Budget;
use super::ledger::{Ledger, Reason, Scope, SecretEntry, SecretKey, fingerprint};
use super::{Config, Sources, credentials, writer};
use crate::admission::Context;
use crate::audit::{Report, invalid, read_secret, review};
use crate::leader::Leadership;
use crate::policy::Snapshot;
use crate::reports::result::{ReportResult, Resource, results};
use crate::reports::{Flavor, object};

/// Reviews between two report flushes during a long pass, so progress shows.
const FLUSH_EVERY: usize = 200;
/// Pods per LIST page.
const POD_PAGE: u32 = 500;

/// A secret to review, why, and the `resourceVersion` the cache holds.
struct Due {
    key: SecretKey,
    reason: Reason,
    version: String,
}

/// Why a pass stopped early.
struct Lost;

pub struct Term {
    client: Client,
    sources: Sources,
    config: Config,
    flavor: Flavor,
    budget: Budget,
    ledger: Ledger,
    /// Namespaces holding a report this term has not written: deleted after the first
    /// full pass unless they have results.
    stale: BTreeSet<String>,
    /// Why each ProjectPolicy (name, resourceVersion) is not in force, if it is not.
    policy_problems: HashMap<(String, String), Option<String>>,
}

impl Term {
    pub fn new(client: Client, sources: Sources, config: Config, flavor: Flavor) -> Self {
        let budget = Budget::new(config.requests_per_second);
        let mut ledger = Ledger::default();
        // The cluster report is written once per term even when empty, so a fixed
        // policy's `error` from an earlier term goes.
        ledger.touch(None);
        Self {
            client,
            sources,
            config,
            flavor,
            budget,
            ledger,
            stale: BTreeSet::new(),
            policy_problems: HashMap::new(),
        }
    }

    /// Passes until leadership is lost.
    pub async fn run(mut self, leadership: &mut Leadership) {
        self.budget.take().await;
        match writer::existing(&self.client, self.flavor).await {
            Ok(namespaces) => self.stale = namespaces.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "continuous audit: cannot list existing reports; stale ones stay until their namespace has results again")
            }
        }
        let mut next_full = Instant::now();
        loop {
            let full = Instant::now() >= next_full;
            if full {
                next_full = Instant::now() + self.config.interval;
            }
            if self.pass(full, leadership).await.is_err() {
                return;
            }
            if full {
                self.delete_stale();
            }
            if self.flush(leadership).await.is_err() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.tick) => {}
                leads = leadership.changed() => if !leads { return },
            }
        }
    }

    /// One pass: secrets that are due, what the caches alone say, and (full) every pod.
    async fn pass(&mut self, full: bool, leadership: &Leadership) -> Result<(), Lost> {
        let kind = if full { "full" } else { "incremental" };
        self.config.metrics.passes.with_label_values(&[kind]).inc();
        let snapshot = self.sources.snapshot.load_full();
        let initial = self.due(&snapshot, full);
        // Versions queued and not reviewed yet: a later look that finds them again (as
        // new, on the first pass) has no news.
        let mut pending: HashMap<SecretKey, String> = initial
            .iter()
            .map(|d| (d.key.clone(), d.version.clone()))
            .collect();
        // (what is due, whether it changed after the pass began)
        let mut queue: VecDeque<(Due, bool)> = initial.into_iter().map(|d| (d, false)).collect();
        let mut reviewed = 0usize;
        let mut looked = Instant::now();
        while let Some((item, urgent)) = queue.pop_front() {
            if !leadership.is_leader() {
                return Err(Lost);
            }
            if full && looked.elapsed() >= self.config.tick {
                // A full pass can take longer than the interval (50,000 secrets at 10
                // requests a second: 83 minutes): what changed meanwhile goes first.
                looked = Instant::now();
                let latest = self.sources.snapshot.load_full();
                for d in self.due(&latest, false).into_iter().rev() {
                    if pending.get(&d.key) != Some(&d.version) {
                        queue.push_front((d, true));
                    }
                }
            }
            // Reviewed already in this pass (an urgent look got to it first).
            if pending.remove(&item.key).is_none() && !urgent {
                continue;
            }
            let Due { key, reason, .. } = item;
            reviewed += 1;
            self.budget.take().await;
            // The latest snapshot: a long pass should not review against an old policy.
            let latest = self.sources.snapshot.load_full();
            self.review_secret(key, reason, &latest).await;
            // Changes are shown at once; a long pass shows its progress now and then.
            if urgent || reviewed % FLUSH_EVERY == 0 {
                self.flush(leadership).await?;
            }
        }
        self.derive(&snapshot);
        if full {
            self.review_pods(leadership).await?;
        }
        Ok(())
    }

    /// Secrets to review now, and why; forgets deleted ones.
    fn due(&mut self, snapshot: &Snapshot, full: bool) -> Vec<Due> {
        let now = Instant::now();
        let mut spec_hashes = HashMap::new();
        let mut present = HashSet::new();
        let mut due = Vec::new();
        for meta in self.sources.secrets.state() {
            let (Some(namespace), Some(name)) = (&meta.metadata.namespace, &meta.metadata.name)
            else {
                continue;
            };
            let key = SecretKey {
                namespace: namespace.clone(),
                name: name.clone(),
            };
            let version = meta
                .metadata
                .resource_version
                .as_deref()
                .unwrap_or_default();
            let policy = fingerprint(snapshot.for_namespace(namespace), &mut spec_hashes);
            if let Some(reason) = self.ledger.due(&key, version, policy, full, now) {
                due.push(Due {
                    key: key.clone(),
                    reason,
                    version: version.to_owned(),
                });
            }
            present.insert(key);
        }
        for key in self.ledger.secret_keys() {
            if !present.contains(&key) {
                self.forget(&key);
            }
        }
        // New and changed first: they are what a user waits to see.
        due.sort_by(|a, b| (a.reason as u8, &a.key).cmp(&(b.reason as u8, &b.key)));
        due
    }

    /// Reads one secret, reviews it as a CREATE, and records its results.
    async fn review_secret(&mut self, key: SecretKey, reason: Reason, snapshot: &Snapshot) {
        let secret = match read_secret(&self.client, &key.namespace, &key.name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                self.forget(&key);
                return;
            }
            Err(e) => {
                // Left as it was: due again on the next pass.
                tracing::warn!(namespace = %key.namespace, name = %key.name, error = %e, "continuous audit: cannot read secret");
                return;
            }
        };
        self.config
            .metrics
            .reviews
            .with_label_values(&[reason_label(reason)])
            .inc();
        let resource_version = secret.metadata.resource_version.clone().unwrap_or_default();
        let uid = secret.metadata.uid.clone();
        let governing = snapshot.for_namespace(&key.namespace);
        // Taken before the review consumes the object; dropped once the logins are done.
        let pull = self
            .config
            .credentials
            .as_ref()
            .and_then(|_| credentials::wanted(&secret, governing));
        let now = OffsetDateTime::now_utc();
        let ctx = Context {
            policies: snapshot,
            now,
        };
        let mut report = Report::default();
        review(&mut report, "Secret", secret, &key.namespace, &ctx);
        let mut found: Vec<ReportResult> = results(&report, now)
            .into_iter()
            .map(|p| p.result)
            .collect();
        let mut credentials_due = None;
        if let (Some(checker), Some(pull)) = (&self.config.credentials, pull) {
            let mut resource = Resource::secret(&key.namespace, &key.name);
            resource.uid = uid.filter(|u| !u.is_empty());
            let interval = pull.interval;
            found.extend(credentials::check(checker, &key, pull, &governing.name, resource).await);
            // From the end of the logins: the checker reuses outcomes younger than the
            // interval, so an earlier due time would only read its cache.
            credentials_due = Some(Instant::now() + interval);
        }
        let policy = fingerprint(governing, &mut HashMap::new());
        self.ledger.set_secret(
            key,
            SecretEntry {
                resource_version,
                policy,
                results: found,
                credentials_due,
            },
        );
    }

    /// Drops a deleted secret's results and its credential checks.
    fn forget(&mut self, key: &SecretKey) {
        self.ledger.remove_secret(key);
        if let Some(checker) = &self.config.credentials {
            checker.forget(&key.namespace, &key.name);
        }
    }

    /// Invalid policies and instance-secret copies, from the caches alone.
    fn derive(&mut self, snapshot: &Arc<Snapshot>) {
        let mut report = Report::default();
        // Validating compiles a policy's patterns and selector: done once per version,
        // not on every 5-second pass.
        let mut checked = HashMap::new();
        for policy in self.sources.policies.state() {
            let name = policy.metadata.name.clone().unwrap_or_default();
            let version = policy.metadata.resource_version.clone().unwrap_or_default();
            let key = (name, version);
            let problem = match self.policy_problems.remove(&key) {
                Some(known) => known,
                None => invalid(&policy),
            };
            if let Some(problem) = &problem {
                report.invalid_policy(key.0.clone(), problem.clone());
            }
            checked.insert(key, problem);
        }
        self.policy_problems = checked;
        if let Some(sources) = &self.config.instance_sources {
            let plan = crate::instance::plan_from_caches(
                snapshot,
                &self.sources.namespaces.state(),
                &self.sources.secrets.state(),
                sources,
            );
            report.instance_secrets(&plan);
        }
        let mut by_scope: BTreeMap<Scope, Vec<ReportResult>> = BTreeMap::new();
        by_scope.insert(None, Vec::new());
        for placed in results(&report, OffsetDateTime::now_utc()) {
            by_scope
                .entry(placed.namespace)
                .or_default()
                .push(placed.result);
        }
        self.ledger.set_derived(by_scope);
    }

    /// Lists every pod, page by page, and reviews each as the webhooks would now.
    async fn review_pods(&mut self, leadership: &Leadership) -> Result<(), Lost> {
        let api: Api<DynamicObject> =
            Api::all_with(self.client.clone(), &ApiResource::erase::<Pod>(&()));
        let mut params = ListParams::default().limit(POD_PAGE);
        let mut by_namespace: BTreeMap<String, Vec<ReportResult>> = BTreeMap::new();
        loop {
            if !leadership.is_leader() {
                return Err(Lost);
            }
            self.budget.take().await;
            let page = match api.list(&params).await {
                Ok(page) => page,
                Err(e) => {
                    // Pod results stay as the last full pass left them.
                    tracing::warn!(error = %e, "continuous audit: cannot list pods; kept the last results");
                    return Ok(());
                }
            };
            let snapshot = self.sources.snapshot.load_full();
            let now = OffsetDateTime::now_utc();
            let ctx = Context {
                policies: &snapshot,
                now,
            };
            let mut report = Report::default();
            for pod in page.items {
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                review(&mut report, "Pod", pod, &namespace, &ctx);
                self.config
                    .metrics
                    .reviews
                    .with_label_values(&["pod"])
                    .inc();
            }
            for placed in results(&report, now) {
                if let Some(namespace) = placed.namespace {
                    by_namespace
                        .entry(namespace)
                        .or_default()
                        .push(placed.result);
                }
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        self.ledger.set_pods(by_namespace);
        Ok(())
    }

    /// Marks reports of earlier terms for deletion unless their namespace has results.
    fn delete_stale(&mut self) {
        let live = self.ledger.namespaces();
        for namespace in std::mem::take(&mut self.stale) {
            if !live.contains(&namespace) {
                self.ledger.touch(Some(namespace));
            }
        }
    }

    /// Writes every report whose content changed; deletes the empty ones.
    async fn flush(&mut self, leadership: &Leadership) -> Result<(), Lost> {
        let touched = self.ledger.take_touched();
        if touched.is_empty() {
            return Ok(());
        }
        self.config.metrics.observe(&self.ledger.statuses());
        let mut failed = Vec::new();
        for scope in touched {
            if !leadership.is_leader() {
                return Err(Lost);
            }
            self.budget.take().await;
            let results = self.ledger.results(&scope);
            let outcome = match &scope {
                Some(namespace) if results.is_empty() => {
                    writer::delete(&self.client, self.flavor, namespace)
                        .await
                        .map(|()| "deleted")
                }
                _ => {
                    let report = object(self.flavor, scope.clone(), results);
                    writer::apply(&self.client, self.flavor, &report)
                        .await
                        .map(|()| "applied")
                }
            };
            let label = match outcome {
                Ok(label) => label,
                Err(e) => {
                    tracing::warn!(error = %e, "continuous audit: report not written; retrying on the next pass");
                    failed.push(scope);
                    "failed"
                }
            };
            self.config.metrics.writes.with_label_values(&[label]).inc();
        }
        for scope in failed {
            self.ledger.touch(scope);
        }
        Ok(())
    }
}

fn reason_label(reason: Reason) -> &'static str {
    match reason {
        Reason::New => "new",
        Reason::Changed => "changed",
        Reason::PolicyChanged => "policy_changed",
        Reason::FullPass => "full_pass",
        Reason::CredentialsDue => "credentials_due",
    }
}
