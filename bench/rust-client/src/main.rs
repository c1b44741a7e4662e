//! modelapi's Rust API in one benchmark scenario, with a JSON result line.
//!
//! Usage: bench-rust-client [--iter | --events] SCENARIO BASE_URL [ARGS]
//!   complete N         N sequential `complete` calls on one client
//!   stream CHUNKS      one stream of CHUNKS content chunks
//!   streams N CHUNKS   N sequential streams of CHUNKS chunks each
//!   once               create a client, one `complete`, exit
//!   tools PIECES [ANSWER_FILE]
//!                      one stream of a tool call in PIECES argument pieces
//!                      (`bench-server --tools`): `next_event()` for every
//!                      event, then `completion()` (both measured); the
//!                      answer's JSON goes to ANSWER_FILE afterwards
//!   detached CHUNKS ROUNDS
//!                      one stream of CHUNKS chunks over the network, fed to
//!                      a detached stream from memory, and carried by this
//!                      program's own socket to a detached stream, in
//!                      ROUNDS alternating rounds (see detached.rs)
//!   idle POLLS         poll mode only: a stream the server pauses after its
//!                      first content chunk (`X-Bench-Pause-Ms`): once that
//!                      chunk is in, POLLS `poll_event(Duration::ZERO)` are
//!                      timed, every one of which must be `Poll::Pending`
//! Streams are read with `next_chunk()` (no allocation per chunk), with
//! the `Iterator` (an owned `String` per chunk) under `--iter`, or with
//! `next_event()` (content events counted) under `--events`.
//!
//! Poll mode (streams started with `ModelApi::stream_request_start`):
//!   --poll MS      `poll_event(Duration::from_millis(MS))` in a loop
//!   --pollfd       `poll_event(Duration::ZERO)` until `Poll::Pending`, then
//!                  poll(2) on the descriptor of `waits_on()`, and again
//!   --time-polls   (after --poll or --pollfd) times every poll: the result
//!                  line gets the longest and the percentiles (poll_* fields),
//!                  and, from getrusage(RUSAGE_THREAD) around each poll, how
//!                  many polls slept (a voluntary context switch: the poll
//!                  waited in the kernel) or were preempted (involuntary),
//!                  and the longest poll that was neither; and the polls that
//!                  took page faults (memory touched for the first time)

mod detached;

use std::task::Poll;
use std::time::{Duration, Instant};

use modelapi::{ChatCompletion, Message, ModelApi, StreamEvent};
use serde_json::{json, Map, Value};

const PROMPT: &str = "Write a long story about a benchmark, one token at a time.";

fn request(chunks: u64) -> Map<String, Value> {
    match json!({"messages": [{"role": "user", "content": PROMPT}], "max_tokens": chunks}) {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Read {
    Chunks,
    Iter,
    Events,
    /// `poll_event(wait)` in a loop.
    Poll(Duration),
    /// `poll_event(ZERO)` until pending, then poll(2) on `waits_on()`.
    PollFd,
}

/// How long the server pauses in `idle` (it stops early when we close).
const IDLE_PAUSE_MS: &str = "60000";

/// Poll counts, and with `--time-polls` their durations: a log histogram
/// of 8 buckets per power of two (within 12.5 %), exact below 8 ns, and
/// the longest kept exactly.
#[derive(Default)]
struct PollStats {
    polls: u64,
    pending: u64,
    fd_waits: u64,
    hist: Vec<u64>,
    max_ns: u64,
    max_ok_ns: u64,
    max_pending_ns: u64,
    over: [u64; 4],
    /// Polls that slept (a voluntary context switch) or were preempted
    /// (involuntary), the longest of each, and the longest poll with
    /// neither (and its number).
    slept: u64,
    preempted: u64,
    max_slept_ns: u64,
    max_preempted_ns: u64,
    max_clean_ns: u64,
    max_clean_at: u64,
    /// Polls that took page faults (memory touched the first time), the
    /// faults of the longest clean poll, and the longest poll with no
    /// switch and no fault.
    faulted: u64,
    max_clean_faults: i64,
    max_quiet_ns: u64,
}

/// This thread's (voluntary, involuntary) context switches and page
/// faults so far.
fn switches() -> (i64, i64, i64) {
    // SAFETY: a zeroed rusage is valid; RUSAGE_THREAD with a valid pointer.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut r) };
    (
        r.ru_nvcsw as i64,
        r.ru_nivcsw as i64,
        (r.ru_minflt + r.ru_majflt) as i64,
    )
}

const BUCKETS: usize = 512;
const OVER_NS: [u64; 4] = [20_000, 100_000, 1_000_000, 2_000_000];

fn bucket_of(ns: u64) -> usize {
    if ns < 8 {
        return ns as usize;
    }
    let e = 63 - ns.leading_zeros() as usize;
    (8 * (e - 2) + ((ns >> (e - 3)) & 7) as usize).min(BUCKETS - 1)
}

fn bucket_top(i: usize) -> u64 {
    if i < 8 {
        return i as u64;
    }
    let (e, sub) = (i / 8 + 2, (i % 8) as u64);
    ((8 + sub) << (e - 3)) + (1u64 << (e - 3)) - 1
}

impl PollStats {
    fn record(&mut self, ns: u64, pending: bool, vol: i64, invol: i64, faults: i64) {
        self.faulted += u64::from(faults > 0);
        if vol == 0 && invol == 0 && faults == 0 {
            self.max_quiet_ns = self.max_quiet_ns.max(ns);
        }
        if self.hist.is_empty() {
            self.hist = vec![0; BUCKETS];
        }
        if vol > 0 {
            self.slept += 1;
            self.max_slept_ns = self.max_slept_ns.max(ns);
        }
        if invol > 0 {
            self.preempted += 1;
            self.max_preempted_ns = self.max_preempted_ns.max(ns);
        }
        if vol == 0 && invol == 0 && ns > self.max_clean_ns {
            self.max_clean_ns = ns;
            self.max_clean_at = self.polls;
            self.max_clean_faults = faults;
        }
        self.hist[bucket_of(ns)] += 1;
        self.max_ns = self.max_ns.max(ns);
        if pending {
            self.max_pending_ns = self.max_pending_ns.max(ns);
        } else {
            self.max_ok_ns = self.max_ok_ns.max(ns);
        }
        for (count, limit) in self.over.iter_mut().zip(OVER_NS) {
            *count += u64::from(ns > limit);
        }
    }

    /// The q-quantile's bucket top (never above the longest).
    fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.hist.iter().sum();
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_top(i).min(self.max_ns);
            }
        }
        self.max_ns
    }

    fn json(&self, timed: bool) -> String {
        let mut out = format!(
            ",\"polls\":{},\"poll_pending\":{},\"fd_waits\":{}",
            self.polls, self.pending, self.fd_waits
        );
        if timed {
            out += &format!(
                ",\"poll_max_ns\":{},\"poll_max_ok_ns\":{},\"poll_max_pending_ns\":{},\
                 \"poll_p50_ns\":{},\"poll_p99_ns\":{},\"poll_p999_ns\":{},\"poll_p9999_ns\":{},\
                 \"poll_over_20us\":{},\"poll_over_100us\":{},\"poll_over_1ms\":{},\
                 \"poll_over_2ms\":{},\"poll_slept\":{},\"poll_preempted\":{},\
                 \"poll_max_slept_ns\":{},\"poll_max_preempted_ns\":{},\"poll_max_clean_ns\":{},\
                 \"poll_max_clean_at\":{},\"poll_faulted\":{},\"poll_max_clean_faults\":{},\
                 \"poll_max_quiet_ns\":{}",
                self.max_ns,
                self.max_ok_ns,
                self.max_pending_ns,
                self.quantile(0.5),
                self.quantile(0.99),
                self.quantile(0.999),
                self.quantile(0.9999),
                self.over[0],
                self.over[1],
                self.over[2],
                self.over[3],
                self.slept,
                self.preempted,
                self.max_slept_ns,
                self.max_preempted_ns,
                self.max_clean_ns,
                self.max_clean_at,
                self.faulted,
                self.max_clean_faults,
                self.max_quiet_ns,
            );
        }
        out
    }
}

/// `--pollfd`: waits on the stream's socket (none: poll again).
fn wait_fd(stream: &modelapi::ChatStream, stats: &mut PollStats) {
    let Some(waits) = stream.waits_on() else {
        return;
    };
    let mut fd = libc::pollfd {
        fd: waits.fd,
        events: if waits.wants_write {
            libc::POLLOUT
        } else {
            libc::POLLIN
        },
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut fd, 1, 10_000) };
    if r == 0 {
        panic!("poll(2): nothing for 10 s");
    }
    if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
        panic!("poll(2): {}", std::io::Error::last_os_error());
    }
    stats.fd_waits += 1;
}

/// One stream driven by polls: (content bytes, non-empty content events).
fn poll_stream(
    api: &ModelApi,
    chunks: u64,
    read: Read,
    timed: bool,
    stats: &mut PollStats,
) -> (u64, u64) {
    let mut stream = api
        .stream_request_start(request(chunks), None)
        .expect("stream_start");
    let wait = match read {
        Read::Poll(wait) => wait,
        _ => Duration::ZERO,
    };
    let (mut bytes, mut count) = (0u64, 0u64);
    loop {
        let s0 = if timed { switches() } else { (0, 0, 0) };
        let t0 = timed.then(Instant::now);
        let polled = stream.poll_event(wait);
        let (pending, done) = match polled {
            Poll::Ready(Some(Ok(StreamEvent::Content(text)))) => {
                if !text.is_empty() {
                    bytes += text.len() as u64;
                    count += 1;
                }
                (false, false)
            }
            Poll::Ready(Some(Ok(_))) => (false, false),
            Poll::Ready(Some(Err(e))) => panic!("poll_event: {e}"),
            Poll::Ready(None) => (false, true),
            Poll::Pending => (true, false),
        };
        if let Some(t0) = t0 {
            let ns = t0.elapsed().as_nanos() as u64;
            let s1 = switches();
            stats.record(ns, pending, s1.0 - s0.0, s1.1 - s0.1, s1.2 - s0.2);
        }
        stats.polls += 1;
        if done {
            break;
        }
        if pending {
            stats.pending += 1;
            if read == Read::PollFd {
                wait_fd(&stream, stats);
            }
        }
    }
    (bytes, count)
}

/// `idle`: the stream's first content chunk, then `n` timed polls that
/// must all find nothing: (content bytes, content events, polls that found
/// something (0), seconds, CPU seconds).
fn idle_polls(api: &ModelApi, n: u64) -> (u64, u64, u64, f64, f64) {
    let mut stream = api
        .stream_request_start(request(1), None)
        .expect("stream_start");
    let (mut bytes, mut count, mut waited) = (0u64, 0u64, 0);
    while count == 0 {
        match stream.poll_event(Duration::from_secs(1)) {
            Poll::Ready(Some(Ok(StreamEvent::Content(text)))) if !text.is_empty() => {
                bytes += text.len() as u64;
                count += 1;
            }
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Pending => {
                waited += 1;
                assert!(waited <= 10, "idle: no content chunk in 10 s");
            }
            other => panic!("idle: {:?}", other.map(|o| o.map(|r| r.map(|_| ())))),
        }
    }
    // Whatever else came with it, until the server's pause shows.
    loop {
        match stream.poll_event(Duration::from_millis(20)) {
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Pending => break,
            other => panic!(
                "idle: the stream ended: {:?}",
                other.map(|o| o.map(|r| r.map(|_| ())))
            ),
        }
    }
    let t0 = Instant::now();
    let c0 = cpu_seconds();
    let mut busy = 0u64;
    for _ in 0..n {
        busy += u64::from(stream.poll_event(Duration::ZERO).is_ready());
    }
    let cpu = cpu_seconds() - c0;
    let seconds = t0.elapsed().as_secs_f64();
    (bytes, count, busy, seconds, cpu)
}

/// One stream: (content bytes, non-empty chunks).
fn one_stream(api: &ModelApi, chunks: u64, read: Read) -> (u64, u64) {
    let mut stream = api.stream_request(request(chunks), None).expect("stream");
    let (mut bytes, mut count) = (0u64, 0u64);
    if read == Read::Events {
        while let Some(event) = stream.next_event() {
            if let StreamEvent::Content(text) = event.expect("event") {
                if !text.is_empty() {
                    bytes += text.len() as u64;
                    count += 1;
                }
            }
        }
    } else if read == Read::Iter {
        for chunk in stream {
            let chunk = chunk.expect("chunk");
            if !chunk.is_empty() {
                bytes += chunk.len() as u64;
                count += 1;
            }
        }
    } else {
        while let Some(chunk) = stream.next_chunk() {
            let chunk = chunk.expect("chunk");
            if !chunk.is_empty() {
                bytes += chunk.len() as u64;
                count += 1;
            }
        }
    }
    (bytes, count)
}

/// One stream of a tool call: (argument bytes, tool-call events, the
/// assembled answer).
fn tool_stream(api: &ModelApi, pieces: u64) -> (u64, u64, ChatCompletion) {
    let mut stream = api.stream_request(request(pieces), None).expect("stream");
    let (mut bytes, mut count) = (0u64, 0u64);
    while let Some(event) = stream.next_event() {
        if let StreamEvent::ToolCall { arguments, .. } = event.expect("event") {
            bytes += arguments.len() as u64;
            count += 1;
        }
    }
    (bytes, count, stream.completion())
}

/// The peak resident set of this program (VmHWM), in KiB: unlike the
/// `ru_maxrss` a parent gets from `wait4`, it does not count the memory of
/// the process before `exec` (the forked runner).
fn peak_rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(-1)
}

/// CPU time of this process (user + system), immune to other processes
/// taking turns on the CPU.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut read = match args.first().map(String::as_str) {
        Some("--iter") => Read::Iter,
        Some("--events") => Read::Events,
        Some("--pollfd") => Read::PollFd,
        _ => Read::Chunks,
    };
    if read != Read::Chunks {
        args.remove(0);
    } else if args.first().map(String::as_str) == Some("--poll") {
        let ms: u64 = args.get(1).and_then(|a| a.parse().ok()).expect("--poll MS");
        read = Read::Poll(Duration::from_millis(ms));
        args.drain(..2);
    }
    let polled = matches!(read, Read::Poll(_) | Read::PollFd);
    let timed = polled && args.first().map(String::as_str) == Some("--time-polls");
    if timed {
        args.remove(0);
    }
    let arg = |i: usize| -> u64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("argument {i} must be a number"))
    };
    let scenario = args.first().expect("scenario").clone();
    let base = args.get(1).expect("base url").clone();
    let started = Instant::now();
    let mut builder = ModelApi::builder("gpt-4o-mini", base.as_str()).max_retries(0);
    if scenario == "idle" {
        builder = builder.header("X-Bench-Pause-Ms", IDLE_PAUSE_MS);
    }
    let api = builder.build().expect("client");
    if scenario == "detached" {
        detached::run(&api, arg(2), arg(3));
        api.close();
        return;
    }
    if scenario == "idle" {
        let (bytes, chunks, busy, seconds, cpu) = idle_polls(&api, arg(2));
        let n = arg(2) as f64;
        api.close();
        println!(
            "{{\"client\":\"modelapi-rs-idle\",\"scenario\":\"idle\",\"seconds\":{seconds:.9},\
             \"cpu_seconds\":{cpu:.9},\"with_setup_seconds\":{:.9},\"content_bytes\":{bytes},\
             \"chunks\":{chunks},\"requests\":1,\"peak_rss_kib\":{},\"polls\":{},\
             \"poll_pending\":{},\"poll_not_pending\":{busy},\"idle_poll_ns\":{:.2},\
             \"idle_poll_cpu_ns\":{:.2}}}",
            started.elapsed().as_secs_f64(),
            peak_rss_kib(),
            arg(2),
            arg(2) - busy,
            seconds * 1e9 / n,
            cpu * 1e9 / n,
        );
        return;
    }
    let mut stats = PollStats::default();
    let messages = [Message::user(PROMPT)];
    let t0 = Instant::now();
    let c0 = cpu_seconds();
    let (mut bytes, mut chunks, mut requests) = (0u64, 0u64, 0u64);
    let mut answer = None;
    match scenario.as_str() {
        "complete" | "once" => {
            let n = if scenario == "once" { 1 } else { arg(2) };
            for _ in 0..n {
                let answer = api.complete(&messages, None).expect("complete");
                bytes += answer.content().expect("content").len() as u64;
                requests += 1;
            }
        }
        "stream" | "streams" => {
            let (n, per) = if scenario == "stream" {
                (1, arg(2))
            } else {
                (arg(2), arg(3))
            };
            for _ in 0..n {
                let (b, c) = if polled {
                    poll_stream(&api, per, read, timed, &mut stats)
                } else {
                    one_stream(&api, per, read)
                };
                bytes += b;
                chunks += c;
                requests += 1;
            }
        }
        "tools" => {
            let (b, c, completion) = tool_stream(&api, arg(2));
            bytes += b;
            chunks += c;
            requests += 1;
            answer = Some(completion);
        }
        other => panic!("unknown scenario {other}"),
    }
    let cpu = cpu_seconds() - c0;
    let seconds = t0.elapsed().as_secs_f64();
    // tools: the peak with the answer assembled, before its JSON is made
    // for the check (the other scenarios: at the end, below).
    let answer_rss = answer.as_ref().map(|_| peak_rss_kib());
    if let (Some(answer), Some(path)) = (&answer, args.get(3)) {
        let json = serde_json::to_string(answer).expect("answer JSON");
        std::fs::write(path, json).expect("write the answer");
    }
    api.close();
    let total = started.elapsed().as_secs_f64();
    let name = match read {
        Read::Chunks => String::new(),
        Read::Iter => "-iter".into(),
        Read::Events => "-event".into(),
        Read::Poll(wait) => format!("-poll{}", wait.as_millis()),
        Read::PollFd => "-pollfd".into(),
    } + if timed { "-timed" } else { "" };
    println!(
        "{{\"client\":\"modelapi-rs{name}\",\"scenario\":\"{scenario}\",\"seconds\":{seconds:.9},\"cpu_seconds\":{cpu:.9},\
         \"with_setup_seconds\":{total:.9},\"content_bytes\":{bytes},\"chunks\":{chunks},\
         \"requests\":{requests},\"peak_rss_kib\":{}{}}}",
        answer_rss.unwrap_or_else(peak_rss_kib),
        if polled { stats.json(timed) } else { String::new() },
    );
}
