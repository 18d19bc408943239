use super::*;
use k8s_openapi::api::core::v1::{Container, Pod, Secret, Volume};
use kube::core::admission::AdmissionReview;

fn both<K>(name: &str) -> (K, K)
where
    K: Resource + serde::de::DeserializeOwned,
    Lean<K>: serde::de::DeserializeOwned + Resource,
{
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/admission")
        .join(name);
    let body = std::fs::read(path).expect("fixture");
    let full: AdmissionReview<K> = serde_json::from_slice(&body).expect("full");
    let lean: AdmissionReview<Lean<K>> = serde_json::from_slice(&body).expect("lean");
    (
        full.request.and_then(|r| r.object).expect("object"),
        lean.request.and_then(|r| r.object).expect("object").0,
    )
}

#[test]
fn lean_pods_keep_every_field_the_rules_read() {
    for name in [
        "pod-create-git-sync-container.json",
        "pod-create-git-sync-already-has-secret-volume.json",
        "pod-create-initcontainers.json",
        "pod-create-existing-imagepullsecrets.json",
        "pod-create-generatename.json",
    ] {
        let (full, lean) = both::<Pod>(name);
        let (fs, ls) = (full.spec.expect("spec"), lean.spec.expect("spec"));
        let view = |c: &Container| {
            let mounts = c.volume_mounts.as_ref().map(|m| {
                m.iter()
                    .map(|m| (m.name.clone(), m.mount_path.clone()))
                    .collect::<Vec<_>>()
            });
            (c.name.clone(), c.image.clone(), mounts)
        };
        assert_eq!(
            fs.containers.iter().map(view).collect::<Vec<_>>(),
            ls.containers.iter().map(view).collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(
            fs.init_containers
                .map(|c| c.iter().map(view).collect::<Vec<_>>()),
            ls.init_containers
                .map(|c| c.iter().map(view).collect::<Vec<_>>()),
            "{name}"
        );
        let vols = |v: Option<Vec<Volume>>| {
            v.map(|v| {
                v.into_iter()
                    .map(|v| (v.name, v.secret.and_then(|s| s.secret_name)))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(vols(fs.volumes), vols(ls.volumes), "{name}");
        assert_eq!(fs.image_pull_secrets, ls.image_pull_secrets, "{name}");
        assert_eq!(
            full.metadata.annotations, lean.metadata.annotations,
            "{name}"
        );
        assert_eq!(full.metadata.name, lean.metadata.name, "{name}");
        assert_eq!(
            full.metadata.generate_name, lean.metadata.generate_name,
            "{name}"
        );
    }
}

#[test]
fn lean_secrets_keep_every_field_the_rules_read() {
    for name in [
        "secret-create-apply-last-applied.json",
        "secret-create-tls-fullchain-with-ca.json",
        "secret-create-generic-binary-file.json",
    ] {
        let body = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/fixtures/admission")
                .join(name),
        )
        .expect("fixture");
        let full: AdmissionReview<Secret> = serde_json::from_slice(&body).expect("full");
        let full = full.request.and_then(|r| r.object).expect("object");
        let lean: AdmissionReview<LeanSecret> = serde_json::from_slice(&body).expect("lean");
        let LeanSecret { secret: lean, data } =
            lean.request.and_then(|r| r.object).expect("object");
        let full_data: Vec<(&str, &[u8])> = full
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.0.as_slice()))
            .collect();
        assert!(!full_data.is_empty(), "{name}");
        assert_eq!(full_data, data.iter().collect::<Vec<_>>(), "{name}");
        assert_eq!(lean.data, None, "{name}: data is packed, not in the map");
        assert_eq!(full.type_, lean.type_, "{name}");
        assert_eq!(full.metadata.labels, lean.metadata.labels, "{name}");
        assert_eq!(
            full.metadata.annotations, lean.metadata.annotations,
            "{name}"
        );
        assert_eq!(full.metadata.name, lean.metadata.name, "{name}");
    }
}

#[test]
fn owner_references_are_kept_and_malformed_ones_ignored() {
    let secret = |references: serde_json::Value| -> LeanSecret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "ownerReferences": references},
            "type": "Opaque"
        }))
        .expect("a Secret decodes whatever its ownerReferences")
    };
    let owned = secret(serde_json::json!([{"apiVersion": "cert-manager.io/v1",
        "kind": "Certificate", "name": "web", "uid": "u-1", "controller": true}]));
    let references = owned.secret.metadata.owner_references.expect("kept");
    assert_eq!(
        (references[0].kind.as_str(), references[0].uid.as_str()),
        ("Certificate", "u-1")
    );
    for malformed in [
        serde_json::json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": 5, "uid": "u"}]),
        serde_json::json!("not a list"),
        serde_json::Value::Null,
    ] {
        assert_eq!(
            secret(malformed.clone()).secret.metadata.owner_references,
            None,
            "{malformed}"
        );
    }
}
