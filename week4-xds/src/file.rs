//! Filesystem xDS (Envoy's `path_config_source` and its
//! `FilesystemSubscriptionImpl`).
//!
//! The file holds a `DiscoveryResponse` in YAML or JSON. Like Envoy, the
//! subscription watches the file's *directory* (or `watched_directory`) and
//! reloads only when a file is moved into place, because a rename is atomic
//! and a write in place is not:
//!
//! ```text
//!  write cds.yaml.tmp ; mv cds.yaml.tmp cds.yaml
//!        │ inotify IN_MOVED_TO (notify crate, its own thread)
//!        ▼
//!  mpsc ──► next_update().await ──► read + week 1 loader (parse, validate)
//!                                     ├─ ok:  FileUpdate::Accepted(Update)  (version_info, removals)
//!                                     └─ bad: FileUpdate::Rejected — logged, the previous
//!                                             config stays (NACK semantics)
//! ```
//!
//! A subscription serves one resource type; resources of another type in the
//! file reject it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use week1_core::config::bootstrap::{DiscoveryResponse, Resource};
use week1_core::config::config_source::ConfigSource;

use crate::model::type_of;
use crate::resource::TypeUrl;
use crate::subscription::Update;

/// Why a file subscription could not be set up or went away.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The config source names no file.
    #[error("config source has no path or path_config_source")]
    NoPath,
    /// The path has no parent directory to watch.
    #[error("cannot watch the directory of {0}")]
    NoDirectory(PathBuf),
    /// The watcher could not be created or started.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The watcher's error.
        source: notify::Error,
    },
    /// The watcher stopped.
    #[error("the file watcher stopped")]
    Closed,
}

/// What a reload produced.
#[derive(Debug, Clone, PartialEq)]
pub enum FileUpdate {
    /// The file is valid: apply it.
    Accepted(Update<Resource>),
    /// The file is invalid: it was logged and the previous config stays.
    Rejected {
        /// Why (field path and line:column from the week 1 loader).
        error: String,
    },
}

/// Counters as Envoy keeps per subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStats {
    /// Reloads attempted.
    pub update_attempt: u64,
    /// Reloads accepted.
    pub update_success: u64,
    /// Reloads rejected.
    pub update_rejected: u64,
}

/// A watched `DiscoveryResponse` file. See the module docs.
#[derive(Debug)]
pub struct FileSubscription {
    path: PathBuf,
    type_url: TypeUrl,
    /// Reload on any move into the directory (`watched_directory`, for symlink swaps).
    any_move: bool,
    events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    _watcher: RecommendedWatcher,
    version_info: String,
    names: BTreeSet<String>,
    /// The last accepted file's resources as JSON, by name.
    sources: Sources,
    stats: FileStats,
}

/// Resources as the JSON they were loaded from (see
/// `week1_core::config::Node::to_json`), by name: what `/config_dump` shows.
pub type Sources = BTreeMap<String, serde_json::Value>;

impl FileSubscription {
    /// Watches `path` (in its directory, or in `watched_directory`) for `type_url` resources.
    pub fn new(
        path: impl Into<PathBuf>,
        watched_directory: Option<PathBuf>,
        type_url: TypeUrl,
    ) -> Result<Self, FileError> {
        let path = path.into();
        let any_move = watched_directory.is_some();
        let dir = match watched_directory {
            Some(d) => d,
            None => match path.parent() {
                Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
                Some(p) => p.to_path_buf(),
                None => return Err(FileError::NoDirectory(path)),
            },
        };
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |ev| {
            // The receiver may be gone when the subscription is dropped.
            let _ = tx.send(ev);
        })
        .map_err(|source| FileError::Watch { path: dir.clone(), source })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| FileError::Watch { path: dir.clone(), source })?;
        Ok(Self {
            path,
            type_url,
            any_move,
            events,
            _watcher: watcher,
            version_info: String::new(),
            names: BTreeSet::new(),
            sources: Sources::new(),
            stats: FileStats::default(),
        })
    }

    /// Watches the file a week 1 `ConfigSource` names (`path_config_source` or `path`).
    pub fn from_config_source(source: &ConfigSource, type_url: TypeUrl) -> Result<Self, FileError> {
        let path = source.file_path().ok_or(FileError::NoPath)?;
        let watched = source
            .path_config_source
            .as_ref()
            .and_then(|p| p.watched_directory.as_ref())
            .map(|w| PathBuf::from(&w.path));
        Self::new(path, watched, type_url)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last accepted `version_info`.
    pub fn version_info(&self) -> &str {
        &self.version_info
    }

    /// The resources of the last accepted file as JSON, by name.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// The counters.
    pub fn stats(&self) -> FileStats {
        self.stats
    }

    /// Reads and checks the file now (the initial load, as Envoy does at start).
    pub fn load(&mut self) -> FileUpdate {
        self.stats.update_attempt += 1;
        match self.read() {
            Ok((update, sources)) => {
                self.stats.update_success += 1;
                self.sources = sources;
                self.version_info = update.version_info.clone();
                self.names = update.resources.iter().map(|r| r.name().to_string()).collect();
                FileUpdate::Accepted(update)
            }
            Err(error) => {
                self.stats.update_rejected += 1;
                tracing::warn!(
                    path = %self.path.display(),
                    kept_version = %self.version_info,
                    "{} file rejected: {error}",
                    self.type_url.short_name()
                );
                FileUpdate::Rejected { error }
            }
        }
    }

    /// Waits for the file to be moved into place, then loads it.
    pub async fn next_update(&mut self) -> Result<FileUpdate, FileError> {
        loop {
            let event = self.events.recv().await.ok_or(FileError::Closed)?;
            match event {
                Ok(ev) if self.is_move_in(&ev) => return Ok(self.load()),
                Ok(_) => {}
                Err(e) => tracing::warn!(path = %self.path.display(), "file watch error: {e}"),
            }
        }
    }

    fn is_move_in(&self, ev: &notify::Event) -> bool {
        let moved_in = matches!(
            ev.kind,
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Any))
        );
        moved_in
            && (self.any_move || ev.paths.iter().any(|p| p.file_name() == self.path.file_name()))
    }

    fn read(&self) -> Result<(Update<Resource>, Sources), String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))?;
        let limits = week1_core::config::ParseLimits::default();
        let root = week1_core::config::yaml::parse(&text, &limits).map_err(|e| e.to_string())?;
        let resp: DiscoveryResponse =
            week1_core::config::from_tree(&root, week1_core::config::Validator::new())
                .map_err(|e| e.to_string())?;
        let json = root.to_json();
        let sources = match json.get("resources") {
            Some(serde_json::Value::Array(items)) => items.clone(),
            Some(lone) => vec![lone.clone()],
            None => Vec::new(),
        };
        let sources: Sources =
            resp.resources.iter().map(|r| r.name().to_string()).zip(sources).collect();
        if let Some((i, r)) =
            resp.resources.iter().enumerate().find(|(_, r)| type_of(r) != self.type_url)
        {
            return Err(format!(
                "resources[{i}]: a {} in a {} file (expected {})",
                type_of(r).message_name(),
                self.type_url.short_name(),
                self.type_url.message_name()
            ));
        }
        if !resp.type_url.is_empty() && TypeUrl::parse(&resp.type_url) != Some(self.type_url) {
            return Err(format!(
                "type_url: {} in a {} file",
                resp.type_url,
                self.type_url.short_name()
            ));
        }
        let names: BTreeSet<&str> = resp.resources.iter().map(|r| r.name()).collect();
        let removed = self.names.iter().filter(|n| !names.contains(n.as_str())).cloned().collect();
        let update = Update {
            type_url: self.type_url,
            version_info: resp.version_info,
            resources: resp.resources,
            removed,
            warming: Default::default(),
        };
        Ok((update, sources))
    }
}
