//! # The mini-envoy course exercises
//!
//! rustlings-style exercises, four or more per week. Each one is a smaller,
//! teaching version of a piece of mini-envoy, written against the real crates'
//! types (`Host` and `LoadBalancer` from week 1, `Buffer` and `HeaderMap` in
//! week 3, the xDS messages of week 4), so finishing it means understanding
//! that piece of the proxy.
//!
//! ```text
//!  src/weekN/NAME.rs        the stub you edit: a doc comment with the task, todo!()s
//!  checks/weekN/NAME.rs     the exercise's checks (tests), written once, run against
//!     ├─ learner::NAME      … your file (the runner: `cargo run -p exercises -- verify`)
//!     └─ solution::NAME     … the reference solution (`cargo test -p exercises`)
//!  solutions/weekN/NAME.rs  the reference solution (read it after you are done)
//!  src/course.rs            the course order, titles and hints
//! ```
//!
//! The same check file is compiled twice, once bound to the stubs and once to
//! the solutions, so `cargo test -p exercises` proves both that the solutions
//! pass and (with the untouched stubs) that every check fails: a check that
//! passes on a `todo!()` teaches nothing.

pub mod course;
pub mod runner;

// The learner's files: unfinished code is expected here.
#[allow(unused, clippy::todo, clippy::new_without_default)]
pub mod week1;
#[allow(unused, clippy::todo, clippy::new_without_default)]
pub mod week2;
#[allow(unused, clippy::todo, clippy::new_without_default)]
pub mod week3;
#[allow(unused, clippy::todo, clippy::new_without_default)]
pub mod week4;

/// The reference solutions, compiled for the test suite only.
#[cfg(test)]
#[path = "../solutions/mod.rs"]
mod solutions;

/// Every exercise's checks, bound to the learner's files and to the solutions.
/// Each check file is compiled twice on purpose (see the module docs).
#[allow(clippy::duplicate_mod)]
#[path = "../checks/mod.rs"]
pub mod checks;
