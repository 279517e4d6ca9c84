//! Reference solutions, one per exercise, with the same public API as the
//! stubs in `src/`. Read one after finishing its exercise.

pub mod week1;
pub mod week2;
pub mod week3;
pub mod week4;
