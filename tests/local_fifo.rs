//! Per-sender FIFO under random interleavings (property test): several
//! sender tasks on a multi-thread runtime send numbered messages, mixing
//! `m()` retries and `m_wait()`, random yields and clones of the ref; the
//! actor checks that each sender's numbers arrive in order, once each, and
//! that it never runs two handlers at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axactor::{SpawnConfig, System, TellError, actor};
use proptest::prelude::*;

/// Records, per sender, the last sequence number seen.
#[derive(Debug)]
pub struct Recorder {
    last: Vec<Option<u32>>,
    violations: Vec<String>,
    running: Arc<AtomicBool>,
}

#[actor]
impl Recorder {
    #[msg]
    async fn record(&mut self, sender: usize, seq: u32, pause: bool) {
        if self.running.swap(true, Ordering::SeqCst) {
            self.violations.push("two handlers ran at once".into());
        }
        if pause {
            tokio::task::yield_now().await;
        }
        let expected = self.last[sender].map_or(0, |s| s + 1);
        if seq != expected {
            self.violations.push(format!("sender {sender}: got {seq}, expected {expected}"));
        }
        self.last[sender] = Some(seq);
        self.running.store(false, Ordering::SeqCst);
    }

    #[msg]
    fn report(&mut self) -> (Vec<Option<u32>>, Vec<String>) {
        (self.last.clone(), self.violations.clone())
    }
}

/// How one sender sends: `true` = `m()` retried on `Full`, `false` = `m_wait()`.
fn plan() -> impl Strategy<Value = (usize, Vec<Vec<(bool, bool)>>)> {
    (1usize..6, prop::collection::vec(prop::collection::vec((any::<bool>(), any::<bool>()), 1..60), 1..5))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn per_sender_fifo((capacity, senders) in plan()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let (last, violations) = rt.block_on(async {
            let system = System::new();
            let n = senders.len();
            let actor = Recorder { last: vec![None; n], violations: Vec::new(), running: Arc::new(AtomicBool::new(false)) };
            let r = system.spawn(actor, SpawnConfig::new("recorder", capacity)).expect("runtime").actor();
            let mut tasks = Vec::new();
            for (id, steps) in senders.iter().cloned().enumerate() {
                let r = r.clone();
                tasks.push(tokio::spawn(async move {
                    for (seq, (try_first, pause)) in steps.into_iter().enumerate() {
                        let seq = u32::try_from(seq).expect("small");
                        if try_first {
                            loop {
                                match r.record(id, seq, pause) {
                                    Ok(()) => break,
                                    Err(TellError::Full) => tokio::task::yield_now().await,
                                    Err(e) => panic!("unexpected {e}"),
                                }
                            }
                        } else {
                            r.record_wait(id, seq, pause).await.expect("open");
                        }
                        if pause {
                            tokio::task::yield_now().await;
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.expect("sender task");
            }
            r.report_wait().await.expect("alive")
        });
        prop_assert!(violations.is_empty(), "{violations:?}");
        for (id, steps) in senders.iter().enumerate() {
            prop_assert_eq!(last[id], Some(u32::try_from(steps.len() - 1).expect("small")));
        }
    }
}
