#!/usr/bin/env python3
"""Soak benchmark, "the life of a real collection": Chroma 1.5.9 (`chroma run`) and Ochre
(`ochre run`) side by side in one run, driven through the official `chromadb.HttpClient`.

Run it through `bench/soak.sh` (creates the venv, builds Ochre unless OCHRE_BIN is set), e.g.

    bench/soak.sh --records 2000 --rounds 2 --queries 50 --settle 5   # smoke, a few minutes
    bench/soak.sh                                                     # 20,000 records, 5 rounds
    bench/soak.sh --only ochre                                        # one side, to iterate

One collection (cosine space) goes through what a real one lives through, each phase on both
servers in turn (Chroma then Ochre):

1. ingest: `add` in batches of `--batch`, with ~`--doc-bytes` documents (the record's summary
   repeated to that length) and metadata {bucket, year, rank, letter, round: 0};
2. `--rounds` rounds of a metadata-only `update` of every record (`round` = r, in batches);
3. one `upsert` round giving `--upsert-fraction` of the records the vectors of rows of the data
   set outside the collection (full records: vector, document, metadata);
4. `delete` of every record, in batches; then `--settle` seconds of idle;
5. a restart (SIGTERM, wait, spawn, heartbeat).

After ingest, after every update round and after the upsert each server is sampled: RSS of its
process tree, apparent size of its data directory, and `--queries` queries (one embedding each,
n_results 10, the client's default `include`) for p50/p99 latency and recall@10 against an
exact cosine top-10 over the vectors the collection holds at that point (numpy). After
delete-all (at once and settled) and after the restart RSS and disk are sampled again. Peak RSS
is the 50 ms sampler of `chroma_vs_ochre.Server` over the whole run, restart included.

The Markdown table is printed; `--write` appends it to docs/benchmarks.md as a section of its
own ("## Soak: updates, deletes, restarts (DATE, Ochre REV)").
"""
import argparse
import datetime
import os
import shutil
import sys
import textwrap
import time

import numpy as np
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Sets the telemetry switches before chromadb loads, registers the cleanup of every Server at
# exit and turns SIGTERM / SIGHUP into an exit (so the cleanup runs for them too).
import chroma_vs_ochre as cvo  # noqa: E402

import chromadb  # noqa: E402

log = cvo.log
K = cvo.K
ROOT = cvo.ROOT
SIDES = ("Chroma", "Ochre")
# The targets of the soak issue, checked on Ochre's figures.
RSS_GROWTH_TARGET = 1.3  # RSS after the last update round / RSS after ingest
RECALL_DRIFT_TARGET = 0.005  # |recall after the rounds - recall fresh|
DISK_LEFT_TARGET = 0.3  # data dir after delete-all (settled) / data dir after ingest


# ---------------------------------------------------------------------------------------------
# Data


def padded_doc(rec, nbytes):
    """The record's summary (its name when the summary is empty) repeated and cut to `nbytes`
    of UTF-8, deterministic, never cutting a character in two."""
    text = (rec["summary"] or rec["name"]).strip() or rec["name"]
    unit = (text + " ").encode("utf-8")
    raw = unit * (nbytes // len(unit) + 1)
    return raw[:nbytes].decode("utf-8", errors="ignore").rstrip()


class Workload:
    """The records, queries and upsert plan of one run; exact answers on demand."""

    def __init__(self, args):
        n, ds = args.records, args.dataset
        for f in ("base.f16", "queries.f16", "records.tsv.gz"):
            if not os.path.exists(os.path.join(ds, f)):
                raise SystemExit(f"{os.path.join(ds, f)} is missing (data set: --dataset or OCHRE_DATASET)")
        available = os.path.getsize(os.path.join(ds, "base.f16")) // (2 * cvo.DIM)
        if n > available:
            raise SystemExit(f"--records {n}: the data set has {available} rows")
        self.n = n
        self.m = int(round(n * args.upsert_fraction))
        # Upsert: m records chosen at random get the vectors of rows n.. (outside the collection,
        # so no record ends up with another one's vector); rows chosen among the others when the
        # data set has too few beyond n.
        rng = np.random.default_rng(11)
        self.upsert_rows = np.sort(rng.choice(n, self.m, replace=False))
        if n + self.m <= available:
            self.upsert_src = np.arange(n, n + self.m)
        else:
            others = np.setdiff1d(np.arange(n), self.upsert_rows)
            self.upsert_src = rng.choice(others, self.m, replace=False)
        log(f"loading {n} records from {ds}")
        all_rows = cvo.load_f16(os.path.join(ds, "base.f16"), max(n, int(self.upsert_src.max(initial=0)) + 1))
        self.base = all_rows[:n].copy()
        self.upsert_vecs = all_rows[self.upsert_src].copy()
        self.queries = cvo.load_f16(os.path.join(ds, "queries.f16"), 1000)[: args.queries]
        recs, _ = cvo.load_records(os.path.join(ds, "records.tsv.gz"), n)
        self.ids = [r["row"] for r in recs]
        if self.ids != [str(i) for i in range(n)]:
            raise SystemExit("records.tsv.gz: rows are not 0..N-1 in order")
        self.docs = [padded_doc(r, args.doc_bytes) for r in recs]
        self.doc_bytes = sum(len(d.encode("utf-8")) for d in self.docs) / n
        self.metas = [
            {"bucket": int(r["bucket"]), "year": int(r["year"]), "rank": int(r["rank"]),
             "letter": r["letter"], "round": 0}
            for r in recs
        ]
        # The vectors after the upsert, and the exact answers before and after it.
        self.after_upsert = self.base.copy()
        self.after_upsert[self.upsert_rows] = self.upsert_vecs
        self.truth_fresh = exact_cosine_top_k(self.base, self.queries)
        self.truth_upsert = exact_cosine_top_k(self.after_upsert, self.queries)


def exact_cosine_top_k(vectors, queries):
    """Exact top-10 rows by cosine similarity (the collection's space), per query."""
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    return cvo.exact_top_k(v, q, np.arange(len(v)))


# ---------------------------------------------------------------------------------------------
# Measurements


def rss_now(server):
    """Resident set size of the server process and its children, now (bytes)."""
    server.check_alive()
    p = psutil.Process(server.proc.pid)
    rss = p.memory_info().rss
    for c in p.children(recursive=True):
        try:
            rss += c.memory_info().rss
        except psutil.Error:
            pass
    return rss


def batches(n, size):
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def run_queries(col, queries, truth, warmup=5):
    """Sequential queries, one client; latencies (s) and recall@10 against `truth`."""
    for q in queries[:warmup]:
        col.query(query_embeddings=[q], n_results=K)
    latencies, found = [], []
    for q in queries:
        t = time.perf_counter()
        res = col.query(query_embeddings=[q], n_results=K)
        latencies.append(time.perf_counter() - t)
        found.append([int(i) for i in res["ids"][0]])
    return {"p50": cvo.pct(latencies, 50), "p99": cvo.pct(latencies, 99), "recall": cvo.recall(found, truth)}


def sample(server, col, queries=None, truth=None):
    """RSS and data-dir size now, and (with queries) latency and recall."""
    out = {"rss": rss_now(server), "disk": cvo.dir_size(server.data_dir)}
    if queries is not None:
        out.update(run_queries(col, queries, truth))
    return out


def wait_visible(server, col, rec_id, vec, what, timeout=900):
    """Until a query with `vec` finds `rec_id` (a write's effect reached the index); seconds."""
    t0 = time.perf_counter()
    deadline = time.time() + timeout
    while True:
        res = col.query(query_embeddings=[vec], n_results=K, include=[])
        if rec_id in res["ids"][0]:
            return time.perf_counter() - t0
        if time.time() > deadline:
            raise RuntimeError(f"{server.name}: {what} not visible {timeout} s after the last write")
        server.check_alive()
        time.sleep(0.02)


def check_metadata(server, col, w, ids, round_of):
    """The records `ids` carry their original metadata with `round` = round_of(row)."""
    got = col.get(ids=ids, include=["metadatas"])
    by_id = dict(zip(got["ids"], got["metadatas"]))
    for i in ids:
        want = dict(w.metas[int(i)], round=round_of(int(i)))
        if by_id.get(i) != want:
            raise RuntimeError(f"{server.name}: record {i} has metadata {by_id.get(i)}, expected {want}")


# ---------------------------------------------------------------------------------------------
# The run


def soak(args, w, servers):
    """Every phase on every server in turn; returns {server name: {figure: value}}."""
    res = {s.name: {} for s in servers}
    cols = {}
    check_ids = [str(i) for i in np.random.default_rng(5).choice(w.n, min(100, w.n), replace=False)]

    # 1. Ingest (chroma_vs_ochre.ingest creates the cosine collection and waits until the last
    # record is visible to queries).
    for s in servers:
        log(f"{s.name}: ingest {w.n} records in batches of {args.batch}")
        r = cvo.ingest(s, w.ids, w.base, w.docs, w.metas, args.batch)
        cols[s.name] = s.handle().col
        res[s.name]["ingest_rps"] = r["records_per_s"]
        res[s.name]["ingest_visible_s"] = r["visible_s"]
        res[s.name]["after_ingest"] = sample(s, cols[s.name], w.queries, w.truth_fresh)
        log(f"{s.name}: {r['records_per_s']:.0f} records/s; {describe(res[s.name]['after_ingest'])}")

    # 2. Metadata-only update rounds.
    for r in range(1, args.rounds + 1):
        for s in servers:
            col = cols[s.name]
            t0 = time.perf_counter()
            for i, j in batches(w.n, args.batch):
                col.update(ids=w.ids[i:j], metadatas=[{"round": r}] * (j - i))
            secs = time.perf_counter() - t0
            check_metadata(s, col, w, check_ids, lambda _row, r=r: r)
            res[s.name].setdefault("update_s", []).append(secs)
            res[s.name][f"after_round{r}"] = sample(s, col, w.queries, w.truth_fresh)
            log(f"{s.name}: update round {r}: {w.n / secs:.0f} records/s; {describe(res[s.name][f'after_round{r}'])}")

    # 3. Upsert: new vectors for a fraction of the records, then recall against the new truth.
    final_round = args.rounds
    upsert_ids = [str(i) for i in w.upsert_rows]
    upserted = set(int(i) for i in w.upsert_rows)
    for s in servers:
        col = cols[s.name]
        t0 = time.perf_counter()
        for i, j in batches(w.m, args.batch):
            rows = w.upsert_rows[i:j]
            col.upsert(
                ids=upsert_ids[i:j], embeddings=w.upsert_vecs[i:j],
                documents=[w.docs[k] for k in rows],
                metadatas=[dict(w.metas[k], round=final_round + 1) for k in rows],
            )
        secs = time.perf_counter() - t0
        res[s.name]["upsert_rps"] = w.m / secs if secs > 0 else None
        if w.m:
            res[s.name]["upsert_visible_s"] = wait_visible(s, col, upsert_ids[-1], w.upsert_vecs[-1], "the upsert")
        check_metadata(s, col, w, sorted(set(check_ids + upsert_ids[:20])),
                       lambda row: final_round + 1 if row in upserted else final_round)
        if col.count() != w.n:
            raise RuntimeError(f"{s.name}: count {col.count()} after the upsert, {w.n} expected")
        res[s.name]["after_upsert"] = sample(s, col, w.queries, w.truth_upsert)
        log(f"{s.name}: upsert of {w.m} records: {w.m / secs:.0f} records/s; {describe(res[s.name]['after_upsert'])}")

    # 4. Delete every record; sample at once, then again after the servers sat idle.
    for s in servers:
        col = cols[s.name]
        t0 = time.perf_counter()
        for i, j in batches(w.n, args.batch):
            col.delete(ids=w.ids[i:j])
        secs = time.perf_counter() - t0
        res[s.name]["delete_rps"] = w.n / secs
        left = col.count()
        if left != 0:
            raise RuntimeError(f"{s.name}: count {left} after deleting every record")
        res[s.name]["after_delete"] = sample(s, col)
        log(f"{s.name}: deleted {w.n} records: {w.n / secs:.0f} records/s; {describe(res[s.name]['after_delete'])}")
    log(f"idle for {args.settle:.0f} s")
    time.sleep(args.settle)
    for s in servers:
        res[s.name]["settled"] = sample(s, cols[s.name])
        log(f"{s.name}: settled: {describe(res[s.name]['settled'])}")

    # 5. Restart; the collection must still be there, empty.
    for s in servers:
        res[s.name]["stop_s"] = s.stop()
        s.start()
        s.wait_heartbeat()
        col = s.handle().col
        if col.count() != 0:
            raise RuntimeError(f"{s.name}: count {col.count()} after the restart, 0 expected")
        res[s.name]["after_restart"] = sample(s, col)
        log(f"{s.name}: restarted: {describe(res[s.name]['after_restart'])}")

    for s in servers:
        s.close()
        res[s.name]["peak_rss"] = s.peak_rss
        res[s.name]["log_problems"] = log_problems(s)
    return res


def describe(smp):
    text = f"RSS {smp['rss'] / 2**20:.1f} MiB, disk {smp['disk'] / 2**20:.1f} MiB"
    if "recall" in smp:
        text += f", recall@10 {smp['recall']:.4f}, p50 {smp['p50']:.2f} ms, p99 {smp['p99']:.2f} ms"
    return text


def log_problems(server):
    """Lines of the server's log that look like errors or warnings (to mention in the notes)."""
    try:
        with open(server.log_path, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    keys = ("error", "panic", "warn", "traceback", "exception")
    return [line for line in lines if any(k in line.lower() for k in keys)]


# ---------------------------------------------------------------------------------------------
# Report


def report(args, w, res, rev):
    """The Markdown text: header lines, the table, the targets, notes."""
    R = args.rounds

    def get(name, f):
        if name not in res:
            return None
        try:
            return f(res[name])
        except (KeyError, TypeError, ZeroDivisionError):
            return None

    def row(label, unit, better, f):
        return (label, unit, better, get("Chroma", f), get("Ochre", f))

    def mean_update_rps(x):
        return w.n * len(x["update_s"]) / sum(x["update_s"])

    rows = [
        row(f"ingest, records/s (batches of {args.batch:,})", "n", "higher", lambda x: x["ingest_rps"]),
        row("metadata update, records/s (mean of the rounds)", "n", "higher", mean_update_rps),
        row(f"upsert with new vectors, records/s ({w.m:,} records)", "n", "higher", lambda x: x["upsert_rps"]),
        row("delete, records/s", "n", "higher", lambda x: x["delete_rps"]),
        row("RSS after ingest, MiB", "MiB", "lower", lambda x: x["after_ingest"]["rss"]),
    ]
    rows += [row(f"RSS after update round {r}, MiB", "MiB", "lower", lambda x, r=r: x[f"after_round{r}"]["rss"])
             for r in range(1, R + 1)]
    rows += [
        row("RSS after upsert, MiB", "MiB", "lower", lambda x: x["after_upsert"]["rss"]),
        row("RSS after delete-all, MiB", "MiB", "lower", lambda x: x["after_delete"]["rss"]),
        row(f"RSS after delete-all + {args.settle:.0f} s, MiB", "MiB", "lower", lambda x: x["settled"]["rss"]),
        row("RSS after restart, MiB", "MiB", "lower", lambda x: x["after_restart"]["rss"]),
        row("peak RSS (whole run), MiB", "MiB", "lower", lambda x: x["peak_rss"]),
        row("data dir after ingest, MiB", "MiB", "lower", lambda x: x["after_ingest"]["disk"]),
    ]
    rows += [row(f"data dir after update round {r}, MiB", "MiB", "lower", lambda x, r=r: x[f"after_round{r}"]["disk"])
             for r in range(1, R + 1)]
    rows += [
        row("data dir after upsert, MiB", "MiB", "lower", lambda x: x["after_upsert"]["disk"]),
        row("data dir after delete-all, MiB", "MiB", "lower", lambda x: x["after_delete"]["disk"]),
        row(f"data dir after delete-all + {args.settle:.0f} s, MiB", "MiB", "lower", lambda x: x["settled"]["disk"]),
        row("data dir after restart, MiB", "MiB", "lower", lambda x: x["after_restart"]["disk"]),
        row("recall@10 fresh (after ingest)", "recall", "higher", lambda x: x["after_ingest"]["recall"]),
    ]
    rows += [row(f"recall@10 after update round {r}", "recall", "higher", lambda x, r=r: x[f"after_round{r}"]["recall"])
             for r in range(1, R + 1)]
    rows += [
        row(f"recall@10 after upsert ({args.upsert_fraction:.0%} new vectors)", "recall", "higher",
            lambda x: x["after_upsert"]["recall"]),
        row("query p50 after ingest, ms", "ms", "lower", lambda x: x["after_ingest"]["p50"]),
        row("query p99 after ingest, ms", "ms", "lower", lambda x: x["after_ingest"]["p99"]),
        row(f"query p50 after round {R}, ms", "ms", "lower", lambda x: x[f"after_round{R}"]["p50"]),
        row(f"query p99 after round {R}, ms", "ms", "lower", lambda x: x[f"after_round{R}"]["p99"]),
        row("query p50 after upsert, ms", "ms", "lower", lambda x: x["after_upsert"]["p50"]),
        row("query p99 after upsert, ms", "ms", "lower", lambda x: x["after_upsert"]["p99"]),
        row("last upsert → visible to queries, s", "s", "lower", lambda x: x["upsert_visible_s"]),
    ]
    text_table = table(rows)

    targets = target_table(args, res)
    notes = [
        f"Documents average {w.doc_bytes:,.0f} bytes (summary repeated to `--doc-bytes {args.doc_bytes}`); "
        "the data dir is the apparent size of all its files.",
        "Queries: one client, one embedding per request, n_results 10, the client's default `include` "
        "(documents, metadatas, distances); recall@10 against an exact cosine top-10 over the vectors "
        "the collection holds at that point.",
        "Shutdown on SIGTERM before the restart: "
        + ", ".join(f"{n} {res[n]['stop_s']:.2f} s" for n in SIDES if n in res) + ".",
    ]
    for n in SIDES:
        if n in res and res[n]["log_problems"]:
            probs = res[n]["log_problems"]
            notes.append(f"{n}'s log has {len(probs)} line(s) mentioning errors or warnings, e.g. "
                         f"`{probs[0].strip()[:160]}`.")
    bullet = dict(width=100, initial_indent="* ", subsequent_indent="  ", break_on_hyphens=False)
    command = os.environ.get("OCHRE_BENCH_COMMAND") or " ".join(["python", "bench/soak.py"] + sys.argv[1:])
    # rev: "abc1234", or "abc1234 with uncommitted changes to ..." (shown in full in Versions).
    short = rev.split()[0] + ("+" if " " in rev else "")
    return "\n".join([
        f"## Soak: updates, deletes, restarts ({datetime.date.today().isoformat()}, Ochre {short})",
        "",
        f"* **Command:** `{command}`",
        textwrap.fill(f"**Data:** the first {w.n:,} rows of pypi-minilm (384-d, cosine), documents of "
                      f"~{args.doc_bytes:,} bytes, metadata bucket, year, rank, letter, round; {len(w.queries):,} "
                      f"queries per sample; {R} metadata-only update round{'s' if R != 1 else ''} of every record, an upsert of "
                      f"{w.m:,} records ({args.upsert_fraction:.0%}) with vectors of rows outside the collection, "
                      f"delete of every record, {args.settle:.0f} s idle, restart; batches of {args.batch:,}.",
                      **bullet),
        f"* **Machine:** {cvo.machine()}",
        textwrap.fill(f"**Versions:** chromadb {chromadb.__version__} (`chroma run`), Ochre {rev}", **bullet),
        "",
        text_table,
        "",
        "Targets (Ochre):",
        "",
        targets,
        "",
        *[textwrap.fill(x, **bullet) for x in notes],
    ])


def table(rows):
    out = ["| metric | Chroma | Ochre | Ochre / Chroma | better |", "|---|---|---|---|---|"]
    for name, unit, better, c, o in rows:
        ratio = f"{o / c:.2f}×" if c is not None and o is not None and c > 0 else "–"
        out.append("| " + " | ".join([name, cvo.fmt(c, unit), cvo.fmt(o, unit), ratio, better]) + " |")
    return "\n".join(out)


def target_table(args, res):
    """The issue's derived targets: Ochre's figure against the target, Chroma's for reference."""
    R = args.rounds

    def derived(x):
        return {
            "rss": x[f"after_round{R}"]["rss"] / x["after_ingest"]["rss"],
            "recall": abs(x[f"after_round{R}"]["recall"] - x["after_ingest"]["recall"]),
            "disk": x["settled"]["disk"] / x["after_ingest"]["disk"],
            "disk_now": x["after_delete"]["disk"] / x["after_ingest"]["disk"],
            "disk_restart": x["after_restart"]["disk"] / x["after_ingest"]["disk"],
        }

    d = {n: derived(res[n]) for n in SIDES if n in res}
    specs = [
        (f"RSS after round {R} / RSS after ingest", "rss", RSS_GROWTH_TARGET, f"≤ {RSS_GROWTH_TARGET}", "{:.2f}"),
        (f"\\|recall after round {R} − recall fresh\\|", "recall", RECALL_DRIFT_TARGET, f"≤ {RECALL_DRIFT_TARGET}", "{:.4f}"),
        (f"data dir after delete-all + {args.settle:.0f} s / after ingest", "disk", DISK_LEFT_TARGET,
         f"≤ {DISK_LEFT_TARGET}", "{:.2f}"),
        ("data dir right after delete-all / after ingest", "disk_now", None, "", "{:.2f}"),
        ("data dir after restart / after ingest", "disk_restart", None, "", "{:.2f}"),
    ]
    out = ["| target | Ochre | Chroma (reference) | target | met |", "|---|---|---|---|---|"]
    for label, key, limit, shown, f in specs:
        o = d["Ochre"][key] if "Ochre" in d else None
        c = d["Chroma"][key] if "Chroma" in d else None
        met = "–" if limit is None or o is None else ("yes" if o <= limit else "**no**")
        out.append("| " + " | ".join([label, "–" if o is None else f.format(o), "–" if c is None else f.format(c),
                                      shown or "–", met]) + " |")
    return "\n".join(out)


def append_section(path, text):
    """Appends the run as a section of its own at the end of the file."""
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc.rstrip("\n") + "\n\n" + text.strip("\n") + "\n")


# ---------------------------------------------------------------------------------------------


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_ds = os.environ.get("OCHRE_DATASET", os.path.join(ROOT, "..", "shared", "datasets", "pypi-minilm"))
    ap.add_argument("--records", type=int, default=20_000, help="records (the first N rows of the data set)")
    ap.add_argument("--doc-bytes", type=int, default=2048, help="document length: the summary repeated to this many bytes")
    ap.add_argument("--batch", type=int, default=500, help="records per add / update / upsert / delete")
    ap.add_argument("--rounds", type=int, default=5, help="metadata-only update rounds of every record")
    ap.add_argument("--queries", type=int, default=200, help="queries per sample (at most 1000)")
    ap.add_argument("--upsert-fraction", type=float, default=0.1, help="share of the records upserted with new vectors")
    ap.add_argument("--settle", type=float, default=60, help="idle seconds after delete-all before sampling again")
    ap.add_argument("--only", choices=("ochre", "chroma"), help="run one side only")
    ap.add_argument("--write", action="store_true", help="append the section to docs/benchmarks.md (default: print only)")
    ap.add_argument("--dataset", default=default_ds, help="default ../shared/datasets/pypi-minilm or $OCHRE_DATASET")
    ap.add_argument("--ochre-bin", default=os.environ.get("OCHRE_BIN", os.path.join(ROOT, "target", "release", "ochre")))
    ap.add_argument("--chroma", default=None,
                    help="a `chroma` CLI to run (default: chromadb's CLI in this Python, as its `chroma` script does)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (data, logs)")
    ap.add_argument("--timeout", type=float, default=3 * 3600, help="abort the whole run after this many seconds")
    args = ap.parse_args()
    args.dataset = os.path.abspath(args.dataset)
    if args.rounds < 1 or args.records < 1 or not 0 < args.queries <= 1000 or not 0 <= args.upsert_fraction <= 1:
        ap.error("need --rounds ≥ 1, --records ≥ 1, 1 ≤ --queries ≤ 1000, 0 ≤ --upsert-fraction ≤ 1")
    return args


def main():
    args = parse_args()
    sides = [n for n in SIDES if args.only in (None, n.lower())]
    work, mark_finished = cvo.start_run(args, "ochre-soak-", need_ochre="Ochre" in sides)
    # The tree's revision when the binary is copied (the other side may commit during the run).
    rev = cvo.git_rev()
    w = Workload(args)
    exes = {"Chroma": [args.chroma] if args.chroma else [sys.executable, "-c", cvo.CHROMA_CLI]}
    if "Ochre" in sides:
        # A copy: a rebuild elsewhere during the run must not swap the binary under the restart.
        exes["Ochre"] = [shutil.copy2(args.ochre_bin, os.path.join(work, "ochre"))]
    servers = []
    for name in sides:
        data_dir, port = os.path.join(work, f"{name.lower()}-data"), cvo.free_port()
        argv = exes[name] + ["run", "--path", data_dir, "--host", "127.0.0.1", "--port", str(port)]
        servers.append(cvo.Server(name, argv, data_dir, port, work, start_timeout=300))
    for s in servers:
        s.start()
    for s in servers:
        s.wait_heartbeat()
        log(f"{s.name} up on port {s.port}")

    res = soak(args, w, servers)
    text = report(args, w, res, rev)
    print(text)
    if args.write:
        append_section(os.path.join(ROOT, "docs", "benchmarks.md"), text)
        log("appended to docs/benchmarks.md")
    mark_finished()


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError, psutil.Error) as e:
        log(f"error: {e}")
        sys.exit(1)
    except Exception as e:  # a client error (chromadb raises its own types): same exit, same kept dir
        log(f"error: {type(e).__name__}: {e}")
        sys.exit(1)
