"""`ochre import --from-chroma`: a directory chromadb 1.5.9 writes (collections with cosine, l2 and
ip, legacy `hnsw:space` metadata, documents, uris, metadata with arrays and booleans, updates,
upserts, deletes, a second tenant and database) is imported, and every record is compared with
what chromadb itself reads from the same directory; damaged or foreign directories are refused
with a clear error and nothing written.

Chroma changes a directory when it reads it (migrations, backfill, compaction), so chromadb reads
one copy and Ochre imports another."""
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

import chromadb
import ochre

REPO = Path(__file__).resolve().parents[2]


def ochre_bin():
    given = os.environ.get("OCHRE_BIN")
    if given:
        return given
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "ochre"
        if p.exists():
            return str(p)
    pytest.fail("no ochre binary: build it (cargo build --release -p ochre-cli) or set OCHRE_BIN")


def run_ochre(*args):
    return subprocess.run([ochre_bin(), *args], capture_output=True, text=True, timeout=600)


def vectors(rng, n, dim, scale=3.0):
    return (rng.standard_normal((n, dim)) * scale).astype(np.float32)


def write_chroma(path):
    """A Chroma directory exercising what an importer must get right."""
    rng = np.random.default_rng(7)
    c = chromadb.PersistentClient(str(path))
    admin = chromadb.AdminClient(c.get_settings())
    admin.create_tenant("tenant2")
    admin.create_database("db2", tenant="tenant2")
    admin.create_database("db3")
    # Cosine with a small sync threshold: most vectors in the HNSW files, the rest in the log.
    cos = c.create_collection(
        "cosine_docs",
        metadata={"owner": "ana", "version": 2, "ratio": 0.5, "public": True},
        configuration={"hnsw": {"space": "cosine", "sync_threshold": 10, "batch_size": 10, "ef_search": 40}},
    )
    ids = [f"c{i:03d}" for i in range(60)]
    cos.add(
        ids=ids,
        embeddings=vectors(rng, 60, 16),
        documents=[f"document number {i}" for i in range(60)],
        metadatas=[
            {"i": i, "half": i * 0.5, "even": i % 2 == 0, "tags": ["a", "b"] if i % 3 == 0 else ["c"],
             "nums": [i, i + 1], "flags": [True, False], "floats": [0.25, i / 7]}
            for i in range(60)
        ],
        uris=[f"file:///docs/{i}.txt" if i % 4 == 0 else None for i in range(60)],
    )
    cos.update(ids=["c001", "c002"], embeddings=vectors(rng, 2, 16))
    # (chromadb embeds documents given without embeddings, with a model it downloads: pass both.)
    cos.update(ids=["c003"], metadatas=[{"i": None, "new": "yes", "tags": ["z"]}], documents=["rewritten"],
               embeddings=vectors(rng, 1, 16))
    cos.upsert(ids=["c004", "c900"], embeddings=vectors(rng, 2, 16),
               metadatas=[{"up": 1}, {"up": 2}], documents=["u4", "u900"])
    cos.delete(ids=["c005", "c006"])
    cos.delete(where={"i": {"$gte": 55}})
    cos.add(ids=["c005"], embeddings=vectors(rng, 1, 16), documents=["back again"])
    cos.update(ids=["c010"], embeddings=[[4.0, 5.0, 6.0] + [0.0] * 13])
    # L2 with the default threshold: everything stays in the log.
    l2 = c.create_collection("plain_l2")
    l2.add(ids=[f"p{i}" for i in range(30)], embeddings=vectors(rng, 30, 8),
           metadatas=[{"k": "v", "n": i} if i % 2 else None for i in range(30)],
           documents=[None if i % 5 == 0 else f"text {i}" for i in range(30)])
    l2.update(ids=["p1"], metadatas=[{"k": None, "extra": 1.0}])
    l2.upsert(ids=["p2", "p31"], embeddings=vectors(rng, 2, 8))
    l2.delete(ids=["p3"])
    l2.add(ids=["uri_only"], embeddings=vectors(rng, 1, 8), uris=["s3://bucket/key"])
    # Inner product, persisted more than once, in another tenant and database.
    c2 = chromadb.PersistentClient(str(path), tenant="tenant2", database="db2")
    ip = c2.create_collection("ip_vectors", configuration={"hnsw": {"space": "ip", "sync_threshold": 10}})
    for b in range(4):
        ip.add(ids=[f"v{b}-{i}" for i in range(12)], embeddings=vectors(rng, 12, 32))
    ip.delete(ids=["v0-0", "v1-1"])
    ip.upsert(ids=["v2-2"], embeddings=vectors(rng, 1, 32), metadatas=[{"moved": True}])
    # Legacy metadata naming the space.
    c3 = chromadb.PersistentClient(str(path), database="db3")
    legacy = c3.create_collection("legacy_space", metadata={"hnsw:space": "cosine", "note": "old style"})
    legacy.add(ids=["l1", "l2", "l3"], embeddings=vectors(rng, 3, 4), documents=["x", "y", "z"])
    c3.create_collection("empty_one")
    del c, c2, c3, admin


def databases(path):
    db = sqlite3.connect(f"file:{path}/chroma.sqlite3?mode=ro", uri=True)
    try:
        return db.execute("SELECT tenant_id, name FROM databases ORDER BY tenant_id, name").fetchall()
    finally:
        db.close()


INCLUDE = ["embeddings", "documents", "metadatas", "uris"]


def strict_eq(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_eq(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_eq(x, y) for x, y in zip(a, b))
    return a == b


def read_all(client_for, combos):
    out = {}
    for tenant, database in combos:
        client = client_for(tenant, database)
        for col in client.list_collections():
            got = col.get(include=INCLUDE)
            out[(tenant, database, col.name)] = {
                "records": got,
                "metadata": col.metadata,
                "space": (col.configuration.get("hnsw") or {}).get("space"),
            }
    return out


@pytest.fixture(scope="module")
def chroma_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("chroma") / "data"
    write_chroma(path)
    chromadb.api.client.SharedSystemClient.clear_system_cache()
    return path


def test_every_record_comes_out_as_chroma_shows_it(chroma_dir, tmp_path):
    theirs_dir, mine_dir = tmp_path / "theirs", tmp_path / "mine"
    shutil.copytree(chroma_dir, theirs_dir)
    shutil.copytree(chroma_dir, mine_dir)
    combos = databases(chroma_dir)
    data = tmp_path / "ochre"
    r = run_ochre("import", "--from-chroma", str(mine_dir), "--path", str(data))
    assert r.returncode == 0, r.stderr
    assert "imported 5 collections" in r.stderr, r.stderr
    # The source is unchanged by the import.
    assert (mine_dir / "chroma.sqlite3").read_bytes() == (chroma_dir / "chroma.sqlite3").read_bytes()

    theirs = read_all(lambda t, d: chromadb.PersistentClient(str(theirs_dir), tenant=t, database=d), combos)
    chromadb.api.client.SharedSystemClient.clear_system_cache()
    mine = read_all(lambda t, d: ochre.PersistentClient(str(data), tenant=t, database=d), combos)
    assert sorted(mine) == sorted(theirs)
    for key, t in theirs.items():
        m = mine[key]
        assert m["metadata"] == t["metadata"], key
        assert m["space"] == t["space"], key
        tr, mr = t["records"], m["records"]
        assert mr["ids"] == tr["ids"], key
        te, me = np.asarray(tr["embeddings"]), np.asarray(mr["embeddings"])
        assert te.shape == me.shape, key
        assert np.array_equal(te, me), (key, np.argwhere(te != me)[:5])
        assert strict_eq(mr["documents"], tr["documents"]), key
        assert strict_eq(mr["uris"], tr["uris"]), key
        for i, (a, b) in enumerate(zip(mr["metadatas"], tr["metadatas"])):
            assert strict_eq(a, b), (key, tr["ids"][i], a, b)
    # Queries answer on the imported index.
    col = ochre.PersistentClient(str(data)).get_collection("cosine_docs")
    probe = col.get(ids=["c020"], include=["embeddings"])["embeddings"][0]
    assert col.query(query_embeddings=[probe], n_results=1)["ids"] == [["c020"]]


def test_a_second_import_clashes_unless_told_to_skip(chroma_dir, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(chroma_dir, src)
    data = tmp_path / "ochre"
    assert run_ochre("import", "--from-chroma", str(src), "--path", str(data)).returncode == 0
    r = run_ochre("import", "--from-chroma", str(src), "--path", str(data))
    assert r.returncode != 0
    assert "already has 5 collection(s)" in r.stderr and "cosine_docs" in r.stderr, r.stderr
    r = run_ochre("import", "--from-chroma", str(src), "--path", str(data), "--on-conflict", "skip")
    assert r.returncode == 0, r.stderr
    assert "imported 0 collections" in r.stderr, r.stderr


def test_foreign_damaged_and_old_directories_are_refused_with_nothing_written(chroma_dir, tmp_path):
    def refused(src, *needles):
        data = tmp_path / f"out-{src.name}"
        r = run_ochre("import", "--from-chroma", str(src), "--path", str(data))
        assert r.returncode != 0
        for n in needles:
            assert n in r.stderr, r.stderr
        assert not data.exists(), "nothing is written"

    empty = tmp_path / "empty"
    empty.mkdir()
    refused(empty, "not a Chroma directory", "no chroma.sqlite3")

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    refused(garbage, "not an SQLite database")

    def copy(name):
        dst = tmp_path / name
        shutil.copytree(chroma_dir, dst)
        return dst

    def with_sql(name, statement):
        dst = copy(name)
        con = sqlite3.connect(dst / "chroma.sqlite3")
        con.execute(statement)
        con.commit()
        con.close()
        return dst

    truncated = copy("truncated")
    db = truncated / "chroma.sqlite3"
    db.write_bytes(db.read_bytes()[: 4096 * 3])
    refused(truncated, "chroma.sqlite3")

    refused(with_sql("old", "DELETE FROM migrations WHERE dir = 'metadb' AND version >= 5"), "chromadb 0.x")
    refused(with_sql("newer", "INSERT INTO migrations VALUES ('sysdb', 99, 'x.sql', '', '')"), "newer than 1.5")

    # Index files cut short: the collection cannot be read, so nothing is imported.
    cut = copy("cut")
    for data_file in cut.glob("*/data_level0.bin"):
        if data_file.stat().st_size > 4096:
            data_file.write_bytes(data_file.read_bytes()[:1000])
    refused(cut, "data_level0.bin")


def test_chromas_hnsw_graph_is_adopted_and_answers_as_well(tmp_path):
    """A collection big enough that Ochre walks its graph (over 2,048 vectors), most of it in
    Chroma's HNSW files: the import adopts that graph instead of building one, and queries on it
    find the true neighbours (compared with an exact search), with the records the log changed
    since (an update, deletes) linked in by Ochre."""
    rng = np.random.default_rng(11)
    src = tmp_path / "chroma"
    c = chromadb.PersistentClient(str(src))
    col = c.create_collection("walked", configuration={"hnsw": {"space": "cosine"}})
    n, dim = 4000, 24
    v = vectors(rng, n, dim)
    for s in range(0, n, 1000):
        col.add(ids=[f"w{i}" for i in range(s, s + 1000)], embeddings=v[s:s + 1000])
    col.delete(ids=["w1", "w2"])
    moved = vectors(rng, 1, dim)
    col.update(ids=["w3"], embeddings=moved)
    v[3] = moved[0]
    del c, col
    chromadb.api.client.SharedSystemClient.clear_system_cache()
    data = tmp_path / "ochre"
    r = run_ochre("import", "--from-chroma", str(src), "--path", str(data))
    assert r.returncode == 0, r.stderr
    assert "HNSW graph adopted" in r.stderr, r.stderr

    keep = [i for i in range(n) if i not in (1, 2)]
    base = v[keep] / np.linalg.norm(v[keep], axis=1, keepdims=True)
    ids = np.array([f"w{i}" for i in keep])
    mine = ochre.PersistentClient(str(data)).get_collection("walked")
    assert mine.count() == n - 2
    queries = vectors(rng, 50, dim)
    hits = 0
    for q in queries:
        got = mine.query(query_embeddings=[q], n_results=10, include=[])["ids"][0]
        want = set(ids[np.argsort(-(base @ (q / np.linalg.norm(q))))[:10]])
        hits += len(want & set(got))
    assert hits / 500 >= 0.95, hits / 500
    # The changed record is found where it is now.
    assert mine.query(query_embeddings=[moved[0]], n_results=1, include=[])["ids"] == [["w3"]]


def test_a_damaged_graph_falls_back_to_building_one(tmp_path):
    """A cut link_lists.bin does not fail the import: the graph is not adopted, Ochre builds its
    own, and every record is there."""
    rng = np.random.default_rng(12)
    src = tmp_path / "chroma"
    c = chromadb.PersistentClient(str(src))
    col = c.create_collection("cut", configuration={"hnsw": {"space": "l2"}})
    v = vectors(rng, 3000, 8)
    for s in range(0, 3000, 1000):
        col.add(ids=[f"x{i}" for i in range(s, s + 1000)], embeddings=v[s:s + 1000])
    del c, col
    chromadb.api.client.SharedSystemClient.clear_system_cache()
    links = next(src.glob("*/link_lists.bin"))
    links.write_bytes(links.read_bytes()[:-7])
    data = tmp_path / "ochre"
    r = run_ochre("import", "--from-chroma", str(src), "--path", str(data))
    assert r.returncode == 0, r.stderr
    assert "cannot be used" in r.stderr and "graph adopted" not in r.stderr, r.stderr
    mine = ochre.PersistentClient(str(data)).get_collection("cut")
    assert mine.count() == 3000
    assert mine.query(query_embeddings=[v[17]], n_results=1, include=[])["ids"] == [["x17"]]
