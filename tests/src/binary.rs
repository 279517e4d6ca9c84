//! Finding the `mini-envoy` binary under test.
//!
//! `cargo test --workspace --all-targets` builds every binary before running
//! tests, so the binary sits next to the test executable's `deps/` directory
//! (`target/<profile>/mini-envoy`). When it is missing, or older than the
//! sources it is built from (e.g. `cargo test -p mini-envoy-tests`, which
//! does not build other packages' binaries), it is built once per test
//! process with `cargo build -p mini-envoy` into the same target directory
//! and profile. `MINI_ENVOY_BIN` overrides the path (no build then).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

/// The path of the `mini-envoy` binary, built if needed (once per process).
pub fn mini_envoy_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("MINI_ENVOY_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        // target/<profile>/deps/<test> → target/<profile>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lives in target/<profile>/deps")
            .to_path_buf();
        let binary = profile_dir.join(format!("mini-envoy{}", std::env::consts::EXE_SUFFIX));
        if !is_fresh(&binary) {
            build(&profile_dir);
        }
        assert!(binary.exists(), "mini-envoy was not built at {}", binary.display());
        binary
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").into()
}

/// Whether `binary` exists and is newer than every source it is built from.
fn is_fresh(binary: &Path) -> bool {
    let Ok(built) = binary.metadata().and_then(|m| m.modified()) else { return false };
    let root = workspace_root();
    let mut newest = SystemTime::UNIX_EPOCH;
    for dir in ["mini-envoy", "week1-core", "week2-threads", "week3-filters", "week4-xds"] {
        newest_mtime(&root.join(dir).join("src"), &mut newest);
        newest_mtime(&root.join(dir).join("Cargo.toml"), &mut newest);
    }
    // week4-xds compiles Envoy's .proto files into the binary (build.rs).
    newest_mtime(&root.join("week4-xds/build.rs"), &mut newest);
    newest_mtime(&root.join("week4-xds/proto"), &mut newest);
    newest_mtime(&root.join("Cargo.lock"), &mut newest);
    built >= newest
}

fn newest_mtime(path: &Path, newest: &mut SystemTime) {
    let Ok(meta) = path.metadata() else { return };
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            newest_mtime(&entry.path(), newest);
        }
    } else if let Ok(modified) = meta.modified() {
        *newest = (*newest).max(modified);
    }
}

fn build(profile_dir: &Path) {
    let target_dir = profile_dir.parent().expect("target/<profile> has a parent");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building mini-envoy (profile {profile}) into {}", target_dir.display());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args(["build", "-p", "mini-envoy", "--bin", "mini-envoy", "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .status()
        .expect("run cargo build -p mini-envoy");
    assert!(status.success(), "cargo build -p mini-envoy failed: {status}");
}
