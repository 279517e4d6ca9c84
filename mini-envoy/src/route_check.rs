//! `mini-envoy route-check`: Envoy's `router_check_tool` on the command line.
//!
//! Same flags and output as Envoy's tool, over the one checker in
//! [`week1_core::router::check`]:
//!
//! ```text
//!  -c routes.yaml ──load_route_config──┐
//!  -t tests.json ───load_test_file─────┴─► run_tests ─► Report
//!     ─► test names (stdout) / failures (stderr), as --details / --only-show-failures ask
//!     ─► all passed? "Current route coverage: N%" ─► below --fail-under? exit 1
//! ```
//!
//! Exit status: 0 when every test passes and coverage meets `--fail-under`,
//! 1 otherwise (bad files included), 2 for a command-line error (clap).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use week1_core::router::check::{self, CheckOptions, Report};

/// The flags of Envoy's `router_check_tool`.
#[derive(Debug, Clone, clap::Args)]
pub struct RouteCheckArgs {
    /// The route table: a RouteConfiguration file, YAML or JSON (a bootstrap
    /// with an inline route_config also works).
    #[arg(short = 'c', long = "config-path", value_name = "PATH")]
    pub config_path: PathBuf,

    /// The test file (Envoy's router_check_tool schema), YAML or JSON.
    #[arg(short = 't', long = "test-path", value_name = "PATH")]
    pub test_path: PathBuf,

    /// Print every test name, and the failures of failing tests.
    #[arg(short = 'd', long = "details")]
    pub details: bool,

    /// Print only failing tests and their failures.
    #[arg(long = "only-show-failures")]
    pub only_show_failures: bool,

    /// Fail when route coverage is under this percentage (0: no check).
    #[arg(short = 'f', long = "fail-under", value_name = "PERCENT", default_value_t = 0.0)]
    pub fail_under: f64,

    /// Measure coverage over every checkable field of every route, and list untested routes.
    #[arg(long = "covall")]
    pub covall: bool,

    /// List the names of untested routes.
    #[arg(long = "detailed-coverage")]
    pub detailed_coverage: bool,

    /// Accepted for Envoy compatibility; changes nothing (deprecated fields are
    /// never rejected).
    #[arg(long = "disable-deprecation-check")]
    pub disable_deprecation_check: bool,
}

/// Runs the tool, printing to stdout and stderr.
pub fn run(args: &RouteCheckArgs) -> ExitCode {
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    ExitCode::from(execute(args, &mut stdout.lock(), &mut stderr.lock()))
}

/// Runs the tool, writing what Envoy's tool writes to stdout and stderr to
/// `out` and `err`; returns the exit status. Write errors (a closed pipe) are
/// ignored, as the status still tells the outcome.
pub fn execute(args: &RouteCheckArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let config = match check::load_route_config(&args.config_path) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "error: {}: {e}", args.config_path.display());
            if e.to_string().contains("exceeds size limit") {
                let _ = writeln!(
                    err,
                    "note: mini-envoy's regex budget is fixed; Envoy's runtime \
                     re2.max_program_size.* has no equivalent"
                );
            }
            return 1;
        }
    };
    let tests = match check::load_test_file(&args.test_path) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "error: {}: {e}", args.test_path.display());
            return 1;
        }
    };
    let report = match check::run_tests(&config, &tests, &CheckOptions::default()) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "error: {}: {e}", args.config_path.display());
            return 1;
        }
    };
    print_results(args, &report, out, err);
    if !report.passed() {
        if !args.details && !args.only_show_failures {
            let _ = writeln!(
                err,
                "{} of {} tests failed (show them with --details or --only-show-failures)",
                report.failed().count(),
                report.results.len()
            );
        }
        return 1;
    }
    let coverage = &report.coverage;
    let percent = if args.covall {
        for r in coverage.missing_routes() {
            let _ = writeln!(
                out,
                "Missing test for host: {}, route: {}",
                r.virtual_host, r.route_match
            );
        }
        coverage.comprehensive_percent()
    } else {
        if args.detailed_coverage {
            for r in coverage.missing_routes() {
                let _ = writeln!(
                    out,
                    "Missing test for host: {}, route name: {}",
                    r.virtual_host, r.route_name
                );
            }
        }
        coverage.percent()
    };
    let _ = writeln!(out, "Current route coverage: {}%", format_g(percent));
    if args.fail_under != 0.0 && percent < args.fail_under {
        let _ =
            writeln!(err, "Failed to meet coverage requirement: {}%", format_g(args.fail_under));
        return 1;
    }
    0
}

/// Envoy's `printResults`: with `--details` every test name (passing ones to
/// stdout); with `--only-show-failures` only failing ones. A failing test's
/// name and its failures go to stderr.
fn print_results(args: &RouteCheckArgs, report: &Report, out: &mut dyn Write, err: &mut dyn Write) {
    for r in &report.results {
        let shown =
            (args.details && !args.only_show_failures) || (args.only_show_failures && !r.passed());
        if !shown {
            continue;
        }
        if r.passed() {
            let _ = writeln!(out, "{}", r.test_name);
        } else {
            let _ = writeln!(err, "{}", r.test_name);
            for f in &r.failures {
                let _ = writeln!(err, "{f}");
            }
        }
    }
}

/// A number as C++'s `std::ostream` prints a double by default (`%g`, six
/// significant digits): `100`, `67.5`, `7.44863`, `0.0744863`, `1e-05`.
fn format_g(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v == 0.0 { "0".to_string() } else { v.to_string() };
    }
    let trim = |s: String| {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    };
    let sci = format!("{v:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa.to_string()), exp.unsigned_abs())
    } else {
        let decimals = usize::try_from(5 - exp).unwrap_or(0);
        trim(format!("{v:.decimals$}"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: RouteCheckArgs,
    }

    fn data(file: &str) -> String {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/route-check")
            .join(file)
            .display()
            .to_string()
    }

    /// Runs `route-check` with `flags` after `-c <config> -t <tests>`:
    /// (exit status, stdout, stderr).
    fn check(config: &str, tests: &str, flags: &[&str]) -> (u8, String, String) {
        let (c, t) = (data(config), data(tests));
        let argv = ["route-check", "-c", &c, "-t", &t].into_iter().chain(flags.iter().copied());
        let cli = Cli::try_parse_from(argv).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = execute(&cli.args, &mut out, &mut err);
        (status, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    const FORMATS: [(&str, &str, &str); 2] =
        [("routes.yaml", "pass.yaml", "fail.yaml"), ("routes.json", "pass.json", "fail.json")];

    #[test]
    fn passing_tests_report_coverage() {
        for (routes, pass, _) in FORMATS {
            let (status, out, err) = check(routes, pass, &["--details"]);
            assert_eq!(status, 0, "{routes} {pass}: {err}");
            assert_eq!(
                out,
                "api_get\napi_post\nlegacy_redirect\nhealth\nweb\nunknown_host\n\
                 Current route coverage: 100%\n"
            );
            assert_eq!(err, "");
            // Every route is tested, but not every field of every route.
            let (status, out, err) = check(routes, pass, &["--covall", "-f", "100"]);
            assert_eq!(status, 1);
            assert_eq!(out, "Current route coverage: 67.5%\n");
            assert_eq!(err, "Failed to meet coverage requirement: 100%\n");
            assert_eq!(check(routes, pass, &["--covall", "--fail-under", "67.5"]).0, 0);
        }
    }

    #[test]
    fn failing_tests_print_the_tools_failure_lines() {
        let failures = "api_wrong_cluster\n\
                        expected: [web], actual: [api], test type: cluster_name\n\
                        legacy_code\n\
                        expected: [301], actual: [302], test type: code_redirect\n\
                        expected: [x-legacy: yes], actual: [x-legacy: NULL], \
                        test type: response_header_matches.string_match.exact\n";
        for (routes, _, fail) in FORMATS {
            let (status, out, err) = check(routes, fail, &["--details"]);
            assert_eq!(status, 1);
            assert_eq!(out, "web_ok\n", "passing names go to stdout, no coverage line");
            assert_eq!(err, failures);

            let (status, out, err) = check(routes, fail, &["--details", "--only-show-failures"]);
            assert_eq!((status, out.as_str(), err.as_str()), (1, "", failures));

            // Envoy prints nothing without a flag; mini-envoy adds one summary line.
            let (status, out, err) = check(routes, fail, &[]);
            assert_eq!(status, 1);
            assert_eq!(out, "");
            assert_eq!(
                err,
                "2 of 3 tests failed (show them with --details or --only-show-failures)\n"
            );
        }
    }

    #[test]
    fn yaml_and_json_files_are_interchangeable() {
        let (status, out, _) = check("routes.json", "pass.yaml", &[]);
        assert_eq!((status, out.as_str()), (0, "Current route coverage: 100%\n"));
        assert_eq!(check("routes.yaml", "fail.json", &[]).0, 1);
    }

    #[test]
    fn bad_files_fail_with_the_position() {
        // A test file given as the route table: its fields are unknown there.
        let (status, out, err) = check("pass.yaml", "pass.yaml", &[]);
        assert_eq!((status, out.as_str()), (1, ""));
        assert!(err.contains("<root>: unknown field \"tests\""), "{err}");
        assert!(err.ends_with("at line 2 column 1\n"), "{err}");
        // A route table given as the test file.
        let (status, _, err) = check("routes.yaml", "routes.yaml", &[]);
        assert_eq!(status, 1);
        assert!(
            err.contains("<root>: unknown field \"name\"") && err.contains("line 2 column 1"),
            "{err}"
        );
        let (status, _, err) = check("routes.yaml", "no-such-file.json", &[]);
        assert_eq!(status, 1);
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn flags_follow_envoy() {
        assert!(Cli::try_parse_from(["route-check", "-c", "r.yaml"]).is_err(), "-t is required");
        assert!(Cli::try_parse_from(["route-check", "-t", "t.json"]).is_err(), "-c is required");
        assert!(Cli::try_parse_from(["route-check", "-c", "r", "-t", "t", "-f", "x"]).is_err());
        let cli = Cli::try_parse_from([
            "route-check",
            "--config-path",
            "r.yaml",
            "--test-path",
            "t.json",
            "-d",
            "--only-show-failures",
            "-f",
            "7.5",
            "--covall",
            "--detailed-coverage",
            "--disable-deprecation-check",
        ])
        .unwrap()
        .args;
        assert_eq!(cli.config_path, PathBuf::from("r.yaml"));
        assert_eq!(cli.test_path, PathBuf::from("t.json"));
        assert!(cli.details && cli.only_show_failures && cli.covall && cli.detailed_coverage);
        assert_eq!(cli.fail_under, 7.5);
    }

    #[test]
    fn detailed_coverage_names_untested_routes() {
        let (status, out, _) = check("routes.yaml", "partial.yaml", &["--detailed-coverage"]);
        assert_eq!(status, 0);
        assert_eq!(
            out,
            "Missing test for host: backend, route name: legacy\n\
             Missing test for host: backend, route name: health\n\
             Missing test for host: backend, route name: web\n\
             Current route coverage: 25%\n"
        );
        let (_, out, _) = check("routes.yaml", "partial.yaml", &["--covall"]);
        assert_eq!(
            out,
            "Missing test for host: backend, route: path: \"/old\"\n\
             Missing test for host: backend, route: path: \"/healthz\"\n\
             Missing test for host: backend, route: prefix: \"/\"\n\
             Current route coverage: 5%\n"
        );
    }

    #[test]
    fn percentages_print_as_cpp_streams_do() {
        for (v, s) in [
            (100.0, "100"),
            (67.5, "67.5"),
            (0.0, "0"),
            (7.448634, "7.44863"),
            (200.0 / 3.0, "66.6667"),
            (0.0744863, "0.0744863"),
            (0.00001, "1e-05"),
            (1234567.0, "1.23457e+06"),
        ] {
            assert_eq!(format_g(v), s);
        }
    }
}
