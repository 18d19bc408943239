//! secretgate: a Kubernetes admission webhook that refuses Secrets breaking a project's
//! rules and injects image pull secrets and git-sync keys into Pods.
//!
//! # Layout
//!
//! The request path, top to bottom:
//!
//! - [`server`]: the axum routers, the TLS accept loop, graceful shutdown.
//! - [`tls`]: rustls configuration and the certificate that reloads from disk.
//! - [`first_byte`]: closes a connection that sends nothing after the TLS handshake.
//! - [`admission`]: the only module that knows AdmissionReview: decode, route by kind and
//!   operation, turn findings or patches into the response.
//! - [`objects`]: lean decoding of the Secret or Pod in a review (only what rules read).
//! - [`secrets`]: secret validation, one module per secret type.
//! - [`pods`]: pod mutation as JSON Patch.
//! - [`registry`]: registry addresses and patterns, shared by secrets and pods.
//! - [`policy`]: project policies, the embedded default, which one governs a namespace.
//! - [`admission_policy`]: the rules CEL can express, also published as
//!   ValidatingAdmissionPolicies so they hold while the webhook is down.
//!
//! Offline and against a cluster, through the same review path: [`check`] (manifests
//! and AdmissionReviews, for CI) and [`audit`] (what a cluster holds now), whose findings
//! [`reports`] turns into OpenReports / wgpolicyk8s report objects.
//!
//! Around it: [`cli`] (flags), [`certs`] (development certificates), [`file_read`]
//! (policy and certificate reads, bounded in time), [`metrics`] (Prometheus registry),
//! [`telemetry`] (logging), [`signal`] (SIGTERM/SIGINT), [`leader`] (one replica writes
//! to the cluster: a Lease; admission never waits for it), [`owner_events`] (an Event on
//! the owner of a denied Secret, written in the background), [`unregister`] (the chart's
//! pre-delete hook: deletes the webhook configurations), [`connect`] (how commands reach a
//! cluster: kubeconfig, context, in-cluster), [`messages`] (errors said once, counts in
//! the right number).
#![forbid(unsafe_code)]

pub mod admission;
pub mod admission_policy;
pub mod annotations;
pub mod audit;
pub mod certs;
pub mod check;
pub mod cli;
pub mod connect;
pub mod credentials;
pub mod file_read;
pub mod first_byte;
pub mod instance;
pub mod leader;
pub mod messages;
pub mod metrics;
pub mod mode_labels;
pub mod objects;
pub mod owner_events;
pub mod pods;
pub mod policy;
pub mod registry;
pub mod reports;
pub mod secrets;
pub mod server;
pub mod signal;
pub mod telemetry;
pub mod tls;
pub mod unregister;
