//! Checks of `tls_slot`.

use std::sync::Arc;
use std::thread;

use super::week2::tls_slot::slot;

#[derive(Debug, PartialEq)]
struct Routes(u32);

checks! {
    fn workers_see_a_set_only_after_their_loop_runs() {
        let (writer, mut workers) = slot::<Routes>(2);
        assert_eq!(workers.len(), 2);
        assert!(workers[0].get().is_none());
        writer.set(Routes(1));
        assert!(workers[0].get().is_none(), "not before the worker runs its posts");
        assert_eq!(workers[0].run_posted(), 1);
        assert_eq!(**workers[0].get().unwrap(), Routes(1));
        assert!(workers[1].get().is_none(), "workers may briefly disagree");
        workers[1].run_posted();
        assert!(Arc::ptr_eq(workers[0].get().unwrap(), workers[1].get().unwrap()), "one shared value");
    }

    fn updates_apply_in_order_and_old_values_are_freed() {
        let (writer, mut workers) = slot::<Routes>(2);
        writer.set(Routes(1));
        for w in &mut workers {
            w.run_posted();
        }
        let v1 = Arc::downgrade(workers[0].get().unwrap());
        writer.set(Routes(2));
        writer.set(Routes(3));
        assert_eq!(workers[0].run_posted(), 2);
        assert_eq!(**workers[0].get().unwrap(), Routes(3));
        assert!(v1.upgrade().is_some(), "worker 1 still holds version 1");
        workers[1].run_posted();
        assert!(v1.upgrade().is_none(), "freed once every worker moved on");
    }

    fn workers_on_their_own_threads() {
        let (writer, workers) = slot::<Routes>(3);
        writer.set(Routes(7));
        drop(writer);
        let seen: Vec<u32> = workers
            .into_iter()
            .map(|mut w| {
                thread::spawn(move || {
                    w.run_posted();
                    w.get().map(|r| r.0)
                })
            })
            .map(|t| t.join().expect("worker").expect("a value"))
            .collect();
        assert_eq!(seen, vec![7, 7, 7]);
        // A writer whose workers are gone still works.
        let (writer, workers) = slot::<Routes>(1);
        drop(workers);
        writer.set(Routes(1));
    }
}
