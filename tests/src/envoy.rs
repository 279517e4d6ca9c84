//! A running `mini-envoy` child process.
//!
//! [`MiniEnvoy::start`] writes the bootstrap into a temporary directory, runs
//! `mini-envoy -c <file> --concurrency 2 --log-level info`, and reads its
//! stderr until it has logged `listener <name> on <ip:port>` for every
//! listener and `admin on <ip:port>` (when the bootstrap has an admin), which
//! is how ports given as `port_value: 0` become known. Stdout (the stdout
//! access log) and stderr are collected for assertions and failure messages.
//! Dropping the value kills the process.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::binary::mini_envoy_path;

/// Replaced by the process's directory in a bootstrap given to [`MiniEnvoy::start`].
pub const DIR_PLACEHOLDER: &str = "@DIR@";

/// How long start-up may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(20);

type Lines = Arc<Mutex<Vec<String>>>;

/// A running mini-envoy.
pub struct MiniEnvoy {
    child: Child,
    dir: tempfile::TempDir,
    listeners: HashMap<String, SocketAddr>,
    admin: Option<SocketAddr>,
    stdout: Lines,
    stderr: Lines,
}

impl MiniEnvoy {
    /// Starts mini-envoy on `yaml` (use `port_value: 0` everywhere) and waits
    /// until every listener and the admin interface are bound.
    ///
    /// Every `@DIR@` in `yaml` is replaced by the process's temporary
    /// directory ([`dir`](Self::dir)), e.g. for access-log paths.
    pub fn start(yaml: &str) -> MiniEnvoy {
        let dir = tempfile::tempdir().expect("create a tempdir");
        let yaml = &yaml.replace(DIR_PLACEHOLDER, &dir.path().display().to_string());
        let bootstrap = week1_core::config::load_bootstrap(yaml)
            .unwrap_or_else(|e| panic!("test bootstrap is invalid: {e}\n{yaml}"));
        let listeners = bootstrap.listeners().len();
        let admin = bootstrap.admin.as_ref().is_some_and(|a| a.address.is_some());
        let path = dir.path().join("envoy.yaml");
        std::fs::write(&path, yaml).expect("write the bootstrap");
        let args: Vec<String> = vec![
            "-c".into(),
            path.display().to_string(),
            "--concurrency".into(),
            "2".into(),
            "--log-level".into(),
            "info".into(),
        ];
        Self::spawn(dir, &args, listeners, admin)
    }

    /// Starts mini-envoy with `args` as its whole command line, waiting for
    /// `listeners` listener lines (and the admin line when `admin`).
    pub fn start_with_args(args: &[&str], listeners: usize, admin: bool) -> MiniEnvoy {
        let dir = tempfile::tempdir().expect("create a tempdir");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Self::spawn(dir, &args, listeners, admin)
    }

    fn spawn(dir: tempfile::TempDir, args: &[String], listeners: usize, admin: bool) -> MiniEnvoy {
        let mut child = Command::new(mini_envoy_path())
            .args(args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", mini_envoy_path().display()));
        let stdout: Lines = Arc::default();
        let stderr: Lines = Arc::default();
        let (tx, rx) = mpsc::channel::<String>();
        collect_lines(child.stdout.take().expect("piped stdout"), stdout.clone(), None);
        collect_lines(child.stderr.take().expect("piped stderr"), stderr.clone(), Some(tx));

        let mut envoy =
            MiniEnvoy { child, dir, listeners: HashMap::new(), admin: None, stdout, stderr };
        let deadline = Instant::now() + START_TIMEOUT;
        while envoy.listeners.len() < listeners || (admin && envoy.admin.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => envoy.on_start_line(&line),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("mini-envoy did not start within {START_TIMEOUT:?}\n{}", envoy.output())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = envoy.child.wait().ok();
                    panic!("mini-envoy exited during start-up ({status:?})\n{}", envoy.output())
                }
            }
        }
        envoy
    }

    fn on_start_line(&mut self, line: &str) {
        let line = strip_ansi(line);
        if let Some(rest) = after(&line, "admin on ") {
            if let Ok(addr) = rest.trim().parse() {
                self.admin = Some(addr);
            }
        } else if let Some(rest) = after(&line, "listener ")
            && let Some((name, addr)) = rest.trim().rsplit_once(" on ")
            && let Ok(addr) = addr.parse()
        {
            self.listeners.insert(name.to_string(), addr);
        }
    }

    /// The bound address of listener `name`.
    pub fn listener(&self, name: &str) -> SocketAddr {
        *self.listeners.get(name).unwrap_or_else(|| {
            panic!("no listener {name:?}; have {:?}", self.listeners.keys().collect::<Vec<_>>())
        })
    }

    /// The admin address.
    pub fn admin(&self) -> SocketAddr {
        self.admin.expect("the bootstrap has no admin address")
    }

    /// The temporary directory the process runs in (for access-log files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside [`dir`](Self::dir).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Lines printed on stdout so far (the stdout access log).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Lines printed on stderr so far (the log).
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (bounded) until a stdout line satisfies `matches`, and returns it.
    pub fn wait_for_stdout(&self, timeout: Duration, matches: impl Fn(&str) -> bool) -> String {
        let mut found = None;
        crate::wait_until(timeout, || {
            found = self.stdout_lines().into_iter().find(|l| matches(l));
            found.is_some()
        });
        found.unwrap_or_else(|| panic!("no matching stdout line in {timeout:?}\n{}", self.output()))
    }

    /// Waits (bounded) until the file `name` in [`dir`](Self::dir) has a
    /// line satisfying `matches` (access logs flush every second), and
    /// returns every line of the file at that moment.
    pub fn wait_for_file_line(
        &self,
        name: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let path = self.path(name);
        let mut lines = Vec::new();
        let ok = crate::wait_until(timeout, || {
            lines = std::fs::read_to_string(&path)
                .map(|s| s.lines().map(str::to_string).collect())
                .unwrap_or_default();
            lines.iter().any(|l| matches(l))
        });
        assert!(
            ok,
            "no matching line in {} within {timeout:?}: {lines:#?}\n{}",
            path.display(),
            self.output()
        );
        lines
    }

    /// Sends SIGTERM (with `kill -TERM`), as an orchestrator stopping it does.
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits up to `timeout` for the process to exit; its exit status, or
    /// `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stdout and stderr so far, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "--- mini-envoy stderr ---\n{}\n--- mini-envoy stdout ---\n{}",
            self.stderr_lines().join("\n"),
            self.stdout_lines().join("\n")
        )
    }
}

impl Drop for MiniEnvoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for MiniEnvoy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniEnvoy")
            .field("pid", &self.child.id())
            .field("listeners", &self.listeners)
            .field("admin", &self.admin)
            .finish()
    }
}

/// Reads `from` line by line into `into` (and `tx`) on a background thread.
fn collect_lines(from: impl Read + Send + 'static, into: Lines, tx: Option<mpsc::Sender<String>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                    into.lock().unwrap_or_else(|e| e.into_inner()).push(line.clone());
                    if let Some(tx) = &tx {
                        let _ = tx.send(line);
                    }
                }
            }
        }
    });
}

/// The text after the first occurrence of `marker`.
fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

/// Removes ANSI escape sequences (in case colours are on).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines_parse_with_and_without_colours() {
        assert_eq!(
            strip_ansi(
                "\u{1b}[2m2025\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x: listener a on 1.2.3.4:5"
            ),
            "2025  INFO x: listener a on 1.2.3.4:5"
        );
        assert_eq!(after("x: admin on 127.0.0.1:9", "admin on "), Some("127.0.0.1:9"));
    }
}
