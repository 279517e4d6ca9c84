//! DrainManager with paused tokio time: a drain completes as soon as the last
//! connection closes, and force-closes what is left at the deadline.

use std::time::Duration;

use tokio::time::Instant;
use week4_xds::drain::{DrainConfig, DrainManager, DrainOutcome, DrainStrategy};

fn manager(secs: u64) -> DrainManager {
    DrainManager::new(DrainConfig {
        drain_time: Duration::from_secs(secs),
        strategy: DrainStrategy::Gradual,
    })
}

#[tokio::test(start_paused = true)]
async fn drain_completes_early_when_connections_close() {
    let m = manager(600);
    let a = m.track();
    let b = m.track();
    let start = Instant::now();
    let drainer = tokio::spawn({
        let m = m.clone();
        async move { m.drain().await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(a);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!drainer.is_finished());
    drop(b);
    let outcome = drainer.await.expect("drain task");
    assert_eq!(outcome, DrainOutcome::Completed);
    assert_eq!(
        Instant::now() - start,
        Duration::from_secs(7),
        "ended when the last connection closed"
    );
}

#[tokio::test(start_paused = true)]
async fn drain_force_closes_at_the_deadline() {
    let m = manager(30);
    let mut stubborn = m.track();
    let start = Instant::now();
    let conn = tokio::spawn(async move {
        stubborn.force_closed().await;
        Instant::now()
        // `stubborn` drops here: the connection task closed its socket.
    });
    let outcome = m.drain().await;
    assert_eq!(outcome, DrainOutcome::ForcedClose { remaining: 1 });
    assert_eq!(Instant::now() - start, Duration::from_secs(30));
    let closed_at = conn.await.expect("connection task");
    assert_eq!(closed_at - start, Duration::from_secs(30));
    m.wait_idle().await;
    assert_eq!(m.active_connections(), 0);
}

#[tokio::test(start_paused = true)]
async fn drain_with_no_connections_is_immediate_and_accept_loop_is_told() {
    let m = manager(600);
    let accept_loop = tokio::spawn({
        let m = m.clone();
        async move { m.stopped_accepting().await }
    });
    tokio::task::yield_now().await;
    assert!(!accept_loop.is_finished());
    let start = Instant::now();
    assert_eq!(m.drain().await, DrainOutcome::Completed);
    assert_eq!(Instant::now(), start);
    accept_loop.await.expect("accept loop woke up");
}

#[tokio::test(start_paused = true)]
async fn server_force_close_reaches_listener_connections() {
    let server = manager(10);
    let listener = server.child();
    let mut conn = listener.track();
    let task = tokio::spawn(async move { conn.force_closed().await });
    assert_eq!(
        server.drain().await,
        DrainOutcome::Completed,
        "the server itself holds no connections"
    );
    server.force_close();
    tokio::time::timeout(Duration::from_secs(1), task).await.expect("woken").expect("task");
}

#[tokio::test(start_paused = true)]
async fn a_graceful_drain_keeps_accepting_until_told_and_wakes_connections() {
    let server = manager(600);
    let listener = server.child();
    let waiter = tokio::spawn({
        let l = listener.clone();
        async move { l.wait_drain_started().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "no drain yet");
    listener.start_draining_connections(Instant::now().into_std());
    waiter.await.expect("woken by the drain");
    assert!(listener.is_accepting(), "the graceful drain period still accepts");
    assert!(listener.drain_close(Instant::now().into_std() + Duration::from_secs(600), 0));
    listener.stop_accepting();
    assert!(!listener.is_accepting());
    listener.stopped_accepting().await;

    // A listener also wakes when the server drains.
    let other = server.child();
    let woken = tokio::spawn({
        let o = other.clone();
        async move { o.wait_drain_started().await }
    });
    server.start_drain_sequence(Instant::now().into_std());
    woken.await.expect("woken by the server's drain");
}

#[tokio::test(start_paused = true)]
async fn a_connection_learns_of_its_listeners_or_the_servers_drain_and_waits_again_cheaply() {
    let server = manager(600);
    let (a, b) = (server.child(), server.child());
    let (on_a, on_b) = (a.track(), b.track());
    // Waiting many times (a connection waits per request) and dropping the
    // wait each time must not miss the start.
    for _ in 0..3 {
        let waited =
            tokio::time::timeout(Duration::from_millis(10), on_a.drain_started_owned()).await;
        assert!(waited.is_err(), "nothing drains yet");
    }
    a.start_drain_sequence(Instant::now().into_std());
    tokio::time::timeout(Duration::from_secs(1), on_a.drain_started_owned())
        .await
        .expect("own drain");
    let waited = tokio::time::timeout(Duration::from_millis(10), on_b.drain_started_owned()).await;
    assert!(waited.is_err(), "a sibling listener's drain is not b's");
    server.start_drain_sequence(Instant::now().into_std());
    tokio::time::timeout(Duration::from_secs(1), on_b.drain_started_owned())
        .await
        .expect("server's");
}
