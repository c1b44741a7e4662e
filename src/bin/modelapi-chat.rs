//! The main job as a program of its own: `cargo run -- "Write a haiku"`.
//!
//! The same source as `examples/chat.rs` (`cargo run --example chat`), as a
//! binary target because cargo builds an example's dev-dependencies
//! (mockito, rcgen, ...) before it can run, and a binary's it does not: the
//! first run builds only the library.

#[path = "../../examples/chat.rs"]
mod chat;

fn main() -> std::process::ExitCode {
    chat::main()
}
