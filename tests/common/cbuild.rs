//! Builds the C examples (once per test binary) and runs them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const VARIANTS: [&str; 2] = ["static", "shared"];

pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the library and every example once; returns the build folder.
pub fn build() -> &'static Path {
    static BUILD: OnceLock<PathBuf> = OnceLock::new();
    BUILD.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(env!("CARGO"))
            .args(["build", "--lib", "--quiet"])
            .current_dir(root)
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let build = target_dir().join("examples-c");
        let out = Command::new("make")
            .arg("-C")
            .arg(root.join("examples-c"))
            .arg("PROFILE=debug")
            .arg(format!("TARGET_DIR={}", target_dir().display()))
            .arg(format!("BUILD={}", build.display()))
            .arg("all")
            .output()
            .expect("make is needed to build the C examples");
        assert!(
            out.status.success(),
            "make: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        build
    })
}

/// Runs an example with only the given model-related environment.
pub fn run(
    variant: &str,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
    valgrind: bool,
) -> Output {
    let path = build().join(variant).join(program);
    let mut command = if valgrind {
        let mut c = Command::new("valgrind");
        c.args([
            "--quiet",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=99",
        ]);
        c.arg(&path);
        c
    } else {
        Command::new(&path)
    };
    command.args(args);
    for var in [
        "MODEL_API_URL",
        "MODEL_NAME",
        "MODEL_API_KEY",
        "DEBUG_MOCK_RESPONSES",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}
