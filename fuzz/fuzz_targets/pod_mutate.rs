//! Fuzz target: Pod mutation: patches built for fuzzed pods apply and are idempotent.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::pod_mutate(data));
