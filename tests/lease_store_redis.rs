//! `RedisLeaseStore` against a real Redis (see `support/redis.rs` for where
//! it comes from; without one these tests print `SKIPPED` and pass unless
//! `AXACTOR_REQUIRE_REDIS=1`): the conformance suite, epochs that keep
//! growing when keys (or the whole server's data) are lost, malformed data,
//! connection failures and reconnection, and the refusal of a server that
//! may evict keys (on throwaway servers, since it changes their config). Real time throughout: the store's
//! expiry is the server's clock. Every test has its own key prefix.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axactor_cluster::{Epoch, LeaseStore, LeaseStoreError, NodeId, RedisLeaseStore, RedisStoreOptions, SessionId};
use axactor_tests::lease_conformance::{LONG, run_all};
use axactor_tests::redis::{TestRedis, free_port, test_redis, throwaway_redis, throwaway_redis_with, unique_prefix};
use redis::aio::MultiplexedConnection;

fn session(node: &str, boot: u64) -> SessionId {
    SessionId { node: NodeId::new(node), boot, counter: 0 }
}

async fn setup(test: &str) -> Option<(TestRedis, RedisLeaseStore, String, MultiplexedConnection)> {
    let redis = test_redis(test).await?;
    let prefix = unique_prefix(test);
    let store = RedisLeaseStore::connect(&redis.url, &prefix).await.expect("connect");
    let raw = raw_connection(&redis.url).await;
    Some((redis, store, prefix, raw))
}

async fn raw_connection(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("url");
    client.get_multiplexed_async_connection().await.expect("raw connection")
}

async fn raw_cmd<T: redis::FromRedisValue>(conn: &mut MultiplexedConnection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(conn).await.unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

async fn acquired(store: &RedisLeaseStore, name: &str, holder: &SessionId) -> Epoch {
    match store.acquire(name, holder, LONG).await {
        Ok(Some(l)) => l.epoch,
        other => panic!("acquire {name} by {holder}: {other:?}"),
    }
}

#[tokio::test]
async fn redis_store_conforms() {
    let Some((_redis, store, _prefix, _raw)) = setup("conforms").await else { return };
    run_all(Arc::new(store), "conforms").await;
}

#[tokio::test]
async fn two_suites_and_two_connections_share_one_prefix() {
    let Some((redis, store, prefix, _raw)) = setup("shared").await else { return };
    let other = RedisLeaseStore::connect(&redis.url, &prefix).await.expect("connect");
    tokio::join!(run_all(Arc::new(store), "one"), run_all(Arc::new(other), "two"));
}

#[tokio::test]
async fn concurrent_acquirers_get_one_lease() {
    let Some((redis, store, prefix, _raw)) = setup("race").await else { return };
    let other = RedisLeaseStore::connect(&redis.url, &prefix).await.expect("connect");
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

#[tokio::test]
async fn deleting_the_lease_key_still_grows_the_epoch() {
    let Some((_redis, store, prefix, mut raw)) = setup("del-lease").await else { return };
    let (a, b) = (session("a", 1), session("b", 2));
    let first = acquired(&store, "s/1", &a).await;
    let deleted: i64 = raw_cmd(&mut raw, &["DEL", &format!("{prefix}:lease:s/1")]).await;
    assert_eq!(deleted, 1, "the lease key is {prefix}:lease:s/1");
    assert_eq!(store.get("s/1").await, Ok(None));
    let second = acquired(&store, "s/1", &b).await;
    assert!(second > first, "{second} after {first}");
    let counter: String = raw_cmd(&mut raw, &["GET", &format!("{prefix}:epoch:s/1")]).await;
    assert_eq!(counter, second.0.to_string(), "the counter holds the last epoch granted");
    assert_eq!(store.renew("s/1", &a, first, LONG).await, Ok(false), "the old holder is fenced");
}

#[tokio::test]
async fn wiping_every_key_still_grows_the_epoch() {
    let Some((_redis, store, prefix, mut raw)) = setup("wipe").await else { return };
    let a = session("a", 1);
    let before = [acquired(&store, "s/1", &a).await, acquired(&store, "s/2", &a).await];
    store.heartbeat_member(&a, LONG).await.expect("heartbeat");
    let keys: Vec<String> = raw_cmd(&mut raw, &["KEYS", &format!("{prefix}:*")]).await;
    assert_eq!(keys.len(), 5, "two leases, two counters, the members: {keys:?}");
    for k in &keys {
        let _: i64 = raw_cmd(&mut raw, &["DEL", k]).await;
    }
    assert_eq!(store.members().await, Ok(vec![]));
    let after = [acquired(&store, "s/1", &a).await, acquired(&store, "s/2", &a).await];
    assert!(after[0] > before[0] && after[1] > before[1], "the TIME floor: {after:?} after {before:?}");
}

#[tokio::test]
async fn a_counter_ahead_of_the_clock_still_counts() {
    let Some((_redis, store, prefix, mut raw)) = setup("counter").await else { return };
    let a = session("a", 1);
    // Far beyond the server's clock in µs (about 1.8e15), below 2^53.
    let ahead: u64 = 8_000_000_000_000_000;
    let _: String = raw_cmd(&mut raw, &["SET", &format!("{prefix}:epoch:s/1"), &ahead.to_string()]).await;
    assert_eq!(acquired(&store, "s/1", &a).await, Epoch(ahead + 1));
    let _: String = raw_cmd(&mut raw, &["SET", &format!("{prefix}:epoch:s/2"), "9007199254740991"]).await;
    assert!(
        matches!(store.acquire("s/2", &a, LONG).await, Err(LeaseStoreError::Protocol(_))),
        "an exhausted counter is refused, not rounded"
    );
}

#[tokio::test]
async fn malformed_data_is_a_protocol_error() {
    let Some((_redis, store, prefix, mut raw)) = setup("malformed").await else { return };
    let a = session("a", 1);
    let protocol = |r: &Result<_, LeaseStoreError>| matches!(r, Err(LeaseStoreError::Protocol(_)));

    let _: String = raw_cmd(&mut raw, &["SET", &format!("{prefix}:lease:garbage"), "garbage"]).await;
    assert!(protocol(&store.get("garbage").await.map(|_| ())), "get of a value without '|'");
    assert!(protocol(&store.acquire("garbage", &a, LONG).await.map(|_| ())), "acquire over a value without '|'");

    let _: String = raw_cmd(&mut raw, &["SET", &format!("{prefix}:lease:badsession"), "12|not a session"]).await;
    assert!(protocol(&store.get("badsession").await.map(|_| ())), "get of a malformed session");
    assert_eq!(store.acquire("badsession", &a, LONG).await, Ok(None), "someone else's (unreadable) lease");

    let _: i64 = raw_cmd(&mut raw, &["LPUSH", &format!("{prefix}:lease:list"), "x"]).await;
    assert!(protocol(&store.get("list").await.map(|_| ())), "get of a list");
    assert!(protocol(&store.renew("list", &a, Epoch(1), LONG).await.map(|_| ())), "renew of a list");

    let _: String = raw_cmd(&mut raw, &["SET", &format!("{prefix}:epoch:badcounter"), "twelve"]).await;
    assert!(protocol(&store.acquire("badcounter", &a, LONG).await.map(|_| ())), "a malformed counter");
    assert_eq!(store.get("badcounter").await, Ok(None), "nothing granted");

    store.heartbeat_member(&a, LONG).await.expect("heartbeat");
    let _: i64 = raw_cmd(&mut raw, &["ZADD", &format!("{prefix}:members"), "8000000000000", "nobody"]).await;
    assert!(protocol(&store.members().await.map(|_| ())), "a malformed member");
}

#[tokio::test]
async fn connect_rejects_bad_arguments_and_unreachable_servers() {
    let invalid = |r: &Result<RedisLeaseStore, LeaseStoreError>| matches!(r, Err(LeaseStoreError::Invalid(_)));
    assert!(invalid(&RedisLeaseStore::connect("not a url", "p").await));
    assert!(invalid(&RedisLeaseStore::connect("redis://127.0.0.1:1/", "").await));
    let started = Instant::now();
    let url = format!("redis://127.0.0.1:{}/", free_port());
    let r = RedisLeaseStore::connect(&url, "p").await;
    assert!(matches!(r, Err(LeaseStoreError::Unavailable(_))), "nothing listens on {url}: {r:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());
}

#[tokio::test]
async fn debug_shows_the_prefix_not_the_url() {
    let Some((redis, store, prefix, _raw)) = setup("debug").await else { return };
    let shown = format!("{store:?}");
    assert!(shown.contains(&prefix) && !shown.contains(&redis.url), "{shown}");
    let clone = store.clone();
    let a = session("a", 1);
    let e = acquired(&clone, "s/1", &a).await;
    assert_eq!(store.get("s/1").await.expect("get").map(|l| l.epoch), Some(e), "clones share the store");
}

/// The server is killed and restarted without persistence: calls fail
/// promptly with `Unavailable` meanwhile, the store reconnects by itself,
/// every lease is gone and new epochs still exceed the old ones.
#[tokio::test]
async fn restart_without_persistence_reconnects_and_keeps_epochs_growing() {
    let Some(server) = throwaway_redis("restart").await else { return };
    let (port, url) = (server.port(), server.url());
    let store = RedisLeaseStore::connect(&url, "restart").await.expect("connect");
    let (a, b) = (session("a", 1), session("b", 2));
    let before = acquired(&store, "s/1", &a).await;
    store.heartbeat_member(&a, LONG).await.expect("heartbeat");

    drop(server);
    for _ in 0..3 {
        let started = Instant::now();
        let r = store.renew("s/1", &a, before, LONG).await;
        assert!(matches!(r, Err(LeaseStoreError::Unavailable(_))), "server down: {r:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());
    }

    let _server = axactor_tests::redis::ThrowawayRedis::start_on(port).await.expect("restart on the same port");
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        match store.acquire("s/1", &b, LONG).await {
            Ok(Some(l)) => break l.epoch,
            Ok(None) => panic!("the restarted server has no lease to hold"),
            Err(e) => {
                assert!(Instant::now() < deadline, "no reconnection within 20 s: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(after > before, "{after} after {before} across a restart that lost all data");
    assert_eq!(store.renew("s/1", &a, before, LONG).await, Ok(false), "the old holder is fenced");
    assert_eq!(store.members().await, Ok(vec![]), "members were lost with the data");
}

/// A server whose `maxmemory-policy` may evict keys is refused at connect
/// with a typed error naming the policy, unless the caller opts out;
/// `noeviction` is accepted. A throwaway server: the test changes its
/// configuration.
#[tokio::test]
async fn an_evicting_maxmemory_policy_is_refused_at_connect() {
    let Some(server) = throwaway_redis("eviction").await else { return };
    let url = server.url();
    let mut raw = raw_connection(&url).await;
    for policy in ["allkeys-lru", "volatile-ttl", "allkeys-random"] {
        let _: () = raw_cmd(&mut raw, &["CONFIG", "SET", "maxmemory-policy", policy]).await;
        let refused = RedisLeaseStore::connect(&url, "eviction").await;
        assert_eq!(
            refused.as_ref().map(|_| ()).map_err(Clone::clone),
            Err(LeaseStoreError::EvictingPolicy { policy: policy.to_owned() }),
            "{policy}"
        );
        let problem = refused.expect_err("refused").to_string();
        assert!(problem.contains(policy) && problem.contains("noeviction"), "{problem}");
        let opted_out = RedisStoreOptions { allow_evicting_policy: true };
        let store = RedisLeaseStore::connect_with(&url, "eviction", opted_out).await.expect("opt-out connects");
        acquired(&store, "s/1", &session("a", 1)).await;
    }
    let _: () = raw_cmd(&mut raw, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]).await;
    let store = RedisLeaseStore::connect(&url, "eviction").await.expect("noeviction connects");
    assert_eq!(store.get("s/1").await.map(|l| l.is_some()), Ok(true), "the same server");
}

/// A server that does not allow `CONFIG` (renamed away, as on managed
/// services) cannot be checked: the store connects (and logs a warning).
#[tokio::test]
async fn a_server_without_config_is_accepted() {
    let Some(server) = throwaway_redis_with("no-config", &["--rename-command", "CONFIG", ""]).await else { return };
    let store = RedisLeaseStore::connect(&server.url(), "no-config").await.expect("connects without CONFIG");
    acquired(&store, "s/1", &session("a", 1)).await;
}
