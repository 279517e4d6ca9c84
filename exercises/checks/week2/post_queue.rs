//! Checks of `post_queue`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use super::week2::post_queue::PostQueue;

fn counting_queue() -> (PostQueue, Arc<AtomicUsize>) {
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = Arc::clone(&wakes);
    (
        PostQueue::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        }),
        wakes,
    )
}

checks! {
    fn a_burst_costs_one_wake_up() {
        let (q, wakes) = counting_queue();
        let ran = Arc::new(Mutex::new(Vec::new()));
        for i in 0..100 {
            let ran = Arc::clone(&ran);
            q.post(move || ran.lock().unwrap().push(i));
        }
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert!(ran.lock().unwrap().is_empty(), "nothing runs before run_posted");
        assert_eq!(q.run_posted(), 100);
        assert_eq!(*ran.lock().unwrap(), (0..100).collect::<Vec<_>>(), "FIFO");
        assert_eq!(q.run_posted(), 0);
        q.post(|| {});
        assert_eq!(wakes.load(Ordering::SeqCst), 2, "empty again: the next post wakes");
    }

    fn a_callback_posted_while_running_waits_for_the_next_round() {
        let (q, wakes) = counting_queue();
        let count = Arc::new(AtomicUsize::new(0));
        let (q2, c2) = (q.clone(), Arc::clone(&count));
        q.post(move || {
            c2.fetch_add(1, Ordering::SeqCst);
            let c3 = Arc::clone(&c2);
            q2.post(move || { c3.fetch_add(10, Ordering::SeqCst); });
        });
        assert_eq!(q.run_posted(), 1, "the re-posted callback is not in this batch");
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(wakes.load(Ordering::SeqCst), 2, "the re-post woke the loop");
        assert_eq!(q.run_posted(), 1);
        assert_eq!(count.load(Ordering::SeqCst), 11);
    }

    fn posts_from_many_threads_all_run_once() {
        let (q, _wakes) = counting_queue();
        let count = Arc::new(AtomicUsize::new(0));
        let posters: Vec<_> = (0..4)
            .map(|_| {
                let (q, count) = (q.clone(), Arc::clone(&count));
                thread::spawn(move || {
                    for _ in 0..250 {
                        let count = Arc::clone(&count);
                        q.post(move || { count.fetch_add(1, Ordering::SeqCst); });
                    }
                })
            })
            .collect();
        let mut ran = 0;
        for p in posters {
            p.join().expect("poster");
            ran += q.run_posted();
        }
        ran += q.run_posted();
        assert_eq!(ran, 1000);
        assert_eq!(count.load(Ordering::SeqCst), 1000);
    }
}
