//! # Time, randomness and stats, injected
//!
//! Envoy's filters read the clock through the dispatcher's `TimeSource` and
//! draw random numbers from a `Random::RandomGenerator`; they never call the
//! operating system directly. mini-envoy does the same, so that every filter
//! in this crate is deterministic under test: the token buckets of the rate
//! limit filters, the percentages of the fault filter and the timings of
//! [`StreamInfo`](crate::http::StreamInfo) all come from a [`TimeSource`] and a
//! [`RandomSource`] handed to the filter factories in a [`FactoryContext`].
//!
//! Production uses [`RealTime`] and [`XorShiftRandom`]; tests use
//! [`ManualTime`] (advanced explicitly) and [`SequenceRandom`].
//!
//! Filters count what they do (Envoy's filter stats, e.g.
//! `<stat_prefix>.http_local_rate_limit.rate_limited`) through a
//! [`StatsScope`]: mini-envoy hands them its stats store, tests a
//! [`MemoryStats`] they can read back. Filters take their counters once, when
//! the filter config is compiled, and only increment them per request.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A clock (Envoy's `TimeSource`).
pub trait TimeSource: Send + Sync + fmt::Debug {
    /// Monotonic time, for durations and deadlines.
    fn now(&self) -> Instant;
    /// Wall-clock time, for logs (`%START_TIME%`).
    fn system_time(&self) -> SystemTime;
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealTime;

impl TimeSource for RealTime {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn system_time(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to (tests, simulations).
#[derive(Debug)]
pub struct ManualTime {
    base: Instant,
    base_system: SystemTime,
    offset_nanos: AtomicU64,
}

impl Default for ManualTime {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualTime {
    /// A clock standing at "now".
    pub fn new() -> Self {
        Self {
            base: Instant::now(),
            base_system: SystemTime::now(),
            offset_nanos: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_nanos.fetch_add(nanos, Ordering::SeqCst);
    }

    /// How far the clock has moved since it was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.offset_nanos.load(Ordering::SeqCst))
    }
}

impl TimeSource for ManualTime {
    fn now(&self) -> Instant {
        self.base + self.elapsed()
    }
    fn system_time(&self) -> SystemTime {
        self.base_system + self.elapsed()
    }
}

/// A source of random numbers (Envoy's `Random::RandomGenerator`).
pub trait RandomSource: Send + Sync + fmt::Debug {
    /// A uniformly distributed `u64`.
    fn random(&self) -> u64;
}

/// A fast, lock-free xorshift64* generator: good enough for percentages and
/// load balancing, not for secrets.
#[derive(Debug)]
pub struct XorShiftRandom {
    state: AtomicU64,
}

impl XorShiftRandom {
    /// A generator with a given seed (0 is replaced by a constant).
    pub fn with_seed(seed: u64) -> Self {
        Self { state: AtomicU64::new(if seed == 0 { 0x9E37_79B9_7F4A_7C15 } else { seed }) }
    }
}

impl Default for XorShiftRandom {
    /// Seeded from the clock and the address of a stack value.
    fn default() -> Self {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        Self::with_seed(t ^ (std::ptr::addr_of!(local) as u64).rotate_left(32))
    }
}

impl RandomSource for XorShiftRandom {
    fn random(&self) -> u64 {
        let step = |mut x: u64| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x
        };
        let prev = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(step(x)))
            .unwrap_or_else(|x| x);
        step(prev).wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Answers a scripted sequence, then a fixed value (tests).
#[derive(Debug, Default)]
pub struct SequenceRandom {
    queue: Mutex<VecDeque<u64>>,
    then: u64,
}

impl SequenceRandom {
    /// Answers `values` in order, then `then` forever.
    pub fn new(values: impl IntoIterator<Item = u64>, then: u64) -> Self {
        Self { queue: Mutex::new(values.into_iter().collect()), then }
    }

    /// Always answers `value`.
    pub fn fixed(value: u64) -> Self {
        Self::new([], value)
    }
}

impl RandomSource for SequenceRandom {
    fn random(&self) -> u64 {
        self.queue.lock().map_or(self.then, |mut q| q.pop_front().unwrap_or(self.then))
    }
}

/// Where logging filters write their lines.
pub trait LogSink: Send + Sync + fmt::Debug {
    /// Writes one line.
    fn log(&self, line: &str);
}

/// Logs through `tracing` (target `mini_envoy::log`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

impl LogSink for TracingSink {
    fn log(&self, line: &str) {
        tracing::info!(target: "mini_envoy::log", "{line}");
    }
}

/// Keeps lines in memory (tests).
#[derive(Debug, Default)]
pub struct MemorySink(pub Mutex<Vec<String>>);

impl MemorySink {
    /// The lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl LogSink for MemorySink {
    fn log(&self, line: &str) {
        if let Ok(mut l) = self.0.lock() {
            l.push(line.to_string());
        }
    }
}

/// A counter a filter increments (Envoy's `Stats::Counter`).
pub trait StatCounter: Send + Sync + fmt::Debug {
    /// Adds `n`.
    fn add(&self, n: u64);
    /// Adds one.
    fn inc(&self) {
        self.add(1);
    }
}

/// A gauge a filter moves (Envoy's `Stats::Gauge`).
pub trait StatGauge: Send + Sync + fmt::Debug {
    /// Adds `n` (negative to subtract).
    fn add(&self, n: i64);
}

/// Where filters get their stats (Envoy's `Stats::Scope`). Names are full
/// stat names; asking twice for one name gives the same stat.
pub trait StatsScope: Send + Sync + fmt::Debug {
    /// The counter `name`.
    fn counter(&self, name: &str) -> Arc<dyn StatCounter>;
    /// The gauge `name`.
    fn gauge(&self, name: &str) -> Arc<dyn StatGauge>;
}

/// Stats kept in memory, readable by name (tests, and the default scope of a
/// [`FactoryContext`] outside mini-envoy).
#[derive(Debug, Default)]
pub struct MemoryStats {
    counters: Mutex<BTreeMap<String, Arc<MemoryCounter>>>,
    gauges: Mutex<BTreeMap<String, Arc<MemoryGauge>>>,
}

/// A [`MemoryStats`] counter.
#[derive(Debug, Default)]
pub struct MemoryCounter(AtomicU64);

impl StatCounter for MemoryCounter {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

/// A [`MemoryStats`] gauge.
#[derive(Debug, Default)]
pub struct MemoryGauge(AtomicI64);

impl StatGauge for MemoryGauge {
    fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

impl MemoryStats {
    /// A counter's value (`None` if never registered).
    pub fn counter_value(&self, name: &str) -> Option<u64> {
        let counters = self.counters.lock().ok()?;
        counters.get(name).map(|c| c.0.load(Ordering::Relaxed))
    }

    /// A gauge's value (`None` if never registered).
    pub fn gauge_value(&self, name: &str) -> Option<i64> {
        let gauges = self.gauges.lock().ok()?;
        gauges.get(name).map(|g| g.0.load(Ordering::Relaxed))
    }

    /// Every registered counter name, sorted.
    pub fn counter_names(&self) -> Vec<String> {
        self.counters.lock().map(|c| c.keys().cloned().collect()).unwrap_or_default()
    }
}

impl StatsScope for MemoryStats {
    fn counter(&self, name: &str) -> Arc<dyn StatCounter> {
        match self.counters.lock() {
            Ok(mut counters) => counters.entry(name.to_string()).or_default().clone(),
            Err(_) => Arc::new(MemoryCounter::default()),
        }
    }

    fn gauge(&self, name: &str) -> Arc<dyn StatGauge> {
        match self.gauges.lock() {
            Ok(mut gauges) => gauges.entry(name.to_string()).or_default().clone(),
            Err(_) => Arc::new(MemoryGauge::default()),
        }
    }
}

/// What filter factories receive besides their config: the clock, the
/// random source, the log sink and the stats scope (Envoy's
/// `FactoryContext`, reduced to what filters use).
#[derive(Debug, Clone)]
pub struct FactoryContext {
    /// The clock.
    pub time: Arc<dyn TimeSource>,
    /// Random numbers.
    pub random: Arc<dyn RandomSource>,
    /// Where logging filters write.
    pub log: Arc<dyn LogSink>,
    /// Where filters register their stats.
    pub stats: Arc<dyn StatsScope>,
    /// The HTTP connection manager's stats prefix, `http.<stat_prefix>.`,
    /// for HTTP filters whose stats live under it (fault); empty elsewhere.
    pub stats_prefix: String,
}

impl Default for FactoryContext {
    fn default() -> Self {
        Self {
            time: Arc::new(RealTime),
            random: Arc::new(XorShiftRandom::default()),
            log: Arc::new(TracingSink),
            stats: Arc::new(MemoryStats::default()),
            stats_prefix: String::new(),
        }
    }
}

impl FactoryContext {
    /// A context with a manual clock, a fixed random value and an in-memory log (tests).
    pub fn manual(time: Arc<ManualTime>, random: u64) -> Self {
        Self {
            time,
            random: Arc::new(SequenceRandom::fixed(random)),
            log: Arc::new(MemorySink::default()),
            stats: Arc::new(MemoryStats::default()),
            stats_prefix: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_time_moves_only_when_advanced() {
        let t = ManualTime::new();
        let a = t.now();
        assert_eq!(t.now(), a);
        t.advance(Duration::from_millis(1500));
        assert_eq!(t.now() - a, Duration::from_millis(1500));
    }

    #[test]
    fn random_sources() {
        let r = XorShiftRandom::with_seed(7);
        let v: Vec<u64> = (0..100).map(|_| r.random()).collect();
        let distinct: std::collections::BTreeSet<_> = v.iter().collect();
        assert_eq!(distinct.len(), 100);
        let s = SequenceRandom::new([3, 4], 9);
        assert_eq!([s.random(), s.random(), s.random(), s.random()], [3, 4, 9, 9]);
    }
}
