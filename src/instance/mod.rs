//! Instance secrets: one source secret (the platform team's `secretgate/regcred`) kept as
//! a copy in every namespace of the projects whose policy names it.
//!
//! `plan` decides, from metadata only (the caches the server already has), which copies
//! to create, update and delete and which names are taken by secrets secretgate does not
//! manage; `apply` carries a plan out against the API server, reading a source's values
//! only for the moment a copy is written. Only the elected replica applies.
//!
//! A copy is recognised by the label `app.kubernetes.io/managed-by: secretgate` *and*
//! the annotation `secretgate.io/source`; a secret without both is never touched.

pub mod apply;
pub mod plan;

pub use apply::{Applied, ApplyError, Cause, Op, Outcome, apply, source_hash};
pub use plan::{Action, Copy, Plan, Problem, ProblemKind, SecretState};

/// Label every copy carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "secretgate";
/// The policy a copy is provided by.
pub const POLICY_ANNOTATION: &str = "secretgate.io/policy";
/// The source, as `namespace/name`.
pub const SOURCE_ANNOTATION: &str = "secretgate.io/source";
/// The source's resourceVersion the copy was made from: a change means the source moved.
pub const SOURCE_VERSION_ANNOTATION: &str = "secretgate.io/source-version";
/// `sha256:<hex>` of the source's type and data, so anyone can check a copy is current
/// without reading the source's values.
pub const SOURCE_HASH_ANNOTATION: &str = "secretgate.io/source-hash";
