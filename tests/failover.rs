//! Staying responsive: the first-token deadline and fallback endpoints,
//! against local endpoints that stall in each way a provider does (before
//! the head, behind keep-alive comments, after a role-only delta) or fail
//! with 503. Keys never cross endpoints. Times are bounded generously;
//! what is asserted is what happened, not how fast.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{Reply, TestServer};
use common::stall::{Behaviour, StallServer};
use common::{builder, completion_body, user};
use modelapi::Error;

const KEY_A: &str = "sk-primary-key-aaaa";
const KEY_B: &str = "sk-fallback-key-bbbb";

/// Generous: a deadline of 300 ms on a loaded 2-core machine.
const SOON: Duration = Duration::from_secs(10);

fn answer(text: &str) -> Behaviour {
    Behaviour::Answer {
        delay: Duration::ZERO,
        text: text.into(),
    }
}

fn traced(lines: &Arc<Mutex<Vec<String>>>) -> impl Fn(modelapi::TraceLevel, &str) + Send + Sync {
    let lines = Arc::clone(lines);
    move |_, line| lines.lock().unwrap().push(line.to_string())
}

/// The key a request carried, if any.
fn bearer(request: &str) -> Option<String> {
    request.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_string())
    })
}

#[test]
fn a_503_falls_back_with_the_fallbacks_model_and_key_only() {
    let primary = TestServer::start(|_| Reply::json(503, r#"{"error":{"message":"overloaded"}}"#));
    let fallback = TestServer::start(|_| Reply::json(200, &completion_body("from the fallback")));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let api = builder(&primary.url())
        .api_key(KEY_A)
        .max_retries(1)
        .fallback(fallback.url(), "backup-model", Some(KEY_B.into()))
        .trace(traced(&lines))
        .build()
        .unwrap();
    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("from the fallback"));

    // The primary's retries first, then the fallback.
    let sent = primary.requests();
    assert_eq!(sent.len(), 2);
    for request in &sent {
        assert_eq!(
            request.header("authorization"),
            Some(&*format!("Bearer {KEY_A}"))
        );
        assert_eq!(request.body_json()["model"], "test-model");
    }
    let sent = fallback.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].header("authorization"),
        Some(&*format!("Bearer {KEY_B}"))
    );
    assert_eq!(sent[0].body_json()["model"], "backup-model");
    assert_eq!(sent[0].body_json()["messages"][0]["content"], "hi");

    let lines = lines.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("falling back from")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("endpoint 2 of 2")),
        "{lines:#?}"
    );
    for line in lines.iter() {
        assert!(!line.contains(KEY_A) && !line.contains(KEY_B), "{line}");
    }
}

#[test]
fn a_fallback_without_a_key_gets_none() {
    let primary = TestServer::start(|_| Reply::json(500, "{}"));
    let fallback = TestServer::start(|_| Reply::json(200, &completion_body("ok")));
    let api = builder(&primary.url())
        .api_key(KEY_A)
        .header("X-Team", "games")
        .header("api-key", "sk-azure-style-secret")
        .max_retries(0)
        .fallback(fallback.url(), "other", None)
        .build()
        .unwrap();
    api.complete(&user("hi"), None).unwrap();
    let sent = &fallback.requests()[0];
    assert_eq!(sent.header("authorization"), None);
    // Plain headers go everywhere; credential headers stay with their
    // endpoint.
    assert_eq!(sent.header("x-team"), Some("games"));
    assert_eq!(sent.header("api-key"), None);
    assert_eq!(
        primary.requests()[0].header("api-key"),
        Some("sk-azure-style-secret")
    );
}

#[test]
fn a_4xx_does_not_fall_back() {
    let primary = TestServer::start(|_| Reply::json(401, r#"{"error":{"message":"bad key"}}"#));
    let fallback = TestServer::start(|_| Reply::json(200, &completion_body("ok")));
    let api = builder(&primary.url())
        .fallback(fallback.url(), "other", None)
        .build()
        .unwrap();
    let err = api.complete(&user("hi"), None).unwrap_err();
    assert_eq!(err.status(), Some(401), "{err:?}");
    assert_eq!(fallback.requests().len(), 0);
}

#[test]
fn the_last_endpoints_error_is_returned_scrubbed_of_every_key() {
    let primary = StallServer::start(Behaviour::Unavailable);
    let fallback = TestServer::start(move |r| {
        // A server that echoes what it was sent.
        Reply::json(
            503,
            &format!(
                r#"{{"error":{{"message":"echo {}"}}}}"#,
                r.header("authorization").unwrap_or_default()
            ),
        )
    });
    let api = builder(&primary.url())
        .api_key(KEY_A)
        .max_retries(0)
        .fallback(fallback.url(), "other", Some(KEY_B.into()))
        .build()
        .unwrap();
    let err = api.complete(&user("hi"), None).unwrap_err();
    assert_eq!(err.status(), Some(503));
    let text = format!("{err} {err:?}");
    assert!(!text.contains(KEY_A) && !text.contains(KEY_B), "{text}");
    assert!(text.contains("[REDACTED]"), "{text}");
    assert!(!format!("{api:?}").contains(KEY_B));
}

#[test]
fn a_complete_past_the_deadline_times_out_without_a_fallback() {
    let stalling = StallServer::start(Behaviour::StallBeforeHead);
    let api = builder(&stalling.url())
        .first_token_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = api.complete(&user("hi"), None).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(err.to_string().contains("first-token deadline"), "{err}");
    assert!(started.elapsed() < SOON, "{:?}", started.elapsed());
    // The stalled attempt's connection was closed, not left open.
    assert!(stalling.wait_closed(0, SOON).is_some());
}

#[test]
fn a_complete_past_the_deadline_moves_on_to_the_fallback() {
    let stalling = StallServer::start(Behaviour::StallBeforeHead);
    let fallback = TestServer::start(|_| Reply::json(200, &completion_body("rescued")));
    let api = builder(&stalling.url())
        .first_token_timeout(Duration::from_millis(300))
        .fallback(fallback.url(), "other", None)
        .build()
        .unwrap();
    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("rescued"));
    assert_eq!(stalling.seen().len(), 1);
    assert!(stalling.wait_closed(0, SOON).is_some());
}

#[test]
fn a_refused_connection_falls_back() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let fallback = TestServer::start(|_| Reply::json(200, &completion_body("ok")));
    let api = builder(&dead_url)
        .max_retries(0)
        .fallback(fallback.url(), "other", None)
        .build()
        .unwrap();
    assert_eq!(
        api.complete(&user("hi"), None).unwrap().content(),
        Some("ok")
    );
}

#[test]
fn fallback_settings_are_checked() {
    let bad = builder("http://127.0.0.1:1")
        .fallback("ftp://x", "m", None)
        .build()
        .unwrap_err();
    assert!(bad.to_string().contains("api_base"), "{bad}");
    let bad = builder("http://127.0.0.1:1")
        .fallback("http://127.0.0.1:2", " ", None)
        .build()
        .unwrap_err();
    assert!(bad.to_string().contains("model"), "{bad}");
    let mut api = builder("http://127.0.0.1:1").build().unwrap();
    api.add_fallback("http://127.0.0.1:2", "m", Some("k-123456"))
        .unwrap();
    assert!(api.add_fallback("nope", "m", None).is_err());
}

// ---- streams: the deadline counts events, not bytes ----

/// A stream from a client whose own endpoint is `stalling` and whose
/// fallback is `fallback`, with a 300 ms first-token deadline.
fn rescued_from(behaviour: Behaviour) {
    let stalling = StallServer::start(behaviour.clone());
    let fallback = StallServer::start(answer("rescued"));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let api = builder(&stalling.url())
        .api_key(KEY_A)
        .first_token_timeout(Duration::from_millis(300))
        .fallback(fallback.url(), "backup", Some(KEY_B.into()))
        .trace(traced(&lines))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut stream = api.stream(&user("hi"), None).unwrap();
    let text = stream.by_ref().collect::<Result<String, _>>().unwrap();
    assert_eq!(text, "rescued", "{behaviour:?}");
    assert!(started.elapsed() < SOON, "{:?}", started.elapsed());
    let meta = stream.metadata();
    assert_eq!(meta.endpoint.as_deref(), Some(&*fallback.url()));
    let first = meta.first_event.expect("the first event's time");
    assert!(first >= Duration::from_millis(300), "{first:?}");
    // The stalled attempt's connection was closed.
    assert!(stalling.wait_closed(0, SOON).is_some(), "{behaviour:?}");
    // Each key to its own endpoint only.
    assert_eq!(
        bearer(&stalling.seen()[0].request),
        Some(format!("Bearer {KEY_A}"))
    );
    assert_eq!(
        bearer(&fallback.seen()[0].request),
        Some(format!("Bearer {KEY_B}"))
    );
    assert!(fallback.seen()[0].request.contains("\"model\":\"backup\""));
    let lines = lines.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("first-token deadline")),
        "{lines:#?}"
    );
    for line in lines.iter() {
        assert!(!line.contains(KEY_A) && !line.contains(KEY_B), "{line}");
    }
}

#[test]
fn a_stall_before_the_head_moves_on_at_the_deadline() {
    rescued_from(Behaviour::StallBeforeHead);
}

#[test]
fn keep_alive_comments_do_not_count_as_a_first_token() {
    rescued_from(Behaviour::KeepAliveComments {
        every: Duration::from_millis(50),
    });
}

#[test]
fn a_role_only_delta_does_not_count_as_a_first_token() {
    rescued_from(Behaviour::RoleThenStall);
}

#[test]
fn a_stream_past_the_deadline_without_a_fallback_times_out() {
    let stalling = StallServer::start(Behaviour::KeepAliveComments {
        every: Duration::from_millis(50),
    });
    let api = builder(&stalling.url())
        .first_token_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = api.stream(&user("hi"), None).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(stalling.wait_closed(0, SOON).is_some());
}

#[test]
fn a_503_stream_falls_back() {
    let primary = StallServer::start(Behaviour::Unavailable);
    let fallback = StallServer::start(answer("ok"));
    let api = builder(&primary.url())
        .max_retries(1)
        .fallback(fallback.url(), "backup", None)
        .build()
        .unwrap();
    let stream = api.stream(&user("hi"), None).unwrap();
    assert_eq!(stream.into_text().unwrap(), "ok");
    // Its retry first, then the fallback.
    assert_eq!(primary.seen().len(), 2);
    assert_eq!(fallback.seen().len(), 1);
}

/// An endpoint that answers one piece ("once"), then stalls for 5 s.
fn one_piece_then_stall() -> TestServer {
    TestServer::start(|_| {
        use common::server::Step;
        let head = common::server::head(200, &[("Content-Type", "text/event-stream".into())]);
        Reply::script(vec![
            Step::Write(head),
            Step::Write(common::content_event("once").into_bytes()),
            Step::Sleep(Duration::from_secs(5)),
        ])
    })
}

#[test]
fn no_fallback_after_an_event_was_handed_out() {
    // The first answers one piece, then stalls past the client's timeout.
    let server = one_piece_then_stall();
    let fallback = StallServer::start(answer("twice"));
    let api = builder(&server.url())
        .timeout(Duration::from_millis(400))
        .first_token_timeout(Duration::from_secs(5))
        .fallback(fallback.url(), "backup", None)
        .build()
        .unwrap();
    let (chunks, err) = common::collect(api.stream(&user("hi"), None).unwrap());
    assert_eq!(chunks, ["once"]);
    assert!(matches!(err, Some(Error::Timeout(_))), "{err:?}");
    assert_eq!(fallback.seen().len(), 0, "no text twice");
}

/// A started stream whose race has a winner hands out the winner's first
/// event at once: a blocking read, a poll with a wait, neither waits for
/// the next chunk (which here comes after the client's timeout).
#[test]
fn a_started_stream_hands_out_the_winners_first_event_at_once() {
    let server = one_piece_then_stall();
    let fallback = StallServer::start(answer("twice"));
    let api = builder(&server.url())
        .timeout(Duration::from_millis(800))
        .first_token_timeout(Duration::from_secs(5))
        .fallback(fallback.url(), "backup", None)
        .build()
        .unwrap();
    // A blocking read.
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    match stream.next_event() {
        Some(Ok(modelapi::StreamEvent::Content(text))) => assert_eq!(text, "once"),
        other => panic!("the first event, not {other:?}"),
    }
    // A poll with a wait (of more than the timeout).
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let got = loop {
        match stream.poll_event(Duration::from_secs(2)) {
            std::task::Poll::Pending => continue,
            std::task::Poll::Ready(Some(Ok(modelapi::StreamEvent::Content(text)))) => {
                break text.to_string()
            }
            other => panic!("the first event, not {other:?}"),
        }
    };
    assert_eq!(got, "once");
    assert_eq!(fallback.seen().len(), 0, "the first endpoint served");
}

/// Closing the client closes its fallbacks too: a stream started before
/// goes nowhere after it.
#[test]
fn close_closes_the_fallbacks_too() {
    let primary = StallServer::start(Behaviour::StallBeforeHead);
    let fallback = StallServer::start(answer("late"));
    let api = builder(&primary.url())
        .first_token_timeout(Duration::from_millis(300))
        .fallback(fallback.url(), "backup", Some(KEY_B.into()))
        .build()
        .unwrap();
    let stream = api.stream_start(&user("hi"), None).unwrap();
    api.close();
    let (chunks, err) = common::collect(stream);
    assert!(chunks.is_empty(), "{chunks:?}");
    assert!(err.is_some());
    assert_eq!(
        fallback.seen().len(),
        0,
        "no request to a closed client's fallback"
    );
}

#[test]
fn a_plain_stream_tells_its_endpoint_and_first_event() {
    let server = StallServer::start(answer("hi"));
    let api = builder(&format!("{}/", server.url())).build().unwrap();
    let mut stream = api.stream(&user("hi"), None).unwrap();
    assert_eq!(stream.metadata().endpoint, None);
    assert_eq!(stream.next().unwrap().unwrap(), "hi");
    assert_eq!(stream.metadata().endpoint.as_deref(), Some(&*server.url()));
    assert!(stream.metadata().first_event.is_some());
}

#[test]
fn a_fallbacks_redirect_to_another_origin_carries_no_key() {
    let elsewhere = TestServer::start(|_| Reply::json(200, &completion_body("moved")));
    let target = format!("{}/v1/chat/completions", elsewhere.url());
    let fallback =
        TestServer::start(move |_| Reply::json(307, "{}").with_header("Location", &target));
    let primary = TestServer::start(|_| Reply::json(502, "{}"));
    let api = builder(&primary.url())
        .api_key(KEY_A)
        .max_retries(0)
        .fallback(fallback.url(), "backup", Some(KEY_B.into()))
        .build()
        .unwrap();
    assert_eq!(
        api.complete(&user("hi"), None).unwrap().content(),
        Some("moved")
    );
    assert_eq!(
        fallback.requests()[0].header("authorization"),
        Some(&*format!("Bearer {KEY_B}"))
    );
    // Another origin: neither key follows the redirect.
    let moved = &elsewhere.requests()[0];
    assert_eq!(moved.header("authorization"), None);
    assert_eq!(moved.body_json()["model"], "backup");
}
