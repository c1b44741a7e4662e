//! Size attacks end at the configured caps with memory near the cap: a
//! single SSE line of 100 MiB, and a non-streamed body of 1 GiB, against
//! the default caps (16 MiB per event, 64 MiB per body). One test in this
//! binary, so the peak memory it reads is its own.

mod common;

use common::server::{head, Reply, Step, TestServer};
use common::user;
use modelapi::Error;

const MIB: u64 = 1024 * 1024;

fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

#[test]
fn huge_events_and_bodies_fail_at_the_caps_in_bounded_memory() {
    let server = TestServer::start(|request| {
        let piece = vec![b'x'; 64 * 1024];
        if request.body_json()["stream"] == true {
            // "data: " and 100 MiB with no line end.
            let head = head(200, &[("Content-Type", "text/event-stream".into())]);
            Reply::script(vec![
                Step::Write(head),
                Step::Write(b"data: ".to_vec()),
                Step::Repeat {
                    bytes: piece,
                    times: 1600,
                },
            ])
        } else {
            // A body announced and sent as 1 GiB.
            let head = head(
                200,
                &[
                    ("Content-Type", "application/json".into()),
                    ("Content-Length", (1024 * MIB).to_string()),
                ],
            );
            Reply::script(vec![
                Step::Write(head),
                Step::Repeat {
                    bytes: piece,
                    times: 16 * 1024,
                },
            ])
        }
    });
    let api = common::client(&server.url());
    let before = peak_rss_mib();

    let (chunks, err) = common::collect(api.stream(&user("hi"), None).unwrap());
    assert!(chunks.is_empty());
    assert!(
        matches!(&err, Some(Error::InvalidResponse(m)) if m.contains("16777216")),
        "{err:?}"
    );
    let after_event = peak_rss_mib();

    let err = api.complete(&user("hi"), None).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidResponse(m) if m.contains("67108864")),
        "{err:?}"
    );
    let after_body = peak_rss_mib();

    eprintln!("peak RSS: {before} MiB, after the 100 MiB line {after_event} MiB, after the 1 GiB body {after_body} MiB");
    assert!(
        after_event - before < 16 * 3,
        "a 16 MiB event cap took {} MiB",
        after_event - before
    );
    assert!(
        after_body - before < 64 * 3,
        "a 64 MiB body cap took {} MiB",
        after_body - before
    );
}
