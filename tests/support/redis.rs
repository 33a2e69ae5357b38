//! Redis servers for tests.
//!
//! Policy: use the server named by `AXACTOR_REDIS_URL` (CI starts one). If
//! that is unset and `AXACTOR_REQUIRE_REDIS=1`, fail. Otherwise start a
//! throwaway `redis-server` from `PATH` on a free loopback port (no
//! persistence, killed on drop); with no binary, print `SKIPPED: no redis`
//! to stderr and let the test return.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The environment variable naming the Redis server to test against.
pub const URL_ENV: &str = "AXACTOR_REDIS_URL";

/// Set to `1` to fail, rather than skip, when no Redis is available.
pub const REQUIRE_ENV: &str = "AXACTOR_REQUIRE_REDIS";

/// How long a started server gets to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Reports a skipped test (or fails it when Redis is required).
///
/// # Panics
/// If `AXACTOR_REQUIRE_REDIS=1`.
fn skip(test: &str, why: &str) {
    assert!(!required(), "{test}: Redis is required ({REQUIRE_ENV}=1) but {why}");
    // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: no redis: {test}: {why} (set {URL_ENV} or install redis-server) ***\n"
    );
}

/// A key prefix no other test, process or earlier run uses.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("axactor-test:{}:{nanos}:{}:{test}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The Redis a test runs against; keeps a throwaway server alive.
#[derive(Debug)]
pub struct TestRedis {
    /// The server's URL.
    pub url: String,
    _server: Option<ThrowawayRedis>,
}

/// The Redis for `test` by the policy above; `None` means skip the test.
///
/// # Panics
/// If Redis is required but not configured, or a started server does not
/// answer.
pub async fn test_redis(test: &str) -> Option<TestRedis> {
    if let Ok(url) = std::env::var(URL_ENV)
        && !url.is_empty()
    {
        return Some(TestRedis { url, _server: None });
    }
    assert!(!required(), "{test}: {REQUIRE_ENV}=1 but {URL_ENV} is not set");
    let server = throwaway_redis(test).await?;
    Some(TestRedis { url: server.url(), _server: Some(server) })
}

/// A throwaway server of `test`'s own (for tests that stop or restart it);
/// `None` means skip the test.
///
/// # Panics
/// If `redis-server` is missing while Redis is required, or the server does
/// not answer.
pub async fn throwaway_redis(test: &str) -> Option<ThrowawayRedis> {
    throwaway_redis_with(test, &[]).await
}

/// [`throwaway_redis`] with extra `redis-server` arguments (e.g.
/// `["--rename-command", "CONFIG", ""]`).
///
/// # Panics
/// As [`throwaway_redis`].
pub async fn throwaway_redis_with(test: &str, extra: &[&str]) -> Option<ThrowawayRedis> {
    for _ in 0..3 {
        let port = free_port();
        match ThrowawayRedis::start_with(port, extra).await {
            Ok(server) => return Some(server),
            Err(Start::NoBinary) => {
                skip(test, "redis-server is not on PATH");
                return None;
            }
            // Another process took the port between probing and binding.
            Err(Start::Exited) => continue,
        }
    }
    panic!("{test}: redis-server exited at start on three free ports");
}

/// Why a throwaway server did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// No `redis-server` on `PATH`.
    NoBinary,
    /// It exited before answering (e.g. its port was taken).
    Exited,
}

/// A `redis-server` child on a loopback port, without persistence. Killed
/// (SIGKILL) on drop.
#[derive(Debug)]
pub struct ThrowawayRedis {
    child: Child,
    port: u16,
}

impl ThrowawayRedis {
    /// Starts a server on `port` and waits until it answers `PING`.
    ///
    /// # Errors
    /// [`Start::NoBinary`] if `redis-server` is not on `PATH`;
    /// [`Start::Exited`] if it exits before answering.
    ///
    /// # Panics
    /// If it cannot be spawned for another reason, or does not answer within
    /// 10 s.
    pub async fn start_on(port: u16) -> Result<ThrowawayRedis, Start> {
        ThrowawayRedis::start_with(port, &[]).await
    }

    /// [`ThrowawayRedis::start_on`] with extra `redis-server` arguments.
    ///
    /// # Errors
    /// As [`ThrowawayRedis::start_on`].
    ///
    /// # Panics
    /// As [`ThrowawayRedis::start_on`].
    pub async fn start_with(port: u16, extra: &[&str]) -> Result<ThrowawayRedis, Start> {
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--dir", &std::env::temp_dir().to_string_lossy()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Start::NoBinary),
            Err(e) => panic!("cannot spawn redis-server: {e}"),
        };
        let mut server = ThrowawayRedis { child, port };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if ping(port).await {
                return Ok(server);
            }
            if matches!(server.child.try_wait(), Ok(Some(_))) {
                return Err(Start::Exited);
            }
            assert!(tokio::time::Instant::now() < deadline, "redis-server on port {port} did not answer PING");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for ThrowawayRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago.
///
/// # Panics
/// If no port can be bound at all.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// Whether a server on `port` answers `PING` with `+PONG`.
async fn ping(port: u16) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"PING\r\n").await.ok()?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await.ok()?;
        Some(&buf == b"+PONG\r\n")
    };
    tokio::time::timeout(Duration::from_secs(1), attempt).await.ok().flatten().unwrap_or(false)
}
