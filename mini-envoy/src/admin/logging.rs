//! `/logging`: Envoy's runtime log levels. Components (Envoy's logger names)
//! map to tracing targets; a change rebuilds the filter directives and hands
//! them to the subscriber's reload handle (set up in `main.rs`).
//!
//! ```text
//!  POST /logging?level=debug | ?router=trace ─► LogLevels ─► directives ─► reload(EnvFilter)
//! ```

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::Reply;

/// Envoy logger names and the tracing targets they cover.
pub const COMPONENTS: &[(&str, &[&str])] = &[
    ("admin", &["mini_envoy::admin"]),
    ("config", &["week1_core::config", "week4_xds"]),
    ("connection", &["mini_envoy::hcm", "mini_envoy::tcp_proxy"]),
    ("http", &["mini_envoy::hcm", "mini_envoy::tcp_proxy"]),
    ("main", &["mini_envoy::server", "mini_envoy"]),
    ("pool", &["mini_envoy::upstream"]),
    ("router", &["mini_envoy::router"]),
    ("upstream", &["mini_envoy::upstream"]),
];

/// The tracing targets of an Envoy component name.
pub fn component_targets(component: &str) -> Option<&'static [&'static str]> {
    COMPONENTS.iter().find(|(c, _)| *c == component).map(|(_, t)| *t)
}

/// An Envoy level name as a tracing directive (`critical` is `error`,
/// `warning` is `warn`).
pub fn level_directive(level: &str) -> Option<&'static str> {
    Some(match level.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "critical" => "error",
        "off" => "off",
        _ => return None,
    })
}

/// The default level and per-component overrides.
#[derive(Debug, Clone)]
pub struct LogLevels {
    default: &'static str,
    components: BTreeMap<&'static str, &'static str>,
}

impl LogLevels {
    /// Every component at `default` (a directive from [`level_directive`]).
    pub fn new(default: &'static str) -> Self {
        Self { default, components: BTreeMap::new() }
    }

    /// Sets every component's level.
    pub fn set_all(&mut self, level: &'static str) {
        self.default = level;
        self.components.clear();
    }

    /// Sets one component's level.
    pub fn set(&mut self, component: &str, level: &'static str) -> Result<(), String> {
        let (name, _) = COMPONENTS
            .iter()
            .find(|(c, _)| *c == component)
            .ok_or_else(|| format!("error: unknown logger name {component:?}"))?;
        self.components.insert(name, level);
        Ok(())
    }

    /// The level of `component`.
    pub fn level(&self, component: &str) -> &'static str {
        self.components.get(component).copied().unwrap_or(self.default)
    }

    /// tracing `EnvFilter` directives.
    pub fn directives(&self) -> String {
        let mut out = vec![self.default.to_string()];
        for (component, level) in &self.components {
            for target in component_targets(component).unwrap_or_default() {
                out.push(format!("{target}={level}"));
            }
        }
        out.join(",")
    }
}

/// Applies new directives to the running subscriber.
pub type Reload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The levels and how to apply them.
pub struct LogControl {
    levels: Mutex<LogLevels>,
    reload: Reload,
}

impl std::fmt::Debug for LogControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogControl").field("levels", &*self.levels.lock()).finish()
    }
}

impl LogControl {
    /// Levels as the subscriber was started with, and its reload function.
    pub fn new(levels: LogLevels, reload: Reload) -> Self {
        Self { levels: Mutex::new(levels), reload }
    }

    fn listing(&self) -> String {
        let levels = self.levels.lock();
        let mut out = String::from("active loggers:\n");
        for (c, _) in COMPONENTS {
            out.push_str(&format!("  {c}: {}\n", levels.level(c)));
        }
        out
    }

    /// `/logging`: GET lists, POST `?level=` / `?<component>=` changes.
    pub(super) fn handle(&self, method: &str, params: &[(String, String)]) -> Reply {
        if params.is_empty() {
            return Reply::text(200, self.listing());
        }
        if method != "POST" {
            return Reply::text(405, "This endpoint requires POST to change log levels.\n".into());
        }
        let mut next = self.levels.lock().clone();
        for (key, value) in params {
            let Some(level) = level_directive(value) else {
                return Reply::text(400, format!("error: invalid log level {value:?}\n"));
            };
            if key == "level" {
                next.set_all(level);
            } else if let Err(e) = next.set(key, level) {
                return Reply::text(400, format!("{e}\n"));
            }
        }
        if let Err(e) = (self.reload)(&next.directives()) {
            return Reply::text(500, format!("error: cannot apply log levels: {e}\n"));
        }
        *self.levels.lock() = next;
        Reply::text(200, self.listing())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn control() -> (LogControl, Arc<Mutex<String>>) {
        let applied = Arc::new(Mutex::new(String::new()));
        let sink = applied.clone();
        let reload: Reload = Box::new(move |d| {
            *sink.lock() = d.to_string();
            Ok(())
        });
        (LogControl::new(LogLevels::new("info"), reload), applied)
    }

    #[test]
    fn post_level_sets_all_and_component_sets_one() {
        let (c, applied) = control();
        let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let r = c.handle("POST", &p("router", "trace"));
        assert_eq!(r.status, 200);
        assert_eq!(*applied.lock(), "info,mini_envoy::router=trace");
        assert!(std::str::from_utf8(&r.body).unwrap().contains("  router: trace\n"));
        assert_eq!(c.handle("POST", &p("level", "warning")).status, 200);
        assert_eq!(*applied.lock(), "warn");
        assert_eq!(c.handle("GET", &p("level", "debug")).status, 405);
        assert_eq!(c.handle("POST", &p("level", "loud")).status, 400);
        assert_eq!(c.handle("POST", &p("nope", "debug")).status, 400);
        assert_eq!(*applied.lock(), "warn");
        let listing = c.handle("GET", &[]);
        assert!(std::str::from_utf8(&listing.body).unwrap().contains("  admin: warn\n"));
    }
}
