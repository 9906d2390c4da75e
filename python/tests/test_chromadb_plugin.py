"""The chromadb plug-in (`ochre.chromadb_api.OchreAPI`): chromadb's own client objects, answered by
Ochre's engine in this process."""
import subprocess
import sys

import numpy as np
import pytest

chromadb = pytest.importorskip("chromadb")
from chromadb.api.client import SharedSystemClient  # noqa: E402
from chromadb.api.models.Collection import Collection as ChromaCollection  # noqa: E402
from chromadb.config import Settings  # noqa: E402

import ochre  # noqa: E402
import ochre.chromadb_api  # noqa: E402  (registers the implementation's name with chromadb)

IMPL = "ochre.chromadb_api.OchreAPI"


@pytest.fixture(autouse=True)
def fresh_systems():
    yield
    SharedSystemClient.clear_system_cache()


def plugin_client(path=None):
    if path is None:
        settings = Settings(chroma_api_impl=IMPL, is_persistent=False, anonymized_telemetry=False)
    else:
        settings = Settings(
            chroma_api_impl=IMPL,
            is_persistent=True,
            persist_directory=str(path),
            anonymized_telemetry=False,
        )
    return chromadb.Client(settings)


def vectors(n, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)).astype(np.float32)


def test_chromadb_objects_run_on_the_engine(tmp_path):
    client = plugin_client(tmp_path)
    assert client.heartbeat() > 0
    col = client.create_collection("docs", embedding_function=None, metadata={"k": "v"})
    assert isinstance(col, ChromaCollection), "chromadb's own Collection class"
    vs = vectors(50)
    col.add(
        ids=[f"id{i}" for i in range(50)],
        embeddings=vs,
        documents=[f"document {i} about {'cats' if i % 2 else 'dogs'}" for i in range(50)],
        metadatas=[{"i": i, "even": i % 2 == 0} for i in range(50)],
    )
    assert col.count() == 50
    res = col.query(query_embeddings=vs[7:8], n_results=3, include=["distances", "metadatas"])
    assert res["ids"][0][0] == "id7"
    assert res["metadatas"][0][0] == {"i": 7, "even": False}
    assert res["distances"][0][0] == pytest.approx(0.0, abs=1e-4)
    got = col.get(where={"i": {"$lt": 5}}, include=["documents"])
    assert sorted(got["ids"]) == [f"id{i}" for i in range(5)]
    cats = col.get(where_document={"$contains": "cats"})
    assert len(cats["ids"]) == 25
    col.update(ids=["id1"], metadatas=[{"i": 100}])
    assert col.get(ids=["id1"])["metadatas"] == [{"i": 100, "even": False}]
    col.delete(where={"even": True})
    assert col.count() == 25
    emb = col.get(ids=["id3"], include=["embeddings"])["embeddings"]
    np.testing.assert_array_equal(np.asarray(emb, dtype=np.float32)[0], vs[3])
    assert [c.name for c in client.list_collections()] == ["docs"]
    assert client.get_collection("docs").metadata == {"k": "v"}
    # The same database as ochre's own client of that path, in this process.
    assert ochre.PersistentClient(str(tmp_path)).get_collection("docs").count() == 25


def test_errors_are_chromadbs_own_classes(tmp_path):
    from chromadb import errors

    client = plugin_client(tmp_path)
    with pytest.raises(errors.NotFoundError):
        client.get_collection("missing")
    client.create_collection("ccc", embedding_function=None)
    with pytest.raises(errors.ChromaError, match="already exists"):
        client.create_collection("ccc", embedding_function=None)
    with pytest.raises(errors.InvalidArgumentError, match="3-512 characters"):
        client.create_collection("c", embedding_function=None)
    col = client.get_collection("ccc")
    col.add(ids=["a"], embeddings=vectors(1))
    with pytest.raises(errors.InvalidArgumentError, match="dimension"):
        col.add(ids=["b", "c"], embeddings=vectors(2, dim=3))
    with pytest.raises(errors.DuplicateIDError):
        col.add(ids=["d", "d"], embeddings=vectors(2))
    assert col.count() == 1, "a refused call changes nothing"


def test_the_constructors_give_chromadbs_client(tmp_path):
    from chromadb.api.client import Client as ChromaClient

    client = ochre.chromadb_api.PersistentClient(tmp_path)
    assert isinstance(client, ChromaClient)
    client.create_collection("made", embedding_function=None).add(ids=["a"], embeddings=vectors(1))
    # The same system (and database) as chromadb.Client with the same settings.
    again = plugin_client(tmp_path)
    assert again.get_collection("made").count() == 1
    mem = ochre.chromadb_api.EphemeralClient()
    assert mem.list_collections() == []
    # Other implementations are still chromadb's to place.
    from chromadb.api.shared_system_client import SharedSystemClient as S

    assert S._get_identifier_from_settings(
        Settings(chroma_api_impl="chromadb.api.rust.RustBindingsAPI", is_persistent=True, persist_directory="/x")
    ) == "/x"


def test_in_memory_and_tenants_and_databases():
    client = plugin_client()
    admin = chromadb.AdminClient(
        Settings(chroma_api_impl=IMPL, is_persistent=False, anonymized_telemetry=False)
    )
    admin.create_tenant("tenant1")
    admin.create_database("db1", tenant="tenant1")
    assert [d["name"] for d in admin.list_databases(tenant="tenant1")] == ["db1"]
    client.set_tenant("tenant1", database="db1")
    col = client.get_or_create_collection("xxx", embedding_function=None)
    col.add(ids=["a", "b"], embeddings=vectors(2))
    assert client.count_collections() == 1
    client.delete_collection("xxx")
    assert client.count_collections() == 0


def test_what_the_plugin_writes_reopens_in_a_new_process(tmp_path):
    client = plugin_client(tmp_path)
    col = client.create_collection("keep", embedding_function=None)
    vs = vectors(200, seed=3)
    col.add(ids=[str(i) for i in range(200)], embeddings=vs, documents=[f"d{i}" for i in range(200)])
    del col, client
    SharedSystemClient.clear_system_cache()
    ochre.clear_system_cache()
    import gc

    gc.collect()
    script = (
        "import sys, numpy as np, chromadb, ochre.chromadb_api\n"
        "from chromadb.config import Settings\n"
        "c = chromadb.Client(Settings(chroma_api_impl='ochre.chromadb_api.OchreAPI',"
        " is_persistent=True, persist_directory=sys.argv[1], anonymized_telemetry=False))\n"
        "col = c.get_collection('keep')\n"
        "q = np.array([[float(x) for x in sys.argv[2].split(',')]], dtype=np.float32)\n"
        "r = col.query(query_embeddings=q, n_results=1, include=['documents'])\n"
        "print(col.count(), r['ids'][0][0], r['documents'][0][0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), ",".join(str(x) for x in vs[42])],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out == ["200", "42", "d42"]
