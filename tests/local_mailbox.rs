//! Mailbox behaviour through the public API: capacity bounds, `Full` at once
//! versus waiting sends, the control path overtaking a full mailbox, the
//! drain-on-stop mode, closed actors, panics and ask timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axactor::{AskError, ExitReason, SpawnConfig, System, TellError, actor};
use axactor_tests::Gate;
use tokio::sync::mpsc;

/// Blocks in `hold` until its gate opens; counts every other message.
#[derive(Debug)]
pub struct Worker {
    gate: Gate,
    entered: mpsc::UnboundedSender<()>,
    handled: Arc<AtomicUsize>,
}

#[actor]
impl Worker {
    #[msg]
    async fn hold(&mut self) {
        let _ = self.entered.send(());
        self.gate.pass().await;
    }

    #[msg]
    fn work(&mut self) {
        self.handled.fetch_add(1, Ordering::SeqCst);
    }

    #[msg]
    fn count(&mut self) -> usize {
        self.handled.load(Ordering::SeqCst)
    }

    #[msg]
    fn boom(&mut self) -> usize {
        panic!("boom")
    }

    #[msg]
    async fn sleepy(&mut self, ms: u64) -> u64 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        ms
    }
}

struct Setup {
    system: Arc<System>,
    gate: Gate,
    entered: mpsc::UnboundedReceiver<()>,
    handled: Arc<AtomicUsize>,
}

fn setup() -> Setup {
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = tx;
    Setup { system: Arc::new(System::new()), gate: Gate::new(), entered: rx, handled: Arc::new(AtomicUsize::new(0)) }
}

fn spawn(s: &mut Setup, cfg: SpawnConfig) -> axactor::SpawnHandle<WorkerRef> {
    let (tx, rx) = mpsc::unbounded_channel();
    s.entered = rx;
    let (gate, handled) = (s.gate.clone(), s.handled.clone());
    s.system.spawn(Worker { gate, entered: tx, handled }, cfg).expect("spawn inside a runtime")
}

/// Spawns a worker and parks it inside `hold`, so its mailbox only fills.
async fn blocked(s: &mut Setup, cfg: SpawnConfig) -> axactor::SpawnHandle<WorkerRef> {
    let h = spawn(s, cfg);
    h.actor().hold().expect("empty mailbox");
    s.entered.recv().await.expect("handler entered");
    h
}

#[tokio::test(start_paused = true)]
async fn full_mailbox_rejects_at_once_and_waiting_send_completes_after_one_take() {
    let mut s = setup();
    let h = blocked(&mut s, SpawnConfig::new("w", 3)).await;
    let r = h.actor();
    for _ in 0..3 {
        r.work().expect("room left");
    }
    assert_eq!(r.mailbox_len(), 3);
    assert_eq!(r.work(), Err(TellError::Full));
    assert_eq!(r.count().await, Err(AskError::Full));
    assert_eq!(r.mailbox_len(), 3, "a rejected message must not be queued");

    let waiter = tokio::spawn({
        let r = r.clone();
        async move { r.work_wait().await }
    });
    // Nothing is taken while the handler is blocked: the waiting send stays pending
    // however long we wait.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!waiter.is_finished());
    assert_eq!(r.mailbox_len(), 3);

    s.gate.open(1);
    waiter.await.expect("task").expect("enqueued once space freed");
    assert_eq!(r.count_wait().await, Ok(4));
    assert!(r.mailbox_len() <= 3);
}

#[tokio::test(start_paused = true)]
async fn ask_wait_waits_for_space() {
    let mut s = setup();
    let h = blocked(&mut s, SpawnConfig::new("w", 1)).await;
    let r = h.actor();
    r.work().expect("room left");
    let ask = tokio::spawn({
        let r = r.clone();
        async move { r.count_wait().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!ask.is_finished());
    s.gate.open(1);
    assert_eq!(ask.await.expect("task"), Ok(1));
}

/// `wait_for_room` waits as a send does, enqueues nothing, and passes a
/// wake-up it takes for a free slot on to the sender parked behind it;
/// on a stopped actor it says `Closed`.
#[tokio::test(start_paused = true)]
async fn waiting_for_room_enqueues_nothing_and_passes_its_turn_on() {
    let mut s = setup();
    let h = blocked(&mut s, SpawnConfig::new("w", 1)).await;
    let r = h.actor();
    r.work().expect("room left");
    let local = r.as_local_ref().clone();
    let room = tokio::spawn({
        let local = local.clone();
        async move { local.wait_for_room().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!room.is_finished(), "no room while the handler holds");
    let sender = tokio::spawn({
        let r = r.clone();
        async move { r.work_wait().await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The actor takes `work`: one free slot, one wake-up, for the first waiter.
    s.gate.open(1);
    assert_eq!(room.await.expect("task"), Ok(()));
    // Had the wake-up stopped there, the sender would wait on an idle actor.
    let sent = tokio::time::timeout(Duration::from_secs(5), sender).await;
    sent.expect("the sender got the turn").expect("task").expect("enqueued");
    assert_eq!(r.count_wait().await, Ok(2), "the waiter enqueued nothing");
    local.stop().expect("running");
    local.wait_stopped().await;
    assert_eq!(local.wait_for_room().await, Err(TellError::Closed));
}

#[tokio::test(start_paused = true)]
async fn stop_overtakes_a_full_mailbox_and_cancels_queued_asks() {
    let mut s = setup();
    let h = blocked(&mut s, SpawnConfig::new("w", 4)).await;
    let r = h.actor();
    for _ in 0..3 {
        r.work().expect("room left");
    }
    let queued_ask = tokio::spawn({
        let r = r.clone();
        async move { r.count().await }
    });
    tokio::task::yield_now().await;
    assert_eq!(r.mailbox_len(), 4);
    assert_eq!(r.work(), Err(TellError::Full));

    r.stop().expect("the control path has room even when the user mailbox is full");
    s.gate.open(1);
    assert_eq!(h.join().await, ExitReason::Normal);
    assert_eq!(s.handled.load(Ordering::SeqCst), 0, "the backlog was dropped, not processed");
    assert_eq!(queued_ask.await.expect("task"), Err(AskError::Canceled));
    assert_eq!(r.work(), Err(TellError::Closed));
    assert_eq!(r.count().await, Err(AskError::Closed));
}

#[tokio::test(start_paused = true)]
async fn graceful_stop_drains_the_backlog_first() {
    let mut s = setup();
    let cfg = SpawnConfig::new("w", 8).shutdown_graceful(Duration::from_secs(10));
    let h = blocked(&mut s, cfg).await;
    let r = h.actor();
    for _ in 0..5 {
        r.work().expect("room left");
    }
    let queued_ask = tokio::spawn({
        let r = r.clone();
        async move { r.count().await }
    });
    tokio::task::yield_now().await;
    r.stop().expect("stop accepted");
    assert_eq!(r.work(), Err(TellError::Closed), "a draining actor accepts nothing new");
    s.gate.open(1);
    assert_eq!(h.join().await, ExitReason::Normal);
    assert_eq!(s.handled.load(Ordering::SeqCst), 5);
    assert_eq!(queued_ask.await.expect("task"), Ok(5));
}

#[tokio::test(start_paused = true)]
async fn graceful_stop_kills_at_the_deadline() {
    let mut s = setup();
    let cfg = SpawnConfig::new("w", 8).shutdown_graceful(Duration::from_secs(2));
    let h = blocked(&mut s, cfg).await;
    let r = h.actor();
    let start = tokio::time::Instant::now();
    r.stop().expect("stop accepted");
    // The gate never opens: the handler never returns.
    assert_eq!(h.join().await, ExitReason::Killed);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(r.is_closed());
}

#[tokio::test(start_paused = true)]
async fn stop_wait_returns_after_termination() {
    let mut s = setup();
    let h = spawn(&mut s, SpawnConfig::new("w", 8));
    let r = h.actor();
    r.work_wait().await.expect("open");
    r.stop_wait().await.expect("was running");
    assert!(r.is_closed());
    assert_eq!(r.stop(), Err(TellError::Closed));
    assert_eq!(r.stop_wait().await, Err(TellError::Closed));
    assert_eq!(h.join().await, ExitReason::Normal);
}

#[tokio::test(start_paused = true)]
async fn control_capacity_bounds_stop_requests_from_handles() {
    let mut s = setup();
    let h = blocked(&mut s, SpawnConfig::new("w", 8).control_capacity(1)).await;
    let r = h.actor();
    r.stop().expect("first stop fits");
    assert_eq!(r.stop(), Err(TellError::Full));
    s.gate.open(1);
    assert_eq!(h.join().await, ExitReason::Normal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_cancels_the_ask_and_others_keep_working() {
    let mut s = setup();
    let victim = spawn(&mut s, SpawnConfig::new("victim", 8));
    let bystander = spawn(&mut s, SpawnConfig::new("bystander", 8)).actor();
    assert_eq!(victim.actor().boom().await, Err(AskError::Canceled));
    assert_eq!(victim.join().await, ExitReason::Panic);
    for i in 0..100 {
        bystander.work_wait().await.expect("bystander alive");
        assert_eq!(bystander.count().await, Ok(i + 1));
    }
    // The system itself still spawns and runs actors.
    let fresh = spawn(&mut s, SpawnConfig::new("fresh", 8)).actor();
    assert_eq!(fresh.sleepy(1).await, Ok(1));
}

#[tokio::test(start_paused = true)]
async fn ask_timeout_reports_timeout_and_the_actor_carries_on() {
    let mut s = setup();
    let r = spawn(&mut s, SpawnConfig::new("w", 8)).actor();
    let start = tokio::time::Instant::now();
    assert_eq!(r.sleepy_timeout(1_000, Duration::from_millis(100)).await, Err(AskError::Timeout));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(r.sleepy_wait_timeout(10, Duration::from_secs(5)).await, Ok(10));
    assert_eq!(r.count_timeout(Duration::from_secs(1)).await, Ok(0));
}

#[tokio::test(start_paused = true)]
async fn messages_are_handled_one_at_a_time() {
    let mut s = setup();
    let h = blocked(&mut s, SpawnConfig::new("w", 8)).await;
    let r = h.actor();
    r.work().expect("room");
    // While `hold` runs, `work` must not start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.handled.load(Ordering::SeqCst), 0);
    s.gate.open(1);
    assert_eq!(r.count_wait().await, Ok(1));
}

/// `LocalRef::try_send_from`: enqueues in order up to the capacity under one
/// lock, leaves the rest with the caller, and enqueues nothing once the
/// actor has stopped.
#[tokio::test(start_paused = true)]
async fn a_batch_fills_the_mailbox_in_order_and_the_rest_stays_with_the_caller() {
    let mut s = setup();
    let h = blocked(&mut s, SpawnConfig::new("w", 3)).await;
    let r = h.actor();
    let local = r.as_local_ref();
    let mut batch: std::collections::VecDeque<WorkerMsg> = (0..5).map(|_| WorkerMsg::Work {}).collect();
    assert_eq!(local.try_send_from(&mut batch), Err(TellError::Full));
    assert_eq!((r.mailbox_len(), batch.len()), (3, 2), "three taken, two left");
    assert_eq!(local.try_send_from(&mut batch), Err(TellError::Full), "still full: nothing taken");
    assert_eq!(batch.len(), 2);
    s.gate.open(1);
    assert_eq!(r.count_wait().await, Ok(3), "the three enqueued ran");
    assert_eq!(local.try_send_from(&mut batch), Ok(()));
    assert!(batch.is_empty());
    assert_eq!(r.count_wait().await, Ok(5));
    r.stop_wait().await.expect("was running");
    let mut late: std::collections::VecDeque<WorkerMsg> = std::iter::once(WorkerMsg::Work {}).collect();
    assert_eq!(local.try_send_from(&mut late), Err(TellError::Closed));
    assert_eq!(late.len(), 1, "nothing taken by a stopped actor");
}
