//! The `mini-envoy` binary: Envoy's command line over the course's crates.
//!
//! Flags follow Envoy's (`-c/--config-path`, `--config-yaml`, `--mode`,
//! `--concurrency`, `--log-level`, `--component-log-level`, ...), so scripts
//! written for Envoy carry over. With no arguments it serves the embedded demo
//! configuration (`src/demo.yaml`) and prints what to curl.
//! `mini-envoy route-check` is Envoy's `router_check_tool`.

mod summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use mini_envoy::admin::logging::{LogControl, LogLevels, Reload};
use mini_envoy::route_check::{self, RouteCheckArgs};
use mini_envoy::server::{self, BoundAddresses, ServerOptions, UnknownDynamicFields};
use week1_core::config::{self, ConfigError, bootstrap::Bootstrap};

/// The configuration mini-envoy runs when given none.
pub const DEMO_CONFIG: &str = include_str!("demo.yaml");

/// Envoy's `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Serve traffic (the default).
    Serve,
    /// Load and validate the configuration, print a summary, exit 0 if valid.
    Validate,
}

/// Envoy's log levels (`--log-level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogLevel {
    Trace,
    Debug,
    Info,
    #[value(alias = "warning")]
    Warn,
    Error,
    Critical,
    Off,
}

impl LogLevel {
    fn directive(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error | Self::Critical => "error",
            Self::Off => "off",
        }
    }
}

/// An Envoy-style L7 proxy (and course). Flags follow Envoy's.
#[derive(Debug, Parser)]
#[command(name = "mini-envoy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Path to a bootstrap configuration (YAML or JSON), as Envoy's `-c`.
    #[arg(short = 'c', long = "config-path", value_name = "PATH")]
    config_path: Option<PathBuf>,

    /// Bootstrap YAML given inline, as Envoy's `--config-yaml`.
    #[arg(long = "config-yaml", value_name = "YAML")]
    config_yaml: Option<String>,

    /// What to do with the configuration.
    #[arg(long, value_enum, default_value_t = Mode::Serve)]
    mode: Mode,

    /// Worker threads (default: the number of CPUs).
    #[arg(long, value_name = "N")]
    concurrency: Option<usize>,

    /// Log level.
    #[arg(short = 'l', long = "log-level", value_enum, default_value_t = LogLevel::Info)]
    log_level: LogLevel,

    /// Per-component levels, `component:level,...` (components: admin, config,
    /// connection, http, main, pool, router, upstream).
    #[arg(long = "component-log-level", value_name = "LIST")]
    component_log_level: Option<String>,

    /// Seconds to drain listeners on shutdown or hot update.
    #[arg(long = "drain-time-s", value_name = "S", default_value_t = 600)]
    drain_time_s: u64,

    /// Seconds before a parent process is shut down (accepted for Envoy
    /// compatibility; mini-envoy has no hot restart).
    #[arg(long = "parent-shutdown-time-s", value_name = "S", default_value_t = 900)]
    parent_shutdown_time_s: u64,

    /// The node id (overrides the bootstrap's `node.id`, as in Envoy).
    #[arg(long = "service-node", value_name = "NAME")]
    service_node: Option<String>,

    /// The node's cluster (overrides the bootstrap's `node.cluster`, as in Envoy).
    #[arg(long = "service-cluster", value_name = "NAME")]
    service_cluster: Option<String>,

    /// NACK xDS resources with fields newer than mini-envoy's Envoy API
    /// (by default they are accepted, logged and counted).
    #[arg(long = "reject-unknown-dynamic-fields")]
    reject_unknown_dynamic_fields: bool,

    /// Accept xDS resources with unknown fields without a warning or a count.
    #[arg(long = "ignore-unknown-dynamic-fields")]
    ignore_unknown_dynamic_fields: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check routes against expectations, as Envoy's router_check_tool.
    RouteCheck(RouteCheckArgs),
}

/// Where the configuration came from, for messages.
fn source_name(cli: &Cli) -> String {
    match (&cli.config_path, &cli.config_yaml) {
        (Some(p), _) => p.display().to_string(),
        (None, Some(_)) => "--config-yaml".to_string(),
        (None, None) => "the embedded demo configuration".to_string(),
    }
}

/// The bootstrap, and its JSON as loaded (for `/config_dump`).
fn load(cli: &Cli) -> Result<(Bootstrap, serde_json::Value), ConfigError> {
    match (&cli.config_path, &cli.config_yaml) {
        (Some(path), _) => config::load_bootstrap_file_with_source(path),
        (None, Some(yaml)) => config::load_bootstrap_with_source(yaml),
        (None, None) => config::load_bootstrap_with_source(DEMO_CONFIG),
    }
}

/// Envoy's component names mapped onto mini-envoy's modules.
fn log_levels(cli: &Cli) -> Result<LogLevels, String> {
    let mut levels = LogLevels::new(cli.log_level.directive());
    for item in cli.component_log_level.iter().flat_map(|s| s.split(',')) {
        let (component, level) = item
            .split_once(':')
            .ok_or_else(|| format!("invalid --component-log-level entry {item:?}"))?;
        let level = LogLevel::from_str(level, true)
            .map_err(|_| format!("invalid log level {level:?} for component {component:?}"))?;
        levels
            .set(component, level.directive())
            .map_err(|_| format!("error: invalid component specified '{component}'"))?;
    }
    Ok(levels)
}

/// Installs the subscriber behind a reload handle, so `/logging` can change levels.
fn init_logging(levels: LogLevels) -> Arc<LogControl> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, fmt, reload};
    let (filter, handle) = reload::Layer::new(EnvFilter::new(levels.directives()));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr))
        .init();
    let reload: Reload = Box::new(move |directives| {
        let filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    });
    Arc::new(LogControl::new(levels, reload))
}

fn print_demo_help(addresses: &BoundAddresses) {
    let front = addresses.listeners.first().map(|(_, a)| a.to_string());
    let Some(front) = front else { return };
    println!("mini-envoy is serving the embedded demo. Try:");
    println!("  curl -i http://{front}/hello       # a direct response");
    println!(
        "  curl -i http://{front}/api/users   # routed to demo_api (prefix rewritten, retries on)"
    );
    println!("  curl -i http://{front}/            # weighted: 20% demo_api, 80% demo_web");
    if let Some(admin) = addresses.admin {
        println!("  curl http://{admin}/server_info    # the admin interface");
    }
    println!("Access log lines appear below. Ctrl-C stops.");
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::RouteCheck(args)) = &cli.command {
        return route_check::run(args);
    }
    if cli.config_path.is_some() && cli.config_yaml.is_some() {
        eprintln!("error: give either --config-path or --config-yaml, not both");
        return ExitCode::from(2);
    }
    let levels = match log_levels(&cli) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let log_control = init_logging(levels);
    let (bootstrap, bootstrap_source) = match load(&cli) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {}: {e}", source_name(&cli));
            return ExitCode::FAILURE;
        }
    };
    match cli.mode {
        Mode::Validate => match mini_envoy::validate::validate(&bootstrap) {
            Ok(()) => {
                println!("configuration '{}' OK", source_name(&cli));
                print!("{}", summary::render(&bootstrap));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {}: {e}", source_name(&cli));
                ExitCode::FAILURE
            }
        },
        Mode::Serve => {
            let node = bootstrap.node.as_ref();
            let options = ServerOptions {
                concurrency: cli
                    .concurrency
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
                drain_time: Duration::from_secs(cli.drain_time_s),
                parent_shutdown_time: Duration::from_secs(cli.parent_shutdown_time_s),
                service_node: cli.service_node.clone().or_else(|| node.map(|n| n.id.clone())),
                service_cluster: cli
                    .service_cluster
                    .clone()
                    .or_else(|| node.map(|n| n.cluster.clone())),
                command_line: std::env::args().collect(),
                unknown_dynamic_fields: match (
                    cli.reject_unknown_dynamic_fields,
                    cli.ignore_unknown_dynamic_fields,
                ) {
                    (true, _) => UnknownDynamicFields::Reject,
                    (false, true) => UnknownDynamicFields::Ignore,
                    (false, false) => UnknownDynamicFields::Warn,
                },
                log_control: Some(log_control),
                bootstrap_source: Some(bootstrap_source),
            };
            let demo = cli.config_path.is_none() && cli.config_yaml.is_none();
            let result = server::run(&bootstrap, &options, move |addresses| {
                for (name, address) in &addresses.listeners {
                    tracing::info!("listener {name} on {address}");
                }
                if let Some(admin) = addresses.admin {
                    tracing::info!("admin on {admin}");
                }
                if demo {
                    print_demo_help(addresses);
                }
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {}: {e}", source_name(&cli));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid() {
        let b = config::load_bootstrap(DEMO_CONFIG).unwrap();
        assert_eq!(b.listeners().len(), 3);
        assert_eq!(b.clusters().len(), 2);
        assert_eq!(mini_envoy::validate::validate(&b).map_err(|e| e.to_string()), Ok(()));
    }

    #[test]
    fn cli_rejects_unknown_modes_and_flags() {
        assert!(Cli::try_parse_from(["mini-envoy", "--mode", "bogus"]).is_err());
        assert!(Cli::try_parse_from(["mini-envoy", "--no-such-flag"]).is_err());
        let cli =
            Cli::try_parse_from(["mini-envoy", "-c", "x.yaml", "--mode", "validate"]).unwrap();
        assert_eq!(cli.config_path, Some(PathBuf::from("x.yaml")));
        assert_eq!(Cli::try_parse_from(["mini-envoy"]).unwrap().mode, Mode::Serve);
    }

    #[test]
    fn envoy_flags_parse() {
        let cli = Cli::try_parse_from([
            "mini-envoy",
            "--concurrency",
            "2",
            "--log-level",
            "warning",
            "--component-log-level",
            "upstream:debug,router:trace",
            "--drain-time-s",
            "5",
            "--parent-shutdown-time-s",
            "10",
            "--service-node",
            "n",
            "--service-cluster",
            "c",
        ])
        .unwrap();
        assert_eq!(cli.concurrency, Some(2));
        assert_eq!(cli.log_level, LogLevel::Warn);
        let f = log_levels(&cli).unwrap().directives();
        assert!(f.contains("mini_envoy::upstream=debug") && f.contains("mini_envoy::router=trace"));
    }

    #[test]
    fn unknown_components_are_refused() {
        let cli =
            Cli::try_parse_from(["mini-envoy", "--component-log-level", "nope:debug"]).unwrap();
        assert!(log_levels(&cli).unwrap_err().contains("invalid component"));
    }

    #[test]
    fn route_check_is_a_subcommand() {
        let cli =
            Cli::try_parse_from(["mini-envoy", "route-check", "-c", "r.yaml", "-t", "t.yaml"])
                .unwrap();
        assert!(matches!(cli.command, Some(Command::RouteCheck(_))));
    }
}
