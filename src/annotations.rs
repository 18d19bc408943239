//! Labels and annotations secretgate writes on objects and reads back: one leaf module, so
//! the caches (`policy`) and the writers (`instance`) name them without importing each
//! other.

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

/// The annotations of a copy that the metadata cache keeps.
pub const KEPT_ANNOTATIONS: [&str; 4] = [
    POLICY_ANNOTATION,
    SOURCE_ANNOTATION,
    SOURCE_VERSION_ANNOTATION,
    SOURCE_HASH_ANNOTATION,
];
/// Longest such annotation kept (names, a version, a digest: far shorter than this).
pub const MAX_KEPT_ANNOTATION: usize = 600;

/// Label the leader keeps on every namespace (`serve --label-namespaces`): the mode of
/// the policy that governs it (`Enforce`, `Warn`, `Audit`). The chart's two Secret
/// webhook registrations select on it: Fail where Enforce (or unlabelled), Ignore where
/// Warn or Audit.
pub const MODE_LABEL: &str = "secretgate.io/mode";
