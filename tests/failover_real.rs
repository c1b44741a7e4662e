//! Staying responsive against two real servers nobody here wrote: the
//! LiteLLM proxy (1.108.7, offline mocks) and llama.cpp's llama-server
//! (SmolLM2-135M), each started by these tests on a free loopback port.
//! One of them is made to stall the way a provider does: llama-server is
//! stopped (SIGSTOP, by the PID these tests started), so its socket still
//! accepts connections and takes the request, and nothing comes back.
//!
//! They run when both servers are installed (see tests/litellm.rs and
//! tests/llamacpp.rs) or `MODELAPI_LITELLM=1` and `MODELAPI_LLAMACPP=1` are
//! set; otherwise they say they were not run.

mod common;

use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::service::{self, Service};
use common::user;
use modelapi::ModelApi;
use serde_json::json;

const MASTER_KEY: &str = "sk-modelapi-test-master";
const CONFIG_MOCK: &str = "Hello from the LiteLLM config mock";
const LLAMA_MODEL: &str = "smollm2-135m-instruct";

struct Servers {
    litellm: Service,
    llama: Service,
    /// The tests take turns: one stops llama-server, and it has one slot.
    turn: Mutex<()>,
}

fn installed(var: &str, cache: &str) -> bool {
    let home = std::env::var("HOME").unwrap_or_default();
    std::env::var(var).as_deref() == Ok("1")
        || Path::new(&format!(
            "{home}/.cache/modelapi/{cache}/.modelapi-install-ok"
        ))
        .exists()
}

fn servers() -> Option<&'static Servers> {
    static SERVERS: OnceLock<Option<Servers>> = OnceLock::new();
    SERVERS
        .get_or_init(|| {
            if !installed("MODELAPI_LITELLM", "litellm-1.108.7")
                || !installed("MODELAPI_LLAMACPP", "llamacpp-11434")
            {
                service::not_run(
                    "NOTE: the real-server fallback tests were NOT run: they need LiteLLM and \
                     llama-server installed (MODELAPI_LITELLM=1 MODELAPI_LLAMACPP=1; \
                     `bash tests/run-all.sh` does)",
                );
                return None;
            }
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let llama = service::start(
                "llama-server",
                &root.join("tests/llamacpp/start.sh"),
                "/health",
                Duration::from_secs(1800),
            );
            let litellm = service::start(
                "litellm",
                &root.join("tests/litellm/start.sh"),
                "/health/liveliness",
                Duration::from_secs(300),
            );
            Some(Servers {
                litellm,
                llama,
                turn: Mutex::new(()),
            })
        })
        .as_ref()
}

impl Servers {
    fn take(&self) -> MutexGuard<'_, ()> {
        self.turn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn litellm_url(&self) -> String {
        format!("http://{}", self.litellm.addr)
    }

    fn llama_url(&self) -> String {
        format!("http://{}", self.llama.addr)
    }
}

/// llama-server stopped (its socket still accepts) until dropped.
struct Stopped(u32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        // SAFETY: a signal to the process these tests started.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) }, 0);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGCONT) };
    }
}

#[test]
fn a_stopped_llama_server_falls_back_to_litellm_at_the_deadline() {
    let Some(servers) = servers() else { return };
    let _turn = servers.take();
    let _stopped = Stopped::stop(servers.llama.pid);
    let api = ModelApi::builder(LLAMA_MODEL, servers.llama_url())
        .mock_responses(Vec::new())
        .first_token_timeout(Duration::from_millis(1000))
        .fallback(servers.litellm_url(), "mock-model", Some(MASTER_KEY.into()))
        .build()
        .unwrap();
    let started = Instant::now();
    let mut stream = api.stream(&user("Say hi."), None).unwrap();
    let text = stream.by_ref().collect::<Result<String, _>>().unwrap();
    assert_eq!(text, CONFIG_MOCK);
    assert_eq!(
        stream.metadata().endpoint.as_deref(),
        Some(&*servers.litellm_url())
    );
    assert!(stream.metadata().first_event.unwrap() >= Duration::from_millis(1000));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_hedge_from_a_stopped_llama_server_is_served_by_litellm() {
    let Some(servers) = servers() else { return };
    let _turn = servers.take();
    let _stopped = Stopped::stop(servers.llama.pid);
    let api = ModelApi::builder(LLAMA_MODEL, servers.llama_url())
        .mock_responses(Vec::new())
        .hedge(Duration::from_millis(300))
        .fallback(servers.litellm_url(), "mock-model", Some(MASTER_KEY.into()))
        .build()
        .unwrap();
    let mut stream = api.stream_start(&user("Say hi."), None).unwrap();
    let started = Instant::now();
    let mut text = String::new();
    loop {
        assert!(started.elapsed() < Duration::from_secs(30), "{text:?}");
        match stream.poll_event(Duration::from_millis(20)) {
            std::task::Poll::Pending => {}
            std::task::Poll::Ready(Some(Ok(modelapi::StreamEvent::Content(piece)))) => {
                text.push_str(piece)
            }
            std::task::Poll::Ready(Some(Ok(_))) => {}
            std::task::Poll::Ready(Some(Err(error))) => panic!("{error}"),
            std::task::Poll::Ready(None) => break,
        }
    }
    assert_eq!(text, CONFIG_MOCK);
    assert_eq!(
        stream.metadata().endpoint.as_deref(),
        Some(&*servers.litellm_url())
    );
}

#[test]
fn litellms_429_falls_back_to_a_real_model() {
    let Some(servers) = servers() else { return };
    let _turn = servers.take();
    // The master key goes to LiteLLM only; llama-server gets none.
    let api = ModelApi::builder("ratelimit-model", servers.litellm_url())
        .api_key(MASTER_KEY)
        .mock_responses(Vec::new())
        .max_retries(0)
        .fallback(servers.llama_url(), LLAMA_MODEL, None)
        .build()
        .unwrap();
    let mut request = serde_json::Map::new();
    request.insert(
        "messages".into(),
        json!([{"role": "user", "content": "Say hi."}]),
    );
    request.insert("max_tokens".into(), json!(8));
    request.insert("temperature".into(), json!(0));
    let mut stream = api.stream_request(request, None).unwrap();
    let text = stream.by_ref().collect::<Result<String, _>>().unwrap();
    assert!(!text.is_empty());
    assert_eq!(
        stream.metadata().endpoint.as_deref(),
        Some(&*servers.llama_url())
    );
    // The real model answered under its own name, not LiteLLM's.
    assert_eq!(stream.metadata().model.as_deref(), Some(LLAMA_MODEL));
}
