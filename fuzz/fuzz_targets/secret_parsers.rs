//! Fuzz target: Each secret-content parser: arbitrary bytes under each secret type's data keys.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::secret_parsers(data));
