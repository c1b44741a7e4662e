//! The timeout bounds each wait, never a whole stream.

mod common;

use std::time::{Duration, Instant};

use common::server::{chunked, head, Reply, Step, TestServer};
use common::{builder, content_event, stream_events, user};
use modelapi::Error;

fn sse_head() -> Vec<u8> {
    head(
        200,
        &[
            ("Content-Type", "text/event-stream".into()),
            ("Transfer-Encoding", "chunked".into()),
        ],
    )
}

#[test]
fn silence_after_the_head_times_out_after_one_timeout() {
    let server = TestServer::start(|_| {
        Reply::script(vec![
            Step::Write(sse_head()),
            Step::Write(chunked(content_event("first").as_bytes())),
            Step::Sleep(Duration::from_secs(8)),
        ])
    });
    let api = builder(&server.url())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let mut stream = api.stream(&user("hi"), None).unwrap();
    assert_eq!(stream.next().unwrap().unwrap(), "first");
    let started = Instant::now();
    let err = stream.next().unwrap().unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(
        waited >= Duration::from_millis(450) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[test]
fn no_answer_at_all_times_out_without_retrying() {
    let server = TestServer::start(|_| Reply::script(vec![Step::Sleep(Duration::from_secs(8))]));
    let api = builder(&server.url())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = api.complete(&user("hi"), None).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_slow_drip_longer_than_the_timeout_succeeds() {
    // One byte every 100 ms for about 3 s, with a 1 s timeout.
    let body = content_event("slow") + &common::finish_event("stop");
    let (dripped, rest) = body.as_bytes().split_at(30);
    let (dripped, rest) = (dripped.to_vec(), rest.to_vec());
    let server = TestServer::start(move |_| {
        let head = head(200, &[("Content-Type", "text/event-stream".into())]);
        Reply::script(vec![
            Step::Write(head),
            Step::Drip {
                bytes: dripped.clone(),
                piece: 1,
                delay: Duration::from_millis(100),
            },
            Step::Write(rest.clone()),
            Step::Write(b"data: [DONE]\n\n".to_vec()),
            Step::Close,
        ])
    });
    let api = builder(&server.url())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let started = Instant::now();
    let chunks: Vec<String> = api
        .stream(&user("hi"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunks, ["slow"]);
    assert!(
        started.elapsed() > Duration::from_millis(2500),
        "the drip took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_long_healthy_stream_is_never_cut() {
    // 40 chunks 100 ms apart: 4 s in all, with a 1 s timeout.
    let pieces: Vec<String> = (0..40).map(|i| format!("{i} ")).collect();
    let server = TestServer::start(move |_| {
        let mut steps = vec![Step::Write(sse_head())];
        for event in stream_events(&pieces.iter().map(String::as_str).collect::<Vec<_>>()) {
            steps.push(Step::Write(chunked(event.as_bytes())));
            steps.push(Step::Sleep(Duration::from_millis(100)));
        }
        steps.push(Step::Write(b"0\r\n\r\n".to_vec()));
        Reply {
            steps,
            keep_alive: true,
        }
    });
    let api = builder(&server.url())
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let chunks: Vec<String> = api
        .stream(&user("hi"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunks.len(), 40);
}
