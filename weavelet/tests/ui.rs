//! Compile-time checks of the component macros: valid definitions compile,
//! invalid ones fail with errors that point at the offending token.
//!
//! Regenerate the `.stderr` snapshots with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
