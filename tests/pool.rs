//! Keep-alive: one client reuses one connection, and a stream dropped early
//! closes its own connection without poisoning the pool.

mod common;

use std::time::Duration;

use common::server::{chunked, head, Reply, Step, TestServer};
use common::{client, completion_body, content_event, stream_events, user};
use modelapi::Error;

fn server() -> TestServer {
    TestServer::start(|request| {
        if request.body_json()["stream"] == true {
            let events = stream_events(&["a", "b", "c"]);
            Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            Reply::json(200, &completion_body("ok"))
        }
    })
}

#[test]
fn sequential_calls_reuse_one_connection() {
    let server = server();
    let api = client(&server.url());
    for _ in 0..10 {
        assert_eq!(
            api.complete(&user("hi"), None).unwrap().content(),
            Some("ok")
        );
        let text: String = api
            .stream(&user("hi"), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(text, "abc");
    }
    assert_eq!(server.requests().len(), 20);
    assert_eq!(server.accepted(), 1);
    assert!(server.requests().iter().all(|r| r.connection == 0));
}

#[test]
fn a_stream_dropped_early_does_not_poison_the_pool() {
    // Streams that would run for seconds; the client drops each after one chunk.
    let server = TestServer::start(|request| {
        if request.body_json()["stream"] == false {
            return Reply::json(200, &completion_body("ok"));
        }
        let head = head(
            200,
            &[
                ("Content-Type", "text/event-stream".into()),
                ("Transfer-Encoding", "chunked".into()),
            ],
        );
        let mut steps = vec![Step::Write(head)];
        for _ in 0..50 {
            steps.push(Step::Write(chunked(content_event("x").as_bytes())));
            steps.push(Step::Sleep(Duration::from_millis(100)));
        }
        Reply {
            steps,
            keep_alive: true,
        }
    });
    let api = client(&server.url());
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let mut stream = api.stream(&user("hi"), None).unwrap();
        assert_eq!(stream.next().unwrap().unwrap(), "x");
        drop(stream);
        // The next call works, on a healthy connection.
        assert_eq!(
            api.complete(&user("hi"), None).unwrap().content(),
            Some("ok")
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "dropping must not read the rest"
    );
    // Each dropped stream closed its connection; each complete reused none
    // of them (a fresh connection, then pooled for the next stream).
    let reqs = server.requests();
    assert_eq!(reqs.len(), 6);
    for pair in reqs.chunks(2) {
        assert_ne!(
            pair[0].connection, pair[1].connection,
            "a dropped stream's connection is never reused"
        );
    }
}

#[test]
fn close_releases_and_refuses_later_calls() {
    let server = server();
    let api = client(&server.url());
    api.complete(&user("hi"), None).unwrap();
    let open_stream = api.stream(&user("hi"), None).unwrap();
    api.close();
    api.close();
    assert!(api.is_closed());
    assert!(matches!(
        api.complete(&user("hi"), None),
        Err(Error::Closed)
    ));
    assert!(matches!(api.stream(&user("hi"), None), Err(Error::Closed)));
    // A stream opened before close goes on to its end.
    let text: String = open_stream.collect::<Result<_, _>>().unwrap();
    assert_eq!(text, "abc");
    assert!(Error::Closed.to_string().contains("closed"));
}

#[test]
fn many_threads_share_one_client() {
    let server = server();
    let api = client(&server.url());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..25 {
                    assert_eq!(
                        api.complete(&user("hi"), None).unwrap().content(),
                        Some("ok")
                    );
                    let text: String = api
                        .stream(&user("hi"), None)
                        .unwrap()
                        .collect::<Result<_, _>>()
                        .unwrap();
                    assert_eq!(text, "abc");
                }
            });
        }
    });
    assert_eq!(server.requests().len(), 200);
    assert!(
        server.accepted() <= 4,
        "{} connections for 4 threads",
        server.accepted()
    );
}
