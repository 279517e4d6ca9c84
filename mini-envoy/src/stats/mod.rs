//! # Stats: counters, gauges and histograms, merged on read
//!
//! Envoy's `Stats::Store` / `Stats::Scope` / `Counter` / `Gauge` /
//! `Histogram`, with Envoy's stat names so dashboards carry over:
//!
//! ```text
//!  main thread, when a cluster/listener/HCM is created:
//!    Store ─► Scope "cluster.<name>." ─► ClusterStats { upstream_rq_total: Counter, … }
//!                                          (name ─► cell index, looked up once)
//!  worker-N, per request:
//!    stats.upstream_rq_total.inc() ─► this thread's shard: cells[i] = cells[i] + 1
//!                                     (single writer: Relaxed load + store, no lock, no RMW)
//!  admin (/stats), on read:
//!    Σ over every thread's shard of cells[i] ─► "cluster.<name>.upstream_rq_total: 42"
//! ```
//!
//! Every thread that records a stat owns one [`Shard`] per store: a table of
//! lazily allocated chunks of cells. Only that thread writes its cells, so an
//! increment is a relaxed load and store of a cell no other thread writes (no
//! lock, no atomic read-modify-write, no cache line shared between writers).
//! Readers sum the cells of every shard. Gauges keep a per-thread delta (so
//! `inc` on one worker and `dec` on another still add up) plus a shared base
//! written by [`Gauge::set`]; a gauge is either set or incremented, as Envoy's
//! gauges are used in practice.
//!
//! Registration goes by name: registering `cluster.a.upstream_rq_total` again
//! (a cluster updated by CDS) returns the same cells, so stats survive config
//! changes as in Envoy. The request path never looks a name up: it holds
//! pre-resolved handle structs built when the object is created
//! ([`ClusterStats`], [`HttpConnectionManagerStats`], [`ListenerStats`],
//! [`ServerStats`]).
//!
//! Scopes carry Envoy's tags (`envoy_cluster_name`, `envoy_listener_address`,
//! `envoy_http_conn_manager_prefix`, response codes) for `/stats/prometheus`;
//! [`format`] renders the admin formats.

pub mod format;
mod handles;
mod histogram;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

pub use handles::{
    CircuitBreakerStats, ClusterStats, HttpConnectionManagerStats, ListenerStats, PendingRequest,
    ServerState, ServerStats, TcpProxyStats, UpstreamConnectionStats, UpstreamRequestStats,
    listener_stat_address,
};
pub use histogram::{BUCKETS, HistogramValue, SUPPORTED_QUANTILES};

/// Cells per chunk of a shard; a histogram's cells never straddle two chunks.
const CHUNK: usize = 1024;
/// Cells a histogram uses: one per bucket, the overflow bucket, sum, count,
/// max and `!min`.
const HISTOGRAM_CELLS: usize = BUCKETS.len() + 5;
/// The cell index of a stat that could not be registered (limit reached).
const NULL_CELL: u32 = u32::MAX;

/// What kind of stat a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StatKind {
    /// Monotonic count.
    Counter,
    /// Current value.
    Gauge,
    /// Distribution of recorded values (milliseconds).
    Histogram,
}

/// Store limits.
#[derive(Debug, Clone, Copy)]
pub struct StoreOptions {
    /// Cells the store may allocate (a counter or gauge uses one, a
    /// histogram [`BUCKETS`]` + 3`). Stats registered past it are dropped
    /// with a warning (Envoy's stats-limit behaviour).
    pub max_cells: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_cells: 1 << 20 }
    }
}

/// One thread's cells.
#[derive(Debug)]
pub struct Shard {
    chunks: Box<[OnceLock<Box<[AtomicU64]>>]>,
}

impl Shard {
    fn new(chunks: usize) -> Self {
        Self { chunks: (0..chunks).map(|_| OnceLock::new()).collect() }
    }

    /// The cell to write (allocating its chunk on first use).
    #[inline]
    fn cell(&self, index: usize) -> Option<&AtomicU64> {
        let chunk = self.chunks.get(index / CHUNK)?;
        let chunk = chunk.get_or_init(|| (0..CHUNK).map(|_| AtomicU64::new(0)).collect());
        chunk.get(index % CHUNK)
    }

    /// A cell's value, 0 if never written.
    fn read(&self, index: usize) -> u64 {
        self.chunks
            .get(index / CHUNK)
            .and_then(|c| c.get())
            .and_then(|c| c.get(index % CHUNK))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// Adds `n` to a cell only this thread writes.
#[inline]
fn bump(cell: &AtomicU64, n: u64) {
    cell.store(cell.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Shared parts of a gauge: the `set` base and the `used` flag.
#[derive(Debug, Default)]
struct GaugeShared {
    base: AtomicI64,
    used: AtomicBool,
}

/// How to compute a gauge read from elsewhere (circuit-breaker state, host counts).
pub type GaugeFn = Box<dyn Fn() -> i64 + Send + Sync>;

/// One registered stat.
struct Meta {
    kind: StatKind,
    cell: u32,
    /// Name with tag values removed (`cluster.upstream_rq`), for Prometheus.
    tag_extracted: String,
    tags: Vec<(String, String)>,
    gauge: Option<Arc<GaugeShared>>,
    gauge_fn: Option<GaugeFn>,
}

struct Registry {
    by_name: BTreeMap<String, Meta>,
    next_cell: usize,
    warned: bool,
}

struct StoreInner {
    id: u64,
    options: StoreOptions,
    registry: Mutex<Registry>,
    shards: Mutex<Vec<Arc<Shard>>>,
    /// `/reset_counters`: each counter's merged value at its last reset, by
    /// cell (shards have one writer each, so a reset cannot zero them).
    counter_offsets: Mutex<BTreeMap<u32, u64>>,
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's shard of each store it has written to.
    static SHARDS: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
}

impl StoreInner {
    /// Runs `f` on this thread's shard, creating it on the first write.
    #[inline]
    fn with_shard(self: &Arc<Self>, f: impl FnOnce(&Shard)) {
        let _ = SHARDS.try_with(|shards| {
            let mut shards = shards.borrow_mut();
            if let Some((_, shard)) = shards.iter().find(|(id, _)| *id == self.id) {
                f(shard);
                return;
            }
            // Forget shards of stores dropped since (only this thread still holds them).
            shards.retain(|(_, s)| Arc::strong_count(s) > 1);
            let shard = Arc::new(Shard::new(self.options.max_cells.div_ceil(CHUNK)));
            self.shards.lock().push(shard.clone());
            f(&shard);
            shards.push((self.id, shard));
        });
    }

    fn sum(&self, cell: u32) -> u64 {
        if cell == NULL_CELL {
            return 0;
        }
        let shards = self.shards.lock();
        shards.iter().fold(0u64, |acc, s| acc.wrapping_add(s.read(cell as usize)))
    }

    /// A counter's value since its last reset.
    fn counter(&self, cell: u32) -> u64 {
        let offset = self.counter_offsets.lock().get(&cell).copied().unwrap_or(0);
        self.sum(cell).wrapping_sub(offset)
    }
}

/// The stats store (Envoy's `Stats::Store`): every stat of one server.
#[derive(Clone)]
pub struct Store {
    inner: Arc<StoreInner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("stats", &self.inner.registry.lock().by_name.len()).finish()
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new(StoreOptions::default())
    }
}

impl Store {
    /// An empty store.
    pub fn new(options: StoreOptions) -> Self {
        let inner = StoreInner {
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            options,
            registry: Mutex::new(Registry {
                by_name: BTreeMap::new(),
                next_cell: 0,
                warned: false,
            }),
            shards: Mutex::new(Vec::new()),
            counter_offsets: Mutex::new(BTreeMap::new()),
        };
        Self { inner: Arc::new(inner) }
    }

    /// The root scope (no prefix, no tags).
    pub fn root(&self) -> Scope {
        Scope {
            store: self.clone(),
            prefix: String::new(),
            extracted_prefix: String::new(),
            tags: Vec::new(),
        }
    }

    // ANCHOR: reset_counters
    /// `/reset_counters`: every counter reads 0 from now on (gauges and
    /// histograms keep their values, as in Envoy). Workers keep writing their
    /// own cells; a reset records each counter's current sum as its zero.
    pub fn reset_counters(&self) {
        let registry = self.inner.registry.lock();
        let counters = registry.by_name.values().filter(|m| m.kind == StatKind::Counter);
        let cells: Vec<u32> = counters.map(|m| m.cell).filter(|c| *c != NULL_CELL).collect();
        let sums: Vec<(u32, u64)> = cells.into_iter().map(|c| (c, self.inner.sum(c))).collect();
        self.inner.counter_offsets.lock().extend(sums);
    }
    // ANCHOR_END: reset_counters

    /// Every stat's current value, merged over all threads, sorted by name.
    pub fn values(&self) -> Vec<StatValue> {
        let registry = self.inner.registry.lock();
        let shards = self.inner.shards.lock().clone();
        let offsets = self.inner.counter_offsets.lock().clone();
        let sum = |cell: usize| shards.iter().fold(0u64, |a, s| a.wrapping_add(s.read(cell)));
        registry
            .by_name
            .iter()
            .map(|(name, meta)| {
                let cell = meta.cell as usize;
                let null = meta.cell == NULL_CELL;
                let (value, used) = match meta.kind {
                    StatKind::Counter => {
                        let v = if null { 0 } else { sum(cell) };
                        let offset = offsets.get(&meta.cell).copied().unwrap_or(0);
                        // Used once written, even if reset since (as Envoy's).
                        (Value::Counter(v.wrapping_sub(offset)), v > 0)
                    }
                    StatKind::Gauge => {
                        let shared = meta.gauge.as_ref();
                        let base = shared.map_or(0, |g| g.base.load(Ordering::Relaxed));
                        let delta = if null { 0 } else { sum(cell) as i64 };
                        let computed = meta.gauge_fn.as_ref().map(|f| f());
                        let v = computed.unwrap_or_else(|| base.wrapping_add(delta));
                        let used = computed.is_some()
                            || shared.is_some_and(|g| g.used.load(Ordering::Relaxed));
                        (Value::Gauge(v), used)
                    }
                    StatKind::Histogram => {
                        let mut h = HistogramValue::default();
                        if !null {
                            for (i, b) in h.buckets.iter_mut().enumerate() {
                                *b = sum(cell + i);
                            }
                            h.sum = sum(cell + BUCKETS.len() + 1);
                            h.count = sum(cell + BUCKETS.len() + 2);
                            for s in &shards {
                                h.max = h.max.max(s.read(cell + BUCKETS.len() + 3));
                                h.min = h.min.min(!s.read(cell + BUCKETS.len() + 4));
                            }
                        }
                        let used = h.count > 0;
                        (Value::Histogram(Box::new(h)), used)
                    }
                };
                StatValue {
                    name: name.clone(),
                    tag_extracted: meta.tag_extracted.clone(),
                    tags: meta.tags.clone(),
                    value,
                    used,
                }
            })
            .collect()
    }

    /// One counter's merged value by full name (for tests and tools).
    pub fn counter_value(&self, name: &str) -> Option<u64> {
        let cell = {
            let registry = self.inner.registry.lock();
            let meta = registry.by_name.get(name)?;
            if meta.kind != StatKind::Counter {
                return None;
            }
            meta.cell
        };
        Some(self.inner.counter(cell))
    }

    /// One gauge's merged value by full name.
    pub fn gauge_value(&self, name: &str) -> Option<i64> {
        self.values()
            .into_iter()
            .find(|v| v.name == name)
            .and_then(|v| if let Value::Gauge(g) = v.value { Some(g) } else { None })
    }

    fn register(
        &self,
        name: String,
        kind: StatKind,
        tag_extracted: String,
        tags: Vec<(String, String)>,
    ) -> (u32, Option<Arc<GaugeShared>>) {
        let mut registry = self.inner.registry.lock();
        if let Some(meta) = registry.by_name.get(&name) {
            if meta.kind == kind {
                return (meta.cell, meta.gauge.clone());
            }
            tracing::warn!(
                "stat {name} registered as {:?} and {kind:?}; dropping the second",
                meta.kind
            );
            return (NULL_CELL, None);
        }
        let width = if kind == StatKind::Histogram { HISTOGRAM_CELLS } else { 1 };
        let mut start = registry.next_cell;
        if start % CHUNK + width > CHUNK {
            start = start.div_ceil(CHUNK) * CHUNK;
        }
        let cell = if start + width <= self.inner.options.max_cells {
            registry.next_cell = start + width;
            start as u32
        } else {
            if !registry.warned {
                tracing::warn!(
                    "stats limit reached ({} cells): {name} and later stats are not recorded",
                    self.inner.options.max_cells
                );
                registry.warned = true;
            }
            NULL_CELL
        };
        let gauge = (kind == StatKind::Gauge).then(|| Arc::new(GaugeShared::default()));
        registry.by_name.insert(
            name,
            Meta { kind, cell, tag_extracted, tags, gauge: gauge.clone(), gauge_fn: None },
        );
        (cell, gauge)
    }
}

/// A merged value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter.
    Counter(u64),
    /// A gauge.
    Gauge(i64),
    /// A histogram.
    Histogram(Box<HistogramValue>),
}

/// One stat as read by the admin.
#[derive(Debug, Clone)]
pub struct StatValue {
    /// Full name (`cluster.backend.upstream_rq_200`).
    pub name: String,
    /// Name with tag values removed (`cluster.upstream_rq`).
    pub tag_extracted: String,
    /// Envoy tags (`envoy_cluster_name` = `backend`, `envoy_response_code` = `200`).
    pub tags: Vec<(String, String)>,
    /// The merged value.
    pub value: Value,
    /// Written at least once (`?usedonly`).
    pub used: bool,
}

impl StatValue {
    /// The kind of stat.
    pub fn kind(&self) -> StatKind {
        match self.value {
            Value::Counter(_) => StatKind::Counter,
            Value::Gauge(_) => StatKind::Gauge,
            Value::Histogram(_) => StatKind::Histogram,
        }
    }
}

/// A name prefix with its tags (Envoy's `Stats::Scope`).
#[derive(Clone, Debug)]
pub struct Scope {
    store: Store,
    prefix: String,
    extracted_prefix: String,
    tags: Vec<(String, String)>,
}

impl Scope {
    /// A child scope `<prefix><name>.`, untagged (`server.`, `circuit_breakers.default.`).
    pub fn scope(&self, name: &str) -> Scope {
        Scope {
            store: self.store.clone(),
            prefix: format!("{}{name}.", self.prefix),
            extracted_prefix: format!("{}{name}.", self.extracted_prefix),
            tags: self.tags.clone(),
        }
    }

    /// A child scope `<prefix><name>.<value>.` whose `value` segment is the
    /// tag `tag` (`cluster.<name>.` tagged `envoy_cluster_name`).
    pub fn tagged_scope(&self, name: &str, tag: &str, value: &str) -> Scope {
        let mut tags = self.tags.clone();
        tags.push((tag.to_string(), value.to_string()));
        Scope {
            store: self.store.clone(),
            prefix: format!("{}{name}.{value}.", self.prefix),
            extracted_prefix: format!("{}{name}.", self.extracted_prefix),
            tags,
        }
    }

    /// The full name of `name` in this scope.
    pub fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn register(&self, name: &str, kind: StatKind) -> (u32, Option<Arc<GaugeShared>>) {
        let (leaf, code_tag) = extract_response_code(name);
        let mut tags = self.tags.clone();
        tags.extend(code_tag);
        self.store.register(self.name(name), kind, format!("{}{leaf}", self.extracted_prefix), tags)
    }

    /// The counter `name` in this scope (the same cells every time).
    pub fn counter(&self, name: &str) -> Counter {
        let (cell, _) = self.register(name, StatKind::Counter);
        Counter { store: self.store.inner.clone(), cell }
    }

    /// The gauge `name` in this scope.
    pub fn gauge(&self, name: &str) -> Gauge {
        let (cell, shared) = self.register(name, StatKind::Gauge);
        Gauge { store: self.store.inner.clone(), cell, shared: shared.unwrap_or_default() }
    }

    /// A gauge computed when read (Envoy's gauges that mirror other state:
    /// circuit-breaker `*_open`, `membership_*`). Re-registering replaces `f`.
    pub fn gauge_fn(&self, name: &str, f: GaugeFn) {
        let (cell, _) = self.register(name, StatKind::Gauge);
        if cell == NULL_CELL {
            return;
        }
        let full = self.name(name);
        if let Some(meta) = self.store.inner.registry.lock().by_name.get_mut(&full) {
            meta.gauge_fn = Some(f);
        }
    }

    /// The histogram `name` (values in milliseconds) in this scope.
    pub fn histogram(&self, name: &str) -> Histogram {
        let (cell, _) = self.register(name, StatKind::Histogram);
        Histogram { store: self.store.inner.clone(), cell }
    }
}

/// Envoy's response-code tag extractors: `upstream_rq_200` →
/// (`upstream_rq`, `envoy_response_code=200`), `downstream_rq_2xx` →
/// (`downstream_rq_xx`, `envoy_response_code_class=2`).
fn extract_response_code(name: &str) -> (String, Option<(String, String)>) {
    for stem in ["upstream_rq_", "downstream_rq_"] {
        let Some(rest) = name.strip_prefix(stem) else { continue };
        let b = rest.as_bytes();
        if b.len() == 3 && (b'1'..=b'5').contains(&b[0]) {
            if &b[1..] == b"xx" {
                let class = rest[..1].to_string();
                return (format!("{stem}xx"), Some(("envoy_response_code_class".into(), class)));
            }
            if b[1..].iter().all(u8::is_ascii_digit) && stem == "upstream_rq_" {
                let code = rest.to_string();
                return ("upstream_rq".into(), Some(("envoy_response_code".into(), code)));
            }
        }
    }
    (name.to_string(), None)
}

/// A monotonic counter handle (Envoy's `Stats::Counter`).
#[derive(Clone)]
pub struct Counter {
    store: Arc<StoreInner>,
    cell: u32,
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter").field("cell", &self.cell).finish()
    }
}

// ANCHOR: counter_inc
impl Counter {
    /// Adds one, on this thread's shard.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`, on this thread's shard: one relaxed load and store of a
    /// cell no other thread writes.
    #[inline]
    pub fn add(&self, n: u64) {
        if self.cell == NULL_CELL {
            return;
        }
        let cell = self.cell as usize;
        self.store.with_shard(|shard| {
            if let Some(c) = shard.cell(cell) {
                bump(c, n);
            }
        });
    }

    /// The merged value over every thread (since the last reset).
    pub fn value(&self) -> u64 {
        self.store.counter(self.cell)
    }
}
// ANCHOR_END: counter_inc

// Week 3's filters count through its `StatsScope` traits; the store is the
// scope mini-envoy hands them, so their stats are ordinary ones here.
impl week3_filters::context::StatCounter for Counter {
    fn add(&self, n: u64) {
        Counter::add(self, n);
    }
}

impl week3_filters::context::StatGauge for Gauge {
    fn add(&self, n: i64) {
        Gauge::add(self, n);
    }
}

impl week3_filters::context::StatsScope for Store {
    fn counter(&self, name: &str) -> Arc<dyn week3_filters::context::StatCounter> {
        let (scope, leaf) = self.filter_scope(name);
        Arc::new(scope.counter(leaf))
    }

    fn gauge(&self, name: &str) -> Arc<dyn week3_filters::context::StatGauge> {
        let (scope, leaf) = self.filter_scope(name);
        Arc::new(scope.gauge(leaf))
    }
}

impl Store {
    /// A filter stat's scope: `http.<prefix>.…` carries the connection
    /// manager's tag, as Envoy's tag extractor (`^http\.((.*?)\.)`) gives it.
    fn filter_scope<'a>(&self, name: &'a str) -> (Scope, &'a str) {
        match name.strip_prefix("http.").and_then(|rest| rest.split_once('.')) {
            Some((prefix, leaf)) => {
                (self.root().tagged_scope("http", "envoy_http_conn_manager_prefix", prefix), leaf)
            }
            None => (self.root(), name),
        }
    }
}

/// A gauge handle (Envoy's `Stats::Gauge`).
#[derive(Clone)]
pub struct Gauge {
    store: Arc<StoreInner>,
    cell: u32,
    shared: Arc<GaugeShared>,
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauge").field("cell", &self.cell).finish()
    }
}

impl Gauge {
    #[inline]
    fn mark_used(&self) {
        if !self.shared.used.load(Ordering::Relaxed) {
            self.shared.used.store(true, Ordering::Relaxed);
        }
    }

    /// Adds `n` on this thread's shard.
    #[inline]
    pub fn add(&self, n: i64) {
        self.mark_used();
        if self.cell == NULL_CELL {
            return;
        }
        let cell = self.cell as usize;
        self.store.with_shard(|shard| {
            if let Some(c) = shard.cell(cell) {
                bump(c, n as u64);
            }
        });
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one (possibly on another thread than the `inc`).
    #[inline]
    pub fn dec(&self) {
        self.add(-1);
    }

    /// Sets the value (a gauge owned by one writer, e.g. the main thread).
    pub fn set(&self, value: i64) {
        self.mark_used();
        self.shared.base.store(value, Ordering::Relaxed);
    }

    /// The merged value.
    pub fn value(&self) -> i64 {
        self.shared.base.load(Ordering::Relaxed).wrapping_add(self.store.sum(self.cell) as i64)
    }
}

/// A histogram handle (Envoy's `Stats::Histogram`, unit milliseconds).
#[derive(Clone)]
pub struct Histogram {
    store: Arc<StoreInner>,
    cell: u32,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram").field("cell", &self.cell).finish()
    }
}

impl Histogram {
    /// Records one value (milliseconds) on this thread's shard.
    #[inline]
    pub fn record(&self, value: u64) {
        if self.cell == NULL_CELL {
            return;
        }
        let base = self.cell as usize;
        let bucket = histogram::bucket_index(value);
        self.store.with_shard(|shard| {
            for (offset, n) in [(bucket, 1), (BUCKETS.len() + 1, value), (BUCKETS.len() + 2, 1)] {
                if let Some(c) = shard.cell(base + offset) {
                    bump(c, n);
                }
            }
            // Max and `!min` (so an unwritten 0 cell means "no minimum yet").
            for (offset, v) in [(BUCKETS.len() + 3, value), (BUCKETS.len() + 4, !value)] {
                if let Some(c) = shard.cell(base + offset)
                    && v > c.load(Ordering::Relaxed)
                {
                    c.store(v, Ordering::Relaxed);
                }
            }
        });
    }

    /// Records a duration, in whole milliseconds.
    #[inline]
    pub fn record_duration(&self, d: std::time::Duration) {
        self.record(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }
}
