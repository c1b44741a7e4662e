//! A real third-party server for the tests (the LiteLLM proxy,
//! llama-server): started by a script of its own on a free loopback port,
//! waited for until it is healthy, and stopped by PID when the test process
//! exits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The servers this test process started, stopped when it exits.
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

/// Stops every server started here: SIGTERM, then SIGKILL after 10 s.
extern "C" fn stop_all() {
    let Ok(mut children) = CHILDREN.lock() else {
        return;
    };
    for mut child in children.drain(..) {
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A server started by [`start`].
pub struct Service {
    pub addr: SocketAddr,
    /// Where its output goes.
    pub log: PathBuf,
    /// Its process (the script `exec`s the server).
    pub pid: u32,
}

/// Runs `bash <script> <port>` (the script `exec`s the server, so its PID is
/// the server's), with its output in a log under the test target folder,
/// and waits until `GET <health_path>` answers 200; panics with the log
/// when the server exits first or `limit` passes (which must cover a first
/// run's install).
pub fn start(name: &str, script: &Path, health_path: &str, limit: Duration) -> Service {
    start_with_env(name, script, health_path, limit, &[])
}

/// [`start`], with these variables set in the script's environment.
pub fn start_with_env(
    name: &str,
    script: &Path,
    health_path: &str,
    limit: Duration,
    env: &[(&str, &str)],
) -> Service {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{port}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new("bash")
        .arg(script)
        .arg(port.to_string())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("bash runs {}: {e}", script.display()));
    let pid = child.id();
    {
        let mut children = CHILDREN.lock().unwrap();
        if children.is_empty() {
            unsafe { libc::atexit(stop_all) };
        }
        children.push(child);
    }
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    loop {
        if answers_200(addr, health_path) {
            eprintln!(
                "{name} on {addr} answered after {:.1} s (log: {})",
                started.elapsed().as_secs_f64(),
                log.display()
            );
            return Service { addr, log, pid };
        }
        let exited = {
            let mut children = CHILDREN.lock().unwrap();
            let child = children.iter_mut().find(|c| c.id() == pid).unwrap();
            child.try_wait().unwrap()
        };
        if let Some(status) = exited {
            panic!(
                "{name} exited ({status}) before it answered; its log:\n{}",
                read_log()
            );
        }
        if started.elapsed() > limit {
            panic!(
                "{name} did not answer within {limit:?}; its log:\n{}",
                read_log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether `GET <path>` on `addr` answers 200 (false while the server is
/// not up, or not ready).
fn answers_200(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

/// Says that tests were not run, where the person running them sees it:
/// straight to the process's standard error, which the test harness does
/// not capture (its capture takes only `print!` and `eprint!`), so that a
/// plain `cargo test` shows it even though the tests pass.
pub fn not_run(message: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "\n{message}\n");
}
