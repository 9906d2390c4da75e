//! `ochre ingest` and `ochre query` as a user runs them: the binary on a folder and a data
//! directory, then the data directory read back through the engine.
//!
//! The model comes from `OCHRE_TEST_MODEL_DIR` (see crates/embed/tests/minilm.rs); without it
//! these tests say so and pass, unless `OCHRE_REQUIRE_MODEL_TESTS=1` (CI sets it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    reason = "test code: a failed expectation is a failing test; a skipped one says why"
)]

mod common;
use common::serve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ochre::{GetRequest, Include, MetadataValue};

fn model_dir() -> Option<PathBuf> {
    ochre_embed::test_model_dir()
}

fn ochre(model: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_ochre"))
        .args(args)
        .env("OCHRE_MODEL_DIR", model)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    out
}

fn ok(out: Output) -> (String, String) {
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    (stdout, stderr)
}

/// The counts of the summary line, e.g. `1 new, 0 changed, ...`.
fn counts(stderr: &str) -> BTreeMap<String, usize> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("ingested") || l.starts_with("would ingest"))
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    let tail = line.split(": ").nth(1).unwrap();
    tail.split([',', ';'])
        .filter_map(|part| {
            let mut w = part.split_whitespace();
            let n = w.next()?.parse().ok()?;
            Some((w.next()?.to_string(), n))
        })
        .collect()
}

/// source -> (chunks stored, the `chunks` metadata of each, the documents in chunk order).
fn stored(data: &Path) -> BTreeMap<String, Vec<(i64, i64, String)>> {
    let db = ochre::Ochre::open(data).unwrap();
    let info = db
        .get_collection("default_tenant", "default_database", "notes")
        .unwrap();
    let c = db.collection(info.id).unwrap();
    let got = c
        .get(GetRequest {
            ids: None,
            where_: None,
            where_document: None,
            limit: None,
            offset: None,
            include: Include {
                embeddings: false,
                documents: true,
                metadatas: true,
                uris: false,
                distances: false,
            },
        })
        .unwrap();
    let mut out: BTreeMap<String, Vec<(i64, i64, String)>> = BTreeMap::new();
    let docs = got.documents.unwrap();
    for (m, d) in got.metadatas.unwrap().into_iter().zip(docs) {
        let m = m.unwrap();
        let s = match &m["source"] {
            MetadataValue::Str(s) => s.clone(),
            v => panic!("source {v:?}"),
        };
        let int = |k: &str| match &m[k] {
            MetadataValue::Int(i) => *i,
            v => panic!("{k} {v:?}"),
        };
        assert!(matches!(m["sparse_embedding"], MetadataValue::Sparse(_)));
        out.entry(s)
            .or_default()
            .push((int("chunk"), int("chunks"), d.unwrap()));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

#[test]
fn ingest_is_incremental_and_query_finds_the_right_file() {
    let Some(model) = model_dir() else { return };
    let root = tempfile::tempdir().unwrap();
    let notes = root.path().join("notes");
    let data = root.path().join("data");
    std::fs::create_dir_all(notes.join("sub")).unwrap();
    std::fs::create_dir_all(notes.join(".git")).unwrap();
    std::fs::write(
        notes.join("tokio.md"),
        "# Async runtimes\n\nTokio is an asynchronous runtime for Rust: tasks, timers and \
         non-blocking sockets.\n",
    )
    .unwrap();
    std::fs::write(
        notes.join("sub/garden.txt"),
        "Tomatoes need full sun and regular watering; basil grows well beside them.",
    )
    .unwrap();
    let long: String = (0..400)
        .map(|i| format!("Paragraph {i} about sourdough bread, flour and hydration. "))
        .collect();
    std::fs::write(notes.join("bread.md"), &long).unwrap();
    std::fs::write(notes.join("image.txt"), [0xff, 0xfe, 0x00, 0x81]).unwrap();
    std::fs::write(notes.join(".hidden.md"), "secret").unwrap();
    std::fs::write(notes.join(".git/config.txt"), "not notes").unwrap();
    std::fs::write(notes.join("photo.jpg"), "not text by extension").unwrap();
    let data_s = data.to_str().unwrap();
    let notes_s = notes.to_str().unwrap();
    let ingest = |extra: &[&str]| {
        let mut args = vec!["ingest", notes_s, "--collection", "notes", "--path", data_s];
        args.extend_from_slice(extra);
        ok(ochre(&model, &args)).1
    };

    let first = counts(&ingest(&["--chunk-tokens", "120", "--overlap", "20"]));
    assert_eq!(first["new"], 3, "{first:?}");
    assert_eq!(first["skipped"], 1, "the binary .txt: {first:?}");
    let files = stored(&data);
    let notes_c = std::fs::canonicalize(&notes).unwrap();
    let bread = notes_c.join("bread.md").to_string_lossy().into_owned();
    let tokio_md = notes_c.join("tokio.md").to_string_lossy().into_owned();
    let garden = notes_c
        .join("sub/garden.txt")
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        [bread.clone(), garden.clone(), tokio_md.clone()]
    );
    let chunks = &files[&bread];
    assert!(chunks.len() > 10, "{}", chunks.len());
    for (i, (c, n, _)) in chunks.iter().enumerate() {
        assert_eq!((*c, *n), (i as i64, chunks.len() as i64));
    }
    // Overlap: each chunk starts inside the previous one.
    let tail: String = chunks[0]
        .2
        .chars()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert!(chunks[1].2.contains(tail.trim()), "no overlap");

    // Unchanged: nothing to do.
    let again = counts(&ingest(&[]));
    assert_eq!(
        (again["new"], again["changed"], again["unchanged"]),
        (0, 0, 3),
        "{again:?}"
    );

    // Queries: JSON answers name the source; each mode finds the file that is about it.
    let query = |text: &str, mode: &str| -> serde_json::Value {
        let (out, _) = ok(ochre(
            &model,
            &[
                "query",
                text,
                "--collection",
                "notes",
                "--path",
                data_s,
                "--json",
                "-n",
                "3",
                "--mode",
                mode,
            ],
        ));
        serde_json::from_str(&out).unwrap()
    };
    for mode in ["dense", "bm25", "hybrid"] {
        let hits = query("asynchronous Rust runtime", mode);
        assert_eq!(
            hits[0]["metadata"]["source"],
            tokio_md.as_str(),
            "{mode}: {hits}"
        );
        assert!(hits[0]["metadata"].get("sparse_embedding").is_none());
        let key = if mode == "dense" { "distance" } else { "score" };
        assert!(hits[0][key].is_f64(), "{hits}");
    }
    let hits = query("what grows next to tomatoes", "hybrid");
    assert_eq!(hits[0]["metadata"]["source"], garden.as_str(), "{hits}");
    // Readable output: rank, source, and the matching words marked.
    let (out, _) = ok(ochre(
        &model,
        &[
            "query",
            "watering tomatoes",
            "--collection",
            "notes",
            "--path",
            data_s,
            "-n",
            "1",
        ],
    ));
    assert!(out.starts_with("1. "), "{out}");
    assert!(
        out.contains("garden.txt") && out.contains("**Tomatoes**") && out.contains("**watering**"),
        "{out}"
    );
    // A filter narrows the search.
    let (out, _) = ok(ochre(
        &model,
        &[
            "query",
            "bread",
            "--collection",
            "notes",
            "--path",
            data_s,
            "--json",
            "--where",
            &format!("{{\"source\": \"{garden}\"}}"),
        ],
    ));
    let hits: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(hits
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["metadata"]["source"] == garden.as_str()));

    // Change one file (shorter: fewer chunks), delete one, rename one.
    std::fs::write(notes.join("bread.md"), "Sourdough needs a starter.").unwrap();
    std::fs::remove_file(notes.join("sub/garden.txt")).unwrap();
    std::fs::rename(notes.join("tokio.md"), notes.join("sub/async.md")).unwrap();
    let third = counts(&ingest(&[]));
    assert_eq!(
        (
            third["new"],
            third["changed"],
            third["renamed"],
            third["deleted"],
            third["unchanged"]
        ),
        (0, 1, 1, 1, 0),
        "{third:?}"
    );
    assert_eq!(
        third["chunks"], 1,
        "only the changed file is embedded: {third:?}"
    );
    let files = stored(&data);
    let moved = notes_c.join("sub/async.md").to_string_lossy().into_owned();
    assert_eq!(
        files.keys().cloned().collect::<Vec<_>>(),
        [bread.clone(), moved.clone()]
    );
    assert_eq!(
        files[&bread],
        vec![(0, 1, "Sourdough needs a starter.".to_string())]
    );
    assert!(files[&moved][0].2.contains("Tokio"));
    let hits = query("asynchronous Rust runtime", "hybrid");
    assert_eq!(hits[0]["metadata"]["source"], moved.as_str(), "{hits}");
}

#[test]
fn bad_arguments_get_clear_errors_and_write_nothing() {
    let Some(model) = model_dir() else { return };
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let data_s = data.to_str().unwrap();
    let missing = root.path().join("nope");
    let out = ochre(
        &model,
        &[
            "ingest",
            missing.to_str().unwrap(),
            "-c",
            "notes",
            "--path",
            data_s,
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    std::fs::write(root.path().join("a.txt"), "hello").unwrap();
    let file = root.path().join("a.txt");
    let out = ochre(
        &model,
        &[
            "ingest",
            file.to_str().unwrap(),
            "-c",
            "notes",
            "--path",
            data_s,
            "--chunk-tokens",
            "500",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("longer than the model reads"));
    assert!(!data.exists(), "nothing written");
    let out = ochre(&model, &["query", "x", "-c", "notes", "--path", data_s]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an Ochre data directory"));
    // A dry run reports and creates nothing.
    let (_, stderr) = ok(ochre(
        &model,
        &[
            "ingest",
            file.to_str().unwrap(),
            "-c",
            "notes",
            "--path",
            data_s,
            "--dry-run",
        ],
    ));
    assert_eq!(counts(&stderr)["new"], 1, "{stderr}");
    assert!(!data.exists(), "a dry run created the data directory");
    // A single file ingests; a query with a bad filter reports the server's error.
    ok(ochre(
        &model,
        &[
            "ingest",
            file.to_str().unwrap(),
            "-c",
            "notes",
            "--path",
            data_s,
        ],
    ));
    let out = ochre(
        &model,
        &[
            "query",
            "x",
            "-c",
            "notes",
            "--path",
            data_s,
            "--where",
            "{\"$bad\": 1}",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("InvalidArgumentError") || err.contains("Error"),
        "{err}"
    );
    let out = ochre(&model, &["query", "x", "-c", "other", "--path", data_s]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no collection named other"));
    // A dry run against an existing directory does not create the collection either.
    ok(ochre(
        &model,
        &[
            "ingest",
            file.to_str().unwrap(),
            "-c",
            "other",
            "--path",
            data_s,
            "--dry-run",
        ],
    ));
    let out = ochre(&model, &["query", "x", "-c", "other", "--path", data_s]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no collection named other"));
}

#[test]
fn embed_writes_one_json_line_per_input_line() {
    let Some(model) = model_dir() else { return };
    use std::io::Write;
    let run = |args: &[&str], input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ochre"))
            .args(args)
            .env("OCHRE_MODEL_DIR", &model)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let out = run(&["embed"], "first text\nsecond text\n\n");
    let lines: Vec<Vec<f32>> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|v| v.len() == 384));
    let out = run(&["embed", "--bm25"], "The quick brown foxes\n");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let want = ochre_embed::bm25::Bm25::default().embed("The quick brown foxes");
    assert_eq!(v["indices"], serde_json::json!(want.indices));
}

#[test]
fn ingest_and_query_work_against_a_running_server_with_auth() {
    let Some(model) = model_dir() else { return };
    let root = tempfile::tempdir().unwrap();
    let notes = root.path().join("notes");
    std::fs::create_dir_all(&notes).unwrap();
    std::fs::write(
        notes.join("keys.md"),
        "Rotate the API keys every ninety days.",
    )
    .unwrap();
    std::fs::write(
        notes.join("lunch.md"),
        "The canteen serves soup on Fridays.",
    )
    .unwrap();
    let server = serve(&root.path().join("data"), "s3cret");
    let notes_s = notes.to_str().unwrap();
    let url = server.url.as_str();
    // Without the token: the server's own error, nothing written.
    let out = ochre(&model, &["ingest", notes_s, "-c", "notes", "--url", url]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") || err.contains("Unauthorized") || err.contains("unauthorized"),
        "{err}"
    );
    let (_, stderr) = ok(ochre(
        &model,
        &[
            "ingest", notes_s, "-c", "notes", "--url", url, "--token", "s3cret",
        ],
    ));
    assert_eq!(counts(&stderr)["new"], 2, "{stderr}");
    let (_, stderr) = ok(ochre(
        &model,
        &[
            "ingest", notes_s, "-c", "notes", "--url", url, "--token", "s3cret",
        ],
    ));
    assert_eq!(counts(&stderr)["unchanged"], 2, "{stderr}");
    let (out, _) = ok(ochre(
        &model,
        &[
            "query",
            "how often should keys be rotated",
            "-c",
            "notes",
            "--url",
            url,
            "--token",
            "s3cret",
            "--json",
            "-n",
            "1",
        ],
    ));
    let hits: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        hits[0]["metadata"]["source"]
            .as_str()
            .unwrap()
            .ends_with("keys.md"),
        "{hits}"
    );
}
