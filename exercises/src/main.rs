//! `cargo run -p exercises -- list | verify [NAME] | hint NAME`: the course's
//! exercise runner (see `exercises::runner`).

use std::process::ExitCode;

use exercises::course::{EXERCISES, Exercise, find};
use exercises::runner::{self, CHECK_TIME_LIMIT};

const USAGE: &str = "usage: cargo run -p exercises -- <command>

commands:
  list          every exercise, its status and file, and your progress
  verify        run the exercises in course order; stop at the first one that fails
  verify NAME   run one exercise and show every failing check
  hint NAME     a hint for one exercise";

fn exercise(name: &str) -> Result<&'static Exercise, String> {
    find(name).ok_or_else(|| {
        let names: Vec<_> = EXERCISES.iter().map(|e| e.name).collect();
        format!("no exercise named {name:?}; the exercises are: {}", names.join(", "))
    })
}

fn run(args: &[String]) -> Result<bool, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["list"] => {
            print!("{}", runner::list(EXERCISES, CHECK_TIME_LIMIT));
            Ok(true)
        }
        ["verify"] => {
            let (out, ok) = runner::verify(EXERCISES, CHECK_TIME_LIMIT);
            print!("{out}");
            Ok(ok)
        }
        ["verify", name] => {
            let (out, ok) = runner::verify_one(exercise(name)?, CHECK_TIME_LIMIT);
            print!("{out}");
            Ok(ok)
        }
        ["hint", name] => {
            print!("{}", runner::hint(exercise(name)?));
            Ok(true)
        }
        _ => Err(USAGE.to_string()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
    }
}
