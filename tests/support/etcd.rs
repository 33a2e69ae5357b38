//! etcd servers for tests.
//!
//! Policy: use the cluster named by `AXACTOR_ETCD_ENDPOINTS` (comma
//! separated; CI starts one). If that is unset and `AXACTOR_REQUIRE_ETCD=1`,
//! fail. Otherwise start a throwaway single-member `etcd` from `PATH` with a
//! temporary data directory on free loopback client and peer ports (killed
//! and its directory removed on drop); with no binary, print
//! `SKIPPED: no etcd` to stderr and let the test return.
//!
//! Throwaway servers run with a 50 ms heartbeat and a 500 ms election
//! timeout, so etcd's minimum lease ttl is 1 s (2 s with its defaults).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use crate::redis::free_port;

/// The environment variable naming the etcd endpoints to test against.
pub const ENDPOINTS_ENV: &str = "AXACTOR_ETCD_ENDPOINTS";

/// Set to `1` to fail, rather than skip, when no etcd is available.
pub const REQUIRE_ENV: &str = "AXACTOR_REQUIRE_ETCD";

/// How long a started server gets to report itself healthy.
const START_TIMEOUT: Duration = Duration::from_secs(20);

fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Reports a skipped test (or fails it when etcd is required).
///
/// # Panics
/// If `AXACTOR_REQUIRE_ETCD=1`.
fn skip(test: &str, why: &str) {
    assert!(!required(), "{test}: etcd is required ({REQUIRE_ENV}=1) but {why}");
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: no etcd: {test}: {why} (set {ENDPOINTS_ENV} or install etcd-server) ***\n"
    );
}

/// A key prefix no other test, process or earlier run uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("axactor-test/{}-{nanos}-{}-{test}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The etcd a test runs against; keeps a throwaway server alive.
#[derive(Debug)]
pub struct TestEtcd {
    /// Its client endpoints (`http://host:port`).
    pub endpoints: Vec<String>,
    _server: Option<ThrowawayEtcd>,
}

impl TestEtcd {
    /// The endpoints as `&str`s, as `EtcdLeaseStore::connect` takes them.
    pub fn endpoints(&self) -> Vec<&str> {
        self.endpoints.iter().map(String::as_str).collect()
    }
}

/// The etcd for `test` by the policy above; `None` means skip the test.
///
/// # Panics
/// If etcd is required but not configured, or a started server does not
/// become healthy.
pub async fn test_etcd(test: &str) -> Option<TestEtcd> {
    if let Ok(list) = std::env::var(ENDPOINTS_ENV) {
        let endpoints: Vec<String> =
            list.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect();
        if !endpoints.is_empty() {
            return Some(TestEtcd { endpoints, _server: None });
        }
    }
    assert!(!required(), "{test}: {REQUIRE_ENV}=1 but {ENDPOINTS_ENV} is not set");
    let server = throwaway_etcd(test).await?;
    Some(TestEtcd { endpoints: vec![server.endpoint()], _server: Some(server) })
}

/// A throwaway server of `test`'s own; `None` means skip the test.
///
/// # Panics
/// If `etcd` is missing while etcd is required, or the server does not
/// become healthy.
pub async fn throwaway_etcd(test: &str) -> Option<ThrowawayEtcd> {
    for _ in 0..3 {
        match ThrowawayEtcd::start(free_port(), free_port()).await {
            Ok(server) => return Some(server),
            Err(Start::NoBinary) => {
                skip(test, "etcd is not on PATH");
                return None;
            }
            // Another process took a port between probing and binding.
            Err(Start::Exited) => continue,
        }
    }
    panic!("{test}: etcd exited at start on three pairs of free ports");
}

/// Why a throwaway server did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// No `etcd` on `PATH`.
    NoBinary,
    /// It exited before becoming healthy (e.g. a port was taken).
    Exited,
}

/// A single-member `etcd` child on loopback ports with a temporary data
/// directory. Killed (SIGKILL) and the directory removed on drop.
#[derive(Debug)]
pub struct ThrowawayEtcd {
    child: Child,
    client_port: u16,
    peer_port: u16,
    dir: PathBuf,
}

impl ThrowawayEtcd {
    /// Starts a server with clients on `client_port` and peers on
    /// `peer_port`, and waits until `/health` says it is healthy.
    ///
    /// # Errors
    /// [`Start::NoBinary`] if `etcd` is not on `PATH`; [`Start::Exited`] if
    /// it exits before becoming healthy.
    ///
    /// # Panics
    /// If it cannot be spawned for another reason, or is not healthy within
    /// 20 s.
    pub async fn start(client_port: u16, peer_port: u16) -> Result<ThrowawayEtcd, Start> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "axactor-etcd-{}-{}-{client_port}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let child = spawn(&dir, client_port, peer_port)?;
        let mut server = ThrowawayEtcd { child, client_port, peer_port, dir };
        server.wait_healthy().await?;
        Ok(server)
    }

    /// Kills the server (SIGKILL) and starts it again on the same ports and
    /// data directory, as after a crash; waits until it is healthy.
    ///
    /// # Panics
    /// If it does not come back healthy within 20 s.
    pub async fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.dir, self.client_port, self.peer_port).expect("etcd respawns");
        self.wait_healthy().await.expect("etcd restarts on its data directory");
    }

    async fn wait_healthy(&mut self) -> Result<(), Start> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if healthy(self.client_port).await {
                return Ok(());
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return Err(Start::Exited);
            }
            assert!(tokio::time::Instant::now() < deadline, "etcd on port {} did not become healthy", self.client_port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its client endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
}

impl Drop for ThrowawayEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Spawns a single-member etcd with its data in `dir`.
fn spawn(dir: &std::path::Path, client_port: u16, peer_port: u16) -> Result<Child, Start> {
    let (client, peer) = (format!("http://127.0.0.1:{client_port}"), format!("http://127.0.0.1:{peer_port}"));
    let spawned = Command::new("etcd")
        .args(["--name", "axactor-test", "--data-dir", &dir.to_string_lossy()])
        .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("axactor-test={peer}"), "--initial-cluster-state", "new"])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500", "--log-level", "error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => Ok(child),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Start::NoBinary),
        Err(e) => panic!("cannot spawn etcd: {e}"),
    }
}

/// Whether the server on `port` answers `GET /health` with a healthy status.
async fn healthy(port: u16) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.ok()?;
        let mut buf = Vec::new();
        s.take(4096).read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf);
        Some(text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt).await.ok().flatten().unwrap_or(false)
}
