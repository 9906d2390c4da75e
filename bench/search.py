"""Search API benchmark: BM25, hybrid RRF and full-text filters through the official client.

Ochre (with a BM25 sparse index whose weights Chroma's own `chroma_bm25` embedding function computes
client-side from the documents) and Chroma 1.5.9 (which has no local Search API: only its
`where_document` path is comparable) are loaded with the same pypi-minilm records (documents = the
package summaries). Measured, p50/p99 over the same queries, one client:

* dense `$knn` top-10 through `/search`, and `query()` top-10 (both servers);
* BM25 top-10 (`$knn` on the sparse key, the query embedded by `chroma_bm25`), checked against an
  exact BM25 computed here (recall must be 1.0);
* hybrid RRF of dense top-50 and BM25 top-50, top-10;
* `get(where_document={"$contains": word}, limit=10)` and `query(..., where_document=...)`
  (both servers), checked against the exact answer.

  bench/search.sh [--scale 100000] [--queries 200] [--no-write]
"""

import argparse
import json
import math
import shutil
import subprocess
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import chroma_vs_ochre as cvo  # noqa: E402

from chromadb import Schema, SparseVectorIndexConfig  # noqa: E402
from chromadb.execution.expression import Key, Knn, Rrf, Search  # noqa: E402
from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction  # noqa: E402

SECTION = "## Search API: BM25, hybrid and full-text filters over HTTP"
WORDS = ("data", "python", "library", "client", "web")


def timed(calls):
    out = []
    for c in calls:
        t = time.perf_counter()
        c()
        out.append(time.perf_counter() - t)
    return out


def bm25_exact(doc_vecs, postings, q, k):
    """Exact BM25 top-k rows by brute force over the postings of the query's terms."""
    n = len(doc_vecs)
    scores = {}
    for t, w in zip(q.indices, q.values):
        plist = postings.get(t, ())
        if not plist:
            continue
        idf = math.log((n - len(plist) + 0.5) / (len(plist) + 0.5) + 1)
        for row, v in plist:
            scores[row] = scores.get(row, 0.0) + w * idf * v
    return [r for r, _ in sorted(scores.items(), key=lambda x: (-x[1], x[0]))[:k]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--dataset", default=os.environ.get("OCHRE_DATASET", os.path.join(cvo.ROOT, "..", "shared", "datasets", "pypi-minilm")))
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (data of both servers)")
    args = ap.parse_args()
    n = args.scale
    recs, tsv = cvo.load_records(os.path.join(args.dataset, "records.tsv.gz"), n)
    base = cvo.load_f16(os.path.join(args.dataset, "base.f16"), n)
    queries = cvo.load_f16(os.path.join(args.dataset, "queries.f16"), args.queries)
    ids = [f"r{i}" for i in range(n)]
    docs = [r["summary"] for r in recs]
    metas = [{"year": int(r["year"]), "bucket": int(r["bucket"])} for r in recs]
    # Query texts: other packages' summaries (the records after the base rows).
    qrecs, _ = cvo.load_records(os.path.join(args.dataset, "records.tsv.gz"), n + args.queries)
    qtexts = [r["summary"] for r in qrecs[n:]]
    ef = ChromaBm25EmbeddingFunction()
    t = time.perf_counter()
    doc_vecs = ef(docs)
    cvo.log(f"chroma_bm25 over {n:,} documents: {time.perf_counter() - t:.1f} s")
    postings = {}
    for row, v in enumerate(doc_vecs):
        for t_, w in zip(v.indices, v.values):
            postings.setdefault(t_, []).append((row, w))
    qvecs = ef.embed_query(qtexts)

    work = tempfile.mkdtemp(prefix="ochre-search-bench-")
    res = {}
    if os.environ.get("OCHRE_SEARCH_BIN"):
        # The same workload through the Rust API first, before the servers load the machine.
        spec = os.path.join(work, "workload.json")
        for name, vecs in (("docs.jsonl", doc_vecs), ("queries.jsonl", qvecs)):
            with open(os.path.join(work, name), "w") as f:
                for v in vecs:
                    f.write(json.dumps({"indices": [int(i) for i in v.indices], "values": [float(x) for x in v.values]}) + "\n")
        with open(os.path.join(work, "records.tsv"), "w", encoding="utf-8") as f:
            f.write(tsv)
        with open(spec, "w") as f:
            json.dump({"dataset": args.dataset, "n": n, "queries": args.queries, "words": list(WORDS),
                       "records_tsv": os.path.join(work, "records.tsv"),
                       "doc_vectors": os.path.join(work, "docs.jsonl"), "query_vectors": os.path.join(work, "queries.jsonl"),
                       "data_dir": os.path.join(work, "embedded-data")}, f)
        out = subprocess.run([os.environ["OCHRE_SEARCH_BIN"], spec], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"search_api failed: {out.stderr[-2000:]}")
        res["embedded"] = json.loads(out.stdout)
        cvo.log("embedded: done")
    chroma = [sys.executable, "-c", cvo.CHROMA_CLI]
    servers = {}
    for name, exe in (("Chroma", chroma), ("Ochre", [os.environ["OCHRE_BIN"]])):
        data_dir, port = os.path.join(work, f"{name.lower()}-data"), cvo.free_port()
        argv = exe + ["run", "--path", data_dir, "--host", "127.0.0.1", "--port", str(port)]
        s = cvo.Server(name, argv, data_dir, port, work, start_timeout=300)
        s.start()
        servers[name] = s
    for s in servers.values():
        s.wait_heartbeat()
    try:
        for name, s in servers.items():
            c = s.client()
            if name == "Ochre":
                schema = Schema().create_index(
                    key="bm25", config=SparseVectorIndexConfig(source_key="#document", embedding_function=ef, bm25=True))
                col = c.create_collection("search", schema=schema, embedding_function=None)
            else:
                # The default space (l2) on both: the vectors are unit length, so it ranks as cosine.
                col = c.create_collection("search", embedding_function=None)
            t = time.perf_counter()
            for i in range(0, n, args.batch):
                extra = {}
                if name == "Ochre":
                    # The client would compute these from the documents; precomputed once for both
                    # the ingest and the exact reference.
                    extra_m = [dict(m, bm25=v) for m, v in zip(metas[i:i + args.batch], doc_vecs[i:i + args.batch])]
                    extra = {"metadatas": extra_m}
                col.add(ids=ids[i:i + args.batch], embeddings=base[i:i + args.batch], documents=docs[i:i + args.batch],
                        **({"metadatas": metas[i:i + args.batch]} | extra))
            r = {"ingest s": time.perf_counter() - t}
            qs = [q.tolist() for q in queries]
            r["query"] = timed([lambda q=q: col.query(query_embeddings=[q], n_results=10, include=[]) for q in qs])
            word_lat, word_ok = [], True
            for w in WORDS:
                truth = [ids[i] for i, d in enumerate(docs) if w in d][:10]
                got = col.get(where_document={"$contains": w}, limit=10, include=[])["ids"]
                word_ok &= got == truth
                word_lat += timed([lambda w=w: col.get(where_document={"$contains": w}, limit=10, include=[])] * (args.queries // len(WORDS)))
            r["contains get"] = word_lat
            r["contains get exact"] = word_ok
            r["contains query"] = timed([lambda q=q: col.query(query_embeddings=[q], n_results=10, where_document={"$contains": "data"}, include=[]) for q in qs])
            if name == "Ochre":
                r["dense search"] = timed([lambda q=q: col.search(Search().rank(Knn(query=q, limit=10)).limit(10)) for q in qs])
                hits, total = 0, 0
                lat = []
                for qv in qvecs:
                    s_ = Search().rank(Knn(query=qv, key="bm25", limit=10)).limit(10)
                    t0 = time.perf_counter()
                    got = col.search(s_)["ids"][0]
                    lat.append(time.perf_counter() - t0)
                    want = [ids[i] for i in bm25_exact(doc_vecs, postings, qv, 10)]
                    hits += len(set(got) & set(want))
                    total += len(want)
                r["bm25"] = lat
                r["bm25 recall"] = hits / max(total, 1)
                r["hybrid"] = timed([
                    lambda q=q, qv=qv: col.search(Search().rank(Rrf([Knn(query=q, limit=50, return_rank=True),
                                                                    Knn(query=qv, key="bm25", limit=50, return_rank=True)])).limit(10).select(Key.SCORE))
                    for q, qv in zip(qs, qvecs)])
            res[name] = r
            cvo.log(f"{name}: done")
    finally:
        for s in servers.values():
            s.stop()
            s.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    def p(x, q):
        return cvo.pct(x, q)

    o, ch = res["Ochre"], res["Chroma"]
    e = res.get("embedded")

    def emb(key):
        return f"{p(e[key], 50):.3f}" if e else "—"

    rows = [
        ("ingest (s)", f"{ch['ingest s']:.1f}", f"{o['ingest s']:.1f} (with the BM25 index)", f"{o['ingest s'] / ch['ingest s']:.2f}x"),
        ("Rust API: ingest (s) / dense search / BM25 / RRF / get `$contains` p50 (ms)", "", f"{e['ingest']:.1f} / {emb('dense search')} / {emb('bm25')} / {emb('hybrid')} / {emb('contains get')}" if e else "—", ""),
        ("query() top-10 p50 / p99 (ms)", f"{p(ch['query'], 50):.2f} / {p(ch['query'], 99):.2f}", f"{p(o['query'], 50):.2f} / {p(o['query'], 99):.2f}", f"{p(o['query'], 50) / p(ch['query'], 50):.2f}x"),
        ("get `$contains` limit 10 p50 / p99 (ms)", f"{p(ch['contains get'], 50):.2f} / {p(ch['contains get'], 99):.2f}", f"{p(o['contains get'], 50):.2f} / {p(o['contains get'], 99):.2f}", f"{p(o['contains get'], 50) / p(ch['contains get'], 50):.2f}x"),
        ("get `$contains` exact", str(ch["contains get exact"]), str(o["contains get exact"]), ""),
        ("query() + `$contains \"data\"` p50 (ms)", f"{p(ch['contains query'], 50):.2f}", f"{p(o['contains query'], 50):.2f}", f"{p(o['contains query'], 50) / p(ch['contains query'], 50):.2f}x"),
        ("search dense top-10 p50 (ms)", "501", f"{p(o['dense search'], 50):.2f}", ""),
        ("search BM25 top-10 p50 / p99 (ms)", "501", f"{p(o['bm25'], 50):.2f} / {p(o['bm25'], 99):.2f}", ""),
        ("BM25 recall@10 vs exact", "", f"{o['bm25 recall']:.4f}", ""),
        ("search RRF(dense 50, BM25 50) top-10 p50 (ms)", "501", f"{p(o['hybrid'], 50):.2f}", f"{p(o['hybrid'], 50) / p(o['dense search'], 50):.2f}x dense search"),
    ]
    table = "| measure | Chroma 1.5.9 | Ochre | ratio |\n|---|---|---|---|\n" + "\n".join(
        f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    head = (f"`bench/search.sh --scale {n}` ({cvo.git_rev()}, {cvo.machine()}): pypi-minilm {n:,} records, "
            f"{args.queries} queries, one client, Chroma 1.5.9 and Ochre in the same run.\n\n")
    print(head + table)
    if not args.no_write:
        path = os.path.join(cvo.ROOT, "docs", "benchmarks.md")
        with open(path, encoding="utf-8") as f:
            doc = f.read()
        if SECTION not in doc:
            doc = doc.rstrip("\n") + "\n\n" + SECTION + "\n"
        start = doc.index(SECTION) + len(SECTION)
        nxt = doc.find("\n## ", start)
        end = len(doc) if nxt < 0 else nxt + 1
        doc = doc[:end].rstrip("\n") + "\n\n" + head + table + "\n" + ("\n" + doc[end:] if end < len(doc) else "")
        with open(path, "w", encoding="utf-8") as f:
            f.write(doc)


if __name__ == "__main__":
    main()
