//! Hedged requests against a heavy-tailed time to first token.
//!
//! Two local endpoints (threads of this program, on 127.0.0.1) answer every
//! stream request after a time to first token drawn from the same
//! heavy-tailed distribution: a median of 100 ms (log-normal, sigma 0.3),
//! and a share of requests (`--slow`, default 2 %) that stall 3 s first.
//! An endpoint whose client closes the connection stops at once (a
//! cancelled hedge costs it nothing more). The client streams `--streams`
//! answers (default 1,000; `--threads` at a time, default 20, one shared
//! client): without hedging, and with a hedge of `--hedge-ms` (default
//! 300) to the second endpoint. For each: the p50/p99 time from the call
//! to the first event, and the load (requests started at the endpoints
//! per answer).
//!
//! Usage: cargo run --release --manifest-path bench/Cargo.toml -p bench-hedge
//!        [-- --streams N --threads T --slow FRACTION --hedge-ms MS]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use modelapi::{Message, ModelApi, StreamEvent};

/// What an endpoint counts.
#[derive(Default)]
struct Counts {
    started: AtomicUsize,
    cancelled: AtomicUsize,
}

struct Endpoint {
    url: String,
    counts: Arc<Counts>,
}

/// A tiny deterministic generator (xorshift), one per endpoint.
struct Rng(AtomicU64);

impl Rng {
    fn next(&self) -> f64 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The time to first token: 3 s with probability `slow`, else
    /// log-normal with a median of 100 ms.
    fn ttft(&self, slow: f64) -> Duration {
        if self.next() < slow {
            return Duration::from_secs(3);
        }
        // Box-Muller.
        let (u1, u2) = (self.next().max(1e-12), self.next());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        Duration::from_secs_f64(0.1 * (0.3 * z).exp())
    }
}

fn start_endpoint(seed: u64, slow: f64) -> Endpoint {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counts = Arc::new(Counts::default());
    let rng = Arc::new(Rng(AtomicU64::new(seed)));
    let served = Arc::clone(&counts);
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (counts, rng) = (Arc::clone(&served), Arc::clone(&rng));
            thread::spawn(move || serve(conn, &counts, &rng, slow));
        }
    });
    Endpoint { url, counts }
}

/// Serves the requests of one keep-alive connection.
fn serve(mut conn: TcpStream, counts: &Counts, rng: &Rng, slow: f64) {
    let _ = conn.set_nodelay(true);
    let mut pending = Vec::new();
    loop {
        // Read one request: its head and Content-Length body.
        let request_end = loop {
            if let Some(end) = find(&pending, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if pending.len() >= end + 4 + length {
                    break end + 4 + length;
                }
            }
            let mut piece = [0; 8192];
            match conn.read(&mut piece) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&piece[..n]),
            }
        };
        pending.drain(..request_end);
        counts.started.fetch_add(1, Ordering::SeqCst);
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                    Transfer-Encoding: chunked\r\n\r\n";
        if conn.write_all(head.as_bytes()).is_err() {
            return;
        }
        // The time to first token, cut short when the client leaves.
        let until = Instant::now() + rng.ttft(slow);
        let _ = conn.set_read_timeout(Some(Duration::from_millis(5)));
        while Instant::now() < until {
            let mut byte = [0; 1];
            match conn.read(&mut byte) {
                Ok(0) => {
                    counts.cancelled.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                _ => {
                    counts.cancelled.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
        }
        let _ = conn.set_read_timeout(None);
        let mut body = String::new();
        for piece in ["Hello", " from", " the", " endpoint."] {
            body.push_str(&format!(
                "data: {{\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{piece}\"}},\"finish_reason\":null}}]}}\n\n"
            ));
        }
        body.push_str("data: {\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
        if conn.write_all(chunked.as_bytes()).is_err() {
            return;
        }
    }
}

fn find(bytes: &[u8], needle: &[u8]) -> Option<usize> {
    bytes.windows(needle.len()).position(|w| w == needle)
}

struct Outcome {
    p50: Duration,
    p99: Duration,
    max: Duration,
    load: f64,
    cancelled: usize,
    errors: usize,
}

fn run(api: &Arc<ModelApi>, endpoints: &[Endpoint], streams: usize, threads: usize) -> Outcome {
    let before: usize = endpoints
        .iter()
        .map(|e| e.counts.started.load(Ordering::SeqCst))
        .sum();
    let cancelled_before: usize = endpoints
        .iter()
        .map(|e| e.counts.cancelled.load(Ordering::SeqCst))
        .sum();
    let times = Arc::new(Mutex::new(Vec::with_capacity(streams)));
    let errors = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (api, times, errors, next) = (
                Arc::clone(api),
                Arc::clone(&times),
                Arc::clone(&errors),
                Arc::clone(&next),
            );
            thread::spawn(move || {
                while next.fetch_add(1, Ordering::SeqCst) < streams {
                    let started = Instant::now();
                    let mut first = None;
                    let result = api
                        .stream(&[Message::user("Hi")], None)
                        .and_then(|mut stream| {
                            while let Some(event) = stream.next_event() {
                                if let StreamEvent::Content(_) = event? {
                                    first.get_or_insert_with(|| started.elapsed());
                                }
                            }
                            Ok(())
                        });
                    match (result, first) {
                        (Ok(()), Some(first)) => times.lock().unwrap().push(first),
                        _ => {
                            errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    // Let the endpoints see the last closes.
    thread::sleep(Duration::from_millis(50));
    let after: usize = endpoints
        .iter()
        .map(|e| e.counts.started.load(Ordering::SeqCst))
        .sum();
    let cancelled_after: usize = endpoints
        .iter()
        .map(|e| e.counts.cancelled.load(Ordering::SeqCst))
        .sum();
    let mut times = times.lock().unwrap().clone();
    times.sort();
    let rank = |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    Outcome {
        p50: rank(0.50),
        p99: rank(0.99),
        max: *times.last().unwrap(),
        load: (after - before) as f64 / times.len() as f64,
        cancelled: cancelled_after - cancelled_before,
        errors: errors.load(Ordering::SeqCst),
    }
}

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let streams = arg("--streams", 1000usize);
    let threads = arg("--threads", 20usize);
    let slow = arg("--slow", 0.02f64);
    let hedge_ms = arg("--hedge-ms", 300u64);
    let endpoints = [
        start_endpoint(0x9E37_79B9_7F4A_7C15, slow),
        start_endpoint(0xD1B5_4A32_D192_ED03, slow),
    ];
    let base = || {
        ModelApi::builder("m", &endpoints[0].url)
            .mock_responses(Vec::new())
            .fallback(endpoints[1].url.clone(), "m", None)
    };
    let plain = Arc::new(base().build().unwrap());
    let hedged = Arc::new(
        base()
            .hedge(Duration::from_millis(hedge_ms))
            .build()
            .unwrap(),
    );
    println!(
        "{streams} streams, {threads} at a time; time to first token: median 100 ms \
         (log-normal, sigma 0.3), {:.1} % stall 3 s",
        slow * 100.0
    );
    println!("| | p50 first event | p99 first event | slowest | load (requests per answer) | cancelled | errors |");
    println!("|---|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for (name, api) in [
        ("no hedging", &plain),
        (&*format!("hedge after {hedge_ms} ms"), &hedged),
    ] {
        let outcome = run(api, &endpoints, streams, threads);
        println!(
            "| {name} | {} | {} | {} | {:.3} | {} | {} |",
            ms(outcome.p50),
            ms(outcome.p99),
            ms(outcome.max),
            outcome.load,
            outcome.cancelled,
            outcome.errors
        );
        results.push(outcome);
    }
    let (a, b) = (&results[0], &results[1]);
    println!(
        "\np99 cut {:.1}x for {:.2}x the load (target: at least 5x for at most 1.3x)",
        a.p99.as_secs_f64() / b.p99.as_secs_f64(),
        b.load / a.load
    );
}
