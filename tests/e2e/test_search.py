"""The Search API through the official `chromadb` Python client against `ochre run`: BM25 with
Chroma's own `chroma_bm25` embedding function (computed client-side from the documents), dense
`$knn`, hybrid RRF, text filters and group_by, checked against brute force computed here, before
and after a restart."""
import math

import chromadb
import numpy as np
from chromadb import Schema, SparseVectorIndexConfig
from chromadb.execution.expression import Key, Knn, Rrf, Search
from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction

DIM = 16
N = 400
WORDS = ("river stone apple cloud engine garden paper silver winter orange "
         "rocket violin market forest candle mirror bridge anchor planet meadow").split()


def corpus(rng):
    docs = [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 12)))) for _ in range(N)]
    emb = rng.standard_normal((N, DIM)).astype(np.float32)
    metas = [{"group": i % 7, "n": i} for i in range(N)]
    return [f"id-{i}" for i in range(N)], docs, emb, metas


def bm25_brute(ef, docs_vecs, query, k):
    """Exact BM25 top-k: IDF over the collection times the documents' stored weights."""
    q = ef.embed_query([query])[0]
    n = len(docs_vecs)
    scores = []
    for i, v in enumerate(docs_vecs):
        d = dict(zip(v.indices, v.values))
        shared = [t for t in q.indices if t in d]
        if not shared:
            continue
        s = 0.0
        for t, w in zip(q.indices, q.values):
            if t in d:
                nt = sum(1 for x in docs_vecs if t in x.indices)
                idf = math.log((n - nt + 0.5) / (nt + 0.5) + 1)
                s += w * idf * d[t]
        scores.append((-s, i))
    scores.sort()
    return [i for _, i in scores[:k]], [-s for s, _ in scores[:k]]


def make(client):
    ef = ChromaBm25EmbeddingFunction()
    schema = Schema().create_index(
        key="bm25", config=SparseVectorIndexConfig(source_key="#document", embedding_function=ef, bm25=True)
    )
    return client.create_collection("hybrid", schema=schema, embedding_function=None), ef


def test_bm25_dense_and_hybrid_search_are_exact_and_survive_a_restart(server):
    rng = np.random.default_rng(7)
    ids, docs, emb, metas = corpus(rng)
    c = chromadb.HttpClient(host="127.0.0.1", port=server.port)
    col, ef = make(c)
    for s in range(0, N, 100):
        col.add(ids=ids[s:s + 100], documents=docs[s:s + 100], embeddings=emb[s:s + 100],
                metadatas=metas[s:s + 100])
    doc_vecs = ef(docs)

    def check():
        col = c.get_collection("hybrid", embedding_function=None)
        # BM25 alone: exactly brute force (ids and order), scores 1 - q.v.
        for query in ("apple river", "winter garden candle", "planet"):
            want, want_scores = bm25_brute(ef, doc_vecs, query, 10)
            r = col.search(Search().rank(Knn(query=query, key="bm25", limit=10)).limit(10).select(Key.SCORE))
            assert r["ids"][0] == [ids[i] for i in want], query
            np.testing.assert_allclose(r["scores"][0], [1 - s for s in want_scores], rtol=1e-5, atol=1e-5)
        # Dense alone, as query() ranks it.
        q = rng.standard_normal(DIM).astype(np.float32)
        r = col.search(Search().rank(Knn(query=q.tolist(), limit=5)).limit(5))
        qr = col.query(query_embeddings=[q], n_results=5)
        assert r["ids"][0] == qr["ids"][0]
        # Hybrid: RRF over dense and BM25 (the client sends -(sum w / (k + rank))).
        rrf = Rrf([Knn(query=q.tolist(), return_rank=True, limit=50),
                   Knn(query="apple river", key="bm25", return_rank=True, limit=50)], k=60)
        r = col.search(Search().rank(rrf).limit(10).select(Key.SCORE, Key.DOCUMENT, "group"))
        dense_rank = {i: n for n, i in enumerate(col.query(query_embeddings=[q], n_results=50)["ids"][0])}
        bm25_ids, _ = bm25_brute(ef, doc_vecs, "apple river", 50)
        bm25_rank = {ids[i]: n for n, i in enumerate(bm25_ids)}
        both = set(dense_rank) & set(bm25_rank)
        fused = sorted(both, key=lambda i: (-(1 / (60 + dense_rank[i]) + 1 / (60 + bm25_rank[i])), ids.index(i)))
        assert r["ids"][0] == fused[:10]
        assert all(set(m) == {"group"} for m in r["metadatas"][0])
        # A text filter with a dense rank, and group_by over the hybrid ranking.
        r = col.search(Search().where(Key.DOCUMENT.contains("silver")).rank(Knn(query=q.tolist(), limit=N)).limit(N))
        assert sorted(r["ids"][0]) == sorted(i for i, d in zip(ids, docs) if "silver" in d)
        r = col.search(Search().rank(rrf).group_by(
            chromadb.execution.expression.GroupBy(keys=["group"], aggregate=chromadb.execution.expression.MinK(
                keys=[Key.SCORE], k=1))).select("group"))
        groups = [m["group"] for m in r["metadatas"][0]]
        assert len(groups) == len(set(groups))
        # Paging without a rank: storage order, as `chroma copy` reads.
        page = col.search(Search().limit(7, offset=3))
        assert page["ids"][0] == ids[3:10]

    check()
    server.stop()
    server.start()
    check()
