//! Hedged requests: when the current endpoint has not produced its first
//! event after the hedge delay, the next one starts too; the first to
//! produce an event serves the stream, and the other's connection is
//! closed at once (seen by its server). Blocking reads wait on both
//! sockets; poll mode keeps its promises (a poll of zero never blocks; a
//! host waiting on `waits_on` with `wake_in` as its timeout sees both
//! transfers). Counts and generous bounds, no tight timings.

mod common;

use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use common::stall::{Behaviour, StallServer};
use common::{builder, user};
use modelapi::{ChatStream, StreamEvent};

const SOON: Duration = Duration::from_secs(10);
const LIMIT: Duration = Duration::from_secs(15);

fn answer(delay_ms: u64, text: &str) -> Behaviour {
    Behaviour::Answer {
        delay: Duration::from_millis(delay_ms),
        text: text.into(),
    }
}

fn traced(lines: &Arc<Mutex<Vec<String>>>) -> impl Fn(modelapi::TraceLevel, &str) + Send + Sync {
    let lines = Arc::clone(lines);
    move |_, line| lines.lock().unwrap().push(line.to_string())
}

#[test]
fn the_hedge_wins_over_a_stalled_endpoint_whose_connection_is_closed() {
    let stalled = StallServer::start(Behaviour::StallBeforeHead);
    let hedge = StallServer::start(answer(0, "fast"));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let api = builder(&stalled.url())
        .api_key("sk-primary-aaaa")
        .hedge(Duration::from_millis(200))
        .fallback(hedge.url(), "backup", Some("sk-hedge-bbbb".into()))
        .trace(traced(&lines))
        .build()
        .unwrap();
    let mut stream = api.stream(&user("hi"), None).unwrap();
    // Both were asked.
    assert_eq!(stalled.seen().len(), 1);
    assert_eq!(hedge.seen().len(), 1);
    // The loser's connection is closed when the winner is known: its
    // server sees it within the bound.
    let won_at = Instant::now();
    let closed = stalled
        .wait_closed(0, SOON)
        .expect("the loser's connection closed");
    assert!(closed.saturating_duration_since(won_at) < Duration::from_secs(2));
    assert_eq!(
        stream.by_ref().collect::<Result<String, _>>().unwrap(),
        "fast"
    );
    assert_eq!(stream.metadata().endpoint.as_deref(), Some(&*hedge.url()));
    assert!(stream.metadata().first_event.unwrap() >= Duration::from_millis(200));
    assert!(!stalled.seen()[0].request.contains("sk-hedge-bbbb"));
    assert!(!hedge.seen()[0].request.contains("sk-primary-aaaa"));
    let lines = lines.lock().unwrap();
    assert!(lines.iter().any(|l| l.contains("hedging:")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("cancelled")), "{lines:#?}");
}

#[test]
fn the_first_endpoint_still_wins_when_it_answers_first() {
    let slowish = StallServer::start(answer(500, "primary"));
    let slower = StallServer::start(answer(4000, "hedge"));
    let api = builder(&slowish.url())
        .hedge(Duration::from_millis(100))
        .fallback(slower.url(), "backup", None)
        .build()
        .unwrap();
    let mut stream = api.stream(&user("hi"), None).unwrap();
    assert_eq!(
        stream.by_ref().collect::<Result<String, _>>().unwrap(),
        "primary"
    );
    assert_eq!(stream.metadata().endpoint.as_deref(), Some(&*slowish.url()));
    // The hedge was started, and cancelled: its server saw the close
    // long before it would have answered.
    assert_eq!(slower.wait_requests(1, SOON).len(), 1);
    let closed = slower
        .wait_closed(0, SOON)
        .expect("the hedge's connection closed");
    assert!(closed.duration_since(slower.seen()[0].at) < Duration::from_millis(3500));
}

#[test]
fn without_a_stall_no_hedge_is_started() {
    let quick = StallServer::start(answer(0, "quick"));
    let spare = StallServer::start(answer(0, "spare"));
    let api = builder(&quick.url())
        .hedge(Duration::from_secs(5))
        .fallback(spare.url(), "backup", None)
        .build()
        .unwrap();
    for _ in 0..3 {
        let stream = api.stream(&user("hi"), None).unwrap();
        assert_eq!(stream.into_text().unwrap(), "quick");
    }
    assert_eq!(spare.seen().len(), 0);
}

#[test]
fn a_hedge_that_fails_leaves_the_first_endpoint_racing() {
    let slowish = StallServer::start(answer(600, "primary"));
    let failing = StallServer::start(Behaviour::Unavailable);
    let api = builder(&slowish.url())
        .max_retries(0)
        .hedge(Duration::from_millis(100))
        .fallback(failing.url(), "backup", None)
        .build()
        .unwrap();
    let stream = api.stream(&user("hi"), None).unwrap();
    assert_eq!(stream.into_text().unwrap(), "primary");
    assert_eq!(failing.seen().len(), 1);
}

// ---- poll mode ----

/// What a host loop saw: it waits on `waits_on()`'s socket with
/// `wake_in()` as its timeout, and drains the stream with polls of zero.
#[derive(Debug, Default)]
struct HostRun {
    text: String,
    polls: usize,
    wakeups: usize,
    longest_poll: Duration,
    endpoint: Option<String>,
}

fn host_loop(stream: &mut ChatStream) -> HostRun {
    let mut run = HostRun::default();
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < LIMIT, "{run:?}");
        loop {
            let before = Instant::now();
            let got = match stream.poll_event(Duration::ZERO) {
                Poll::Pending => None,
                Poll::Ready(Some(Ok(StreamEvent::Content(piece)))) => Some(Some(piece.to_string())),
                Poll::Ready(Some(Ok(_))) => Some(None),
                Poll::Ready(Some(Err(error))) => panic!("{error}"),
                Poll::Ready(None) => {
                    run.endpoint = stream.metadata().endpoint.clone();
                    return run;
                }
            };
            run.polls += 1;
            run.longest_poll = run.longest_poll.max(before.elapsed());
            match got {
                None => break,
                Some(Some(piece)) => run.text.push_str(&piece),
                Some(None) => {}
            }
        }
        let timeout = stream.wake_in().unwrap_or(Duration::ZERO);
        match stream.waits_on() {
            Some(on) => {
                let mut fds = [libc::pollfd {
                    fd: on.fd,
                    events: if on.wants_write {
                        libc::POLLIN | libc::POLLOUT
                    } else {
                        libc::POLLIN
                    },
                    revents: 0,
                }];
                // SAFETY: one live pollfd; the descriptor is only polled.
                // In whole milliseconds rounded up, as modelapi_stream_wake_ms
                // gives them (rounded down, the last one would spin).
                let ms = timeout.as_micros().div_ceil(1000) as libc::c_int;
                unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
            }
            None => std::thread::sleep(timeout.min(Duration::from_millis(50))),
        }
        run.wakeups += 1;
    }
}

#[test]
fn a_host_loop_sees_the_hedge_win_and_never_blocks() {
    let stalled = StallServer::start(Behaviour::KeepAliveComments {
        every: Duration::from_millis(20),
    });
    let hedge = StallServer::start(answer(300, "polled"));
    let api = builder(&stalled.url())
        .hedge(Duration::from_millis(200))
        .fallback(hedge.url(), "backup", None)
        .build()
        .unwrap();
    let started = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    let run = host_loop(&mut stream);
    eprintln!("{run:?}");
    assert_eq!(run.text, "polled", "{run:?}");
    assert_eq!(run.endpoint.as_deref(), Some(&*hedge.url()));
    // A poll of zero never waits: generous for a loaded machine.
    assert!(run.longest_poll < Duration::from_millis(250), "{run:?}");
    // Woken when either can progress, not spinning: the race lasts about
    // 300 ms, with a wake-up at most every 10 ms while two race, plus the
    // primary's keep-alive comments every 20 ms (about 40 here).
    assert!(run.wakeups < 200, "{run:?}");
    assert!(stalled.wait_closed(0, SOON).is_some());
}

#[test]
fn polls_with_a_wait_drive_both_transfers() {
    let stalled = StallServer::start(Behaviour::RoleThenStall);
    let hedge = StallServer::start(answer(0, "waited"));
    let api = builder(&stalled.url())
        .hedge(Duration::from_millis(150))
        .fallback(hedge.url(), "backup", None)
        .build()
        .unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let (mut text, mut polls) = (String::new(), 0);
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < LIMIT);
        polls += 1;
        match stream.poll_event(Duration::from_millis(50)) {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(StreamEvent::Content(piece)))) => text.push_str(piece),
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Ready(Some(Err(error))) => panic!("{error}"),
            Poll::Ready(None) => break,
        }
    }
    assert_eq!(text, "waited");
    // The wait is used, not spun through: ~150 ms of hedge delay in
    // polls of 50 ms.
    assert!(polls < 100, "{polls}");
    assert!(stalled.wait_closed(0, SOON).is_some());
}

#[test]
fn a_cancel_stops_both_racing_endpoints() {
    let first = StallServer::start(Behaviour::StallBeforeHead);
    let second = StallServer::start(Behaviour::RoleThenStall);
    let api = builder(&first.url())
        .hedge(Duration::from_millis(100))
        .fallback(second.url(), "backup", None)
        .build()
        .unwrap();
    let cancel = modelapi::CancelToken::new();
    let canceller = cancel.clone();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        canceller.cancel();
    });
    let err = api
        .with_cancel(&cancel)
        .stream(&user("hi"), None)
        .unwrap_err();
    stopper.join().unwrap();
    assert!(matches!(err, modelapi::Error::Aborted(_)), "{err:?}");
    assert!(first.wait_closed(0, SOON).is_some());
    assert!(second.wait_closed(0, SOON).is_some());
}

#[test]
fn a_host_loop_sees_the_deadline_move_on_to_the_fallback() {
    let stalled = StallServer::start(Behaviour::KeepAliveComments {
        every: Duration::from_millis(20),
    });
    let fallback = StallServer::start(answer(0, "next"));
    let api = builder(&stalled.url())
        .first_token_timeout(Duration::from_millis(300))
        .fallback(fallback.url(), "backup", None)
        .build()
        .unwrap();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = host_loop(&mut stream);
    eprintln!("{run:?}");
    assert_eq!(run.text, "next", "{run:?}");
    assert_eq!(run.endpoint.as_deref(), Some(&*fallback.url()));
    assert!(run.longest_poll < Duration::from_millis(250), "{run:?}");
    // One endpoint at a time: woken by its comments (every 20 ms) and the
    // deadline, not spinning (about 15 here).
    assert!(run.wakeups < 100, "{run:?}");
    assert!(stalled.wait_closed(0, SOON).is_some());
}

#[test]
fn a_failed_hedge_is_followed_by_the_next_endpoint_after_the_delay() {
    let stalled = StallServer::start(Behaviour::StallBeforeHead);
    let failing = StallServer::start(Behaviour::Unavailable);
    let third = StallServer::start(answer(0, "third"));
    let api = builder(&stalled.url())
        .max_retries(0)
        .hedge(Duration::from_millis(100))
        .fallback(failing.url(), "b", None)
        .fallback(third.url(), "c", None)
        .build()
        .unwrap();
    let mut stream = api.stream(&user("hi"), None).unwrap();
    assert_eq!(
        stream.by_ref().collect::<Result<String, _>>().unwrap(),
        "third"
    );
    assert_eq!(stream.metadata().endpoint.as_deref(), Some(&*third.url()));
    assert_eq!(failing.seen().len(), 1);
    assert!(stalled.wait_closed(0, SOON).is_some());
}
