"""A typical RAG flow through the official `chromadb` Python HttpClient against `ochre run`."""
import chromadb
import numpy as np
import pytest
from chromadb.errors import NotFoundError

DIM = 32
N = 1000


def client(server):
    return chromadb.HttpClient(host="127.0.0.1", port=server.port)


def records(rng):
    emb = rng.standard_normal((N, DIM)).astype(np.float32)
    ids = [f"doc-{i}" for i in range(N)]
    docs = [f"document {i} about {'cats' if i % 3 == 0 else 'dogs'}" for i in range(N)]
    metas = [
        {"year": 2000 + i % 25, "letter": "abcdefghij"[i % 10], "bucket": i % 100, "tags": ["t", f"g{i % 4}"]}
        for i in range(N)
    ]
    return ids, emb, docs, metas


def test_rag_flow_survives_restart(server):
    rng = np.random.default_rng(42)
    ids, emb, docs, metas = records(rng)
    c = client(server)
    col = c.create_collection("rag", metadata={"purpose": "e2e"}, embedding_function=None)
    for s in range(0, N, 250):
        col.add(ids=ids[s:s + 250], embeddings=emb[s:s + 250], documents=docs[s:s + 250], metadatas=metas[s:s + 250])
    assert col.count() == N

    # Filtered query: exact top-5 among bucket < 10, ascending squared L2 distances.
    q = rng.standard_normal((2, DIM)).astype(np.float32)
    res = col.query(query_embeddings=q, n_results=5, where={"bucket": {"$lt": 10}},
                    include=["metadatas", "distances", "documents"])
    allowed = np.array([m["bucket"] < 10 for m in metas])
    for qi in range(2):
        assert all(m["bucket"] < 10 for m in res["metadatas"][qi])
        d = ((emb[allowed] - q[qi]) ** 2).sum(axis=1)
        order = np.argsort(d)[:5]
        want_ids = [np.array(ids)[allowed][j] for j in order]
        assert res["ids"][qi] == want_ids
        assert np.allclose(res["distances"][qi], d[order], rtol=1e-4)
        assert res["distances"][qi] == sorted(res["distances"][qi])

    # Document filter.
    got = col.get(where_document={"$contains": "cats"}, include=["documents"])
    assert len(got["ids"]) == len([d for d in docs if "cats" in d])
    assert all("cats" in d for d in got["documents"])

    # Array metadata membership and logical operators.
    got = col.get(where={"$and": [{"tags": {"$contains": "g1"}}, {"letter": {"$in": ["b", "f"]}}]})
    assert sorted(got["ids"]) == sorted(i for i, m in zip(ids, metas) if "g1" in m["tags"] and m["letter"] in ("b", "f"))

    # Update and upsert.
    col.update(ids=["doc-1", "doc-2"], embeddings=emb[1:3], metadatas=[{"year": 1999}, {"year": 1998}],
               documents=["new one", "new two"])
    got = col.get(ids=["doc-1", "doc-2"], include=["metadatas", "documents"])
    assert got["documents"] == ["new one", "new two"]
    assert got["metadatas"][0]["year"] == 1999 and got["metadatas"][0]["letter"] == "b", "metadata is merged"
    col.upsert(ids=["doc-1", "new-1"], embeddings=emb[:2], documents=["upserted", "brand new"])
    assert col.count() == N + 1

    # Deletes by ids and by filter.
    col.delete(ids=["doc-3", "doc-4"])
    col.delete(where={"bucket": 99})
    expected = N + 1 - 2 - len([m for i, m in enumerate(metas) if m["bucket"] == 99 and i not in (3, 4)])
    assert col.count() == expected

    # Pagination equals slices of the full listing.
    full = col.get(include=[])["ids"]
    assert len(full) == expected
    pages = []
    for off in range(0, len(full), 100):
        pages += col.get(limit=100, offset=off, include=[])["ids"]
    assert pages == full

    # Restart the server on the same directory: everything is still there.
    before = col.query(query_embeddings=q[:1], n_results=10)
    server.stop()
    server.start()
    c2 = client(server)
    col2 = c2.get_collection("rag", embedding_function=None)
    assert col2.metadata == {"purpose": "e2e"}
    assert col2.count() == expected
    assert col2.get(ids=["doc-1"], include=["documents"])["documents"] == ["upserted"]
    after = col2.query(query_embeddings=q[:1], n_results=10)
    assert after["ids"] == before["ids"]
    assert np.allclose(after["distances"], before["distances"])


def test_errors_reach_the_client_typed(server):
    c = client(server)
    with pytest.raises(NotFoundError):
        c.get_collection("missing", embedding_function=None)
    c.create_collection("dup", embedding_function=None)
    with pytest.raises(Exception, match="already exists"):
        c.create_collection("dup", embedding_function=None)
    col = c.get_collection("dup", embedding_function=None)
    col.add(ids=["a"], embeddings=[[1.0, 2.0]])
    with pytest.raises(Exception, match="dimension"):
        col.add(ids=["b"], embeddings=[[1.0, 2.0, 3.0]])
    assert col.count() == 1


def test_databases_tenants_and_reset(server):
    admin = chromadb.AdminClient(chromadb.Settings(chroma_api_impl="chromadb.api.fastapi.FastAPI",
                                                   chroma_server_host="127.0.0.1",
                                                   chroma_server_http_port=server.port))
    admin.create_tenant("acme")
    admin.create_database("kbase", tenant="acme")
    c = chromadb.HttpClient(host="127.0.0.1", port=server.port, tenant="acme", database="kbase")
    col = c.create_collection("notes", embedding_function=None)
    col.add(ids=["x"], embeddings=[[0.0, 1.0]])
    assert [x.name for x in c.list_collections()] == ["notes"]
    assert client(server).list_collections() == []
    client(server).reset()
    with pytest.raises(Exception):
        admin.get_tenant("acme")
