//! Which registries of a secret to log in to, how many logins at once, and what is
//! remembered between checks.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::Semaphore;

use super::login::Client;
use super::target::Origin;
use super::{CheckerConfig, ConfigError, Outcome};
use crate::registry::RegistryKey;
use crate::secrets::{DOCKER_CFG, DOCKER_CONFIG_JSON, SecretBytes, registry_credentials};

/// Logins one check of one secret may make; further registries are reported as not
/// checked. A pull secret holds a handful of registries; a document listing thousands
/// under an allowed `*.domain` must not turn into thousands of outbound calls.
pub const MAX_LOGINS_PER_SECRET: usize = 16;

/// A pull secret to check: its identity (the cache key) and its document.
#[derive(Clone, Copy)]
pub struct PullSecret<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    /// `.dockerconfigjson` (type `kubernetes.io/dockerconfigjson`) when true, else
    /// `.dockercfg` (`kubernetes.io/dockercfg`).
    pub config_json: bool,
    pub data: &'a [u8],
}

impl std::fmt::Debug for PullSecret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullSecret")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("config_json", &self.config_json)
            .finish_non_exhaustive()
    }
}

impl<'a> PullSecret<'a> {
    /// The pull secret in `secret`: `None` for another type, or without the type's key.
    pub fn from_secret(secret: &'a Secret) -> Option<Self> {
        let (config_json, key) = match secret.type_.as_deref() {
            Some(DOCKER_CONFIG_JSON) => (true, ".dockerconfigjson"),
            Some(DOCKER_CFG) => (false, ".dockercfg"),
            _ => return None,
        };
        let data = secret.data.as_ref()?.get(key)?;
        Some(Self {
            namespace: secret.metadata.namespace.as_deref().unwrap_or_default(),
            name: secret.metadata.name.as_deref().unwrap_or_default(),
            config_json,
            data: &data.0,
        })
    }
}

/// The outcome for one registry key of a secret.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RegistryCheck {
    /// The registry key as the secret writes it (`ghcr.io`, `https://index.docker.io/v1/`,
    /// `*.example.com`), or `entry N` (its position) when the key might hold a secret
    /// (see [`RegistryKey::is_quotable`]).
    pub registry: String,
    pub outcome: Outcome,
    /// No login this time: the last outcome for the same credentials, younger than the
    /// interval.
    pub cached: bool,
}

impl RegistryCheck {
    /// The report sentence, e.g. `registry ghcr.io rejected the credentials (HTTP 401)`.
    pub fn message(&self) -> String {
        self.outcome.message(&self.registry)
    }
}

/// `(namespace, secret name)` → registry key → what the last login found.
type Cache = HashMap<(String, String), HashMap<String, CacheEntry>>;

struct CacheEntry {
    /// SHA-256 of the credentials used (never the credentials).
    digest: [u8; 32],
    outcome: Outcome,
    checked_at: Instant,
}

/// Logs in to the registries of pull secrets, remembering outcomes per secret and
/// registry. Shared by reference (`Arc`) among tasks; every method takes `&self`.
pub struct CredentialChecker {
    client: Client,
    permits: Semaphore,
    cache: Mutex<Cache>,
    /// `secretgate_credential_checks_total{result}`: logins made (cache hits not counted).
    checks: IntCounterVec,
}

impl std::fmt::Debug for CredentialChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialChecker")
            .field("cached", &self.cache_len())
            .finish_non_exhaustive()
    }
}

/// One registry of a secret on its way to a result.
enum Step {
    Done {
        outcome: Outcome,
        cached: bool,
    },
    Login {
        origin: Origin,
        username: SecretBytes,
        password: SecretBytes,
        digest: [u8; 32],
    },
}

impl CredentialChecker {
    /// A checker with `config`'s trust roots and limits; its counter is registered in
    /// `metrics`.
    pub fn new(config: &CheckerConfig, metrics: &Registry) -> Result<Self, ConfigError> {
        if config.concurrency == 0 {
            return Err(ConfigError::ZeroConcurrency);
        }
        let client = Client::new(config)?;
        let checks = IntCounterVec::new(
            Opts::new(
                "secretgate_credential_checks_total",
                "Registry logins made to check pull-secret credentials, by result.",
            ),
            &["result"],
        )?;
        // Every result from the start, so a dashboard sees zeros rather than nothing.
        for result in ["ok", "rejected", "unreachable", "anonymous"] {
            checks.with_label_values(&[result]);
        }
        metrics.register(Box::new(checks.clone()))?;
        Ok(Self {
            client,
            permits: Semaphore::new(config.concurrency),
            cache: Mutex::new(HashMap::new()),
            checks,
        })
    }

    /// Checks the registries of `secret` that `allowed` (policy registry patterns)
    /// covers, in document order; other keys are left out. An outcome younger than
    /// `min_interval` for the same credentials is reused without a login; changed
    /// credentials are checked at once. Cache entries of registry keys the secret no
    /// longer holds are dropped.
    pub async fn check<S: AsRef<str>>(
        &self,
        secret: &PullSecret<'_>,
        allowed: &[S],
        min_interval: Duration,
    ) -> Vec<RegistryCheck> {
        let credentials = registry_credentials(secret.config_json, secret.data);
        let mut names = Vec::new();
        let mut keys = Vec::new();
        let mut steps = Vec::new();
        let mut logins = 0;
        for (i, credential) in credentials.into_iter().enumerate() {
            let Ok(parsed) = RegistryKey::parse(&credential.key) else {
                continue;
            };
            if !parsed.allowed_by(allowed) {
                continue;
            }
            names.push(if parsed.is_quotable() {
                credential.key.clone()
            } else {
                format!("entry {}", i + 1)
            });
            let step = self.plan(secret, &credential, &mut logins, min_interval);
            keys.push(credential.key.clone());
            steps.push(step);
        }
        self.drop_other_keys(secret, &keys);
        let runs = steps
            .into_iter()
            .zip(&keys)
            .map(|(step, key)| self.run(secret, key, step));
        let outcomes = futures::future::join_all(runs).await;
        names
            .into_iter()
            .zip(outcomes)
            .map(|(registry, (outcome, cached))| {
                tracing::debug!(
                    namespace = secret.namespace,
                    secret = secret.name,
                    registry,
                    cached,
                    outcome = ?outcome,
                    "pull secret credential check"
                );
                RegistryCheck {
                    registry,
                    outcome,
                    cached,
                }
            })
            .collect()
    }

    /// What to do for one registry key: a result now, or a login.
    fn plan(
        &self,
        secret: &PullSecret<'_>,
        credential: &crate::secrets::RegistryCredential,
        logins: &mut usize,
        min_interval: Duration,
    ) -> Step {
        let done = |outcome| Step::Done {
            outcome,
            cached: false,
        };
        let origin = match Origin::of_key(&credential.key) {
            Ok(origin) => origin,
            Err(reason) => return done(Outcome::not_checked(reason)),
        };
        if credential.username.is_empty() && credential.password.is_empty() {
            return done(Outcome::not_checked("the entry holds no credentials"));
        }
        let digest = digest(&credential.username, &credential.password);
        let cache = self.lock();
        let entry = cache
            .get(&secret_key(secret))
            .and_then(|keys| keys.get(&credential.key));
        if let Some(entry) = entry {
            if entry.digest == digest && entry.checked_at.elapsed() < min_interval {
                return Step::Done {
                    outcome: entry.outcome.clone(),
                    cached: true,
                };
            }
        }
        drop(cache);
        if *logins >= MAX_LOGINS_PER_SECRET {
            return done(Outcome::not_checked(format!(
                "a secret's first {MAX_LOGINS_PER_SECRET} registries are checked, not more"
            )));
        }
        *logins += 1;
        Step::Login {
            origin,
            username: credential.username.clone(),
            password: credential.password.clone(),
            digest,
        }
    }

    async fn run(&self, secret: &PullSecret<'_>, key: &str, step: Step) -> (Outcome, bool) {
        let (origin, username, password, digest) = match step {
            Step::Done { outcome, cached } => return (outcome, cached),
            Step::Login {
                origin,
                username,
                password,
                digest,
            } => (origin, username, password, digest),
        };
        let outcome = match self.permits.acquire().await {
            Ok(_permit) => self.client.login(&origin, &username, &password).await,
            // The semaphore is never closed; an answer all the same.
            Err(_) => Outcome::unreachable("the checker is shutting down"),
        };
        drop((username, password));
        if let Some(result) = outcome.result() {
            self.checks.with_label_values(&[result]).inc();
        }
        self.lock().entry(secret_key(secret)).or_default().insert(
            key.to_owned(),
            CacheEntry {
                digest,
                outcome: outcome.clone(),
                checked_at: Instant::now(),
            },
        );
        (outcome, false)
    }

    /// Drops what is remembered of a secret (deleted, or no longer a pull secret).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock().remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Keeps what is remembered only of the secrets for which `keep(namespace, name)`
    /// holds, e.g. the secrets of the last full pass: bounds the cache by what exists.
    pub fn retain(&self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.lock().retain(|(ns, name), _| keep(ns, name));
    }

    /// Registry entries remembered, over all secrets.
    pub fn cache_len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    fn drop_other_keys(&self, secret: &PullSecret<'_>, keys: &[String]) {
        let mut cache = self.lock();
        if let Some(entries) = cache.get_mut(&secret_key(secret)) {
            entries.retain(|key, _| keys.contains(key));
            if entries.is_empty() {
                cache.remove(&secret_key(secret));
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        // The map stays consistent whatever panicked while holding it: take it back.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn secret_key(secret: &PullSecret<'_>) -> (String, String) {
    (secret.namespace.to_owned(), secret.name.to_owned())
}

/// SHA-256 over both values, each length-prefixed so that no two pairs collide
/// (`ab`+`c` vs `a`+`bc`).
fn digest(username: &SecretBytes, password: &SecretBytes) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for value in [username.expose(), password.expose()] {
        ctx.update(&(value.len() as u64).to_be_bytes());
        ctx.update(value);
    }
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
