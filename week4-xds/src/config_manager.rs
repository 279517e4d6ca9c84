//! Versioned configuration snapshots (the role of Envoy's cluster and listener
//! managers' "active/warming" bookkeeping plus the `/config_dump` history).
//!
//! Every accepted xDS update becomes a [`ChangeSet`]; the manager builds the
//! candidate snapshot aside, validates it whole, and only then swaps it in:
//!
//! ```text
//!  ChangeSet ─► stale? ─► build candidate ─► same content hash? ─► no-op
//!                                 │
//!                          validate(candidate) ── Err ─► Rejected (current stays)
//!                                 │ Ok
//!                    version + 1, swap, keep last N ─► notify subscribers
//!                                                      CDS → EDS → LDS → RDS
//! ```
//!
//! Resources are generic (`R`) and stored behind `Arc`, so a snapshot is cheap
//! to share with workers. Each resource's content hash comes from the caller
//! (the hash of its wire bytes, or [`hash_debug`]); a change whose hashes equal
//! the current ones changes nothing: no new version, no notification, and the
//! xDS `version_info` in force stays that of the last real change.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::hash::Hasher;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::resource::TypeUrl;

/// Hashes bytes (a resource's wire form) for change detection.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// Hashes a value's `Debug` form: deterministic for the config model, whose
/// maps are ordered. Use it when no wire bytes are at hand.
pub fn hash_debug<T: fmt::Debug + ?Sized>(value: &T) -> u64 {
    struct W<'a>(&'a mut std::hash::DefaultHasher);
    impl fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let mut h = std::hash::DefaultHasher::new();
    let _ = fmt::write(&mut W(&mut h), format_args!("{value:?}"));
    h.finish()
}

/// One resource in a snapshot.
#[derive(Debug)]
pub struct Entry<R> {
    /// The resource.
    pub resource: Arc<R>,
    /// Its content hash.
    pub hash: u64,
    /// The xDS version it arrived with.
    pub version_info: String,
    /// When it last changed (for `/config_dump`).
    pub last_updated: SystemTime,
}

impl<R> Clone for Entry<R> {
    fn clone(&self) -> Self {
        Self {
            resource: self.resource.clone(),
            hash: self.hash,
            version_info: self.version_info.clone(),
            last_updated: self.last_updated,
        }
    }
}

/// The whole configuration at one version.
#[derive(Debug)]
pub struct Snapshot<R> {
    /// Monotonic: 0 for the empty initial snapshot, +1 per applied change.
    pub version: u64,
    /// Hash over every resource's name and content hash.
    pub hash: u64,
    /// When this snapshot was applied.
    pub applied_at: SystemTime,
    /// Resources by type and name.
    pub resources: BTreeMap<TypeUrl, BTreeMap<String, Entry<R>>>,
    /// The last xDS version accepted per type.
    pub version_info: BTreeMap<TypeUrl, String>,
}

impl<R> Snapshot<R> {
    fn empty(now: SystemTime) -> Self {
        Self {
            version: 0,
            hash: 0,
            applied_at: now,
            resources: BTreeMap::new(),
            version_info: BTreeMap::new(),
        }
    }

    /// A resource by type and name.
    pub fn get(&self, type_url: TypeUrl, name: &str) -> Option<&Arc<R>> {
        self.resources.get(&type_url)?.get(name).map(|e| &e.resource)
    }

    /// Every resource of a type, by name.
    pub fn of_type(&self, type_url: TypeUrl) -> impl Iterator<Item = (&str, &Entry<R>)> {
        self.resources.get(&type_url).into_iter().flatten().map(|(k, v)| (k.as_str(), v))
    }

    fn compute_hash(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        for (t, entries) in &self.resources {
            h.write(t.as_str().as_bytes());
            for (name, e) in entries {
                h.write(name.as_bytes());
                h.write_u64(e.hash);
            }
        }
        h.finish()
    }
}

/// Changes to one resource type.
#[derive(Debug)]
pub struct TypeChange<R> {
    /// The type changed.
    pub type_url: TypeUrl,
    /// The xDS version these changes arrived with.
    pub version_info: String,
    /// SotW LDS/CDS: the resources given are all there are; others are removed.
    pub replace_all: bool,
    /// Added or updated resources.
    pub upserts: Vec<Upsert<R>>,
    /// Removed names.
    pub removed: Vec<String>,
}

/// An added or updated resource.
#[derive(Debug)]
pub struct Upsert<R> {
    /// Its name.
    pub name: String,
    /// The resource.
    pub resource: Arc<R>,
    /// Its content hash ([`hash_bytes`] of its wire form, or [`hash_debug`]).
    pub hash: u64,
}

impl<R> Upsert<R> {
    /// An upsert of `resource` named `name` with content hash `hash`.
    pub fn new(name: impl Into<String>, resource: R, hash: u64) -> Self {
        Self { name: name.into(), resource: Arc::new(resource), hash }
    }
}

/// A set of changes applied atomically.
#[derive(Debug)]
pub struct ChangeSet<R> {
    /// The changes, any order (they are applied and notified in ADS order).
    pub changes: Vec<TypeChange<R>>,
    /// A monotonic version from the source, if it has one: a change set whose
    /// source version is not newer than the last applied one is stale.
    pub source_version: Option<u64>,
}

impl<R> ChangeSet<R> {
    /// A change set without a source version.
    pub fn new(changes: Vec<TypeChange<R>>) -> Self {
        Self { changes, source_version: None }
    }
}

/// What one resource type's subscribers are told.
#[derive(Debug)]
pub struct TypeDiff<R> {
    /// The type.
    pub type_url: TypeUrl,
    /// Added or changed resources.
    pub updated: Vec<(String, Arc<R>)>,
    /// Removed names.
    pub removed: Vec<String>,
}

/// The result of [`ConfigManager::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// A new snapshot is in force.
    Applied {
        /// Its version.
        version: u64,
    },
    /// Nothing changed (same content, or empty change set).
    NoOp,
    /// The source version is not newer than the last applied one.
    Stale {
        /// The last applied source version.
        current: u64,
    },
}

/// Why a change set was rejected (nothing of it was applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("update rejected: {reason}")]
pub struct Rejected {
    /// The validator's message (sent in the NACK).
    pub reason: String,
}

/// Counters named as Envoy's xDS stats (`update_attempt`, `update_success`,
/// `update_rejected`), plus no-ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UpdateStats {
    /// Change sets offered.
    pub update_attempt: u64,
    /// Applied.
    pub update_success: u64,
    /// Rejected by validation.
    pub update_rejected: u64,
    /// Identical or stale: nothing to do.
    pub update_no_op: u64,
}

type Validator<R> = Box<dyn Fn(&Snapshot<R>) -> Result<(), String> + Send + Sync>;
type Subscriber<R> = Box<dyn FnMut(&Snapshot<R>, &TypeDiff<R>) + Send>;

/// Holds the configuration in force and its history. See the module docs.
pub struct ConfigManager<R> {
    current: Arc<Snapshot<R>>,
    history: VecDeque<Arc<Snapshot<R>>>,
    keep: usize,
    last_source_version: Option<u64>,
    validator: Validator<R>,
    subscribers: Vec<(TypeUrl, Subscriber<R>)>,
    watch: watch::Sender<Arc<Snapshot<R>>>,
    stats: UpdateStats,
}

impl<R> fmt::Debug for ConfigManager<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigManager")
            .field("version", &self.current.version)
            .field("history", &self.history.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<R: Send + Sync + 'static> ConfigManager<R> {
    /// An empty configuration keeping the last `keep` snapshots (at least 1),
    /// with `validator` checking each candidate snapshot as a whole.
    pub fn new(
        keep: usize,
        now: SystemTime,
        validator: impl Fn(&Snapshot<R>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        let first = Arc::new(Snapshot::empty(now));
        let mut history = VecDeque::new();
        history.push_back(first.clone());
        Self {
            current: first.clone(),
            history,
            keep: keep.max(1),
            last_source_version: None,
            validator: Box::new(validator),
            subscribers: Vec::new(),
            watch: watch::Sender::new(first),
            stats: UpdateStats::default(),
        }
    }

    /// The snapshot in force.
    pub fn current(&self) -> Arc<Snapshot<R>> {
        self.current.clone()
    }

    /// The last snapshots, oldest first (the current one last).
    pub fn history(&self) -> impl Iterator<Item = &Arc<Snapshot<R>>> {
        self.history.iter()
    }

    /// The counters.
    pub fn stats(&self) -> UpdateStats {
        self.stats
    }

    /// Calls `f` with every applied change of `type_url`, in dependency order
    /// across types within one change set.
    pub fn subscribe(
        &mut self,
        type_url: TypeUrl,
        f: impl FnMut(&Snapshot<R>, &TypeDiff<R>) + Send + 'static,
    ) {
        self.subscribers.push((type_url, Box::new(f)));
    }

    /// A receiver that always holds the latest snapshot (for async consumers).
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot<R>>> {
        self.watch.subscribe()
    }

    /// Validates a change set against the current snapshot without applying it
    /// (what an xDS client's validate step calls before ACKing).
    pub fn check(&self, change: &ChangeSet<R>, now: SystemTime) -> Result<(), Rejected> {
        let candidate = self.candidate(change, now);
        (self.validator)(&candidate).map_err(|reason| Rejected { reason })
    }

    /// Applies a change set atomically: all of it, or (on a validation error)
    /// nothing.
    pub fn apply(
        &mut self,
        change: ChangeSet<R>,
        now: SystemTime,
    ) -> Result<ApplyOutcome, Rejected> {
        self.stats.update_attempt += 1;
        if let (Some(new), Some(current)) = (change.source_version, self.last_source_version)
            && new <= current
        {
            self.stats.update_no_op += 1;
            return Ok(ApplyOutcome::Stale { current });
        }
        let candidate = self.candidate(&change, now);
        if candidate.hash == self.current.hash {
            self.stats.update_no_op += 1;
            if change.source_version.is_some() {
                self.last_source_version = change.source_version;
            }
            return Ok(ApplyOutcome::NoOp);
        }
        if let Err(reason) = (self.validator)(&candidate) {
            self.stats.update_rejected += 1;
            return Err(Rejected { reason });
        }
        let diffs = self.diffs(&candidate);
        let version = candidate.version;
        let snapshot = Arc::new(candidate);
        self.current = snapshot.clone();
        self.history.push_back(snapshot.clone());
        while self.history.len() > self.keep {
            self.history.pop_front();
        }
        if change.source_version.is_some() {
            self.last_source_version = change.source_version;
        }
        self.stats.update_success += 1;
        // ANCHOR: notify_order
        // Dependency order: clusters before the endpoints that fill them,
        // both before the listeners and routes that send traffic to them.
        for diff in &diffs {
            for (t, f) in self.subscribers.iter_mut() {
                if *t == diff.type_url {
                    f(&snapshot, diff);
                }
            }
        }
        // ANCHOR_END: notify_order
        self.watch.send_replace(snapshot);
        Ok(ApplyOutcome::Applied { version })
    }

    /// The snapshot `change` would produce. Unchanged resources keep their
    /// entry (and last-updated time).
    fn candidate(&self, change: &ChangeSet<R>, now: SystemTime) -> Snapshot<R> {
        let mut resources = self.current.resources.clone();
        let mut version_info = self.current.version_info.clone();
        for tc in &change.changes {
            let entries = resources.entry(tc.type_url).or_default();
            if tc.replace_all {
                let keep: BTreeSet<&str> = tc.upserts.iter().map(|u| u.name.as_str()).collect();
                entries.retain(|name, _| keep.contains(name.as_str()));
            }
            for name in &tc.removed {
                entries.remove(name);
            }
            for u in &tc.upserts {
                if entries.get(&u.name).is_some_and(|e| e.hash == u.hash) {
                    continue;
                }
                entries.insert(
                    u.name.clone(),
                    Entry {
                        resource: u.resource.clone(),
                        hash: u.hash,
                        version_info: tc.version_info.clone(),
                        last_updated: now,
                    },
                );
            }
            version_info.insert(tc.type_url, tc.version_info.clone());
        }
        resources.retain(|_, entries| !entries.is_empty());
        let mut snap = Snapshot {
            version: self.current.version + 1,
            hash: 0,
            applied_at: now,
            resources,
            version_info,
        };
        snap.hash = snap.compute_hash();
        snap
    }

    fn diffs(&self, candidate: &Snapshot<R>) -> Vec<TypeDiff<R>> {
        let mut out = Vec::new();
        for t in TypeUrl::ADS_ORDER {
            let empty = BTreeMap::new();
            let old = self.current.resources.get(&t).unwrap_or(&empty);
            let new = candidate.resources.get(&t).unwrap_or(&empty);
            let updated: Vec<(String, Arc<R>)> = new
                .iter()
                .filter(|(name, e)| old.get(*name).is_none_or(|o| o.hash != e.hash))
                .map(|(name, e)| (name.clone(), e.resource.clone()))
                .collect();
            let removed: Vec<String> =
                old.keys().filter(|name| !new.contains_key(*name)).cloned().collect();
            if !updated.is_empty() || !removed.is_empty() {
                out.push(TypeDiff { type_url: t, updated, removed });
            }
        }
        out
    }
}
