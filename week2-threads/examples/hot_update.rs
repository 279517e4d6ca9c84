//! The course's "config hot update" scenario.
//!
//! The main thread publishes route-table versions 1..=N through a thread-local
//! slot while 4 workers (tokio dispatchers, as in mini-envoy) read it in a tight
//! loop from local tasks. Every read must see a complete table, and each worker's
//! versions must only move forward. Run it with:
//!
//! ```text
//! cargo run -p week2-threads --example hot_update
//! ```

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use week2_threads::dispatcher::{Dispatcher, DispatcherHandle, MioDispatcher, TokioDispatcher};
use week2_threads::tls::{Instance, Slot};
use week2_threads::worker::{WorkerConfig, WorkerPool};

/// One route of a table; every field is derived from the table's version, so a
/// table mixing two versions is detectable.
#[derive(Debug)]
pub struct Route {
    pub prefix: String,
    pub cluster: String,
    pub version: u64,
}

/// An immutable route table, published whole.
#[derive(Debug)]
pub struct RouteTable {
    pub version: u64,
    pub routes: Vec<Route>,
}

impl RouteTable {
    pub fn build(version: u64) -> Self {
        let routes = (0..Self::route_count(version))
            .map(|i| Route {
                prefix: format!("/svc{i}"),
                cluster: format!("cluster-{i}-v{version}"),
                version,
            })
            .collect();
        Self { version, routes }
    }

    fn route_count(version: u64) -> usize {
        16 + (version % 8) as usize
    }

    /// Whether every route belongs to this table's version.
    pub fn is_complete(&self) -> bool {
        self.routes.len() == Self::route_count(self.version)
            && self.routes.iter().enumerate().all(|(i, r)| {
                r.version == self.version
                    && r.prefix == format!("/svc{i}")
                    && r.cluster == format!("cluster-{i}-v{}", self.version)
            })
    }
}

/// Knobs of the scenario; every loop is bounded.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub workers: usize,
    pub versions: u64,
    /// How many versions may be on their way to the workers at once.
    pub in_flight: u64,
    /// A reader stops once it saw the last version and read at least this often.
    pub min_reads: u64,
    /// Hard cap on a reader's iterations.
    pub max_reads: u64,
    /// How long the main thread waits for the readers before giving up.
    pub deadline: Duration,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            workers: 4,
            versions: 200,
            in_flight: 4,
            min_reads: 10_000,
            max_reads: 20_000_000,
            deadline: Duration::from_secs(60),
        }
    }
}

/// What one worker observed.
#[derive(Debug, Clone, Default)]
pub struct ReaderReport {
    pub worker: String,
    pub reads: u64,
    /// Reads that saw a table mixing versions (must be 0).
    pub torn: u64,
    /// Reads that saw an older version than the previous read (must be 0).
    pub backwards: u64,
    /// How many different versions this worker saw.
    pub versions_seen: u64,
    pub last_version: u64,
}

// ANCHOR: reader
/// A worker's reader: a local task reading the slot as fast as it can, yielding
/// between reads so the worker's loop can apply the posted updates.
async fn read_continuously(slot: Slot<Arc<RouteTable>>, scenario: Scenario) -> ReaderReport {
    let mut report = ReaderReport {
        worker: std::thread::current().name().unwrap_or("?").to_owned(),
        ..ReaderReport::default()
    };
    while report.reads < scenario.max_reads {
        if let Ok(table) = slot.get() {
            report.reads += 1;
            if !table.is_complete() {
                report.torn += 1;
            }
            if table.version < report.last_version {
                report.backwards += 1;
            }
            if table.version != report.last_version || report.versions_seen == 0 {
                report.versions_seen += 1;
            }
            report.last_version = table.version;
        }
        if report.last_version == scenario.versions && report.reads >= scenario.min_reads {
            break;
        }
        tokio::task::yield_now().await;
    }
    report
}
// ANCHOR_END: reader

// ANCHOR: publish
/// Publishes `version` to every thread; when it has reached all of them, the
/// completion (on the main thread) publishes `version + in_flight`. The last
/// version's completion stops the main loop.
fn publish(
    routes: &Slot<Arc<RouteTable>>,
    version: u64,
    scenario: &Scenario,
    main: DispatcherHandle,
) -> Result<(), Box<dyn Error>> {
    let table = Arc::new(RouteTable::build(version));
    let (next_routes, sc) = (routes.clone(), scenario.clone());
    routes.set_with_completion(
        move || table.clone(),
        move |reached_all| {
            if let Err(err) = reached_all {
                eprintln!("version {version}: {err}");
            }
            let next = version + sc.in_flight;
            if next <= sc.versions {
                if let Err(err) = publish(&next_routes, next, &sc, main.clone()) {
                    eprintln!("cannot publish version {next}: {err}");
                    main.exit();
                }
            } else if version == sc.versions {
                main.exit();
            }
        },
    )?;
    Ok(())
}
// ANCHOR_END: publish

/// Runs the main loop until something exits it, or for at most `deadline`.
fn run_main_until_exit(main: &MioDispatcher, deadline: Duration) -> Result<(), Box<dyn Error>> {
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    let handle = main.handle();
    let timed_out = std::thread::scope(|s| {
        let watchdog = s.spawn(move || {
            let timed_out = done_rx.recv_timeout(deadline).is_err();
            if timed_out {
                handle.exit();
            }
            timed_out
        });
        let result = main.run();
        let _ = done_tx.send(());
        result.map(|()| watchdog.join().unwrap_or(true))
    })?;
    if timed_out {
        return Err("the main loop did not finish publishing in time".into());
    }
    Ok(())
}

/// Runs the scenario and returns one report per worker.
pub fn run_scenario(scenario: &Scenario) -> Result<Vec<ReaderReport>, Box<dyn Error>> {
    let main = MioDispatcher::new("main_thread")?;
    let mut pool = WorkerPool::start_tokio(&WorkerConfig::new(scenario.workers), main.handle())?;
    let tls = Instance::new(main.handle());
    for handle in pool.handles() {
        tls.register_thread(handle)?;
    }
    let routes = tls.allocate_slot::<Arc<RouteTable>>()?;
    let first = Arc::new(RouteTable::build(0));
    routes.set(move || first.clone())?;

    // Start one reader task per worker.
    let (report_tx, report_rx) = crossbeam_channel::unbounded();
    let (slot, sc) = (routes.clone(), scenario.clone());
    pool.post_to_all(move || {
        let (slot, sc, tx) = (slot.clone(), sc.clone(), report_tx.clone());
        if let Some(worker) = TokioDispatcher::current() {
            let spawned = worker.spawn_local(async move {
                let _ = tx.send(read_continuously(slot, sc).await);
            });
            if let Err(err) = spawned {
                eprintln!("cannot start reader: {err}");
            }
        }
    })?;

    // Publish from the main loop, keeping up to `in_flight` versions travelling at
    // once: workers briefly disagree, yet each sees the versions in order.
    for version in 1..=scenario.in_flight.min(scenario.versions) {
        publish(&routes, version, scenario, main.handle())?;
    }
    run_main_until_exit(&main, scenario.deadline)?;

    let mut reports = Vec::with_capacity(scenario.workers);
    for _ in 0..scenario.workers {
        reports.push(report_rx.recv_timeout(scenario.deadline)?);
    }
    reports.sort_by(|a, b| a.worker.cmp(&b.worker));
    pool.stop()?;
    Ok(reports)
}

#[allow(dead_code)] // unused when the test suite includes this file
fn main() -> Result<(), Box<dyn Error>> {
    let scenario = Scenario::default();
    println!(
        "publishing {} route-table versions to {} workers...",
        scenario.versions, scenario.workers
    );
    let reports = run_scenario(&scenario)?;
    let mut ok = true;
    for r in &reports {
        println!(
            "{}: {} reads, {} versions seen, last v{}, torn reads {}, backwards steps {}",
            r.worker, r.reads, r.versions_seen, r.last_version, r.torn, r.backwards
        );
        ok &= r.torn == 0 && r.backwards == 0 && r.last_version == scenario.versions;
    }
    if !ok {
        return Err("a worker saw a torn table or went backwards".into());
    }
    println!("every read saw a complete table; every worker only moved forward");
    Ok(())
}
