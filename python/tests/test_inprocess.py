"""Ochre in process: the RAG flow, reopening in a new process, the directory lock, threads,
inputs, embedding functions and the integrations (LangChain, LlamaIndex)."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from conftest import needs_model

import ochre
from ochre import errors

DIM = 16
N = 600


def records(seed=7):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((N, DIM)).astype(np.float32)
    ids = [f"doc-{i}" for i in range(N)]
    docs = [f"document {i} about {'cats' if i % 3 == 0 else 'dogs'}" for i in range(N)]
    metas = [{"bucket": i % 50, "letter": "abcde"[i % 5], "tags": ["t", f"g{i % 4}"]} for i in range(N)]
    return ids, emb, docs, metas


def run_python(code, **env):
    """Runs `code` in a new interpreter (this one's), returns its completed process."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )


def test_rag_flow(tmp_path):
    ids, emb, docs, metas = records()
    client = ochre.PersistentClient(path=str(tmp_path / "data"))
    col = client.create_collection("rag", metadata={"purpose": "test"}, embedding_function=None)
    for s in range(0, N, 200):
        col.add(ids=ids[s:s + 200], embeddings=emb[s:s + 200], documents=docs[s:s + 200], metadatas=metas[s:s + 200])
    assert col.count() == N

    # A filtered query is exact: ascending squared L2 distances among bucket < 5.
    q = np.random.default_rng(1).standard_normal((2, DIM)).astype(np.float32)
    res = col.query(query_embeddings=q, n_results=5, where={"bucket": {"$lt": 5}},
                    include=["metadatas", "distances", "documents", "embeddings"])
    allowed = np.array([m["bucket"] < 5 for m in metas])
    for qi in range(2):
        d = ((emb[allowed] - q[qi]) ** 2).sum(axis=1)
        order = np.argsort(d)[:5]
        assert res["ids"][qi] == [np.array(ids)[allowed][j] for j in order]
        assert np.allclose(res["distances"][qi], d[order], rtol=1e-4)
        assert isinstance(res["embeddings"][qi], np.ndarray)
        assert res["embeddings"][qi].shape == (5, DIM)
    assert set(res) == {"ids", "embeddings", "documents", "uris", "data", "metadatas", "distances", "included"}

    got = col.get(where_document={"$contains": "cats"}, include=["documents"], limit=10, offset=5)
    assert got["ids"] == [i for i, d in zip(ids, docs) if "cats" in d][5:15]
    assert got["metadatas"] is None and got["embeddings"] is None

    # Without an embedding function, a new document needs its embedding (as in chromadb).
    col.update(ids=["doc-1"], metadatas=[{"bucket": 999}], documents=["replaced"], embeddings=emb[1:2])
    one = col.get(ids=["doc-1"], include=["metadatas", "documents", "embeddings"])
    # An update merges metadata keys (as in chromadb).
    assert one["metadatas"] == [{"bucket": 999, "letter": "b", "tags": ["t", "g1"]}]
    assert one["documents"] == ["replaced"]
    assert np.allclose(one["embeddings"][0], emb[1])

    col.upsert(ids=["doc-2", "new-1"], embeddings=emb[:2], documents=["up", "new"])
    assert col.count() == N + 1
    # Buckets 45..49 hold 60 records, and doc-1 moved to bucket 999.
    assert col.delete(where={"bucket": {"$gte": 45}}) == {"deleted": 61}
    col.delete(ids=["doc-0"])
    assert col.count() == N + 1 - 62
    assert col.get(ids=["doc-0"])["ids"] == []

    peek = col.peek(3)
    assert len(peek["ids"]) == 3 and peek["embeddings"].shape == (3, DIM)


def test_reopen_in_a_new_process(tmp_path):
    path = str(tmp_path / "data")
    writer = run_python(
        f"""
        import numpy as np, ochre
        c = ochre.PersistentClient(path={path!r})
        col = c.create_collection("keep", configuration={{"hnsw": {{"space": "cosine"}}}}, embedding_function=None)
        rng = np.random.default_rng(3)
        col.add(ids=[str(i) for i in range(500)], embeddings=rng.standard_normal((500, 8)).astype(np.float32),
                metadatas=[{{"i": i}} for i in range(500)])
        col.delete(ids=["0", "1"])
        print("ok")
        """
    )
    assert writer.returncode == 0, writer.stderr
    reader = run_python(
        f"""
        import numpy as np, ochre
        col = ochre.PersistentClient(path={path!r}).get_collection("keep", embedding_function=None)
        assert col.count() == 498, col.count()
        assert col.configuration_json["hnsw"]["space"] == "cosine"
        rng = np.random.default_rng(3)
        emb = rng.standard_normal((500, 8)).astype(np.float32)
        r = col.query(query_embeddings=emb[7], n_results=1, include=["distances", "metadatas"])
        assert r["ids"] == [["7"]] and r["metadatas"] == [[{{"i": 7}}]], r
        print("ok")
        """
    )
    assert reader.returncode == 0, reader.stderr


def test_a_second_process_gets_a_locked_error_at_once(tmp_path):
    path = str(tmp_path / "data")
    client = ochre.PersistentClient(path=path)
    client.create_collection("xyz")
    other = run_python(
        f"""
        import ochre
        try:
            ochre.PersistentClient(path={path!r})
        except ochre.errors.ChromaError as e:
            print(type(e).__name__, str(e))
        else:
            print("opened")
        """
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.startswith("InternalError"), other.stdout
    assert "lock" in other.stdout.lower()
    # The same path in this process is the same database.
    assert ochre.PersistentClient(path=path).get_collection("xyz").name == "xyz"


def test_threads_read_and_write_in_parallel():
    client = ochre.EphemeralClient()
    col = client.create_collection("threads", embedding_function=None)
    ids, emb, _, _ = records()
    col.add(ids=ids, embeddings=emb)
    failures = []

    def reader():
        try:
            for i in range(50):
                r = col.query(query_embeddings=emb[i], n_results=1, include=["distances"])
                assert r["ids"][0][0] == ids[i]
        except Exception as e:  # surfaced below
            failures.append(e)

    def writer(t):
        try:
            for i in range(20):
                col.add(ids=[f"t{t}-{i}"], embeddings=[emb[i] + 1000.0])
        except Exception as e:
            failures.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)] + [
        threading.Thread(target=writer, args=(t,)) for t in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert col.count() == N + 40
    client.delete_collection("threads")


def test_every_embedding_input_form_stores_the_same_vectors():
    col = ochre.EphemeralClient().get_or_create_collection("forms", embedding_function=None)
    base = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    forms = {
        "f32": base,
        "f64": base.astype(np.float64),
        "lists": base.tolist(),
        "arrays": list(base),
        "strided": np.asfortranarray(base),
    }
    for name, form in forms.items():
        col.add(ids=[f"{name}-{i}" for i in range(3)], embeddings=form)
        got = col.get(ids=[f"{name}-{i}" for i in range(3)], include=["embeddings"])
        assert np.array_equal(got["embeddings"], base), name
    col.add(ids="single", embeddings=[0.5, 1.5, 2.5, 3.5])
    assert col.get(ids="single", include=["embeddings"])["embeddings"].tolist() == [[0.5, 1.5, 2.5, 3.5]]


def test_errors_have_chromadb_classes():
    client = ochre.EphemeralClient()
    # With a configuration and no function, the collection stores a legacy function: documents
    # need embeddings (without any configuration, chromadb and Ochre embed with the default).
    col = client.get_or_create_collection("errs", embedding_function=None, configuration={"hnsw": {"space": "l2"}})
    col.add(ids=["a"], embeddings=[[1.0, 2.0]])
    with pytest.raises(errors.NotFoundError):
        client.get_collection("missing")
    with pytest.raises(errors.InternalError, match="already exists"):
        client.create_collection("errs")
    with pytest.raises(errors.InvalidArgumentError):
        col.add(ids=["b"], embeddings=[[1.0, 2.0, 3.0]])
    with pytest.raises(errors.DuplicateIDError, match="in add"):
        col.add(ids=["c", "c"], embeddings=[[1.0, 2.0], [1.0, 2.0]])
    with pytest.raises(ValueError, match="You must provide an embedding function"):
        col.add(ids=["d"], documents=["no embedding function"])
    with pytest.raises(ValueError, match=r"got \$bogus in get\."):
        col.get(where={"x": {"$bogus": 1}})
    with pytest.raises(errors.InvalidArgumentError):
        col.get(where={"x": {"$in": [{"a": 1}]}})
    with pytest.raises(errors.AuthorizationError, match="Reset is disabled by config"):
        client.reset()
    assert col.count() == 1


class WordCounter:
    """A deterministic embedding function that chromadb's protocol recognises."""

    def __init__(self, scale=1.0):
        self.scale = scale

    def __call__(self, input):
        return [np.array([len(t) * self.scale, t.count(" ") * self.scale, 1.0], dtype=np.float32) for t in input]

    @staticmethod
    def name():
        return "word_counter"

    def get_config(self):
        return {"scale": self.scale}

    @staticmethod
    def build_from_config(config):
        return WordCounter(config["scale"])

    def is_legacy(self):
        return False


def test_a_collection_keeps_its_embedding_function(tmp_path):
    ochre.register_embedding_function(WordCounter)
    client = ochre.PersistentClient(path=str(tmp_path / "data"))
    col = client.create_collection("efs", embedding_function=WordCounter(2.0))
    stored = col.configuration_json["embedding_function"]
    assert stored == {"type": "known", "name": "word_counter", "config": {"scale": 2.0}}
    col.add(ids=["a"], documents=["two words"])
    # Reopened without a function, the stored one is rebuilt and used.
    again = client.get_collection("efs")
    again.add(ids=["b"], documents=["three more words"])
    got = again.get(ids=["a", "b"], include=["embeddings"])
    assert got["embeddings"].tolist() == [[18.0, 2.0, 1.0], [32.0, 4.0, 1.0]]
    assert isinstance(again.configuration["embedding_function"], WordCounter)
    r = again.query(query_texts=["two words"], n_results=1)
    assert r["ids"] == [["a"]]

    class Other(WordCounter):
        @staticmethod
        def name():
            return "other"

    with pytest.raises(ValueError, match="Embedding function conflict"):
        client.get_collection("efs", embedding_function=Other())


def test_a_missing_model_is_a_clear_error(tmp_path):
    ef = ochre.DefaultEmbeddingFunction(model_dir=str(tmp_path))
    with pytest.raises(ochre._ochre.EmbeddingError, match="config.json"):
        ef(["hello"])


@needs_model
def test_the_default_embedding_function_is_minilm(monkeypatch):
    monkeypatch.setenv("OCHRE_MODEL_DIR", os.environ["OCHRE_TEST_MODEL_DIR"])
    col = ochre.EphemeralClient().create_collection("minilm")
    assert col.configuration_json["embedding_function"] == {"type": "known", "name": "default", "config": {}}
    docs = ["The cat sat on the mat.", "Stock markets fell sharply today.", "A recipe for tomato soup."]
    col.add(ids=["cat", "stocks", "soup"], documents=docs)
    r = col.query(query_texts=["kitten on a rug"], n_results=1)
    assert r["ids"] == [["cat"]]
    vectors = ochre.DefaultEmbeddingFunction()(docs)
    assert vectors[0].shape == (384,) and abs(float(np.linalg.norm(vectors[0])) - 1) < 1e-5
    got = col.get(ids=["cat", "stocks", "soup"], include=["embeddings"])
    assert np.allclose(got["embeddings"], np.stack(vectors), atol=1e-6)


def test_langchain_chroma_runs_on_ochre(tmp_path):
    langchain_chroma = pytest.importorskip("langchain_chroma")
    from langchain_core.documents import Document
    from langchain_core.embeddings import DeterministicFakeEmbedding

    client = ochre.PersistentClient(path=str(tmp_path / "data"))
    store = langchain_chroma.Chroma(
        client=client, collection_name="langchain", embedding_function=DeterministicFakeEmbedding(size=32)
    )
    ids = store.add_documents(
        [
            Document(page_content="ochre stores vectors", metadata={"kind": "db"}),
            Document(page_content="tomatoes are red", metadata={"kind": "food"}),
            Document(page_content="basil smells good", metadata={"kind": "food"}),
        ],
        ids=["1", "2", "3"],
    )
    assert ids == ["1", "2", "3"]
    hits = store.similarity_search("tomatoes are red", k=1)
    assert hits[0].page_content == "tomatoes are red"
    scored = store.similarity_search_with_score("basil smells good", k=2, filter={"kind": "food"})
    assert [d.metadata["kind"] for d, _ in scored] == ["food", "food"]
    assert scored[0][0].page_content == "basil smells good" and scored[0][1] == pytest.approx(0, abs=1e-4)
    store.delete(ids=["2"])
    assert store.get()["ids"] == ["1", "3"]
    assert client.get_collection("langchain", embedding_function=None).count() == 2


def test_llama_index_runs_on_ochre():
    pytest.importorskip("llama_index.vector_stores.chroma")
    from llama_index.core.schema import TextNode
    from llama_index.core.vector_stores import (
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
    )
    from llama_index.vector_stores.chroma import ChromaVectorStore

    col = ochre.EphemeralClient().get_or_create_collection("llama", embedding_function=None)
    store = ChromaVectorStore(chroma_collection=col)
    nodes = [
        TextNode(text="red", id_="n1", embedding=[1.0, 0.0, 0.0], metadata={"color": "warm"}),
        TextNode(text="green", id_="n2", embedding=[0.0, 1.0, 0.0], metadata={"color": "cool"}),
        TextNode(text="orange", id_="n3", embedding=[0.9, 0.1, 0.0], metadata={"color": "warm"}),
    ]
    assert store.add(nodes) == ["n1", "n2", "n3"]
    result = store.query(VectorStoreQuery(query_embedding=[1.0, 0.05, 0.0], similarity_top_k=2))
    assert result.ids == ["n1", "n3"]
    filtered = store.query(
        VectorStoreQuery(
            query_embedding=[0.0, 1.0, 0.0],
            similarity_top_k=1,
            filters=MetadataFilters(filters=[MetadataFilter(key="color", value="warm", operator=FilterOperator.EQ)]),
        )
    )
    assert filtered.ids == ["n3"]
    store.delete_nodes(node_ids=["n1"])
    assert col.count() == 2 and col.get(ids=["n1"])["ids"] == []


def test_search_takes_chromadb_search_objects():
    chromadb = pytest.importorskip("chromadb")
    from chromadb import K, Knn, Search

    ochre.register_embedding_function(WordCounter)
    col = ochre.EphemeralClient().create_collection(
        "search", embedding_function=WordCounter(), configuration={"hnsw": {"space": "l2"}}
    )
    docs = ["a", "a bb", "a bb ccc", "a bb ccc dddd"]
    col.add(ids=["1", "2", "3", "4"], documents=docs, metadatas=[{"n": i} for i in range(4)])
    search = (
        Search()
        .where(K("n") >= 1)
        .rank(Knn(query=[4.0, 1.0, 1.0]))
        .limit(2)
        .select(K.DOCUMENT, K.SCORE)
    )
    result = col.search(search)
    assert result["ids"] == [["2", "3"]]
    assert result["documents"] == [["a bb", "a bb ccc"]]
    # A text query is embedded with the collection's function, as chromadb's client does.
    by_text = col.search(Search().rank(Knn(query="a bb ccc dddd")).limit(1))
    assert by_text["ids"] == [["4"]]
    assert by_text.rows()[0][0]["id"] == "4"


SPARSE_FUNCTION = """
from chromadb.api.types import SparseEmbeddingFunction, SparseVector
from chromadb.utils.embedding_functions import register_sparse_embedding_function


@register_sparse_embedding_function
class Letters(SparseEmbeddingFunction):
    \"\"\"One dimension per letter a text holds (ord(c) - 97), weighted by `scale`; queries count
    double, to tell embed_query from a call.\"\"\"

    def __init__(self, scale=1.0):
        self.scale = scale

    def _embed(self, texts, weight):
        out = []
        for t in texts:
            letters = sorted({ord(c) - 97 for c in t if "a" <= c <= "z"})
            out.append(SparseVector(indices=letters, values=[weight * self.scale] * len(letters)))
        return out

    def __call__(self, input):
        return self._embed(input, 1.0)

    def embed_query(self, input):
        return self._embed(input, 2.0)

    @staticmethod
    def name():
        return "letters"

    def get_config(self):
        return {"scale": self.scale}

    @staticmethod
    def build_from_config(config):
        return Letters(config.get("scale", 1.0))
"""


def test_sparse_functions_run_in_process_for_writes_and_text_queries(tmp_path):
    pytest.importorskip("chromadb")
    scope = {}
    exec(SPARSE_FUNCTION, scope)
    Letters = scope["Letters"]
    from chromadb import K, Knn, Schema, Search, SparseVectorIndexConfig
    from chromadb.api.types import SparseVector

    path = str(tmp_path / "data")
    schema = Schema().create_index(
        SparseVectorIndexConfig(embedding_function=Letters(3.0), source_key="#document"), key="letters"
    )
    client = ochre.PersistentClient(path)
    col = client.create_collection("sparse", schema=schema)
    col.add(
        ids=["ab", "cd", "mine"],
        embeddings=[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
        documents=["ab", "cd", "xyz"],
        metadatas=[None, {"kind": "x"}, {"letters": SparseVector(indices=[25], values=[1.0])}],
    )
    got = col.get(ids=["ab", "cd", "mine"], include=["metadatas"])
    by_id = dict(zip(got["ids"], got["metadatas"]))
    # The function filled in what the caller left out, from the document; a vector the caller
    # gave is kept as given.
    assert list(by_id["ab"]["letters"].indices) == [0, 1]
    assert list(by_id["ab"]["letters"].values) == [3.0, 3.0]
    assert by_id["cd"]["kind"] == "x" and list(by_id["cd"]["letters"].indices) == [2, 3]
    assert list(by_id["mine"]["letters"].indices) == [25]
    # An update with a new document is embedded again.
    col.update(ids=["cd"], documents=["cde"], embeddings=[[0.0, 1.0]])
    cd = col.get(ids=["cd"], include=["metadatas"])["metadatas"][0]
    assert list(cd["letters"].indices) == [2, 3, 4]
    # A text query on the sparse key goes through embed_query.
    hits = col.search(Search().rank(Knn(query="e", key="letters")).limit(1).select(K.SCORE))
    assert hits["ids"] == [["cd"]]
    del col, client
    ochre.clear_system_cache()

    # Another process gets the function back from the stored config (the class registered there).
    out = run_python(
        SPARSE_FUNCTION
        + f"""
import ochre
from chromadb import Knn, Search
col = ochre.PersistentClient({path!r}).get_collection("sparse")
col.upsert(ids=["z"], embeddings=[[0.5, 0.5]], documents=["zz"])
m = col.get(ids=["z"], include=["metadatas"])["metadatas"][0]
print(list(m["letters"].indices), list(m["letters"].values))
print(col.search(Search().rank(Knn(query="z", key="letters")).limit(2))["ids"][0])
"""
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "[25] [3.0]"
    assert sorted(eval(lines[1])) == ["mine", "z"]

    # A process that cannot rebuild the function (not registered there) still writes, with a
    # warning, as chromadb does; the key is then the caller's to give.
    out = run_python(
        f"""
import warnings, ochre
col = ochre.PersistentClient({path!r}).get_collection("sparse")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    col.add(ids=["plain"], embeddings=[[0.1, 0.2]], documents=["abc"])
print(any("Could not reconstruct sparse embedding function" in str(w.message) for w in caught))
print(col.get(ids=["plain"], include=["metadatas"])["metadatas"][0])
"""
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "None"]


def test_an_unknown_stored_function_is_an_error_not_another_model(tmp_path):
    path = str(tmp_path / "data")
    made = run_python(
        f"""
        import numpy as np, ochre
        class Mine:
            def __call__(self, input):
                return [np.ones(3, dtype=np.float32) for _ in input]
            @staticmethod
            def name():
                return "mine_only_here"
            def get_config(self):
                return {{}}
            @staticmethod
            def build_from_config(config):
                return Mine()
            def is_legacy(self):
                return False
        ochre.PersistentClient(path={path!r}).create_collection("mine", embedding_function=Mine()).add(ids=["a"], documents=["x"])
        """
    )
    assert made.returncode == 0, made.stderr
    col = ochre.PersistentClient(path=path).get_collection("mine")
    with pytest.raises(ValueError, match="Embedding function mine_only_here not found"):
        col.add(ids=["b"], documents=["y"])
    assert col.count() == 1


def test_ephemeral_clients_start_afresh_after_clear_system_cache():
    first = ochre.EphemeralClient()
    first.create_collection("kept")
    assert [c.name for c in ochre.EphemeralClient().list_collections()] == ["kept"]
    ochre.clear_system_cache()
    assert ochre.EphemeralClient().list_collections() == []
    assert first.get_collection("kept").name == "kept"  # the old client's database lives on


def test_non_finite_numbers_are_refused_with_a_clear_error():
    col = ochre.EphemeralClient().create_collection("finite", embedding_function=None)
    col.add(ids=["a"], embeddings=[[1.0, 2.0]], metadatas=[{"x": 1.0}])
    with pytest.raises(ValueError, match="finite"):
        col.add(ids=["b"], embeddings=[[1.0, 2.0]], metadatas=[{"x": float("nan")}])
    with pytest.raises(ValueError, match="finite"):
        col.query(query_embeddings=[[float("inf"), 0.0]], n_results=1)
    with pytest.raises(ValueError, match="finite"):
        col.get(where={"x": {"$lt": float("inf")}})
    assert col.count() == 1
    # numpy scalars in a collection's metadata are numbers like any other (as in chromadb)
    other = ochre.EphemeralClient().create_collection("numpy-meta", metadata={"x": np.float32(0.5), "n": np.int64(3)})
    assert other.metadata == {"x": 0.5, "n": 3}
