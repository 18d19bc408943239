//! The committed CRD matches what `secretgate crd` prints, so the chart never ships a stale
//! schema.

use std::path::Path;
use std::process::Command;

#[test]
fn committed_crd_matches_the_code() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("charts/secretgate/crds/projectpolicies.secretgate.io.yaml");
    let output = Command::new(env!("CARGO_BIN_EXE_secretgate"))
        .arg("crd")
        .output()
        .expect("run secretgate crd");
    assert!(output.status.success(), "secretgate crd failed");
    let printed = String::from_utf8(output.stdout).expect("utf-8");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        printed == committed,
        "{} is out of date with the ProjectPolicy types; regenerate it with\n  \
         cargo run -- crd > charts/secretgate/crds/projectpolicies.secretgate.io.yaml",
        path.display()
    );
}
