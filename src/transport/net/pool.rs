//! Idle keep-alive connections, kept for the next request to the same
//! server.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Conn;

/// Idle connections kept per server: enough for many threads sharing one
/// client against one server.
const IDLE_PER_SERVER: usize = 16;

/// uvicorn (vLLM, LiteLLM, most Python servers) closes idle connections
/// after 5 s: reusing one older than this would race the server closing it.
const MAX_IDLE_AGE: Duration = Duration::from_secs(4);

#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    /// `scheme://host:port`.
    server: String,
    conn: Conn,
    since: Instant,
}

impl Pool {
    /// The most recently used idle connection to `server` that is still
    /// good, if any.
    pub(crate) fn take(&self, server: &str) -> Option<Conn> {
        let mut idle = self.lock();
        let now = Instant::now();
        idle.retain(|i| now.duration_since(i.since) < MAX_IDLE_AGE);
        while let Some(at) = idle.iter().rposition(|i| i.server == server) {
            let conn = idle.remove(at).conn;
            if conn.is_reusable() {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn`, idle, for the next request to `server`.
    pub(crate) fn put(&self, server: &str, conn: Conn) {
        let mut idle = self.lock();
        if idle.iter().filter(|i| i.server == server).count() >= IDLE_PER_SERVER {
            if let Some(oldest) = idle.iter().position(|i| i.server == server) {
                idle.remove(oldest);
            }
        }
        idle.push(Idle {
            server: server.to_string(),
            conn,
            since: Instant::now(),
        });
    }

    /// Closes every idle connection.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // A list of connections is never left half-changed.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}
