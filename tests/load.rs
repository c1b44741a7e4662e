//! Load: 16 threads share one client for thousands of mixed calls; every
//! answer is right, memory stays flat, and `close` gives back every file
//! descriptor. One test in this binary, so nothing else moves the numbers.

mod common;

use std::time::{Duration, Instant};

use common::server::{Reply, TestServer};
use common::{completion_body, stream_events, user};
use modelapi::ModelApi;

const THREADS: usize = 16;

/// Answers each request with "echo <the last message>".
fn echo_server() -> TestServer {
    TestServer::start_with(THREADS + 8, false, |request| {
        let body = request.body_json();
        let asked = body["messages"][0]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let answer = format!("echo {asked}");
        if body["stream"] == true {
            let (a, b) = answer.split_at(answer.len() / 2);
            let events = stream_events(&["echo", &a[4..], b]);
            Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            Reply::json(200, &completion_body(&answer))
        }
    })
}

/// `calls` calls per thread, half complete and half stream, each checked.
fn hammer(api: &ModelApi, calls: usize) {
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            scope.spawn(move || {
                for i in 0..calls {
                    let question = format!("thread {t} call {i}");
                    let expected = format!("echo {question}");
                    let answer = if i % 2 == 0 {
                        api.complete(&user(&question), None)
                            .unwrap()
                            .content()
                            .unwrap()
                            .to_string()
                    } else {
                        api.stream(&user(&question), None)
                            .unwrap()
                            .collect::<Result<String, _>>()
                            .unwrap()
                    };
                    assert_eq!(answer, expected);
                }
            });
        }
    });
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn sixteen_threads_thousands_of_calls_flat_memory_no_leaked_fds() {
    let server = echo_server();
    let fds_before = open_fds();
    let api = common::client(&server.url());

    // 16 x 500 mixed calls; then the memory of the warmed-up process.
    hammer(&api, 500);
    let warm_kib = status_kib("VmRSS:");

    // 10,000 more calls.
    hammer(&api, 625);
    let after_kib = status_kib("VmRSS:");
    let growth_kib = after_kib.saturating_sub(warm_kib);
    eprintln!("RSS after 8,000 calls: {warm_kib} KiB; after 10,000 more: {after_kib} KiB");
    assert!(
        growth_kib < 8 * 1024,
        "RSS grew by {growth_kib} KiB over 10,000 calls"
    );

    // Every connection is given back: the client's, and the server's side.
    api.close();
    drop(api);
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_fds() > fds_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        open_fds(),
        fds_before,
        "file descriptors left open after close"
    );
    assert!(
        server.accepted() <= THREADS * 2,
        "{} connections for {THREADS} threads",
        server.accepted()
    );
}
