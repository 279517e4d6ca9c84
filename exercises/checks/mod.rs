//! The exercises' checks. Each file in `checks/weekN/` is written once, against
//! `super::weekN::NAME`, and compiled twice:
//!
//! - in `learner`, bound to the stubs you edit in `src/`: the runner calls these
//!   plain functions (listed in each module's `CHECKS`);
//! - in `solution` (test builds only), bound to the reference solutions in
//!   `solutions/`, where every check is a `#[test]`.

/// Checks bound to the learner's files (`src/weekN/NAME.rs`).
pub mod learner {
    #[allow(unused_imports)]
    use crate::{week1, week2, week3, week4};

    /// Declares an exercise's checks as plain functions plus its `CHECKS` list.
    macro_rules! checks {
        ($($(#[$meta:meta])* fn $name:ident() $body:block)*) => {
            $($(#[$meta])* pub fn $name() $body)*

            /// This exercise's checks, in order.
            pub const CHECKS: &[crate::course::Check] =
                &[$(crate::course::Check { name: stringify!($name), run: $name }),*];
        };
    }

    include!("list.rs");
}

/// The same checks bound to the reference solutions, as `#[test]`s.
#[cfg(test)]
mod solution {
    #[allow(unused_imports)]
    use crate::solutions::{week1, week2, week3, week4};

    macro_rules! checks {
        ($($(#[$meta:meta])* fn $name:ident() $body:block)*) => {
            $($(#[$meta])* #[test] fn $name() $body)*
        };
    }

    include!("list.rs");
}
