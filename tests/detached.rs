//! Detached streams (`ModelApi::stream_detached`): the host carries the
//! bytes and feeds them; the library builds the request and reads the
//! answer with the same decoder as its own connections.
//!
//! The hosts here are the test host of `common::carrier` (real HTTP to a
//! loopback test server) and direct feeds of exact bytes. The event
//! scenarios of `tests/events.rs` also run detached; the random splits of
//! recorded answers are fuzzed in `tests/fuzz.rs` (`detached_splits`).

mod common;

use std::task::Poll;
use std::time::Duration;

use common::carrier::{self, Carrier};
use common::server::{head, Reply, Step, TestServer};
use common::{content_event, event_line as line, finish_event, stream_events, user, DONE};
use modelapi::{CancelToken, ChatStream, Error, ModelApi};
use serde_json::{json, Value};

/// A client of `url` (no canned replies, no retries).
fn api(url: &str) -> ModelApi {
    common::builder(url).max_retries(0).build().unwrap()
}

/// A detached stream of a client of a server nobody listens to: it is
/// only fed.
/// Whether this build has the library's own network code: the comparisons
/// with the same answer read over it are made only then (`bash
/// tests/run-all.sh` runs this file in the build without it too).
const NET: bool = cfg!(feature = "net");

fn detached() -> ChatStream {
    api("http://127.0.0.1:9")
        .stream_detached(&user("hi"), None)
        .unwrap()
}

/// What a poll that does not wait gives, as text: `pending`, `end`, an
/// event line or `error <Debug>`.
fn poll_now(stream: &mut ChatStream) -> String {
    match stream.poll_event(Duration::ZERO) {
        Poll::Pending => "pending".into(),
        Poll::Ready(None) => "end".into(),
        Poll::Ready(Some(Ok(event))) => line(event),
        Poll::Ready(Some(Err(err))) => format!("error {err:?}"),
    }
}

/// Reads every event ready now; stops at `Pending` (the stream goes on)
/// or the end; an error fails the test.
fn drain_ready(stream: &mut ChatStream) -> Vec<String> {
    let mut lines = Vec::new();
    for _ in 0..100_000 {
        match stream.next_event() {
            Some(Ok(event)) => lines.push(line(event)),
            Some(Err(Error::Pending(_))) | None => return lines,
            Some(Err(err)) => panic!("{err:?} after {lines:?}"),
        }
    }
    panic!("more than 100000 events");
}

/// Every event of a stream whose bytes were all fed, and its error.
fn events_of(stream: &mut ChatStream) -> (Vec<String>, Option<Error>) {
    let mut lines = Vec::new();
    while let Some(event) = stream.next_event() {
        match event {
            Ok(event) => lines.push(line(event)),
            Err(err) => return (lines, Some(err)),
        }
    }
    (lines, None)
}

/// Every event of a stream whose bytes were all fed; an error fails the
/// test.
fn ok_events(stream: &mut ChatStream) -> Vec<String> {
    let (lines, error) = events_of(stream);
    assert!(error.is_none(), "{error:?} after {lines:?}");
    lines
}

fn sse_body(events: &[String]) -> Vec<u8> {
    events.concat().into_bytes()
}

// ---------------------------------------------------------------------------
// An event as soon as its bytes are fed
// ---------------------------------------------------------------------------

#[test]
fn an_event_is_readable_as_soon_as_the_bytes_that_complete_it_are_fed() {
    let mut stream = detached();
    assert!(stream.is_detached());
    assert_eq!(poll_now(&mut stream), "pending", "nothing fed");
    assert!(
        matches!(stream.next_event(), Some(Err(Error::Pending(_)))),
        "a blocking read cannot wait for the host"
    );
    stream.feed_head(200, Some("text/event-stream")).unwrap();
    assert_eq!(poll_now(&mut stream), "pending", "the head alone");
    assert_eq!(stream.metadata().endpoint, None, "no event yet");

    // LF line ends: the event comes with the last byte of its blank line,
    // not one byte before.
    for (text, event) in [
        ("Hel", content_event("Hel")),
        ("lo é🦀", content_event("lo é🦀")),
    ] {
        let bytes = event.as_bytes();
        for (at, byte) in bytes.iter().enumerate() {
            let last = at + 1 == bytes.len();
            if !last {
                assert_eq!(poll_now(&mut stream), "pending", "{text}: {at} bytes fed");
                assert!(
                    matches!(stream.next_event(), Some(Err(Error::Pending(_)))),
                    "{text}: {at} bytes fed"
                );
            }
            stream.feed(std::slice::from_ref(byte)).unwrap();
        }
        assert_eq!(poll_now(&mut stream), format!("content {text}"));
        assert_eq!(poll_now(&mut stream), "pending", "after {text}");
    }

    // CRLF line ends: not before the blank line's CR, and at its LF at the
    // latest.
    let crlf = content_event("CR").replace('\n', "\r\n");
    let bytes = crlf.as_bytes();
    for (at, byte) in bytes.iter().enumerate() {
        if at + 2 < bytes.len() {
            assert_eq!(poll_now(&mut stream), "pending", "CRLF: {at} bytes fed");
        }
        stream.feed(std::slice::from_ref(byte)).unwrap();
    }
    assert_eq!(poll_now(&mut stream), "content CR");

    // The finish, then [DONE]: the end is known at [DONE]'s blank line,
    // before the body's end is fed.
    stream.feed(finish_event("stop").as_bytes()).unwrap();
    assert_eq!(poll_now(&mut stream), "pending", "a finish has no event");
    stream.feed(&DONE.as_bytes()[..DONE.len() - 1]).unwrap();
    assert_eq!(poll_now(&mut stream), "pending");
    stream.feed(b"\n").unwrap();
    assert_eq!(poll_now(&mut stream), "end");
    assert!(stream.is_finished());
    assert_eq!(stream.completion().content(), Some("Hello é🦀CR"));
    assert_eq!(stream.metadata().finish_reason.as_deref(), Some("stop"));
    // Served by the client's own endpoint, as on the network.
    assert_eq!(
        stream.metadata().endpoint.as_deref(),
        Some("http://127.0.0.1:9")
    );
    assert!(stream.metadata().first_event.is_some());
    // The host still ends its body: accepted, nothing changes.
    stream.feed_end().unwrap();
    assert!(stream.next_event().is_none());
}

#[test]
fn the_test_host_feeds_as_the_socket_delivers_and_the_reads_go_on_between() {
    // The server drips its answer; the host feeds each piece as it comes
    // and reads between pieces, as a game loop does.
    let events = stream_events(&["One ", "two ", "three é🦀"]);
    let body = sse_body(&events);
    let server = TestServer::start(move |_| {
        Reply::script(vec![
            Step::Write(head(200, &[("Content-Type", "text/event-stream".into())])),
            Step::Drip {
                bytes: body.clone(),
                piece: 7,
                delay: Duration::from_millis(1),
            },
        ])
    });
    let mut stream = api(&server.url())
        .stream_detached(&user("hi"), None)
        .unwrap();
    let mut host = Carrier::send(stream.host_request().unwrap());
    assert_eq!(host.status(), 200);
    host.feed_head(&mut stream);
    let mut lines = Vec::new();
    let mut pendings = 0;
    let mut carrying = true;
    for _ in 0..1_000_000 {
        match stream.poll_event(Duration::ZERO) {
            Poll::Pending => {
                pendings += 1;
                assert!(carrying, "pending after the whole answer was fed");
                carrying = host.pump(&mut stream);
            }
            Poll::Ready(Some(event)) => lines.push(line(event.unwrap())),
            Poll::Ready(None) => break,
        }
    }
    assert_eq!(lines, ["content One ", "content two ", "content three é🦀"]);
    assert!(stream.is_finished());
    assert!(pendings > 1, "the reads went on between the pieces");
    assert!(host.pieces > 3, "fed in pieces: {}", host.pieces);
}

// ---------------------------------------------------------------------------
// Errors and ends
// ---------------------------------------------------------------------------

#[test]
fn http_errors_carry_the_servers_status_and_message_as_on_the_network() {
    for (status, message, kind) in [
        (
            401,
            "Incorrect API key provided: sk-...",
            "invalid_request_error",
        ),
        (429, "Rate limit reached for requests", "requests"),
        (
            500,
            "The server had an error while processing",
            "server_error",
        ),
    ] {
        let body = json!({"error": {"message": message, "type": kind, "code": status}});
        let text = body.to_string();
        let server = TestServer::start(move |_| Reply::json(status, &text));
        let api = api(&server.url());
        // The same answer read over the library's own connection (not in
        // the build without network code).
        let network = NET.then(|| api.stream(&user("hi"), None).unwrap_err());

        let mut stream = api.stream_detached(&user("hi"), None).unwrap();
        let mut host = Carrier::send(stream.host_request().unwrap());
        host.feed_head(&mut stream);
        // Not before the body has ended: the message is in it.
        assert_eq!(poll_now(&mut stream), "pending", "{status}: head only");
        let mut fed = 0;
        while host.pump(&mut stream) {
            fed += 1;
            assert!(fed < 1000);
        }
        let error = match stream.next_event() {
            Some(Err(error)) => error,
            other => panic!("{status}: {other:?}"),
        };
        match &error {
            Error::Http {
                status: got,
                message: got_message,
                error_type,
                code,
                ..
            } => {
                assert_eq!((*got, got_message.as_str()), (status, message));
                assert_eq!(error_type.as_deref(), Some(kind));
                assert_eq!(code.as_deref(), Some(status.to_string().as_str()));
            }
            other => panic!("{status}: {other:?}"),
        }
        if let Some(network) = &network {
            assert!(
                matches!(network, Error::Http { .. }),
                "{status}: {network:?}"
            );
            assert_eq!(
                format!("{error:?}"),
                format!("{network:?}"),
                "as on the network"
            );
        }
        assert_eq!(error.status(), Some(status));
        assert!(stream.next_event().is_none(), "the error ends the stream");
    }
    // An error body that is not OpenAI's: its text.
    let mut stream = detached();
    stream.feed_head(503, Some("text/plain")).unwrap();
    stream.feed(b"  upstream ").unwrap();
    stream.feed(b"overloaded\n").unwrap();
    assert!(matches!(stream.next_event(), Some(Err(Error::Pending(_)))));
    stream.feed_end().unwrap();
    match stream.next_event() {
        Some(Err(Error::Http {
            status: 503,
            message,
            ..
        })) => assert_eq!(message, "upstream overloaded"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_body_ended_without_done_or_finish_is_truncated_only_after_the_end() {
    let mut stream = detached();
    stream.feed_head(200, Some("text/event-stream")).unwrap();
    stream.feed(content_event("partial").as_bytes()).unwrap();
    stream
        .feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"cut")
        .unwrap();
    assert_eq!(drain_ready(&mut stream), ["content partial"]);
    for _ in 0..3 {
        assert_eq!(poll_now(&mut stream), "pending", "no end fed: it may go on");
    }
    stream.feed_end().unwrap();
    let (lines, error) = events_of(&mut stream);
    assert!(lines.is_empty(), "{lines:?}");
    assert!(
        matches!(&error, Some(Error::Transport(text)) if text.contains("truncated")),
        "{error:?}"
    );
    assert!(!stream.is_finished());
    assert_eq!(stream.completion().content(), Some("partial"));

    // Ended on an event boundary, without [DONE] nor finish: truncated.
    let mut stream = detached();
    stream.feed_head(200, Some("text/event-stream")).unwrap();
    stream.feed(content_event("x").as_bytes()).unwrap();
    stream.feed_end().unwrap();
    let (lines, error) = events_of(&mut stream);
    assert_eq!(lines, ["content x"]);
    assert!(matches!(error, Some(Error::Transport(_))), "{error:?}");

    // A finish_reason, then the end without [DONE]: clean.
    let mut stream = detached();
    stream.feed_head(200, Some("text/event-stream")).unwrap();
    stream.feed(content_event("all").as_bytes()).unwrap();
    stream.feed(finish_event("length").as_bytes()).unwrap();
    assert_eq!(drain_ready(&mut stream), ["content all"]);
    assert!(!stream.is_finished(), "not before the end");
    stream.feed_end().unwrap();
    assert!(ok_events(&mut stream).is_empty());
    assert!(stream.is_finished());
    assert_eq!(stream.completion().finish_reason(), Some("length"));

    // Nothing at all, then the end: truncated.
    let mut stream = detached();
    stream.feed_head(200, Some("text/event-stream")).unwrap();
    stream.feed_end().unwrap();
    assert!(matches!(
        stream.next_event(),
        Some(Err(Error::Transport(_)))
    ));
}

#[test]
fn a_plain_json_answer_gives_its_events_and_completion() {
    let body = json!({
        "id": "chatcmpl-plain", "object": "chat.completion", "created": 1700000000,
        "model": "test-model",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Checking é🦀.", "reasoning_content": "Need weather.",
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    });
    let text = body.to_string();
    let expected = [
        "reasoning Need weather.",
        "content Checking é🦀.",
        "tool 0 call_1 get_weather {\"city\":\"Oslo\"}",
    ];
    // Fed directly, a byte at a time: read whole at its end.
    for content_type in ["application/json", "application/json; charset=utf-8"] {
        let mut stream = detached();
        stream.feed_head(200, Some(content_type)).unwrap();
        for byte in text.as_bytes() {
            stream.feed(std::slice::from_ref(byte)).unwrap();
            assert_eq!(poll_now(&mut stream), "pending", "read whole at its end");
        }
        stream.feed_end().unwrap();
        assert_eq!(ok_events(&mut stream), expected);
        let completion: Value = serde_json::to_value(stream.completion()).unwrap();
        assert_eq!(completion["choices"], body["choices"]);
        assert_eq!(completion["usage"], body["usage"]);
        assert_eq!(completion["id"], "chatcmpl-plain");
        assert!(stream.is_finished());
    }
    // Carried from a server, against the same answer on the network.
    if NET {
        let server = TestServer::start(move |_| Reply::json(200, &text));
        let api = api(&server.url());
        let mut network = api.stream(&user("hi"), None).unwrap();
        let mut stream = api.stream_detached(&user("hi"), None).unwrap();
        carrier::carry(&mut stream, Some(7));
        assert_eq!(ok_events(&mut stream), ok_events(&mut network));
        assert_eq!(
            stream.completion().raw_json(),
            network.completion().raw_json()
        );
    }
}

#[test]
fn a_plain_json_answer_is_capped_by_max_response_bytes() {
    let text = common::completion_body(&"x".repeat(600));
    let server = TestServer::start(move |_| Reply::json(200, &text));
    let api = common::builder(&server.url())
        .max_response_bytes(400)
        .build()
        .unwrap();
    if NET {
        let network = api.stream(&user("hi"), None).unwrap_err();
        assert!(matches!(network, Error::InvalidResponse(_)), "{network:?}");
    }
    let mut stream = api.stream_detached(&user("hi"), None).unwrap();
    carrier::carry(&mut stream, Some(3));
    let (lines, error) = events_of(&mut stream);
    assert!(lines.is_empty());
    assert!(
        matches!(&error, Some(Error::InvalidResponse(text)) if text.contains("400")),
        "{error:?}"
    );
    // Under the cap: read.
    let mut stream = api.stream_detached(&user("hi"), None).unwrap();
    let small = common::completion_body("small");
    stream.feed_head(200, Some("application/json")).unwrap();
    stream.feed(small.as_bytes()).unwrap();
    stream.feed_end().unwrap();
    assert_eq!(ok_events(&mut stream), ["content small"]);
}

// ---------------------------------------------------------------------------
// Call order
// ---------------------------------------------------------------------------

fn refused(result: Result<(), Error>, what: &str) {
    assert!(
        matches!(&result, Err(Error::InvalidArgument(_))),
        "{what}: {result:?}"
    );
}

#[test]
fn calls_out_of_order_are_refused_and_change_nothing() {
    let answer = sse_body(&stream_events(&["Hello", " world"]));
    let mut stream = detached();
    refused(stream.feed(b"data: x\n\n"), "feed before the head");
    refused(stream.feed(b""), "empty feed before the head");
    refused(stream.feed_end(), "end before the head");
    for status in [0, 99, 101, 199, 600, 999] {
        refused(
            stream.feed_head(status, Some("text/event-stream")),
            "status",
        );
    }
    assert_eq!(
        poll_now(&mut stream),
        "pending",
        "still waiting for its head"
    );
    stream.feed_head(200, Some("text/event-stream")).unwrap();
    refused(
        stream.feed_head(200, Some("application/json")),
        "a second head",
    );
    refused(stream.feed_head(500, None), "a second head");
    let (first, rest) = answer.split_at(answer.len() / 2);
    stream.feed(first).unwrap();
    let lines = drain_ready(&mut stream);
    refused(stream.feed_head(200, None), "a head after bytes");
    stream.feed(rest).unwrap();
    stream.feed_end().unwrap();
    refused(
        stream.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n"),
        "feed after the end",
    );
    refused(stream.feed_end(), "end twice");
    refused(stream.feed_head(200, None), "a head after the end");
    let (more, error) = events_of(&mut stream);
    assert!(error.is_none(), "{error:?}");
    let all: Vec<String> = lines.into_iter().chain(more).collect();
    assert_eq!(
        all,
        ["content Hello", "content  world"],
        "the stream reads on"
    );
    assert!(stream.is_finished());
    assert_eq!(stream.completion().content(), Some("Hello world"));
}

#[test]
fn streams_that_are_not_detached_refuse_feeds_and_read_on() {
    let server = TestServer::start(|_| {
        Reply::sse(
            &common::stream_events(&["net"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
    });
    let api = api(&server.url());
    let canned = common::builder(&server.url())
        .mock_responses(vec!["canned".into()])
        .build()
        .unwrap();
    let mut streams = vec![("canned", canned.stream(&user("hi"), None).unwrap())];
    if NET {
        streams.push(("stream", api.stream(&user("hi"), None).unwrap()));
        streams.push(("stream_start", api.stream_start(&user("hi"), None).unwrap()));
    }
    for (what, mut stream) in streams {
        assert!(!stream.is_detached(), "{what}");
        assert!(stream.host_request().is_none(), "{what}");
        refused(stream.feed_head(200, Some("text/event-stream")), what);
        refused(stream.feed(DONE.as_bytes()), what);
        refused(stream.feed_end(), what);
        let text: Result<String, _> = stream.into_text();
        let expected = if what == "canned" { "canned" } else { "net" };
        assert_eq!(text.unwrap(), expected, "{what}: reads on");
    }
}

// ---------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------

#[test]
fn the_request_is_the_one_the_client_sends_itself() {
    const KEY: &str = "sk-detached-secret-4242";
    let server = TestServer::start(|_| {
        Reply::sse(
            &stream_events(&["ok"])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
    });
    let api = common::builder(&server.url())
        .api_key(KEY)
        .header("X-Game", "engine 7")
        .build()
        .unwrap();
    let messages = vec![
        modelapi::Message::system("Be brief."),
        modelapi::Message::user("Hi é🦀"),
    ];
    let mut stream = api.stream_detached(&messages, None).unwrap();
    let request = stream.host_request().expect("detached");
    assert_eq!(
        request.url(),
        format!("{}/v1/chat/completions", server.url())
    );
    let header = |name: &str| {
        let found: Vec<&str> = request
            .headers()
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(found.len(), 1, "one {name}: {:?}", request.headers());
        found[0].to_string()
    };
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("accept"), "text/event-stream");
    assert!(
        header("user-agent").starts_with("modelapi"),
        "{}",
        header("user-agent")
    );
    assert_eq!(header("authorization"), format!("Bearer {KEY}"));
    assert_eq!(header("x-game"), "engine 7");
    for framing in ["host", "content-length", "transfer-encoding", "connection"] {
        assert!(
            !request
                .headers()
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(framing)),
            "{framing} is the host's"
        );
    }
    let body: Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["model"], "test-model");
    assert_eq!(
        body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi é🦀"}])
    );
    // The key never in Debug, of the request nor of the stream.
    for shown in [
        format!("{request:?}"),
        format!("{stream:?}"),
        format!("{request:#?}"),
    ] {
        assert!(!shown.contains(KEY) && !shown.contains("4242"), "{shown}");
    }
    assert!(format!("{request:?}").contains("[REDACTED]"));

    // Sent by the host, it is what the client sends on its own connection
    // (but for the framing headers).
    carrier::carry(&mut stream, None);
    assert_eq!(stream.into_text().unwrap(), "ok");
    if NET {
        same_request_as_the_clients_own(&api, &messages, &server);
    }
    // A whole request body: the same, with `stream: true`.
    let mut request = serde_json::Map::new();
    request.insert("messages".into(), json!([{"role": "user", "content": "x"}]));
    request.insert("temperature".into(), json!(0.5));
    let stream = api.stream_request_detached(request, None).unwrap();
    let body: Value = serde_json::from_slice(stream.host_request().unwrap().body()).unwrap();
    // LiteLLM's `mock_response` goes in the body, for the server.
    let stream = api.stream_detached(&messages, Some("pretend")).unwrap();
    let sent: Value = serde_json::from_slice(stream.host_request().unwrap().body()).unwrap();
    assert_eq!(sent["mock_response"], "pretend");
    assert_eq!(
        (body["stream"].clone(), body["temperature"].clone()),
        (json!(true), json!(0.5))
    );
}

/// The request the host sent (the server's first) is what the client sends
/// on its own connection, but for the framing headers.
fn same_request_as_the_clients_own(
    api: &modelapi::ModelApi,
    messages: &[modelapi::Message],
    server: &TestServer,
) {
    let mut network = api.stream(messages, None).unwrap();
    assert!(events_of(&mut network).1.is_none());
    let sent = server.wait_requests(2, Duration::from_secs(10));
    let (host, own) = (&sent[0], &sent[1]);
    assert_eq!(
        (host.method.as_str(), host.path.as_str()),
        ("POST", own.path.as_str())
    );
    assert_eq!(host.body, own.body, "the same body");
    let without_framing = |r: &common::server::Request| {
        let mut headers: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(n, _)| {
                !["host", "content-length", "connection", "transfer-encoding"].contains(&n.as_str())
            })
            .cloned()
            .collect();
        headers.sort();
        headers
    };
    assert_eq!(without_framing(host), without_framing(own));
}

// ---------------------------------------------------------------------------
// Canned replies, cancel
// ---------------------------------------------------------------------------

#[test]
fn canned_replies_answer_at_once_and_feeds_are_accepted_and_ignored() {
    let from_list = common::builder("http://127.0.0.1:9")
        .mock_responses(vec!["Canned answer".into()])
        .build()
        .unwrap();
    let mut from_env_form = common::builder("http://127.0.0.1:9").build().unwrap();
    from_env_form
        .set_mock_responses(Some(r#"["Canned answer"]"#))
        .unwrap();
    for (what, api) in [
        ("mock_responses", &from_list),
        ("DEBUG_MOCK_RESPONSES form", &from_env_form),
    ] {
        let mut stream = api.stream_detached(&user("hi"), None).unwrap();
        assert!(stream.is_detached(), "{what}");
        assert!(stream
            .host_request()
            .unwrap()
            .url()
            .ends_with("/v1/chat/completions"));
        // Events at once, before anything is fed.
        let first = poll_now(&mut stream);
        assert!(first.starts_with("content "), "{what}: {first}");
        // What is fed is accepted and dropped.
        stream.feed_head(500, Some("text/plain")).unwrap();
        stream
            .feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"FED\"}}]}\n\n")
            .unwrap();
        stream.feed(b"garbage \xff").unwrap();
        stream.feed_end().unwrap();
        let (rest, error) = events_of(&mut stream);
        assert!(error.is_none(), "{what}: {error:?}");
        let text: String = std::iter::once(first)
            .chain(rest)
            .map(|l| l.strip_prefix("content ").unwrap().to_string())
            .collect();
        assert_eq!(text, "Canned answer", "{what}");
        assert!(stream.is_finished(), "{what}");
    }
    // A canned streaming error: its text, then the error, fed or not.
    let api = common::builder("http://127.0.0.1:9")
        .mock_responses(vec!["Exception: mock_streaming_error".into()])
        .build()
        .unwrap();
    let mut stream = api.stream_detached(&user("hi"), None).unwrap();
    stream.feed_head(200, Some("text/event-stream")).unwrap();
    stream.feed(DONE.as_bytes()).unwrap();
    let (lines, error) = events_of(&mut stream);
    let text: String = lines.iter().map(|l| &l["content ".len()..]).collect();
    assert_eq!(text, modelapi::MOCK_TEXT_BEFORE_ERROR);
    assert!(error.is_some(), "the canned error");
    // A canned HTTP error sentinel: the first read fails with it.
    let api = common::builder("http://127.0.0.1:9")
        .mock_responses(vec!["litellm.RateLimitError".into()])
        .build()
        .unwrap();
    let mut stream = api.stream_detached(&user("hi"), None).unwrap();
    assert!(
        matches!(
            stream.next_event(),
            Some(Err(Error::Http { status: 429, .. }))
        ),
        "canned 429"
    );
}

#[test]
fn a_cancelled_token_aborts_the_detached_stream() {
    let api = api("http://127.0.0.1:9");
    // Before it starts: refused.
    let token = CancelToken::new();
    token.cancel();
    assert!(matches!(
        api.with_cancel(&token).stream_detached(&user("hi"), None),
        Err(Error::Aborted(_))
    ));
    // In the middle: the next read is Aborted, the answer so far kept.
    let token = CancelToken::new();
    let mut stream = api
        .with_cancel(&token)
        .stream_detached(&user("hi"), None)
        .unwrap();
    stream.feed_head(200, Some("text/event-stream")).unwrap();
    stream.feed(content_event("before").as_bytes()).unwrap();
    assert_eq!(poll_now(&mut stream), "content before");
    assert_eq!(poll_now(&mut stream), "pending");
    token.cancel();
    stream.feed(content_event("after").as_bytes()).unwrap();
    assert!(matches!(stream.next_event(), Some(Err(Error::Aborted(_)))));
    assert!(stream.next_event().is_none());
    assert_eq!(stream.completion().content(), Some("before"));
    // The stream's own token too.
    let mut stream = api.stream_detached(&user("hi"), None).unwrap();
    stream.cancel_token().cancel();
    assert!(matches!(
        stream.poll_event(Duration::ZERO),
        Poll::Ready(Some(Err(Error::Aborted(_))))
    ));
}
