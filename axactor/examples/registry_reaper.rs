//! A keyed registry with an idle reaper: one actor per key, started on
//! first use, stopped when it has been idle for a while, and started afresh
//! when the key is used again.
//!
//! Run with `cargo run -p axactor --example registry_reaper` (about two
//! seconds, exits 0).
//!
//! Sessions are keyed by user name. The reaper checks every 100 ms and stops
//! sessions idle for 500 ms; a busy session is never reaped; a reaped one
//! loses its state (keep what matters in storage, or keep the key busy).

use std::sync::Arc;
use std::time::Duration;

use axactor::registry::Registry;
use axactor::{Context, ExitReason, SpawnConfig, System, actor};

/// A user's session: counts the user's page views.
#[derive(Debug)]
pub struct Session {
    user: String,
    views: u32,
}

#[actor]
impl Session {
    /// Records a page view; returns the views so far in this session.
    #[msg]
    fn view(&mut self) -> u32 {
        self.views += 1;
        self.views
    }

    async fn on_stop(&mut self, _ctx: &mut Context, reason: &ExitReason) {
        println!("  session of {} stopped ({reason}) after {} views", self.user, self.views);
    }
}

/// The session of `user`, started if it is not running.
async fn session(reg: &Registry<String, SessionRef>, user: &str) -> SessionRef {
    let owned = user.to_string();
    reg.get_or_spawn(user.to_string(), SpawnConfig::new("session", 64), move || Session {
        user: owned.clone(),
        views: 0,
    })
    .await
    .expect("inside a runtime")
}

#[tokio::main]
async fn main() {
    let system = Arc::new(System::new());
    let reg: Registry<String, SessionRef> = Registry::new(Arc::clone(&system));
    reg.start_reaper(Duration::from_millis(500), Duration::from_millis(100));

    println!("1. one actor per key, started on first use");
    for user in ["alice", "bob", "alice", "alice"] {
        let views = session(&reg, user).await.view().await;
        println!("  {user}: view #{views:?}");
    }
    println!("  sessions running: {}", reg.len());

    println!("2. bob goes quiet, alice keeps browsing: only bob's session is reaped");
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = session(&reg, "alice").await.view().await;
    }
    println!(
        "  bob running: {}, alice running: {}",
        reg.get(&"bob".to_string()).is_some(),
        reg.get(&"alice".to_string()).is_some()
    );

    println!("3. bob comes back: a fresh session (its state was not kept)");
    println!("  bob: view #{:?}", session(&reg, "bob").await.view().await);

    system.shutdown_graceful(Duration::from_secs(1)).await;
    println!("done");
}
