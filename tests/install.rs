//! modelapi as C and C++ projects take it in: `make install` (the README's
//! install command) into a temporary prefix, then outside programs built
//! against the installed files only —
//!
//! - C through pkg-config: `modelapi` (shared) and `modelapi-static`;
//! - C++ and C through `find_package(modelapi CONFIG REQUIRED)`, with both
//!   imported targets;
//! - C++ through `add_subdirectory` of the source tree (the top-level
//!   CMakeLists.txt, which builds the crate with cargo);
//!
//! each run with a canned reply. The installed library's SONAME and
//! symlinks, and each program's NEEDED entries, are checked.
//!
//! Needs make, cc, c++, pkg-config, cmake and readelf.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

mod common;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The ABI version of the SONAME: 0.<minor> for 0.x, else the major.
fn abi() -> String {
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    if major == "0" {
        format!("0.{}", env!("CARGO_PKG_VERSION_MINOR"))
    } else {
        major.to_string()
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn work() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("install")
}

fn run(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{shown}: {e} (is the tool installed?)"));
    assert!(
        out.status.success(),
        "{shown} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `make install` into a fresh prefix, once per test binary.
fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        common::cbuild::build_library();
        let prefix = work().join("prefix");
        let _ = std::fs::remove_dir_all(&prefix);
        run(Command::new("make")
            .arg("-C")
            .arg(repo())
            .arg("install")
            .arg("PROFILE=debug")
            .arg(format!("PREFIX={}", prefix.display()))
            .arg(format!(
                "TARGET_DIR={}",
                common::cbuild::target_dir().display()
            )));
        prefix
    })
}

/// The dynamic section's entries of one kind (`NEEDED`, `SONAME`).
fn dynamic(file: &Path, kind: &str) -> Vec<String> {
    let out = run(Command::new("readelf").arg("-d").arg(file));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!("({kind})")))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect()
}

/// Runs an outside program with a canned reply and checks its answer.
fn runs_with_a_canned_reply(program: &Path) {
    let out =
        run(Command::new(program).env("DEBUG_MOCK_RESPONSES", r#"["Installed and answering"]"#));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!("{VERSION} {VERSION} Installed and answering"),
        "{}",
        program.display()
    );
}

fn needs_libmodelapi(program: &Path) -> bool {
    dynamic(program, "NEEDED")
        .iter()
        .any(|n| n.starts_with("libmodelapi"))
}

#[test]
fn install_lays_out_headers_libraries_and_packages() {
    let prefix = prefix();
    for file in [
        "include/modelapi.h",
        "include/modelapi.hpp",
        "lib/libmodelapi.a",
        "lib/pkgconfig/modelapi.pc",
        "lib/pkgconfig/modelapi-static.pc",
        "lib/cmake/modelapi/modelapiConfig.cmake",
        "lib/cmake/modelapi/modelapiConfigVersion.cmake",
    ] {
        assert!(prefix.join(file).is_file(), "{file} is not installed");
    }
    let lib = prefix.join("lib");
    let real = format!("libmodelapi.so.{VERSION}");
    let soname = format!("libmodelapi.so.{}", abi());
    assert!(lib.join(&real).is_file());
    assert_eq!(
        std::fs::read_link(lib.join(&soname)).unwrap(),
        Path::new(&real)
    );
    assert_eq!(
        std::fs::read_link(lib.join("libmodelapi.so")).unwrap(),
        Path::new(&soname)
    );
    assert_eq!(dynamic(&lib.join(&real), "SONAME"), vec![soname]);
}

/// Compiles `app.c` with the flags pkg-config gives for `package`.
fn pkg_config_program(package: &str, static_flag: bool, name: &str) -> PathBuf {
    let prefix = prefix();
    let mut query = Command::new("pkg-config");
    query
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .args(["--cflags", "--libs"]);
    if static_flag {
        query.arg("--static");
    }
    let out = run(query.arg(package));
    let flags = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        flags.contains(&prefix.join("include").display().to_string()),
        "{flags}"
    );
    let program = work().join(name);
    run(Command::new("cc")
        .args(["-std=c99", "-Wall", "-Werror", "-o"])
        .arg(&program)
        .arg(repo().join("tests/install/app.c"))
        .args(flags.split_whitespace())
        .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display())));
    program
}

#[test]
fn c_program_links_through_pkg_config_shared() {
    let program = pkg_config_program("modelapi", false, "pkg_config_shared");
    assert_eq!(
        dynamic(&program, "NEEDED")
            .into_iter()
            .filter(|n| n.starts_with("libmodelapi"))
            .collect::<Vec<_>>(),
        vec![format!("libmodelapi.so.{}", abi())],
        "a program linked today must ask for this ABI, not for any libmodelapi.so"
    );
    runs_with_a_canned_reply(&program);
}

#[test]
fn c_program_links_through_pkg_config_static() {
    let program = pkg_config_program("modelapi-static", true, "pkg_config_static");
    assert!(!needs_libmodelapi(&program), "linked statically");
    runs_with_a_canned_reply(&program);
}

/// Configures and builds the CMake project in `tests/install/<project>`.
fn cmake_project(project: &str, defines: &[String]) -> PathBuf {
    let build = work().join(format!("cmake-{project}"));
    let _ = std::fs::remove_dir_all(&build);
    run(Command::new("cmake")
        .arg("-S")
        .arg(repo().join("tests/install").join(project))
        .arg("-B")
        .arg(&build)
        .args(defines));
    run(Command::new("cmake")
        .arg("--build")
        .arg(&build)
        .args(["--parallel", "2"]));
    build
}

#[test]
fn cpp_programs_find_the_installed_cmake_package() {
    let build = cmake_project(
        "find_package",
        &[format!("-DCMAKE_PREFIX_PATH={}", prefix().display())],
    );
    for shared in ["app_shared", "app_c"] {
        let program = build.join(shared);
        assert_eq!(
            dynamic(&program, "NEEDED")
                .into_iter()
                .filter(|n| n.starts_with("libmodelapi"))
                .collect::<Vec<_>>(),
            vec![format!("libmodelapi.so.{}", abi())],
            "{shared}"
        );
        runs_with_a_canned_reply(&program);
    }
    let program = build.join("app_static");
    assert!(
        !needs_libmodelapi(&program),
        "app_static is linked statically"
    );
    runs_with_a_canned_reply(&program);
}

#[test]
fn cmake_package_refuses_another_abi() {
    let dir = work().join("wrong-version");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.18)\nproject(wrong LANGUAGES C)\n\
         find_package(modelapi 0.99 CONFIG REQUIRED)\n",
    )
    .unwrap();
    let out = Command::new("cmake")
        .arg("-S")
        .arg(&dir)
        .arg("-B")
        .arg(dir.join("build"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix().display()))
        .output()
        .expect(
            "cmake is needed for this test: `bash tests/run-all.sh` installs it (tests/tools.sh)",
        );
    assert!(!out.status.success(), "0.99 is not this package's ABI");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(VERSION),
        "the refusal names the version found: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cpp_programs_build_modelapi_through_add_subdirectory() {
    common::cbuild::build_library();
    let build = cmake_project(
        "subdirectory",
        &[
            format!("-DMODELAPI_SOURCE_DIR={}", repo().display()),
            // The debug build the tests already made: no second build.
            "-DMODELAPI_CARGO_PROFILE=dev".to_string(),
            format!(
                "-DMODELAPI_CARGO_TARGET_DIR={}",
                common::cbuild::target_dir().display()
            ),
        ],
    );
    let program = build.join("app_shared");
    assert!(needs_libmodelapi(&program));
    runs_with_a_canned_reply(&program);
    let program = build.join("app_static");
    assert!(!needs_libmodelapi(&program));
    runs_with_a_canned_reply(&program);
}
