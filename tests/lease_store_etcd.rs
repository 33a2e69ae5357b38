//! `EtcdLeaseStore` against a real etcd (`support/etcd.rs` says where it
//! comes from; without one these tests print `SKIPPED` and pass unless
//! `AXACTOR_REQUIRE_ETCD=1`): the conformance suite (with the coarse timing
//! of etcd's whole-second leases), exactly one winner among concurrent
//! acquirers, epochs that keep growing when keys are deleted behind the
//! store's back, malformed data, and connection failures. Real time
//! throughout: the store's expiry is etcd's. Every test has its own prefix.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axactor_cluster::{Epoch, EtcdLeaseStore, GroupGrant, LeaseGroup, LeaseStore, LeaseStoreError, NodeId, SessionId};
use axactor_tests::etcd::{TestEtcd, free_port, test_etcd, throwaway_etcd, unique_prefix};
use axactor_tests::lease_conformance::{LONG, Timing, run_all_with};
use etcd_client::{Client, DeleteOptions, Txn, TxnOp};

fn session(node: &str, boot: u64) -> SessionId {
    SessionId { node: NodeId::new(node), boot, counter: 0 }
}

async fn setup(test: &str) -> Option<(TestEtcd, EtcdLeaseStore, String, Client)> {
    let etcd = test_etcd(test).await?;
    let prefix = unique_prefix(test);
    let store = EtcdLeaseStore::connect(&etcd.endpoints(), &prefix).await.expect("connect");
    let raw = Client::connect(etcd.endpoints(), None).await.expect("raw client");
    Some((etcd, store, prefix, raw))
}

async fn acquired(store: &EtcdLeaseStore, name: &str, holder: &SessionId) -> Epoch {
    match store.acquire(name, holder, LONG).await {
        Ok(Some(l)) => l.epoch,
        other => panic!("acquire {name} by {holder}: {other:?}"),
    }
}

#[tokio::test]
async fn etcd_store_conforms() {
    let Some((_etcd, store, _prefix, _raw)) = setup("conforms").await else { return };
    let started = Instant::now();
    run_all_with(Arc::new(store), "conforms", Timing::COARSE).await;
    eprintln!("etcd conformance suite: {:?}", started.elapsed());
}

#[tokio::test]
async fn two_suites_and_two_connections_share_one_prefix() {
    let Some((etcd, store, prefix, _raw)) = setup("shared").await else { return };
    let other = EtcdLeaseStore::connect(&etcd.endpoints(), &prefix).await.expect("connect");
    tokio::join!(
        run_all_with(Arc::new(store), "one", Timing::COARSE),
        run_all_with(Arc::new(other), "two", Timing::COARSE)
    );
}

#[tokio::test]
async fn concurrent_acquirers_get_one_lease() {
    let Some((etcd, store, prefix, _raw)) = setup("race").await else { return };
    let other = EtcdLeaseStore::connect(&etcd.endpoints(), &prefix).await.expect("connect");
    for round in 0..20 {
        let name = format!("race/{round}");
        let tasks: Vec<_> = (0..8u64)
            .map(|i| {
                let store = if i % 2 == 0 { store.clone() } else { other.clone() };
                let name = name.clone();
                tokio::spawn(async move { store.acquire(&name, &session("racer", i), LONG).await })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(l) = t.await.expect("task").expect("acquire") {
                winners.push(l);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one winner, got {winners:?}");
        assert_eq!(store.get(&name).await.expect("get"), winners.pop());
    }
}

/// Two tags of one group race for their leases: only one tag ever wins.
#[tokio::test]
async fn concurrent_tags_never_both_win() {
    let Some((etcd, store, prefix, _raw)) = setup("tags").await else { return };
    let other = EtcdLeaseStore::connect(&etcd.endpoints(), &prefix).await.expect("connect");
    for round in 0..10 {
        let group = format!("reg{round}");
        let tasks: Vec<_> = (0..8u64)
            .map(|i| {
                let store = if i % 2 == 0 { store.clone() } else { other.clone() };
                let (group, tag) = (group.clone(), 16 + 16 * (i % 2));
                tokio::spawn(async move {
                    let name = format!("{group}/{tag}/{i}");
                    let g = LeaseGroup { name: &group, tag };
                    (tag, store.acquire_in_group(&name, g, &session("racer", i), LONG).await)
                })
            })
            .collect();
        let mut tags = std::collections::BTreeSet::new();
        for t in tasks {
            match t.await.expect("task") {
                (tag, Ok(GroupGrant::Granted(_))) => {
                    tags.insert(tag);
                }
                (_, Ok(GroupGrant::Conflict { .. })) => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(tags.len(), 1, "round {round}: one tag wins: {tags:?}");
    }
}

#[tokio::test]
async fn deleting_the_lease_key_still_grows_the_epoch() {
    let Some((_etcd, store, prefix, mut raw)) = setup("del-lease").await else { return };
    let (a, b) = (session("a", 1), session("b", 2));
    let first = acquired(&store, "s/1", &a).await;
    let deleted = raw.delete(format!("{prefix}/lease/s/1"), None).await.expect("delete");
    assert_eq!(deleted.deleted(), 1, "the lease key is {prefix}/lease/s/1");
    assert_eq!(store.get("s/1").await, Ok(None));
    let second = acquired(&store, "s/1", &b).await;
    assert!(second > first, "{second} after {first}");
    assert_eq!(store.renew("s/1", &a, first, LONG).await, Ok(false), "the old holder is fenced");
    assert_eq!(store.release("s/1", &a, first).await, Ok(false), "the old holder cannot release");
}

#[tokio::test]
async fn wiping_every_key_still_grows_the_epoch() {
    let Some((_etcd, store, prefix, mut raw)) = setup("wipe").await else { return };
    let a = session("a", 1);
    let before = [acquired(&store, "s/1", &a).await, acquired(&store, "s/2", &a).await];
    store.heartbeat_member(&a, LONG).await.expect("heartbeat");
    let wiped = raw.delete(format!("{prefix}/"), Some(DeleteOptions::new().with_prefix())).await.expect("wipe");
    assert_eq!(wiped.deleted(), 3, "two leases, one member");
    assert_eq!(store.members().await, Ok(vec![]));
    let after = [acquired(&store, "s/1", &a).await, acquired(&store, "s/2", &a).await];
    assert!(after[0] > before[0] && after[1] > before[1], "revisions only grow: {after:?} after {before:?}");
}

/// A grouped lease's group stays live through plain renewals and
/// re-acquisitions; a release deletes its group key with it: the group is
/// free for another tag at once, not after the ttl.
#[tokio::test]
async fn release_frees_the_group_at_once() {
    let Some((_etcd, store, _prefix, _raw)) = setup("group-release").await else { return };
    let (a, b) = (session("a", 1), session("b", 2));
    let (g16, g32) = (LeaseGroup { name: "reg", tag: 16 }, LeaseGroup { name: "reg", tag: 32 });
    let Ok(GroupGrant::Granted(l)) = store.acquire_in_group("reg/16/1", g16, &a, LONG).await else {
        panic!("a free group grants")
    };
    // A plain renew or re-acquire of a grouped lease keeps its group live.
    assert_eq!(store.renew("reg/16/1", &a, l.epoch, LONG).await, Ok(true));
    assert_eq!(store.acquire("reg/16/1", &a, LONG).await.map(|l| l.map(|l| l.epoch)), Ok(Some(l.epoch)));
    assert_eq!(store.acquire_in_group("reg/32/1", g32, &b, LONG).await, Ok(GroupGrant::Conflict { tag: 16 }));
    assert_eq!(store.release("reg/16/1", &a, l.epoch).await, Ok(true));
    assert!(matches!(store.acquire_in_group("reg/32/1", g32, &b, LONG).await, Ok(GroupGrant::Granted(_))));
}

#[tokio::test]
async fn malformed_data_is_a_protocol_error() {
    let Some((_etcd, store, prefix, mut raw)) = setup("malformed").await else { return };
    let a = session("a", 1);
    let protocol = |r: &Result<_, LeaseStoreError>| matches!(r, Err(LeaseStoreError::Protocol(_)));

    raw.put(format!("{prefix}/lease/garbage"), "garbage", None).await.expect("put");
    assert!(protocol(&store.get("garbage").await.map(|_| ())), "get of a value without '|'");
    assert!(protocol(&store.acquire("garbage", &a, LONG).await.map(|_| ())), "acquire over a value without '|'");
    assert!(protocol(&store.renew("garbage", &a, Epoch(1), LONG).await.map(|_| ())), "renew of garbage");
    assert!(protocol(&store.release("garbage", &a, Epoch(1)).await.map(|_| ())), "release of garbage");

    raw.put(format!("{prefix}/lease/badsession"), "-|not a session", None).await.expect("put");
    assert!(protocol(&store.get("badsession").await.map(|_| ())), "get of a malformed session");

    raw.put(format!("{prefix}/lease/binary"), vec![0xff, b'|', 0xfe], None).await.expect("put");
    assert!(protocol(&store.get("binary").await.map(|_| ())), "get of a value that is not UTF-8");

    store.heartbeat_member(&a, LONG).await.expect("heartbeat");
    raw.put(format!("{prefix}/member/nobody"), "", None).await.expect("put");
    assert!(protocol(&store.members().await.map(|_| ())), "a malformed member");

    // A group key that is not one of the store's under another tag.
    raw.put(format!("{prefix}/group/3:reg/7/x"), "", None).await.expect("put");
    let r = store.acquire_in_group("reg/16/1", LeaseGroup { name: "reg", tag: 16 }, &a, LONG).await;
    assert!(protocol(&r.map(|_| ())), "a malformed group key");
    assert_eq!(store.get("reg/16/1").await, Ok(None), "nothing granted");
}

/// More members than `MAX_MEMBERS` is an error, not a truncated list.
#[tokio::test]
async fn too_many_members_is_an_error() {
    let Some((_etcd, store, prefix, mut raw)) = setup("many").await else { return };
    let all: Vec<u64> = (0..=EtcdLeaseStore::MAX_MEMBERS as u64).collect();
    // etcd takes at most 128 operations per transaction.
    for batch in all.chunks(100) {
        let puts: Vec<TxnOp> =
            batch.iter().map(|i| TxnOp::put(format!("{prefix}/member/{}", session("m", *i)), "", None)).collect();
        raw.txn(Txn::new().and_then(puts)).await.expect("put members");
    }
    let r = store.members().await;
    assert!(matches!(r, Err(LeaseStoreError::Protocol(_))), "{:?}", r.map(|m| m.len()));
}

#[tokio::test]
async fn connect_rejects_bad_arguments_and_unreachable_servers() {
    let invalid = |r: &Result<EtcdLeaseStore, LeaseStoreError>| matches!(r, Err(LeaseStoreError::Invalid(_)));
    assert!(invalid(&EtcdLeaseStore::connect(&[], "p").await));
    assert!(invalid(&EtcdLeaseStore::connect(&["http://127.0.0.1:1"], "").await));
    assert!(invalid(&EtcdLeaseStore::connect(&["not a uri at all\n"], "p").await));
    let started = Instant::now();
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let r = EtcdLeaseStore::connect(&[&endpoint], "p").await;
    assert!(matches!(r, Err(LeaseStoreError::Unavailable(_))), "nothing listens on {endpoint}: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());
}

#[tokio::test]
async fn debug_shows_the_prefix_and_clones_share_the_store() {
    let Some((_etcd, store, prefix, _raw)) = setup("debug").await else { return };
    let shown = format!("{store:?}");
    assert!(shown.contains(&prefix), "{shown}");
    let clone = store.clone();
    let e = acquired(&clone, "s/1", &session("a", 1)).await;
    assert_eq!(store.get("s/1").await.expect("get").map(|l| l.epoch), Some(e), "clones share the store");
}

/// etcd crashes (SIGKILL) and restarts on its data directory: calls fail
/// promptly with `Unavailable` meanwhile, the store reconnects by itself,
/// the lease survives with its epoch (etcd persists every acknowledged
/// write), and a later acquisition still gets a greater epoch.
#[tokio::test]
async fn a_crashed_etcd_keeps_leases_and_epochs_and_the_store_reconnects() {
    let Some(mut server) = throwaway_etcd("restart").await else { return };
    let store = EtcdLeaseStore::connect(&[&server.endpoint()], "restart").await.expect("connect");
    let (a, b) = (session("a", 1), session("b", 2));
    let before = acquired(&store, "s/1", &a).await;

    let restart = server.crash_and_restart();
    tokio::pin!(restart);
    // While it is down or starting, calls fail (bounded) or succeed; never hang.
    let started = Instant::now();
    let r = tokio::select! {
        r = store.renew("s/1", &a, before, LONG) => Some(r),
        () = &mut restart => None,
    };
    assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());
    if let Some(r) = r {
        assert!(matches!(r, Ok(true) | Err(LeaseStoreError::Unavailable(_))), "during the restart: {r:?}");
        restart.await;
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    let renewed = loop {
        match store.renew("s/1", &a, before, LONG).await {
            Ok(renewed) => break renewed,
            Err(e) => {
                assert!(Instant::now() < deadline, "no reconnection within 20 s: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(renewed, "the lease survived the crash at its epoch");
    assert_eq!(store.get("s/1").await.expect("get").map(|l| (l.holder, l.epoch)), Some((a.clone(), before)));
    assert_eq!(store.acquire("s/1", &b, LONG).await, Ok(None), "still held");
    assert_eq!(store.release("s/1", &a, before).await, Ok(true));
    let after = acquired(&store, "s/1", &b).await;
    assert!(after > before, "{after} after {before} across a crash");
}
