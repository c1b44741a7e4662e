//! Bounded memory: caps on a whole body and on one event.

mod common;

use common::server::{Reply, TestServer};
use common::{builder, completion_body, content_event, stream_events, user};
use modelapi::Error;

#[test]
fn a_body_over_the_cap_is_an_invalid_response() {
    let big = completion_body(&"x".repeat(64 * 1024));
    let server = TestServer::start(move |_| Reply::json(200, &big));
    let api = builder(&server.url())
        .max_response_bytes(16 * 1024)
        .build()
        .unwrap();
    let err = api.complete(&user("hi"), None).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidResponse(m) if m.contains("16384")),
        "{err:?}"
    );
    // The same body under a larger cap is fine.
    let api = builder(&server.url())
        .max_response_bytes(1 << 20)
        .build()
        .unwrap();
    assert_eq!(
        api.complete(&user("hi"), None)
            .unwrap()
            .content()
            .unwrap()
            .len(),
        64 * 1024
    );
}

#[test]
fn an_event_over_the_cap_is_an_invalid_response() {
    let huge = content_event(&"y".repeat(100_000));
    let events = [content_event("small"), huge, common::DONE.to_string()];
    let server = TestServer::start(move |_| {
        Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
    });
    let api = builder(&server.url())
        .max_event_bytes(10_000)
        .build()
        .unwrap();
    let (chunks, err) = common::collect(api.stream(&user("hi"), None).unwrap());
    assert_eq!(chunks, ["small"]);
    assert!(
        matches!(&err, Some(Error::InvalidResponse(m)) if m.contains("10000")),
        "{err:?}"
    );
}

#[test]
fn a_line_without_end_over_the_cap_fails_instead_of_growing() {
    // 1 MiB of data with no line end, under a 64 KiB cap.
    let endless = format!("data: {}", "z".repeat(1 << 20));
    let server = TestServer::start(move |_| Reply::sse(&[endless.as_str()]));
    let api = builder(&server.url())
        .max_event_bytes(64 * 1024)
        .build()
        .unwrap();
    let (chunks, err) = common::collect(api.stream(&user("hi"), None).unwrap());
    assert!(chunks.is_empty());
    assert!(matches!(err, Some(Error::InvalidResponse(_))), "{err:?}");
}

#[test]
fn many_events_fit_under_a_small_cap() {
    // The cap is per event: a long stream of small events is fine.
    let pieces: Vec<String> = (0..2000).map(|i| format!("{i},")).collect();
    let expected = pieces.concat();
    let events = stream_events(&pieces.iter().map(String::as_str).collect::<Vec<_>>());
    let server = TestServer::start(move |_| {
        Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
    });
    let api = builder(&server.url()).max_event_bytes(512).build().unwrap();
    let text: String = api
        .stream(&user("hi"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(text, expected);
}
