//! Fuzz target: AdmissionReview decoding and routing: arbitrary bytes to both webhooks.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::admission_review(data));
