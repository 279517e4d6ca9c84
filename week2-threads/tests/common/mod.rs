//! Helpers shared by the integration tests.

use std::thread;
use std::time::Duration;

use week2_threads::dispatcher::Dispatcher;

/// How long a test's dispatcher may run before the watchdog calls it a deadlock.
/// A guard only: no test waits for it to pass.
pub const DEADLOCK_GUARD: Duration = Duration::from_secs(30);

/// Runs `d` until it exits; a watchdog thread forces an exit (and fails the test)
/// if the loop is still running after [`DEADLOCK_GUARD`].
pub fn run_guarded<D: Dispatcher>(d: &D) {
    let handle = d.handle();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
    let timed_out = thread::scope(|s| {
        let watchdog = s.spawn(move || {
            let timed_out = done_rx.recv_timeout(DEADLOCK_GUARD).is_err();
            if timed_out {
                handle.exit();
            }
            timed_out
        });
        let result = d.run();
        let _ = done_tx.send(());
        result.expect("run");
        watchdog.join().expect("watchdog")
    });
    assert!(!timed_out, "dispatcher did not exit within {DEADLOCK_GUARD:?}");
}
