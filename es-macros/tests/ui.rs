//! Compile-time behaviour of the macros: what compiles (`pass`) and the message each mistake
//! gets (`fail`, with the expected compiler output in the `.stderr` beside each case).
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p es-macros --test ui`,
//! then read every changed `.stderr`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    for group in ["event", "aggregate", "projection", "process_manager", "pii"] {
        cases.pass(format!("tests/ui/{group}/pass/*.rs"));
        cases.compile_fail(format!("tests/ui/{group}/fail/*.rs"));
    }
}
