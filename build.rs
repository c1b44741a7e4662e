//! Generates the C header, `include/modelapi.h`, with cbindgen.
//!
//! The header is written to `$OUT_DIR/modelapi.h` on every build, and to
//! `include/modelapi.h` when that file is missing or when
//! `MODELAPI_UPDATE_HEADER=1` is set. The committed header is checked
//! against the generated one by `tests/header.rs`.
//!
//! On Linux the shared library gets the SONAME of its ABI version,
//! `libmodelapi.so.<major>` (`libmodelapi.so.0.<minor>` for 0.x, where a
//! minor release may change the ABI), and a symlink of that name next to
//! it in cargo's output folder, so that programs linked against the build
//! folder find it at run time (`make install` lays out the real file and
//! both links).

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=MODELAPI_UPDATE_HEADER");

    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    let version = |part: &str| env::var(format!("CARGO_PKG_VERSION_{part}")).expect("set by cargo");
    config.after_includes = Some(format!(
        "\n#define MODELAPI_VERSION_MAJOR {}\n#define MODELAPI_VERSION_MINOR {}\n\
         #define MODELAPI_VERSION_PATCH {}\n#define MODELAPI_VERSION \"{}\"",
        version("MAJOR"),
        version("MINOR"),
        version("PATCH"),
        env::var("CARGO_PKG_VERSION").expect("set by cargo"),
    ));

    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header from src/ffi");
    bindings.write_to_file(out_dir.join("modelapi.h"));

    soname(&out_dir);

    let committed = crate_dir.join("include").join("modelapi.h");
    if !committed.exists() || env::var_os("MODELAPI_UPDATE_HEADER").is_some_and(|v| v == "1") {
        bindings.write_to_file(committed);
    }
}

/// The SONAME of the shared library, and its symlink in the profile folder.
fn soname(out_dir: &std::path::Path) {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
    let minor = env::var("CARGO_PKG_VERSION_MINOR").expect("set by cargo");
    let abi = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    let name = format!("libmodelapi.so.{abi}");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{name}");
    // OUT_DIR is <target>/<profile>/build/modelapi-<hash>/out.
    if let Some(profile_dir) = out_dir.ancestors().nth(3) {
        let link = profile_dir.join(&name);
        if std::fs::read_link(&link).is_err() {
            let _ = std::fs::remove_file(&link);
            // Dangling until the library is linked, right after this script.
            #[cfg(unix)]
            let _ = std::os::unix::fs::symlink("libmodelapi.so", &link);
        }
    }
}
