//! The exercise runner behind `cargo run -p exercises -- list | verify [NAME] | hint NAME`.
//!
//! Checks run in this process, each on its own thread with a time limit, so a
//! `todo!()` or a failed assertion becomes a report line instead of a crash,
//! and an endless loop becomes "did not finish". Panic messages are captured
//! by a panic hook that only acts on check threads; every other thread keeps
//! the default hook.
//!
//! ```text
//!  verify ──► for each exercise in course order ──► run its checks ──► all pass? next : report, stop
//!  list   ──► run every exercise ──► one status line each + progress
//! ```

use std::cell::RefCell;
use std::fmt::Write as _;
use std::panic;
use std::sync::Once;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::course::{Check, Exercise};

/// How long one check may run before it counts as hung.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(10);

/// Why one check did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The check's name.
    pub check: &'static str,
    /// The panic message with its location, or the time-limit note.
    pub message: String,
}

/// The result of running one exercise's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExerciseReport {
    /// The exercise's name.
    pub name: &'static str,
    /// Checks that passed.
    pub passed: usize,
    /// Checks that failed, in order.
    pub failures: Vec<Failure>,
}

impl ExerciseReport {
    /// True when every check passed (and there was at least one).
    pub fn done(&self) -> bool {
        self.failures.is_empty() && self.passed > 0
    }
}

thread_local! {
    /// On a check thread: where the panic hook writes the message.
    static CAPTURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that captures panics on check threads and
/// defers to the previous hook everywhere else.
fn install_capturing_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let captured = CAPTURE.with(|c| {
                let mut slot = c.borrow_mut();
                match slot.as_mut() {
                    Some(text) => {
                        let _ = write!(text, "{info}");
                        true
                    }
                    None => false,
                }
            });
            if !captured {
                previous(info);
            }
        }));
    });
}

/// Runs one check on its own thread; `Ok` if it returned, the failure otherwise.
pub fn run_check(check: &Check, limit: Duration) -> Result<(), Failure> {
    install_capturing_hook();
    let (tx, rx) = mpsc::channel();
    let run = check.run;
    let spawned = thread::Builder::new().name(format!("check {}", check.name)).spawn(move || {
        CAPTURE.with(|c| *c.borrow_mut() = Some(String::new()));
        let result = panic::catch_unwind(run);
        let message = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
        let _ = tx.send(result.map_err(|_| message));
    });
    if let Err(e) = spawned {
        return Err(Failure { check: check.name, message: format!("cannot start a thread: {e}") });
    }
    match rx.recv_timeout(limit) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(Failure { check: check.name, message }),
        Err(_) => Err(Failure {
            check: check.name,
            message: format!("did not finish within {}s (an endless loop?)", limit.as_secs()),
        }),
    }
}

/// Runs every check of `exercise`.
pub fn run_exercise(exercise: &Exercise, limit: Duration) -> ExerciseReport {
    let mut report = ExerciseReport { name: exercise.name, passed: 0, failures: Vec::new() };
    for check in exercise.checks {
        match run_check(check, limit) {
            Ok(()) => report.passed += 1,
            Err(f) => report.failures.push(f),
        }
    }
    report
}

fn progress(done: usize, total: usize) -> String {
    format!("Progress: {done}/{total} done")
}

fn status_line(exercise: &Exercise, report: &ExerciseReport) -> String {
    let mark = if report.done() { "✓" } else { "✗" };
    format!(
        "{mark} {:<16} week {}  {:<44} {}/{} checks",
        exercise.name,
        exercise.week,
        exercise.title,
        report.passed,
        exercise.checks.len()
    )
}

fn failure_details(exercise: &Exercise, report: &ExerciseReport, out: &mut String) {
    // Checks failing with the same message (typically a `todo!()`) are shown once.
    let mut shown: Vec<(&str, Vec<&str>)> = Vec::new();
    for f in &report.failures {
        match shown.iter_mut().find(|(message, _)| *message == f.message) {
            Some((_, checks)) => checks.push(f.check),
            None => shown.push((&f.message, vec![f.check])),
        }
    }
    for (message, checks) in shown {
        let names: Vec<String> = checks.iter().map(|c| format!("`{c}`")).collect();
        let s = if checks.len() > 1 { "s" } else { "" };
        let _ = writeln!(out, "\n  check{s} {} failed:", names.join(", "));
        for line in message.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    let _ = writeln!(
        out,
        "\nEdit {} and run `cargo run -p exercises -- verify` again.\nStuck? `cargo run -p exercises -- hint {}`",
        exercise.file, exercise.name
    );
}

/// `verify`: runs `exercises` in order and stops at the first one that fails,
/// with its check output. Returns the text to print and whether all passed.
pub fn verify(exercises: &[Exercise], limit: Duration) -> (String, bool) {
    let mut out = String::new();
    for (i, exercise) in exercises.iter().enumerate() {
        let report = run_exercise(exercise, limit);
        let _ = writeln!(out, "{}", status_line(exercise, &report));
        if !report.done() {
            failure_details(exercise, &report, &mut out);
            let _ = writeln!(out, "\n{}", progress(i, exercises.len()));
            return (out, false);
        }
    }
    let _ = writeln!(
        out,
        "\n{}. Every exercise passes: on to the capstone, `cargo run --release -p mini-envoy`.",
        progress(exercises.len(), exercises.len())
    );
    (out, true)
}

/// `verify NAME`: runs one exercise and shows every failing check.
pub fn verify_one(exercise: &Exercise, limit: Duration) -> (String, bool) {
    let mut out = String::new();
    let report = run_exercise(exercise, limit);
    let _ = writeln!(out, "{}", status_line(exercise, &report));
    if !report.done() {
        failure_details(exercise, &report, &mut out);
    }
    (out, report.done())
}

/// `list`: every exercise with its status, file, and the overall progress.
pub fn list(exercises: &[Exercise], limit: Duration) -> String {
    let mut out = String::new();
    let mut done = 0;
    for exercise in exercises {
        let report = run_exercise(exercise, limit);
        done += usize::from(report.done());
        let _ = writeln!(out, "{}  {}", status_line(exercise, &report), exercise.file);
    }
    let _ = writeln!(out, "\n{}", progress(done, exercises.len()));
    out
}

/// `hint NAME`: the hint, and the real code the exercise is a small version of.
pub fn hint(exercise: &Exercise) -> String {
    format!(
        "{} (week {}): {}\n\nHint: {}\n\nThe real thing: {}\n",
        exercise.name, exercise.week, exercise.title, exercise.hint, exercise.mirrors
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() {}
    fn fails() {
        assert_eq!(1 + 1, 3, "arithmetic is broken");
    }
    fn hangs() {
        // Parks forever (no sleep); the abandoned thread ends with the process.
        loop {
            thread::park();
        }
    }

    const PASS: &[Check] = &[Check { name: "ok", run: ok }, Check { name: "ok2", run: ok }];
    const FAIL: &[Check] = &[Check { name: "ok", run: ok }, Check { name: "fails", run: fails }];

    fn ex(name: &'static str, checks: &'static [Check]) -> Exercise {
        Exercise {
            name,
            week: 1,
            title: "a test exercise",
            file: "exercises/src/week1/x.rs",
            mirrors: "nothing",
            hint: "think",
            checks,
        }
    }

    #[test]
    fn verify_stops_at_the_first_failing_exercise_with_its_output() {
        let course = [ex("first", PASS), ex("second", FAIL), ex("third", PASS)];
        let (out, ok) = verify(&course, CHECK_TIME_LIMIT);
        assert!(!ok);
        assert!(out.contains("✓ first"), "{out}");
        assert!(out.contains("✗ second"), "{out}");
        assert!(!out.contains("third"), "verify must stop at the first failure:\n{out}");
        assert!(out.contains("check `fails` failed"), "{out}");
        assert!(out.contains("arithmetic is broken"), "the panic message is shown:\n{out}");
        assert!(out.contains("runner.rs"), "the panic location is shown:\n{out}");
        assert!(out.contains("Progress: 1/3 done"), "{out}");
        assert!(out.contains("hint second"), "{out}");
    }

    fn todo_a() {
        panic!("not yet implemented");
    }

    #[test]
    fn checks_failing_alike_are_shown_once() {
        const TODO: &[Check] = &[
            Check { name: "a", run: todo_a },
            Check { name: "b", run: todo_a },
            Check { name: "c", run: fails },
        ];
        let (out, ok) = verify_one(&ex("stub", TODO), CHECK_TIME_LIMIT);
        assert!(!ok);
        assert!(out.contains("checks `a`, `b` failed:"), "{out}");
        assert_eq!(out.matches("not yet implemented").count(), 1, "{out}");
        assert!(out.contains("check `c` failed:"), "{out}");
    }

    #[test]
    fn verify_reports_all_done() {
        let (out, ok) = verify(&[ex("a", PASS), ex("b", PASS)], CHECK_TIME_LIMIT);
        assert!(ok);
        assert!(out.contains("Progress: 2/2 done"), "{out}");
    }

    #[test]
    fn list_shows_every_exercise_and_counts_the_done_ones() {
        let out = list(&[ex("a", FAIL), ex("b", PASS), ex("c", FAIL)], CHECK_TIME_LIMIT);
        assert_eq!(out.matches("exercises/src/week1/x.rs").count(), 3, "{out}");
        assert!(out.contains("✗ a") && out.contains("✓ b") && out.contains("✗ c"), "{out}");
        assert!(out.contains("1/2 checks"), "{out}");
        assert!(out.contains("Progress: 1/3 done"), "{out}");
    }

    #[test]
    fn a_hung_check_times_out_instead_of_hanging_the_runner() {
        let check = Check { name: "hangs", run: hangs };
        let err = run_check(&check, Duration::from_millis(50)).unwrap_err();
        assert!(err.message.contains("did not finish"), "{err:?}");
    }

    #[test]
    fn an_exercise_without_checks_is_not_done() {
        let report = run_exercise(&ex("empty", &[]), CHECK_TIME_LIMIT);
        assert!(!report.done());
    }
}
