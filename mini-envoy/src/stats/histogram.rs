//! Histogram buckets and quantiles (Envoy's default bucket bounds and
//! `supported_quantiles`).

/// Envoy's default histogram bucket upper bounds, in milliseconds.
pub const BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The quantiles `/stats` prints, in percent (Envoy's `supported_quantiles`).
pub const SUPPORTED_QUANTILES: [f64; 10] =
    [0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 100.0];

/// The bucket a value falls in: the first bound `>=` it (Prometheus `le`),
/// or `BUCKETS.len()` for the overflow bucket.
pub(super) fn bucket_index(value: u64) -> usize {
    let v = value as f64;
    BUCKETS.iter().position(|b| v <= *b).unwrap_or(BUCKETS.len())
}

/// A histogram merged over every thread.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramValue {
    /// Samples per bucket (not cumulative); the last is the overflow bucket.
    pub buckets: [u64; BUCKETS.len() + 1],
    /// Sum of the samples.
    pub sum: u64,
    /// Number of samples.
    pub count: u64,
    /// Largest sample (0 when empty).
    pub max: u64,
    /// Smallest sample (`u64::MAX` when empty).
    pub min: u64,
}

impl Default for HistogramValue {
    fn default() -> Self {
        Self { buckets: [0; BUCKETS.len() + 1], sum: 0, count: 0, max: 0, min: u64::MAX }
    }
}

impl HistogramValue {
    /// Samples `<= BUCKETS[i]`, for each bound (Prometheus' cumulative buckets).
    pub fn cumulative(&self) -> [u64; BUCKETS.len()] {
        let mut out = [0; BUCKETS.len()];
        let mut acc = 0u64;
        for (o, b) in out.iter_mut().zip(self.buckets.iter()) {
            acc = acc.saturating_add(*b);
            *o = acc;
        }
        out
    }

    /// The `q`-th percentile (0..=100), interpolated linearly inside its
    /// bucket and clamped to the observed min/max; `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let (min, max) = (self.min as f64, self.max as f64);
        let rank = (q / 100.0).clamp(0.0, 1.0) * self.count as f64;
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (below + n) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] }.max(min);
                let upper = BUCKETS.get(i).copied().unwrap_or(max).min(max);
                let fraction = (rank - below as f64) / n as f64;
                return Some((lower + (upper - lower) * fraction).clamp(min, max));
            }
            below += n;
        }
        Some(max)
    }
}
