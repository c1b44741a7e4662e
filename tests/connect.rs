//! Connecting on real networks: the client's own name table
//! (`ModelApiBuilder::resolve`, `modelapi_set_resolve`, as curl's
//! `--resolve`) and Happy Eyeballs (RFC 8305): when an address does not
//! answer, the next is tried 250 ms later, the attempts race, the first to
//! connect wins. Blocking calls and polled streams alike.
//!
//! An address that does not answer is a *black hole* on loopback: a
//! listening socket whose accept queue is full (backlog 0, filled with a
//! connection never accepted), so that the kernel drops new SYNs and a
//! connect hangs, as to a host that a firewall drops or a broken IPv6
//! route. [`BlackHole::on`] checks the trick works before a test relies on
//! it (and fails loudly if it does not).
//!
//! IPv6 tests need the loopback `::1`: without it they fail, saying so.
//!
//! Timing assertions use generous bounds (the machine is shared): a
//! connect that falls back after 250 ms must be done in well under 5 s,
//! where waiting for the black hole would take the 20 s timeout. Bounds
//! of the "not before" kind are exact: the library's deadlines come from
//! the monotonic clock.

mod common;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use common::proxy::TestProxy;
use common::server::{head, Reply, TestServer};
use common::tls::TlsRelay;
use common::{builder, completion_body, stream_events, user};
use modelapi::{CancelToken, ChatStream, Error, ModelApi, StreamEvent, TraceLevel, WaitsOn};

/// The client's timeout in the tests that must not wait for it.
const TIMEOUT: Duration = Duration::from_secs(20);
/// A connect that falls back must be done well within this.
const QUICK: Duration = Duration::from_secs(5);
/// No test loop runs longer than this: a hang fails instead.
const LIMIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------
// Black holes, servers, clients
// ---------------------------------------------------------------------

/// A listening socket that never answers a connect: its accept queue is
/// full (backlog 0, and connections that are never accepted fill it).
struct BlackHole {
    listener: TcpListener,
    /// The connections that fill the queue, kept open.
    fillers: Vec<TcpStream>,
}

impl BlackHole {
    /// A black hole at `addr` (a loopback address and the port the test
    /// needs), checked: a probe connect to it hangs.
    fn on(addr: SocketAddr) -> BlackHole {
        Self::try_on(addr).unwrap_or_else(|e| panic!("no black hole at {addr}: {e}"))
    }

    fn try_on(addr: SocketAddr) -> io::Result<BlackHole> {
        use rustix::net::{bind, listen, socket, AddressFamily, SocketType};
        let family = match addr {
            SocketAddr::V4(_) => AddressFamily::INET,
            SocketAddr::V6(_) => AddressFamily::INET6,
        };
        let fd = socket(family, SocketType::STREAM, None)?;
        bind(&fd, &addr)?;
        listen(&fd, 0)?;
        let listener = TcpListener::from(fd);
        let mut fillers = Vec::new();
        // Connects complete (into the accept queue) until it is full; then
        // one hangs: that is the proof.
        for _ in 0..8 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(filler) => fillers.push(filler),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Ok(BlackHole { listener, fillers })
                }
                Err(e) => return Err(e),
            }
        }
        panic!(
            "the black-hole trick does not work on this kernel: {} connects to {addr} with \
             backlog 0 all completed",
            fillers.len()
        );
    }

    /// Turns the black hole into a relay to `target` after `delay`: its
    /// queue is drained (the fillers are accepted and dropped), so that a
    /// connect still under way completes at its next SYN (the kernel
    /// sends it again about 1 s after the first), and every other
    /// connection accepted is relayed to `target`.
    fn open_after(self, delay: Duration, target: SocketAddr) {
        let fillers: Vec<SocketAddr> = self
            .fillers
            .iter()
            .filter_map(|f| f.local_addr().ok())
            .collect();
        let listener = self.listener;
        let _keep = self.fillers;
        thread::spawn(move || {
            thread::sleep(delay);
            listener.set_nonblocking(true).unwrap();
            let end = Instant::now() + LIMIT;
            while Instant::now() < end {
                match listener.accept() {
                    Ok((client, peer)) if fillers.contains(&peer) => drop(client),
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        relay(client, target);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }
}

/// Relays `client` to `target` both ways, each way on a thread that ends
/// when its side closes (or after 10 s of silence).
fn relay(client: TcpStream, target: SocketAddr) {
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        return;
    };
    let pump = |mut from: TcpStream, mut to: TcpStream| {
        thread::spawn(move || {
            from.set_read_timeout(Some(Duration::from_secs(10))).ok();
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            to.shutdown(Shutdown::Write).ok();
        });
    };
    pump(client.try_clone().unwrap(), server.try_clone().unwrap());
    pump(server, client);
}

/// `ip` on `port`.
fn at(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

const V4_BLACK_HOLE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const V4_BLACK_HOLE_2: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// Nothing listens there: a connect is refused at once.
const V4_REFUSED: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// The IPv6 loopback, or a loud failure: these tests are not skipped.
fn need_ipv6() {
    if let Err(e) = TcpListener::bind("[::1]:0") {
        panic!(
            "this machine has no IPv6 loopback (binding [::1] failed: {e}): the IPv6 \
             Happy Eyeballs tests cannot run here"
        );
    }
}

/// A server of a completion and a stream.
fn server() -> TestServer {
    TestServer::start(|request| {
        if request.body_json()["stream"] == true {
            let events = stream_events(&["connected ", "at last"]);
            Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            Reply::json(200, &completion_body("connected at last"))
        }
    })
}

/// The trace lines a client told.
type Lines = Arc<Mutex<Vec<(TraceLevel, String)>>>;

/// A client of `url` with the name table `entries`, the timeout
/// [`TIMEOUT`] and no retries, that keeps its trace lines.
fn named_client(url: &str, entries: &[String]) -> (ModelApi, Lines) {
    named_builder(url, entries, TIMEOUT)
}

fn named_builder(url: &str, entries: &[String], timeout: Duration) -> (ModelApi, Lines) {
    let lines: Lines = Arc::default();
    let seen = Arc::clone(&lines);
    let mut b = builder(url)
        .timeout(timeout)
        .max_retries(0)
        .trace(move |level, line| seen.lock().unwrap().push((level, line.to_string())));
    for entry in entries {
        b = b.resolve(entry.as_str());
    }
    (b.build().unwrap(), lines)
}

fn texts(lines: &Lines) -> Vec<String> {
    lines.lock().unwrap().iter().map(|l| l.1.clone()).collect()
}

fn told(lines: &Lines, parts: &[&str]) -> bool {
    texts(lines)
        .iter()
        .any(|line| parts.iter().all(|p| line.contains(p)))
}

// ---------------------------------------------------------------------
// Happy Eyeballs, blocking
// ---------------------------------------------------------------------

/// The first address does not answer, the second does: the call is
/// done in about 250 ms, not after the 20 s timeout, and the trace tells
/// the fallback.
#[test]
fn a_black_hole_first_gives_way_to_the_next_address_after_250_ms() {
    let server = server();
    let port = server.addr().port();
    let _hole = BlackHole::on(at(V4_BLACK_HOLE, port));
    let url = format!("http://model.test:{port}");
    let entry = format!("model.test:{port}:{V4_BLACK_HOLE},127.0.0.1");
    let (api, lines) = named_client(&url, &[entry]);

    let started = Instant::now();
    let answer = api.complete(&user("hi"), None).unwrap();
    let took = started.elapsed();
    assert_eq!(answer.content(), Some("connected at last"));
    assert!(
        took >= Duration::from_millis(250) && took < QUICK,
        "took {took:?} (the black hole must cost 250 ms, not the timeout)"
    );
    assert!(
        told(
            &lines,
            &[
                &format!("connect to {V4_BLACK_HOLE}:{port}: no answer after"),
                &format!("trying 127.0.0.1:{port}"),
            ]
        ),
        "{:#?}",
        texts(&lines)
    );
    assert!(told(&lines, &[&format!("connected to 127.0.0.1:{port}")]));

    // A blocking stream: its connection is a pooled one now; a client of
    // its own connects anew.
    let (api, _) = named_client(
        &url,
        &[format!("model.test:{port}:{V4_BLACK_HOLE},127.0.0.1")],
    );
    let started = Instant::now();
    let text = api.stream(&user("hi"), None).unwrap().into_text().unwrap();
    assert_eq!(text, "connected at last");
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
}

/// The usual broken network: an IPv6 address first that does not answer
/// (a route that drops), then IPv4.
#[test]
fn a_black_holed_ipv6_address_gives_way_to_ipv4() {
    need_ipv6();
    let server = server();
    let port = server.addr().port();
    let _hole = BlackHole::on(at(Ipv6Addr::LOCALHOST, port));
    let url = format!("http://model.test:{port}");
    let (api, lines) = named_client(&url, &[format!("model.test:{port}:[::1],127.0.0.1")]);
    let started = Instant::now();
    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("connected at last"));
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert!(
        told(
            &lines,
            &[
                &format!("connect to [::1]:{port}: no answer after "),
                &format!("trying 127.0.0.1:{port}")
            ]
        ),
        "{:#?}",
        texts(&lines)
    );
}

/// Families alternate (RFC 8305 §4): with two IPv4 addresses that do not
/// answer before an IPv6 one that does, the IPv6 address is the second
/// tried, not the third.
#[test]
fn address_families_alternate() {
    need_ipv6();
    let server = server();
    // A port free on [::1] and on both IPv4 black holes.
    let (v6, port) = (0..50)
        .find_map(|_| {
            let v6 = TcpListener::bind("[::1]:0").unwrap();
            let port = v6.local_addr().unwrap().port();
            let free = TcpListener::bind(at(V4_BLACK_HOLE, port)).is_ok()
                && TcpListener::bind(at(V4_BLACK_HOLE_2, port)).is_ok();
            free.then_some((v6, port))
        })
        .expect("a port free on [::1], 127.0.0.2 and 127.0.0.3 within 50 tries");
    let _holes = [
        BlackHole::on(at(V4_BLACK_HOLE, port)),
        BlackHole::on(at(V4_BLACK_HOLE_2, port)),
    ];
    let target = server.addr();
    thread::spawn(move || {
        for client in v6.incoming().flatten().take(4) {
            relay(client, target);
        }
    });
    let url = format!("http://model.test:{port}");
    let entry = format!("model.test:{port}:{V4_BLACK_HOLE},{V4_BLACK_HOLE_2},[::1]");
    let (api, lines) = named_client(&url, &[entry]);
    let started = Instant::now();
    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("connected at last"));
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert!(
        told(
            &lines,
            &[
                &format!("connect to {V4_BLACK_HOLE}:{port}: no answer after "),
                &format!("trying [::1]:{port}")
            ]
        ),
        "{:#?}",
        texts(&lines)
    );
    assert!(
        !told(&lines, &[&format!("trying {V4_BLACK_HOLE_2}")])
            && !told(&lines, &[&format!("connect to {V4_BLACK_HOLE_2}")]),
        "the second IPv4 address was not needed: {:#?}",
        texts(&lines)
    );
}

/// A refused address gives way to the next at once, without the 250 ms
/// wait, and the trace tells why.
#[test]
fn a_refused_address_gives_way_to_the_next_at_once() {
    let server = server();
    let port = server.addr().port();
    let url = format!("http://model.test:{port}");
    let (api, lines) = named_client(&url, &[format!("model.test:{port}:{V4_REFUSED},127.0.0.1")]);
    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("connected at last"));
    assert!(
        told(
            &lines,
            &[
                &format!("connect to {V4_REFUSED}:{port} failed"),
                "refused",
                &format!("trying 127.0.0.1:{port}")
            ]
        ),
        "{:#?}",
        texts(&lines)
    );
    assert!(
        !told(&lines, &["no answer after"]),
        "no wait for a refused address: {:#?}",
        texts(&lines)
    );
}

/// When no address answers, the call fails with a timeout once the
/// client's timeout has passed, naming every address tried.
#[test]
fn when_no_address_answers_the_timeout_names_them_all() {
    let server = server();
    let port = server.addr().port();
    let _holes = [
        BlackHole::on(at(V4_BLACK_HOLE, port)),
        BlackHole::on(at(V4_BLACK_HOLE_2, port)),
    ];
    let url = format!("http://model.test:{port}");
    let entry = format!("model.test:{port}:{V4_BLACK_HOLE},{V4_BLACK_HOLE_2},{V4_REFUSED}");
    let timeout = Duration::from_millis(1500);
    let (api, lines) = named_builder(&url, &[entry], timeout);
    let started = Instant::now();
    let err = api.complete(&user("hi"), None).unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(took >= timeout && took < timeout + QUICK, "took {took:?}");
    let text = err.to_string();
    for addr in [V4_BLACK_HOLE, V4_BLACK_HOLE_2, V4_REFUSED] {
        assert!(text.contains(&format!("{addr}:{port}")), "{text}");
    }
    assert!(text.contains("refused"), "{text}");
    // Each failed attempt is a trace line.
    for parts in [
        [
            format!("connect to {V4_BLACK_HOLE}:{port}: no answer after"),
            format!("trying {V4_BLACK_HOLE_2}:{port}"),
        ],
        [
            format!("connect to {V4_BLACK_HOLE_2}:{port}: no answer after"),
            format!("trying {V4_REFUSED}:{port}"),
        ],
        [
            format!("connect to {V4_REFUSED}:{port} failed"),
            "refused".to_string(),
        ],
    ] {
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        assert!(told(&lines, &parts), "{parts:?} in {:#?}", texts(&lines));
    }
}

/// A cancel reaches the call while its attempts race: it returns at once,
/// not at the timeout.
#[test]
fn a_cancel_stops_a_connect_that_races() {
    let server = server();
    let port = server.addr().port();
    let _holes = [
        BlackHole::on(at(V4_BLACK_HOLE, port)),
        BlackHole::on(at(V4_BLACK_HOLE_2, port)),
    ];
    let url = format!("http://model.test:{port}");
    let entry = format!("model.test:{port}:{V4_BLACK_HOLE},{V4_BLACK_HOLE_2}");
    let (api, _) = named_client(&url, &[entry]);
    let cancel = CancelToken::new();
    let canceller = cancel.clone();
    let started = Instant::now();
    let waiter = thread::spawn(move || {
        // Both attempts are under way by then.
        thread::sleep(Duration::from_millis(600));
        canceller.cancel();
        Instant::now()
    });
    let err = api
        .with_cancel(&cancel)
        .complete(&user("hi"), None)
        .unwrap_err();
    let cancelled_at = waiter.join().unwrap();
    assert!(matches!(err, Error::Aborted(_)), "{err:?}");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(2),
        "returned {:?} after the cancel (timeout {TIMEOUT:?})",
        cancelled_at.elapsed()
    );
    assert!(started.elapsed() < QUICK);
}

// ---------------------------------------------------------------------
// Happy Eyeballs, polled
// ---------------------------------------------------------------------

/// How a host loop went.
#[derive(Debug, Default)]
struct HostRun {
    text: String,
    /// Returns from poll(2) on the stream's descriptor.
    wakeups: usize,
    /// The longest single `poll_event(ZERO)` call.
    longest_poll: Duration,
    /// The longest `wake_in` reported while the stream waited to write
    /// (connecting).
    longest_connect_wake: Duration,
    error: Option<Error>,
}

/// A host's event loop: polls with a wait of zero until Pending, then
/// waits on `waits_on`'s descriptor for at most `wake_in`, as the API
/// tells a host to.
fn host_loop(stream: &mut ChatStream) -> HostRun {
    let mut run = HostRun::default();
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < LIMIT,
            "the host loop did not end within {LIMIT:?}: {run:?}"
        );
        loop {
            let before = Instant::now();
            let got = stream.poll_event(Duration::ZERO);
            run.longest_poll = run.longest_poll.max(before.elapsed());
            match got {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(StreamEvent::Content(piece)))) => run.text.push_str(piece),
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(error))) => {
                    run.error = Some(error);
                    return run;
                }
                Poll::Ready(None) => return run,
            }
        }
        let wake_in = stream
            .wake_in()
            .expect("a stream under way has a wake time");
        match stream.waits_on() {
            Some(WaitsOn { fd, wants_write }) => {
                if wants_write {
                    run.longest_connect_wake = run.longest_connect_wake.max(wake_in);
                }
                let events = if wants_write {
                    libc::POLLIN | libc::POLLOUT
                } else {
                    libc::POLLIN
                };
                wait_fd(fd, events, wake_in);
                run.wakeups += 1;
            }
            None => thread::sleep(wake_in.min(Duration::from_millis(5))),
        }
    }
}

/// poll(2) on one descriptor for up to `timeout` (rounded up to whole
/// milliseconds, as a host does not spin).
fn wait_fd(fd: std::os::fd::RawFd, events: libc::c_short, timeout: Duration) {
    let mut fds = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
    loop {
        // SAFETY: `fds` is a live array of one pollfd; the descriptor is
        // only polled, never read, written or closed.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        assert!(n >= 0, "poll(2): {}", io::Error::last_os_error());
        return;
    }
}

/// A polled stream: the host, waiting on the descriptor and the wake time
/// the stream gives, is woken in time to start the next attempt, with a
/// handful of wake-ups, and no poll blocks.
#[test]
fn a_polled_stream_falls_back_in_time_when_the_host_waits_on_its_descriptor() {
    let server = server();
    let port = server.addr().port();
    let _hole = BlackHole::on(at(V4_BLACK_HOLE, port));
    let url = format!("http://model.test:{port}");
    let (api, lines) = named_client(
        &url,
        &[format!("model.test:{port}:{V4_BLACK_HOLE},127.0.0.1")],
    );
    let started = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = host_loop(&mut stream);
    assert!(run.error.is_none(), "{run:?}");
    assert_eq!(run.text, "connected at last");
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());
    assert!(
        run.longest_connect_wake <= Duration::from_millis(250),
        "while connecting, the host is told to wake by the next attempt's start: {run:?}"
    );
    assert!(run.wakeups < 40, "not a busy loop: {run:?}");
    assert!(
        run.longest_poll < Duration::from_millis(200),
        "a poll with a wait of zero does not wait: {run:?}"
    );
    assert!(told(&lines, &["no answer after", "trying 127.0.0.1"]));
}

/// A polled stream whose older attempt connects while the host waits on
/// the newer one's descriptor: the host is still woken soon (the stream's
/// wake time is short while several attempts race), not at the timeout.
#[test]
fn a_polled_stream_sees_an_older_attempt_connect() {
    let server = server();
    let port = server.addr().port();
    // The first address answers late (its queue is drained at 400 ms, and
    // the client's SYN, sent again about 1 s after the first, gets through);
    // the second never does.
    let late = BlackHole::on(at(V4_BLACK_HOLE, port));
    let _hole = BlackHole::on(at(V4_BLACK_HOLE_2, port));
    let url = format!("http://model.test:{port}");
    let entry = format!("model.test:{port}:{V4_BLACK_HOLE},{V4_BLACK_HOLE_2}");
    let (api, lines) = named_client(&url, &[entry]);
    late.open_after(Duration::from_millis(400), server.addr());
    let started = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = host_loop(&mut stream);
    assert!(run.error.is_none(), "{run:?}");
    assert_eq!(run.text, "connected at last");
    assert!(
        started.elapsed() < QUICK,
        "took {:?} (timeout {TIMEOUT:?}): {run:?}",
        started.elapsed()
    );
    assert!(
        told(&lines, &[&format!("connected to {V4_BLACK_HOLE}:{port}")]),
        "{:#?}",
        texts(&lines)
    );
}

/// Polled, no address answers: the stream fails with the timeout, naming
/// the addresses.
#[test]
fn a_polled_stream_times_out_when_no_address_answers() {
    let server = server();
    let port = server.addr().port();
    let _holes = [
        BlackHole::on(at(V4_BLACK_HOLE, port)),
        BlackHole::on(at(V4_BLACK_HOLE_2, port)),
    ];
    let url = format!("http://model.test:{port}");
    let entry = format!("model.test:{port}:{V4_BLACK_HOLE},{V4_BLACK_HOLE_2}");
    let timeout = Duration::from_millis(1000);
    let (api, _) = named_builder(&url, &[entry], timeout);
    let started = Instant::now();
    let mut stream = api.stream_start(&user("hi"), None).unwrap();
    let run = host_loop(&mut stream);
    let took = started.elapsed();
    let err = run.error.expect("the stream fails");
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(took >= timeout && took < timeout + QUICK, "took {took:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("{V4_BLACK_HOLE}:{port}")), "{text}");
    assert!(
        text.contains(&format!("{V4_BLACK_HOLE_2}:{port}")),
        "{text}"
    );
}

// ---------------------------------------------------------------------
// The name table
// ---------------------------------------------------------------------

/// TLS verifies the host of the URL, which the table maps to an address:
/// not the address. The test certificate is for `localhost` and
/// `127.0.0.1`.
#[test]
fn tls_verifies_the_host_name_not_the_address() {
    let server = server();
    let tls = TlsRelay::start(server.addr());
    let port = tls.addr().port();
    let ca = tls.write_ca_file(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")));
    let _hole = BlackHole::on(at(V4_BLACK_HOLE, port));

    // localhost, mapped to a black hole and then to the relay: verified.
    let api = builder(&format!("https://LocalHost:{port}"))
        .ca_file(&ca)
        .timeout(TIMEOUT)
        .max_retries(0)
        .resolve(format!("localhost:{port}:{V4_BLACK_HOLE},127.0.0.1"))
        .build()
        .unwrap();
    let started = Instant::now();
    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("connected at last"));
    assert!(started.elapsed() < QUICK, "took {:?}", started.elapsed());

    // A name the certificate does not have, mapped to the address it
    // does have: refused, naming the host.
    let api = builder(&format!("https://other.test:{port}"))
        .ca_file(&ca)
        .max_retries(0)
        .resolve(format!("other.test:{port}:127.0.0.1"))
        .build()
        .unwrap();
    let err = api.complete(&user("hi"), None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("certificate") && text.contains("other.test"),
        "{err:?}"
    );
}

/// The table applies to a redirect's target, as curl's `--resolve`.
#[test]
fn the_name_table_applies_to_redirect_targets() {
    let target = server();
    let target_port = target.addr().port();
    let first = TestServer::start(move |_| {
        Reply::raw(head(
            307,
            &[
                (
                    "Location",
                    format!("http://moved.test:{target_port}/v1/chat/completions"),
                ),
                ("Content-Length", "0".into()),
            ],
        ))
    });
    let (api, lines) = named_client(
        &first.url(),
        &[format!("moved.test:{target_port}:127.0.0.1")],
    );
    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("connected at last"));
    assert_eq!(target.requests().len(), 1);
    assert!(told(&lines, &["following the 307 redirect", "moved.test"]));
}

/// The table applies to the proxy's host, as curl's `--resolve`.
#[test]
fn the_name_table_applies_to_the_proxy() {
    let server = server();
    let proxy = TestProxy::start(None);
    let proxy_port: u16 = proxy.url().rsplit(':').next().unwrap().parse().unwrap();
    let api = builder(&server.url())
        .max_retries(0)
        .proxy(format!("http://proxy.test:{proxy_port}"))
        .resolve(format!("proxy.test:{proxy_port}:{V4_REFUSED},127.0.0.1"))
        .build()
        .unwrap();
    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("connected at last"));
    assert_eq!(proxy.heads().len(), 1, "the request went through the proxy");
}

/// Malformed entries fail `build` and the setter, saying what is wrong;
/// the table shows in the client's Debug output.
#[test]
fn malformed_entries_are_refused_and_the_table_is_shown() {
    let err = builder("http://h:1")
        .resolve("h:1:not-an-address")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(err.to_string().contains("not-an-address"), "{err}");
    let mut api = builder("http://h:1").build().unwrap();
    let err = api.set_resolve(Some("h:99999:127.0.0.1")).unwrap_err();
    assert!(err.to_string().contains("1 to 65535"), "{err}");
    api.set_resolve(Some("H:1:127.0.0.1,[::1]")).unwrap();
    let shown = format!("{api:?}");
    assert!(shown.contains("h:1:127.0.0.1,[::1]"), "{shown}");
    api.set_resolve(None).unwrap();
    assert!(!format!("{api:?}").contains("127.0.0.1"));
}

/// The C function: NULL arguments, a malformed entry with its message, and
/// an entry that sends a host's requests to the table's address.
#[test]
fn the_c_function_sets_and_clears_the_table() {
    use modelapi::ffi::*;
    use std::ffi::{CStr, CString};
    let server = server();
    let port = server.addr().port();
    let url = CString::new(format!("http://c.test:{port}")).unwrap();
    let model = CString::new("m").unwrap();
    let entry = CString::new(format!("C.TEST:{port}:{V4_REFUSED},127.0.0.1")).unwrap();
    let bad = CString::new("c.test:0:127.0.0.1").unwrap();
    // SAFETY: the C API used as documented: live strings, the client
    // closed once.
    unsafe {
        assert_eq!(
            modelapi_set_resolve(std::ptr::null_mut(), entry.as_ptr()),
            ModelApiStatus::MODELAPI_INVALID_ARGUMENT
        );
        let api = modelapi_new(model.as_ptr(), url.as_ptr(), std::ptr::null());
        assert!(!api.is_null());
        assert_eq!(
            modelapi_set_resolve(api, bad.as_ptr()),
            ModelApiStatus::MODELAPI_INVALID_ARGUMENT
        );
        let message = CStr::from_ptr(modelapi_last_error()).to_string_lossy();
        assert!(message.contains("HOST:PORT:ADDRESS"), "{message}");
        assert_eq!(
            modelapi_set_resolve(api, entry.as_ptr()),
            ModelApiStatus::MODELAPI_OK
        );
        assert_eq!(
            modelapi_set_max_retries(api, 0),
            ModelApiStatus::MODELAPI_OK
        );
        let messages = CString::new(r#"[{"role":"user","content":"hi"}]"#).unwrap();
        let mut content = std::ptr::null_mut();
        let status = modelapi_complete_json(
            api,
            messages.as_ptr(),
            std::ptr::null(),
            std::ptr::null_mut(),
            &mut content,
        );
        assert_eq!(
            status,
            ModelApiStatus::MODELAPI_OK,
            "{}",
            CStr::from_ptr(modelapi_last_error()).to_string_lossy()
        );
        assert_eq!(
            CStr::from_ptr(content).to_str().unwrap(),
            "connected at last"
        );
        modelapi_string_free(content);
        assert_eq!(
            modelapi_set_resolve(api, std::ptr::null()),
            ModelApiStatus::MODELAPI_OK
        );
        modelapi_close(api);
    }
}
