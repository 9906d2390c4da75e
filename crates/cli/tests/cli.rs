//! The `ochre` binary as a user runs it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: a failed expectation is a failing test"
)]

use std::process::Command;

fn ochre(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ochre"))
        .args(args)
        .output()
        .expect("run ochre");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn vacuum_compacts_a_data_directory_and_refuses_a_locked_or_foreign_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_str().expect("utf-8 path");
    let (ok, _, err) = ochre(&["vacuum", "--path", path]);
    assert!(!ok);
    assert!(err.contains("is not an Ochre data directory"), "{err}");
    {
        let db = ochre::Ochre::open(dir.path()).expect("open");
        let (ok, _, err) = ochre(&["vacuum", "--path", path]);
        assert!(!ok, "a directory in use is not vacuumed");
        assert!(err.contains("locked"), "{err}");
        drop(db);
    }
    let (ok, out, err) = ochre(&["vacuum", "--path", path]);
    assert!(ok, "{err}");
    assert!(out.starts_with("compacted "), "{out}");
    let (ok, out, _) = ochre(&["vacuum", "--help"]);
    assert!(ok);
    assert!(out.contains("Compact a data directory offline"), "{out}");
}
