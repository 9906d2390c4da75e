//! `ochre export`, `ochre import`, `ochre snapshot` and `ochre restore` as an operator runs them:
//! the binary on data directories and a running server, the results read back through the
//! engine and compared record by record.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed expectation is a failing test"
)]

mod common;
use common::serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use ochre::{
    CollectionConfiguration, CreateCollection, GetRequest, HnswConfig, Include, Metadata,
    MetadataValue, Ochre, RecordBatch, Space,
};

fn ochre(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ochre"))
        .args(args)
        .env_remove("OCHRE_TOKEN")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "stderr: {stderr}");
    stderr
}

fn fails(out: Output) -> String {
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success(),
        "it should have failed; stderr: {stderr}"
    );
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Awkward floats: signed zero, subnormals, extremes, values with no short decimal form.
fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let special = [
        -0.0f32,
        f32::MIN_POSITIVE / 3.0,
        f32::MAX,
        -f32::MAX / 7.0,
        1.0e-38,
        0.1,
        1.0 / 3.0,
        16_777_217.0,
    ];
    (0..dim)
        .map(|d| {
            let x = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add((d as u64).wrapping_mul(1_442_695_040_888_963_407));
            if x.is_multiple_of(5) {
                special[(x >> 7) as usize % special.len()]
            } else {
                f32::from_bits(((x >> 33) as u32 & 0x007f_ffff) | 0x3f00_0000)
                    * if x & 1 == 0 { 1.0 } else { -1.0 }
            }
        })
        .collect()
}

fn metadata(i: u64) -> Option<Metadata> {
    if i % 7 == 3 {
        return None;
    }
    let mut m = Metadata::new();
    m.insert("n".into(), MetadataValue::Int(i as i64 - 5));
    m.insert("one_float".into(), MetadataValue::Float(1.0));
    m.insert("ratio".into(), MetadataValue::Float(i as f64 / 3.0));
    m.insert("even".into(), MetadataValue::Bool(i.is_multiple_of(2)));
    m.insert(
        "text".into(),
        MetadataValue::Str(format!("ünïcode \"{i}\"\n\t")),
    );
    m.insert(
        "tags".into(),
        MetadataValue::StrArray(vec!["a".into(), format!("t{i}")]),
    );
    m.insert("ints".into(), MetadataValue::IntArray(vec![i as i64, -1]));
    m.insert("floats".into(), MetadataValue::FloatArray(vec![0.5, 1.0]));
    m.insert("bools".into(), MetadataValue::BoolArray(vec![true, false]));
    if i.is_multiple_of(3) {
        m.insert(
            "sparse".into(),
            MetadataValue::Sparse(Box::new(ochre::SparseVector {
                indices: vec![1, 5, 9],
                values: vec![0.25, 0.1, 3.0],
                tokens: None,
            })),
        );
    }
    Some(m)
}

/// A data directory with two tenants, three databases, and collections of every space.
fn populate(dir: &Path) {
    let db = Ochre::open(dir).unwrap();
    db.create_tenant("acme").unwrap();
    db.create_database("acme", "research").unwrap();
    db.create_database("default_tenant", "second").unwrap();
    let spaces = [
        (
            "default_tenant",
            "default_database",
            "notes",
            Space::Cosine,
            16usize,
            300u64,
        ),
        ("default_tenant", "second", "vectors", Space::L2, 8, 40),
        ("acme", "research", "papers", Space::Ip, 4, 1200),
        ("acme", "research", "empty", Space::L2, 0, 0),
    ];
    for (t, d, name, space, dim, n) in spaces {
        let mut md = Metadata::new();
        md.insert("owner".into(), MetadataValue::Str(format!("{name} owner")));
        md.insert("version".into(), MetadataValue::Int(3));
        let info = db
            .create_collection(
                t,
                d,
                CreateCollection {
                    name: name.into(),
                    metadata: Some(md),
                    configuration: CollectionConfiguration {
                        hnsw: HnswConfig {
                            space,
                            ef_search: 57,
                            max_neighbors: 12,
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .unwrap();
        let c = db.collection(info.id).unwrap();
        for start in (0..n).step_by(250) {
            let end = (start + 250).min(n);
            let ids = (start..end).map(|i| format!("{name}-{i:05}")).collect();
            let batch = RecordBatch::new(ids, (start..end).map(|i| vector(i, dim)).collect())
                .documents(
                    (start..end)
                        .map(|i| (i % 4 != 1).then(|| format!("doc {i} of {name}\nwith «text»")))
                        .collect(),
                )
                .uris(
                    (start..end)
                        .map(|i| (i % 5 == 0).then(|| format!("s3://bucket/{i}")))
                        .collect(),
                )
                .metadatas((start..end).map(metadata).collect());
            c.add(batch).unwrap();
        }
    }
}

/// Everything a data directory holds, as comparable text: catalog and records in order.
fn dump(dir: &Path) -> Vec<String> {
    let db = Ochre::open(dir).unwrap();
    let mut out = Vec::new();
    for t in db.list_tenants() {
        out.push(format!("tenant {}", t.name));
        for d in db.list_databases(&t.name, None, 0) {
            out.push(format!("database {}/{}", t.name, d.name));
            let mut cols = db.list_collections(&t.name, &d.name, None, 0);
            cols.sort_by(|a, b| a.name.cmp(&b.name));
            for c in cols {
                out.push(format!(
                    "collection {} {:?} {:?} ef={:?} dim={:?}",
                    c.name,
                    c.metadata,
                    c.configuration.hnsw,
                    c.configuration.embedding_function,
                    c.dimension
                ));
                let got = db
                    .collection(c.id)
                    .unwrap()
                    .get(GetRequest {
                        include: Include::all(),
                        ..Default::default()
                    })
                    .unwrap();
                for i in 0..got.ids.len() {
                    let bits: Vec<u32> = got.embeddings.as_ref().unwrap()[i]
                        .iter()
                        .map(|x| x.to_bits())
                        .collect();
                    out.push(format!(
                        "  {} {:?} {:?} {:?} {:?}",
                        got.ids[i],
                        bits,
                        got.documents.as_ref().unwrap()[i],
                        got.uris.as_ref().unwrap()[i],
                        got.metadatas.as_ref().unwrap()[i]
                    ));
                }
            }
        }
    }
    out
}

fn assert_same(a: &[String], b: &[String]) {
    assert_eq!(a.len(), b.len(), "line counts");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x, y);
    }
}

#[test]
fn export_then_import_gives_back_every_record_bit_for_bit() {
    let root = tempfile::tempdir().unwrap();
    let (data, copy) = (root.path().join("data"), root.path().join("copy"));
    populate(&data);
    let file = root.path().join("all.jsonl");
    let said = ok(ochre(&["export", "--path", s(&data), "--out", s(&file)]));
    assert!(
        said.contains("exported 4 collections, 1540 records"),
        "{said}"
    );
    let said = ok(ochre(&["import", s(&file), "--path", s(&copy)]));
    assert!(
        said.contains("imported 4 collections, 1540 records"),
        "{said}"
    );
    assert_same(&dump(&data), &dump(&copy));
    // A round trip is a fixed point: exporting a copy of a copy gives the copy's file, but
    // for the header's time. (The first copy's schemas may list more metadata keys than the
    // original's: writes through the API record them; `populate` wrote through the engine.)
    let again = root.path().join("again.jsonl");
    ok(ochre(&["export", "--path", s(&copy), "--out", s(&again)]));
    let copy2 = root.path().join("copy2");
    ok(ochre(&["import", s(&again), "--path", s(&copy2)]));
    let file = root.path().join("again2.jsonl");
    ok(ochre(&["export", "--path", s(&copy2), "--out", s(&file)]));
    let body = |p: &PathBuf| {
        let text = std::fs::read_to_string(p).unwrap();
        text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>()
    };
    let (a, b) = (body(&file), body(&again));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x == y,
            "first difference:\n{}\n{}",
            &x[..x.len().min(3000)],
            &y[..y.len().min(3000)]
        );
    }

    // One collection, to standard output, into an existing directory.
    let out = ochre(&[
        "export",
        "--path",
        s(&data),
        "--tenant",
        "acme",
        "--database",
        "research",
        "--collection",
        "papers",
        "--out",
        "-",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1 + 2 + 1 + 1200 + 1);
    let one = root.path().join("one.jsonl");
    std::fs::write(&one, &text).unwrap();
    let other = root.path().join("other");
    populate_other(&other);
    ok(ochre(&["import", s(&one), "--path", s(&other)]));
    let db = Ochre::open(&other).unwrap();
    assert_eq!(db.list_collections("acme", "research", None, 0).len(), 1);
    assert_eq!(
        db.list_collections("default_tenant", "default_database", None, 0)
            .len(),
        1,
        "what was there stays"
    );
    let missing = ochre(&[
        "export",
        "--path",
        s(&data),
        "--collection",
        "nope",
        "--out",
        "-",
    ]);
    assert!(fails(missing).contains("no collection named \"nope\""));
}

fn populate_other(dir: &Path) {
    let db = Ochre::open(dir).unwrap();
    let info = db
        .create_collection(
            "default_tenant",
            "default_database",
            CreateCollection {
                name: "papers".into(),
                ..Default::default()
            },
        )
        .unwrap();
    db.collection(info.id)
        .unwrap()
        .add(RecordBatch::new(vec!["x".into()], vec![vec![1.0, 2.0]]))
        .unwrap();
}

#[test]
fn a_damaged_export_is_refused_and_nothing_is_written() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    populate(&data);
    let file = root.path().join("all.jsonl");
    ok(ochre(&["export", "--path", s(&data), "--out", s(&file)]));
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let target = root.path().join("target");
    let refused = |name: &str, content: String, needle: &str| {
        let f = root.path().join(name);
        std::fs::write(&f, content).unwrap();
        let said = fails(ochre(&["import", s(&f), "--path", s(&target)]));
        assert!(said.contains(needle), "{name}: {said}");
        assert!(!target.exists(), "{name}: nothing is written");
    };
    // Cut at a line boundary, and in the middle of a line.
    refused(
        "cut.jsonl",
        lines[..lines.len() / 2].join("\n") + "\n",
        "is cut short",
    );
    refused("mid.jsonl", text[..text.len() / 2].to_owned(), "cut short");
    refused(
        "version.jsonl",
        text.replacen("\"version\":1", "\"version\":7", 1),
        "format version 7",
    );
    refused(
        "foreign.jsonl",
        "{\"hello\": 1}\n".into(),
        "not an Ochre export",
    );
    refused("empty.jsonl", String::new(), "is empty");
    let mut orphan = lines.clone();
    orphan.retain(|l| !l.starts_with("{\"collection\""));
    refused(
        "orphan.jsonl",
        orphan.join("\n") + "\n",
        "a record before any collection",
    );
    let mut short = lines.clone();
    short.remove(10);
    refused(
        "totals.jsonl",
        short.join("\n") + "\n",
        "the end line states",
    );
    let mut bad = lines.clone();
    bad[10] = r#"{"record": {"id": "x", "embedding": "not base64!"}}"#;
    refused("b64.jsonl", bad.join("\n") + "\n", "line 11");
    // Well-formed, but the database refuses a record (a nested metadata value) while writing:
    // what the import had created is removed again.
    let mut nested = lines.clone();
    let last_record = nested
        .iter()
        .rposition(|l| l.starts_with("{\"record\""))
        .unwrap();
    let mut rec: serde_json::Value = serde_json::from_str(nested[last_record]).unwrap();
    rec["record"]["metadata"] = serde_json::json!({"deep": {"x": 1}});
    let rec = rec.to_string();
    nested[last_record] = &rec;
    refused("nested.jsonl", nested.join("\n") + "\n", "removed");
    // Into an existing directory, the same failure leaves it as it was, but for the tenant
    // the import created (the API cannot delete a tenant): empty.
    let other = root.path().join("other");
    populate_other(&other);
    let before = dump(&other);
    let f = root.path().join("nested.jsonl");
    let said = fails(ochre(&["import", s(&f), "--path", s(&other)]));
    assert!(said.contains("removed"), "{said}");
    let after: Vec<String> = dump(&other)
        .into_iter()
        .filter(|l| l != "tenant acme")
        .collect();
    assert_same(&before, &after);
}

#[test]
fn name_clashes_fail_the_import_unless_skipped() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    populate(&data);
    let file = root.path().join("all.jsonl");
    ok(ochre(&["export", "--path", s(&data), "--out", s(&file)]));
    let before = dump(&data);
    let said = fails(ochre(&["import", s(&file), "--path", s(&data)]));
    assert!(said.contains("already has 4 collection(s)"), "{said}");
    assert!(said.contains("acme/research/papers"), "{said}");
    let said = ok(ochre(&[
        "import",
        s(&file),
        "--path",
        s(&data),
        "--on-conflict",
        "skip",
    ]));
    assert!(said.contains("imported 0 collections, 0 records"), "{said}");
    assert_same(&before, &dump(&data));
    // An export never overwrites a file.
    assert!(fails(ochre(&["export", "--path", s(&data), "--out", s(&file)])).contains("exists"));
}

/// The export format's first version, as committed (tests/data/export-v1.jsonl): it still
/// imports, to exactly what it describes.
#[test]
fn the_version_1_fixture_imports() {
    let root = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/export-v1.jsonl");
    let data = root.path().join("data");
    ok(ochre(&["import", s(&fixture), "--path", s(&data)]));
    let db = Ochre::open(&data).unwrap();
    let info = db
        .get_collection("default_tenant", "default_database", "fixture")
        .unwrap();
    assert_eq!(info.configuration.hnsw.space, Space::Cosine);
    let mut md = Metadata::new();
    md.insert("purpose".into(), MetadataValue::Str("golden".into()));
    assert_eq!(info.metadata, Some(md));
    let got = db
        .collection(info.id)
        .unwrap()
        .get(GetRequest {
            include: Include::all(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(got.ids, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(
        got.embeddings.unwrap(),
        vec![vec![1.0, -0.0, 0.1], vec![f32::MAX, 1.0e-40, -2.5]]
    );
    assert_eq!(got.documents.unwrap(), vec![Some("first".into()), None]);
    assert_eq!(got.uris.unwrap(), vec![None, Some("file:///b".into())]);
    let mut m = Metadata::new();
    m.insert("n".into(), MetadataValue::Int(1));
    m.insert("f".into(), MetadataValue::Float(1.0));
    m.insert(
        "tags".into(),
        MetadataValue::StrArray(vec!["x".into(), "y".into()]),
    );
    assert_eq!(got.metadatas.unwrap(), vec![Some(m), Some(Metadata::new())]);
    assert!(db.get_tenant("acme").is_ok());
    assert!(db.get_database("acme", "lab").is_ok());
}

#[test]
fn snapshot_and_restore_offline() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    populate(&data);
    let snap = root.path().join("snap");
    let said = ok(ochre(&["snapshot", "--path", s(&data), "--out", s(&snap)]));
    assert!(said.contains("snapshot of"), "{said}");
    let restored = root.path().join("restored");
    ok(ochre(&["restore", s(&snap), "--path", s(&restored)]));
    assert_same(&dump(&data), &dump(&restored));
    // Restoring over data is refused.
    let said = fails(ochre(&["restore", s(&snap), "--path", s(&data)]));
    assert!(said.contains("exists and is not empty"), "{said}");
    let said = fails(ochre(&[
        "snapshot",
        "--path",
        s(&root.path().join("nothing")),
        "--out",
        s(&root.path().join("s2")),
    ]));
    assert!(said.contains("not an Ochre data directory"), "{said}");
}

const BATCH: u64 = 20;

#[test]
fn an_online_snapshot_under_writes_restores_a_prefix_of_whole_batches() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    populate(&data);
    let server = serve(&data, "sekret");
    let base = format!(
        "{}/api/v2/tenants/default_tenant/databases/default_database/collections",
        server.url
    );
    let agent = ureq::AgentBuilder::new().build();
    let auth = ("Authorization", "Bearer sekret");
    let c: serde_json::Value = agent
        .post(&base)
        .set(auth.0, auth.1)
        .send_json(serde_json::json!({"name": "live"}))
        .unwrap()
        .into_json()
        .unwrap();
    let add = format!("{base}/{}/add", c["id"].as_str().unwrap());
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, agent, add) = (acked.clone(), stop.clone(), agent.clone(), add.clone());
        std::thread::spawn(move || {
            let mut b = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let ids: Vec<String> = (0..BATCH).map(|i| format!("b{b:05}-{i:02}")).collect();
                let embeddings: Vec<Vec<f32>> =
                    (0..BATCH).map(|i| vec![b as f32, i as f32, 1.0]).collect();
                agent
                    .post(&add)
                    .set("Authorization", "Bearer sekret")
                    .send_json(serde_json::json!({"ids": ids, "embeddings": embeddings}))
                    .unwrap();
                b += 1;
                acked.store(b, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 20 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Without the token: refused, nothing written.
    let snap = root.path().join("snap");
    let said = fails(ochre(&[
        "snapshot",
        "--url",
        &server.url,
        "--out",
        s(&snap),
    ]));
    assert!(said.contains("AuthError"), "{said}");
    assert!(!snap.exists());
    let before = acked.load(Ordering::SeqCst);
    let out = Command::new(env!("CARGO_BIN_EXE_ochre"))
        .args(["snapshot", "--url", &server.url, "--out", s(&snap)])
        .env("OCHRE_TOKEN", "sekret")
        .output()
        .unwrap();
    let after = acked.load(Ordering::SeqCst);
    ok(out);
    while acked.load(Ordering::SeqCst) < after + 3 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    drop(server);

    let restored = root.path().join("restored");
    ok(ochre(&["restore", s(&snap), "--path", s(&restored)]));
    let db = Ochre::open(&restored).unwrap();
    let info = db
        .get_collection("default_tenant", "default_database", "live")
        .unwrap();
    let got = db
        .collection(info.id)
        .unwrap()
        .get(GetRequest::default())
        .unwrap();
    let mut per_batch = std::collections::BTreeMap::<u64, u64>::new();
    for id in &got.ids {
        *per_batch.entry(id[1..6].parse().unwrap()).or_default() += 1;
    }
    assert!(
        per_batch.values().all(|n| *n == BATCH),
        "whole batches only"
    );
    let k = per_batch.len() as u64;
    assert_eq!(
        per_batch.keys().copied().collect::<Vec<_>>(),
        (0..k).collect::<Vec<_>>()
    );
    assert!(k >= before && k <= after, "{before} <= {k} <= {after}");
    // The rest of the data came along.
    let papers = db.get_collection("acme", "research", "papers").unwrap();
    assert_eq!(db.collection(papers.id).unwrap().count().unwrap(), 1200);
}
