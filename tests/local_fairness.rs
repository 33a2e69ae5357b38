//! The message loop's cooperative yield: an actor working through a backlog
//! gives its worker up every 128 messages, so other tasks on the worker run
//! in between; an actor that found its mailbox empty has given the worker
//! up already, and starts counting again (an actor fed one message at a
//! time never yields for nothing).
//!
//! Each test runs on one thread beside a watcher task that the actor wakes
//! at every message. The watcher runs only when the actor gives the thread
//! up (yields or waits for mail), and notes how many messages were handled
//! by then.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axactor::{SpawnConfig, System, actor};
use tokio::sync::Notify;

/// Counts its messages and wakes the watcher at each.
#[derive(Debug)]
pub struct Counter {
    handled: Arc<AtomicUsize>,
    watcher: Arc<Notify>,
}

#[actor]
impl Counter {
    #[msg]
    fn work(&mut self) {
        self.handled.fetch_add(1, Ordering::SeqCst);
        self.watcher.notify_one();
    }
}

/// Queues each backlog whole and lets the actor drain it before queueing
/// the next; returns the counts of handled messages at which the actor gave
/// the thread up, in order (each once).
async fn counts_at_turns_given_up(backlogs: &[usize]) -> Vec<usize> {
    let system = System::new();
    let (handled, wake) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
    let counter = system
        .spawn_with(
            {
                let (handled, wake) = (Arc::clone(&handled), Arc::clone(&wake));
                move || Counter { handled: Arc::clone(&handled), watcher: Arc::clone(&wake) }
            },
            SpawnConfig::new("counter", 1024),
        )
        .expect("spawn inside a runtime")
        .actor();
    let done = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (handled, wake, done) = (Arc::clone(&handled), Arc::clone(&wake), Arc::clone(&done));
        async move {
            let mut seen = Vec::new();
            loop {
                wake.notified().await;
                if done.load(Ordering::SeqCst) {
                    return seen;
                }
                // A wake stored while the watcher ran brings it back at once.
                let now = handled.load(Ordering::SeqCst);
                if seen.last() != Some(&now) {
                    seen.push(now);
                }
            }
        }
    });
    let mut total = 0;
    for &n in backlogs {
        for _ in 0..n {
            counter.work().expect("room in the mailbox");
        }
        total += n;
        while handled.load(Ordering::SeqCst) < total {
            tokio::task::yield_now().await;
        }
    }
    done.store(true, Ordering::SeqCst);
    wake.notify_one();
    let seen = watcher.await.expect("the watcher ends");
    system.shutdown_graceful(std::time::Duration::from_secs(1)).await;
    seen
}

#[tokio::test]
async fn a_backlog_is_handled_128_messages_at_a_time() {
    assert_eq!(counts_at_turns_given_up(&[300]).await, [128, 256, 300]);
}

#[tokio::test]
async fn an_actor_that_found_its_mailbox_empty_counts_again_from_zero() {
    // With one count across both backlogs, the actor would also give the
    // thread up at its 128th message, 28 into the second backlog.
    assert_eq!(counts_at_turns_given_up(&[100, 100]).await, [100, 200]);
}
