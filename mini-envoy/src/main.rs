//! The `mini-envoy` binary: Envoy's command line over the course's crates.
//!
//! Flags follow Envoy's (`-c/--config-path`, `--config-yaml`, `--mode`), so
//! scripts written for Envoy carry over. With no arguments it uses the embedded
//! demo configuration (`src/demo.yaml`).
//!
//! Today the binary loads and validates a configuration with the week 1 loader
//! and prints its summary (`--mode validate`); serving traffic arrives with the
//! data-plane work, which adds Envoy's `serve` mode and its flags.

mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use week1_core::config::{self, ConfigError, bootstrap::Bootstrap};

/// The configuration mini-envoy runs when given none.
pub const DEMO_CONFIG: &str = include_str!("demo.yaml");

/// Envoy's `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Load and validate the configuration, print a summary, exit 0 if valid.
    Validate,
}

/// An Envoy-style L7 proxy (and course). Flags follow Envoy's.
#[derive(Debug, Parser)]
#[command(name = "mini-envoy", version, about)]
struct Cli {
    /// Path to a bootstrap configuration (YAML or JSON), as Envoy's `-c`.
    #[arg(short = 'c', long = "config-path", value_name = "PATH")]
    config_path: Option<PathBuf>,

    /// Bootstrap YAML given inline, as Envoy's `--config-yaml`.
    #[arg(long = "config-yaml", value_name = "YAML")]
    config_yaml: Option<String>,

    /// What to do with the configuration.
    #[arg(long, value_enum, default_value_t = Mode::Validate)]
    mode: Mode,
}

/// Where the configuration came from, for messages.
fn source_name(cli: &Cli) -> String {
    match (&cli.config_path, &cli.config_yaml) {
        (Some(p), _) => p.display().to_string(),
        (None, Some(_)) => "--config-yaml".to_string(),
        (None, None) => "the embedded demo configuration".to_string(),
    }
}

fn load(cli: &Cli) -> Result<Bootstrap, ConfigError> {
    match (&cli.config_path, &cli.config_yaml) {
        (Some(path), _) => config::load_bootstrap_file(path),
        (None, Some(yaml)) => config::load_bootstrap(yaml),
        (None, None) => config::load_bootstrap(DEMO_CONFIG),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.config_path.is_some() && cli.config_yaml.is_some() {
        eprintln!("error: give either --config-path or --config-yaml, not both");
        return ExitCode::from(2);
    }
    match cli.mode {
        Mode::Validate => match load(&cli) {
            Ok(bootstrap) => {
                println!("configuration '{}' OK", source_name(&cli));
                print!("{}", summary::render(&bootstrap));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}: {e}", source_name(&cli));
                ExitCode::FAILURE
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid() {
        let b = config::load_bootstrap(DEMO_CONFIG).unwrap();
        assert_eq!(b.listeners().len(), 1);
        assert_eq!(b.clusters().len(), 2);
    }

    #[test]
    fn cli_rejects_unknown_modes_and_flags() {
        assert!(Cli::try_parse_from(["mini-envoy", "--mode", "bogus"]).is_err());
        assert!(Cli::try_parse_from(["mini-envoy", "--no-such-flag"]).is_err());
        let cli =
            Cli::try_parse_from(["mini-envoy", "-c", "x.yaml", "--mode", "validate"]).unwrap();
        assert_eq!(cli.config_path, Some(PathBuf::from("x.yaml")));
    }
}
