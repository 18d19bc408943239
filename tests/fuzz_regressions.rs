//! The fuzz properties of `fuzz/checks.rs` inside `cargo test`: every input a fuzzer
//! found, replayed, and a bounded proptest run of each target over arbitrary bytes and
//! mutated recorded requests (what CI runs on every push; cargo-fuzz is the long run).

mod common;

#[path = "../fuzz/checks.rs"]
mod checks;

use base64::Engine as _;
use proptest::prelude::*;

/// Inputs that once crashed a target or broke one of its properties: (target, input).
const FOUND: &[(&str, &[u8])] = &[
    // A docker config key that differs from `password` only by case is quoted on purpose
    // (a field name, not a value): the echo property once took it for part of a value.
    (
        "admission_review",
        include_bytes!("fuzz_found/admission_review-case-variant-key.json"),
    ),
];

fn run(target: &str, data: &[u8]) {
    match target {
        "admission_review" => checks::admission_review(data),
        "secret_parsers" => checks::secret_parsers(data),
        "registry" => checks::registry(data),
        "pod_mutate" => checks::pod_mutate(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

#[test]
fn inputs_found_by_fuzzing_stay_fixed() {
    for (target, input) in FOUND {
        run(target, input);
    }
}

/// Request fixtures, and the decoded data values of the secret fixtures: seeds that
/// random mutation turns into nearly-valid input.
fn seeds() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let requests: Vec<Vec<u8>> = common::request_fixtures()
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    let mut values = Vec::new();
    for body in &requests {
        let review: serde_json::Value = serde_json::from_slice(body).expect("fixture JSON");
        if let Some(data) = review["request"]["object"]["data"].as_object() {
            for v in data.values() {
                if let Ok(bytes) =
                    base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default())
                {
                    values.push(bytes);
                }
            }
        }
    }
    (requests, values)
}

/// Arbitrary bytes, or a seed with bytes overwritten, inserted and cut.
fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let mutated = (
        prop::sample::select(seeds),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..8),
    )
        .prop_map(|(mut seed, edits)| {
            for (at, byte, how) in edits {
                let i = at.index(seed.len() + 1);
                match how {
                    0 if i < seed.len() => seed[i] = byte,
                    1 => seed.insert(i, byte),
                    _ => seed.truncate(i.max(seed.len() / 2)),
                }
            }
            seed
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..600), mutated]
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn admission_review_answers_arbitrary_bodies(data in input(seeds().0)) {
        checks::admission_review(&data);
    }

    #[test]
    fn secret_parsers_take_arbitrary_values(data in input(seeds().1)) {
        checks::secret_parsers(&data);
    }

    #[test]
    fn pod_mutation_patches_apply_once(data in prop::collection::vec(any::<u8>(), 0..200)) {
        checks::pod_mutate(&data);
    }
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn registry_parsing_round_trips(data in "[a-zA-Z0-9.:/@_\\[\\]*-]{0,40}(\n[a-zA-Z0-9.:*-]{0,20})?") {
        checks::registry(data.as_bytes());
    }

    #[test]
    fn registry_parsing_takes_arbitrary_bytes(data in prop::collection::vec(any::<u8>(), 0..80)) {
        checks::registry(&data);
    }
}
