//! The course exercises: one module per exercise, each with a stub to complete,
//! a hint, tests and a reference solution.
