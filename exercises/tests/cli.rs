//! The runner as a learner runs it: the real `exercises` binary, its output
//! and exit codes, on the repository's untouched stubs.

use std::process::{Command, Output};

fn runner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_exercises")).args(args).output().expect("the runner starts")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn verify_stops_at_the_first_exercise_and_fails() {
    let o = runner(&["verify"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.starts_with("✗ route_match"), "the course starts with route_match:\n{out}");
    assert!(out.contains("not yet implemented"), "{out}");
    assert!(out.contains("exercises/src/week1/route_match.rs"), "{out}");
    assert!(out.contains("Progress: 0/16 done"), "{out}");
    assert!(!out.contains("wrr"), "verify stops at the first failing exercise:\n{out}");
}

#[test]
fn verify_one_and_list() {
    let o = runner(&["verify", "drain"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("✗ drain"), "{}", stdout(&o));
    let o = runner(&["list"]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert_eq!(out.lines().filter(|l| l.starts_with('✗')).count(), 16, "{out}");
    assert!(out.contains("Progress: 0/16 done"), "{out}");
}

#[test]
fn hint_and_usage_errors() {
    let o = runner(&["hint", "cors"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("week3-filters/src/http/filters/cors.rs"), "{}", stdout(&o));
    for bad in [&["hint", "nope"][..], &["frobnicate"], &[]] {
        let o = runner(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(!o.stderr.is_empty(), "{bad:?}: says why on stderr");
    }
}
