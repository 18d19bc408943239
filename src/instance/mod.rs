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

mod caches;
pub mod plan;

pub use caches::{plan_from_caches, provide};
pub use plan::{Action, Copy, Plan, Problem, ProblemKind, SecretState};

pub use crate::annotations::{
    KEPT_ANNOTATIONS, MANAGED_BY, MANAGED_BY_LABEL, MAX_KEPT_ANNOTATION, POLICY_ANNOTATION,
    SOURCE_ANNOTATION, SOURCE_HASH_ANNOTATION, SOURCE_VERSION_ANNOTATION,
};
