//! The course: every exercise in order, with its stub file, the real code it
//! is a small version of, a hint, and its checks.

use std::fmt;

use crate::checks::learner as l;

/// One named check of an exercise: a function that panics on failure.
#[derive(Clone, Copy)]
pub struct Check {
    /// The check's name (its function name in `checks/weekN/NAME.rs`).
    pub name: &'static str,
    /// Runs the check against the learner's code.
    pub run: fn(),
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// One exercise.
#[derive(Debug, Clone, Copy)]
pub struct Exercise {
    /// The name the runner takes (`verify NAME`, `hint NAME`).
    pub name: &'static str,
    /// The course week (1-4).
    pub week: u8,
    /// What is built.
    pub title: &'static str,
    /// The stub to edit, from the repository root.
    pub file: &'static str,
    /// The mini-envoy code this exercise is a small version of.
    pub mirrors: &'static str,
    /// A nudge for when you are stuck.
    pub hint: &'static str,
    /// The checks, bound to the stub.
    pub checks: &'static [Check],
}

/// The exercises in course order.
pub const EXERCISES: &[Exercise] = &[
    Exercise {
        name: "route_match",
        week: 1,
        title: "virtual host and route matching",
        file: "exercises/src/week1/route_match.rs",
        mirrors: "week1-core/src/router/mod.rs (find_virtual_host, route) and router/matchers.rs",
        hint: "Score each domain against the lower-cased host: exact (3, len), `*suffix` (2, suffix len) if the host is strictly longer and ends with it, `prefix*` (1, prefix len) likewise; keep the highest (rank, length). Try the host with its port first, then without (split at the last ':' when all after it are digits), then `*`. For routes, cut the path at '?' and use `Iterator::find`.",
        checks: l::route_match::CHECKS,
    },
    Exercise {
        name: "wrr",
        week: 1,
        title: "weighted round robin on an EDF schedule",
        file: "exercises/src/week1/wrr.rs",
        mirrors: "week1-core/src/cluster/edf.rs and round_robin.rs",
        hint: "Keep one (deadline, order, host) entry per healthy host. A pick is the \
               entry with the smallest (deadline, order); then add 1.0/weight to its \
               deadline and give it the next order number. Compare f64s with total_cmp. \
               For the context: pick, then loop at most host_selection_retry_count() \
               times while should_select_another_host(&host) says so.",
        checks: l::wrr::CHECKS,
    },
    Exercise {
        name: "ring_hash",
        week: 1,
        title: "a consistent-hash ring with Envoy's keys",
        file: "exercises/src/week1/ring_hash.rs",
        mirrors: "week1-core/src/cluster/ring_hash.rs",
        hint: "Collect (xxh64(format!(\"{}_{i}\", host.hash_key()).as_bytes(), 0), host index) pairs, sort them, and answer a lookup with `partition_point(|&(h, _)| h < hash)`; an index equal to the length wraps to 0.",
        checks: l::ring_hash::CHECKS,
    },
    Exercise {
        name: "circuit_breaker",
        week: 1,
        title: "a circuit-breaker resource with an RAII guard",
        file: "exercises/src/week1/circuit_breaker.rs",
        mirrors: "week1-core/src/cluster/circuit_breaker.rs",
        hint: "`AtomicU64::fetch_update` (a compare-exchange loop) with a closure returning `(c < max).then_some(c + 1)` admits without ever overshooting. The guard holds an `Arc<Resource>` and its `Drop` does `fetch_sub(1)`.",
        checks: l::circuit_breaker::CHECKS,
    },
    Exercise {
        name: "tls_slot",
        week: 2,
        title: "a thread-local slot: config to workers without locks",
        file: "exercises/src/week2/tls_slot.rs",
        mirrors: "week2-threads/src/tls.rs",
        hint: "One `mpsc::channel` per worker. `set` makes one `Arc` and sends `Arc::clone` to every sender (ignore send errors). `run_posted` loops on `try_recv`, replacing `current` each time.",
        checks: l::tls_slot::CHECKS,
    },
    Exercise {
        name: "timer_heap",
        week: 2,
        title: "the event loop's timer queue with lazy cancellation",
        file: "exercises/src/week2/timer_heap.rs",
        mirrors: "week2-threads/src/dispatcher/timer.rs",
        hint: "Keep `BinaryHeap<Reverse<(Instant, TimerId)>>` plus a `HashSet` of armed ids. `cancel` only removes from the set. Before peeking, pop entries whose id is not in the set. `expire` pops while the top's deadline <= now.",
        checks: l::timer_heap::CHECKS,
    },
    Exercise {
        name: "post_queue",
        week: 2,
        title: "posting callbacks to a loop with one wake-up per batch",
        file: "exercises/src/week2/post_queue.rs",
        mirrors: "week2-threads/src/dispatcher/post.rs",
        hint: "In `post`, push under the lock and note `len() == 1` (it was empty); release the lock, then wake. In `run_posted`, `std::mem::take` the Vec while holding the lock, drop the guard, then run the batch.",
        checks: l::post_queue::CHECKS,
    },
    Exercise {
        name: "deferred_delete",
        week: 2,
        title: "deferred deletion at the end of a loop iteration",
        file: "exercises/src/week2/deferred_delete.rs",
        mirrors: "week2-threads/src/dispatcher/mod.rs (deferred_delete) and mio_dispatcher.rs",
        hint: "A `RefCell<Vec<Box<dyn Any>>>`. In `clear`, `std::mem::take(&mut *self.list.borrow_mut())` in its own statement so the borrow ends before anything is dropped; then drop the batch in order.",
        checks: l::deferred_delete::CHECKS,
    },
    Exercise {
        name: "filter_chain",
        week: 3,
        title: "the FilterManager's stop and continue",
        file: "exercises/src/week3/filter_chain.rs",
        mirrors: "week3-filters/src/http/filter_manager.rs",
        hint: "Remember the stopped filter's index with the headers and a Buffer of waiting data. decode_data runs filters 0..stopped (or all), then appends to the waiting buffer or to the upstream. continue_decoding: run headers from stopped + 1, find the next stop (or the end), then run the waiting data from stopped up to that point.",
        checks: l::filter_chain::CHECKS,
    },
    Exercise {
        name: "cors",
        week: 3,
        title: "a CORS filter answering preflights",
        file: "exercises/src/week3/cors.rs",
        mirrors: "week3-filters/src/http/filters/cors.rs",
        hint: "Take `origin` with `headers.get_str(\"origin\")` and check it against the list (or `*`). A preflight is `headers.method() == Some(\"OPTIONS\")` plus `contains(\"access-control-request-method\")`: build a new HeaderMap with `try_insert`. Otherwise remember the origin in the filter for `on_response_headers`.",
        checks: l::cors::CHECKS,
    },
    Exercise {
        name: "token_bucket",
        week: 3,
        title: "the local rate limiter's token bucket",
        file: "exercises/src/week3/token_bucket.rs",
        mirrors: "week3-filters/src/token_bucket.rs",
        hint: "fills = elapsed.as_nanos() / fill_interval.as_nanos() (elapsed via `saturating_duration_since`). Add fills * tokens_per_fill capped at max, and advance last_fill by fills * fill_interval, not to now, so the partial interval is kept.",
        checks: l::token_bucket::CHECKS,
    },
    Exercise {
        name: "chunked",
        week: 3,
        title: "an incremental chunked transfer-encoding decoder",
        file: "exercises/src/week3/chunked.rs",
        mirrors: "week3-filters/src/http1/body.rs",
        hint: "Keep a state (Size, Data(remaining), DataCrlf, Trailers, Done) and loop until a state needs more input. To read a line, look for b'\\n' with `byte_at` within MAX_LINE bytes; if absent return Ok(false) (or LineTooLong); else `linearize(n).to_vec()`, `drain(n)`, and require the line to end in \"\\r\\n\". Move data with `body.move_from_n(input, n)`.",
        checks: l::chunked::CHECKS,
    },
    Exercise {
        name: "delta",
        week: 4,
        title: "a Delta xDS subscription",
        file: "exercises/src/week4/delta.rs",
        mirrors: "week4-xds/src/delta.rs",
        hint: "`BTreeSet::insert` / `remove` return whether they changed the set: filter the names with them and collect into a BTreeSet for sorted, unique lists. `DeltaDiscoveryRequest { type_url, ..Default::default() }` keeps the other fields empty.",
        checks: l::delta::CHECKS,
    },
    Exercise {
        name: "backoff",
        week: 4,
        title: "jittered exponential backoff for reconnects",
        file: "exercises/src/week4/backoff.rs",
        mirrors: "week4-xds/src/backoff.rs",
        hint: "Loop `attempt` times doing `interval = interval.saturating_mul(2).min(max)`, and break as soon as that no longer changes it (so `u32::MAX` attempts stay cheap). For the delay, turn the interval into u64 nanoseconds with `u64::try_from(d.as_nanos())`, at least 1, and take `random % nanos`.",
        checks: l::backoff::CHECKS,
    },
    Exercise {
        name: "sotw_ack_nack",
        week: 4,
        title: "SotW xDS ACK and NACK",
        file: "exercises/src/week4/sotw_ack_nack.rs",
        mirrors: "week4-xds/src/sotw.rs",
        hint: "Build every request from one helper taking (nonce, error_detail) that fills version_info with the last *accepted* version. On Ok, store response.version_info first, then build the ACK; on Err, build the NACK with `Status::invalid_argument(reason)`.",
        checks: l::sotw_ack_nack::CHECKS,
    },
    Exercise {
        name: "drain",
        week: 4,
        title: "gradual connection draining",
        file: "exercises/src/week4/drain.rs",
        mirrors: "week4-xds/src/drain.rs (DrainManager::drain_close)",
        hint: "`started.get_or_insert(now)` makes start idempotent. Convert with `as_millis()` and `u64::try_from(..).unwrap_or(u64::MAX)`, and `now.saturating_duration_since(start)` for the elapsed time.",
        checks: l::drain::CHECKS,
    },
];

/// The exercise called `name`.
pub fn find(name: &str) -> Option<&'static Exercise> {
    EXERCISES.iter().find(|e| e.name == name)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::path::Path;

    use super::*;
    use crate::runner::{CHECK_TIME_LIMIT, run_check};

    fn repo_root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root")
    }

    #[test]
    fn the_course_is_complete_and_consistent() {
        assert!(EXERCISES.len() >= 16, "at least four exercises per week");
        for week in 1..=4 {
            let n = EXERCISES.iter().filter(|e| e.week == week).count();
            assert!(n >= 4, "week {week} has {n} exercises");
        }
        assert!(EXERCISES.windows(2).all(|w| w[0].week <= w[1].week), "course order");
        let names: HashSet<_> = EXERCISES.iter().map(|e| e.name).collect();
        assert_eq!(names.len(), EXERCISES.len(), "names are unique");
        for e in EXERCISES {
            assert!(e.checks.len() >= 3, "{}: at least three checks", e.name);
            assert!(!e.hint.is_empty() && !e.title.is_empty(), "{}", e.name);
            let stub = std::fs::read_to_string(repo_root().join(e.file))
                .unwrap_or_else(|err| panic!("{}: {}: {err}", e.name, e.file));
            assert!(
                stub.starts_with("//! # Exercise `"),
                "{}: the stub opens with its task",
                e.name
            );
            assert!(stub.contains(&format!("verify {}", e.name)), "{}: says how to verify", e.name);
            let mirrored = e.mirrors.split_whitespace().next().unwrap_or_default();
            assert!(
                repo_root().join(mirrored).is_file(),
                "{}: mirrors {mirrored}, which is gone",
                e.name
            );
            let solution = e.file.replace("exercises/src/", "exercises/solutions/");
            assert!(repo_root().join(&solution).is_file(), "{}: no {solution}", e.name);
            assert!(
                repo_root().join(e.file.replace("exercises/src/", "exercises/checks/")).is_file(),
                "{}: no checks file",
                e.name
            );
        }
    }

    #[test]
    fn each_weeks_review_chapter_lists_its_exercises() {
        for week in 1..=4u8 {
            let chapter = format!("book/src/week{week}/review.md");
            let text = std::fs::read_to_string(repo_root().join(&chapter)).expect("the chapter");
            let listed: Vec<&str> = text
                .lines()
                .filter_map(|l| l.strip_prefix("| `")?.split_once('`').map(|(name, _)| name))
                .collect();
            let course: Vec<&str> =
                EXERCISES.iter().filter(|e| e.week == week).map(|e| e.name).collect();
            assert_eq!(listed, course, "{chapter}'s exercise table, in course order");
        }
    }

    /// The teeth check: against the untouched stubs (`todo!()`), every check of
    /// every exercise fails. A check that passes on a stub proves nothing.
    /// (This test is for the repository as shipped: once you solve an exercise
    /// in `src/`, it fails for that exercise, and the runner is what you use.)
    #[test]
    fn every_check_fails_on_the_untouched_stubs() {
        let mut passing = Vec::new();
        for e in EXERCISES {
            for check in e.checks {
                if run_check(check, CHECK_TIME_LIMIT).is_ok() {
                    passing.push(format!("{}::{}", e.name, check.name));
                }
            }
        }
        assert!(passing.is_empty(), "checks that pass on a todo!() stub: {passing:?}");
    }
}
