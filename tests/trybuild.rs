//! Compile-fail tests for `#[actor]` / `#[msg]` diagnostics.
//!
//! Each case in `trybuild/` at the repository root holds one mistake (or, for
//! `multiple_errors.rs`, two) and its `.stderr` snapshot shows exactly the
//! intended diagnostic. Regenerate the snapshots with
//! `TRYBUILD=overwrite cargo test -p axactor-tests --test trybuild` and read
//! them before committing.

#[test]
fn macro_diagnostics() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail(concat!(env!("CARGO_MANIFEST_DIR"), "/../trybuild/*.rs"));
}
