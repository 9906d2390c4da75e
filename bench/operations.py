"""Operations benchmark (issue: move in from Chroma, export/import, snapshots), on pypi-minilm:

1. a Chroma directory of N records (written by chromadb.PersistentClient 1.5.9, 384-d, summaries
   as documents, four metadata fields) moved into Ochre two ways: `ochre import --from-chroma`
   versus what a user does without it, reading every record with chromadb and re-adding it
   through chromadb's HttpClient into `ochre run` (batches of 1,000);
2. `ochre export` and `ochre import FILE` throughput on the imported data;
3. `ochre snapshot --url` of a running server while a writer adds batches of 100: snapshot time,
   and the writer's longest add during the snapshot against its p99 before.

Usage: bench/operations.sh [--n 100000] [--dataset DIR] [--ochre target/release/ochre]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_inprocess import load_f16, load_records, dir_size  # noqa: E402
from neighbours import pct  # noqa: E402

os.environ["ANONYMIZED_TELEMETRY"] = "False"
import chromadb  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def serve(ochre, data):
    port = free_port()
    proc = subprocess.Popen([ochre, "run", "--path", data, "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(400):
        try:
            chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
            return proc, port
        except Exception:
            time.sleep(0.05)
    raise SystemExit("ochre run did not start")


def timed(cmd):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{cmd}: {r.stderr}")
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dataset", default=os.environ.get("OCHRE_DATASET", "../shared/datasets/pypi-minilm"))
    ap.add_argument("--ochre", default="target/release/ochre")
    a = ap.parse_args()
    n = a.n
    work = tempfile.mkdtemp(prefix="ochre-ops-bench-")
    try:
        vecs = load_f16(os.path.join(a.dataset, "base.f16"), n).astype(np.float32)
        docs, metas = load_records(os.path.join(a.dataset, "records.tsv.gz"), n)
        ids = [str(i) for i in range(n)]
        chroma_dir = os.path.join(work, "chroma")
        log(f"writing a {n}-record Chroma directory ...")
        t = time.perf_counter()
        col = chromadb.PersistentClient(chroma_dir).create_collection(
            "pypi", configuration={"hnsw": {"space": "cosine"}})
        for s in range(0, n, 1000):
            col.add(ids=ids[s:s + 1000], embeddings=vecs[s:s + 1000],
                    documents=docs[s:s + 1000], metadatas=metas[s:s + 1000])
        chroma_write = time.perf_counter() - t
        del col
        chromadb.api.client.SharedSystemClient.clear_system_cache()
        rows = []

        # 1a. ochre import --from-chroma
        d1 = os.path.join(work, "imported")
        t_import = timed([a.ochre, "import", "--from-chroma", chroma_dir, "--path", d1])
        rows.append(("import a Chroma directory: `ochre import --from-chroma`", f"{t_import:.1f} s",
                     f"{n / t_import:,.0f} rec/s"))
        # 1b. chromadb read + HttpClient re-add into ochre run
        d2 = os.path.join(work, "readded")
        proc, port = serve(a.ochre, d2)
        try:
            t = time.perf_counter()
            src = chromadb.PersistentClient(chroma_dir).get_collection("pypi")
            dst = chromadb.HttpClient(host="127.0.0.1", port=port).create_collection(
                "pypi", configuration={"hnsw": {"space": "cosine"}})
            for s in range(0, n, 1000):
                g = src.get(limit=1000, offset=s, include=["embeddings", "documents", "metadatas"])
                dst.add(ids=g["ids"], embeddings=g["embeddings"], documents=g["documents"],
                        metadatas=g["metadatas"])
            t_readd = time.perf_counter() - t
            assert dst.count() == n
        finally:
            proc.terminate()
            proc.wait()
        rows.append(("same, by chromadb get + HttpClient add into `ochre run`", f"{t_readd:.1f} s",
                     f"{n / t_readd:,.0f} rec/s"))
        rows.append(("ratio (import / re-add time)", f"{t_import / t_readd:.2f}x", "goal <= 0.2x"))

        # 2. export / import throughput
        f = os.path.join(work, "all.jsonl")
        t_export = timed([a.ochre, "export", "--path", d1, "--out", f])
        size = os.path.getsize(f)
        rows.append(("`ochre export`", f"{t_export:.1f} s",
                     f"{n / t_export:,.0f} rec/s, {size / t_export / 2**20:.0f} MiB/s ({size / 2**20:.0f} MiB file)"))
        t_import_file = timed([a.ochre, "import", f, "--path", os.path.join(work, "from-file")])
        rows.append(("`ochre import FILE`", f"{t_import_file:.1f} s", f"{n / t_import_file:,.0f} rec/s"))

        # 3. online snapshot under writes
        proc, port = serve(a.ochre, d1)
        try:
            live = chromadb.HttpClient(host="127.0.0.1", port=port).create_collection("live")
            latencies, during, state = [], [], {"phase": "before", "stop": False}
            rng = np.random.default_rng(1)

            def writer():
                b = 0
                while not state["stop"]:
                    e = rng.standard_normal((100, 384)).astype(np.float32)
                    t0 = time.perf_counter()
                    live.add(ids=[f"w{b}-{i}" for i in range(100)], embeddings=e)
                    dt = time.perf_counter() - t0
                    (during if state["phase"] == "during" else latencies).append(dt)
                    b += 1

            th = threading.Thread(target=writer)
            th.start()
            time.sleep(5)
            state["phase"] = "during"
            t_snap = timed([a.ochre, "snapshot", "--url", f"http://127.0.0.1:{port}",
                            "--out", os.path.join(work, "snap")])
            state["phase"] = "after"
            time.sleep(1)
            state["stop"] = True
            th.join()
        finally:
            proc.terminate()
            proc.wait()
        snap_bytes = dir_size(os.path.join(work, "snap"))
        rows.append(("`ochre snapshot --url` under writes", f"{t_snap:.1f} s",
                     f"{snap_bytes / 2**20:.0f} MiB, {snap_bytes / t_snap / 2**20:.0f} MiB/s"))
        before_p99 = pct(latencies, 99)
        rows.append(("writer: add p99 before / longest add during the snapshot",
                     f"{before_p99:.1f} ms / {max(during) * 1000:.1f} ms" if during else "no add during",
                     f"{len(during)} adds of 100 during it"))

        print(f"\n{n:,} records (pypi-minilm, 384-d, cosine), chromadb wrote its directory in "
              f"{chroma_write:.0f} s ({n / chroma_write:,.0f} rec/s)\n")
        print("| operation | time | rate |")
        print("|---|---|---|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
