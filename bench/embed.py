"""Local embeddings: fidelity, throughput against sentence-transformers, and folder ingest.

    bench/embed.sh                      # builds ochre, makes the venv, runs this
    python bench/embed.py --ochre target/release/ochre --model DIR [--texts 2000] [--files 10000]

Measured in one run, on the same texts and the same machine:
1. fidelity: `ochre embed` on the first 1,000 summaries of ../shared/datasets/pypi-minilm
   against the vectors shipped with the data set (all-MiniLM-L6-v2 by sentence-transformers);
2. throughput: texts/s of `ochre embed` and of sentence-transformers (torch, CPU, all cores)
   on the same summaries, and on longer texts (chunks of about 200 tokens);
3. ingest: a folder of `--files` text files through `ochre ingest --path` (files/s, peak RSS)
   against the same pipeline in Python: sentence-transformers embeddings added to a
   chromadb 1.5.9 PersistentClient.
"""
import argparse
import gzip
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "datasets", "pypi-minilm")


def summaries(n):
    out = []
    with gzip.open(os.path.join(DATA, "records.tsv.gz"), "rt", encoding="utf-8") as f:
        col = f.readline().rstrip("\n").split("\t").index("summary")
        for line in f:
            out.append(line.rstrip("\n").split("\t")[col])
            if len(out) == n:
                break
    return out


def shipped(n):
    with open(os.path.join(DATA, "base.f16"), "rb") as f:
        raw = f.read(n * 384 * 2)
    return np.frombuffer(raw, dtype="<f2").astype(np.float32).reshape(n, 384)


def ochre_embed(ochre, model, texts):
    inp = "\n".join(t.replace("\n", " ") for t in texts) + "\n"
    start = time.perf_counter()
    out = subprocess.run([ochre, "embed", "--model", model], input=inp.encode(), capture_output=True, check=True)
    secs = time.perf_counter() - start
    vecs = np.array([json.loads(l) for l in out.stdout.decode().splitlines()], dtype=np.float32)
    return vecs, secs


def ochre_load_seconds(ochre, model):
    start = time.perf_counter()
    subprocess.run([ochre, "embed", "--model", model], input=b"", capture_output=True, check=True)
    return time.perf_counter() - start


def cos_rows(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


def peak_rss_of(cmd, **kw):
    """Runs cmd; returns (seconds, peak RSS MiB of the child, stderr)."""
    start = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, **kw)
    secs = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{cmd} failed: {p.stderr.decode()[-2000:]}")
    lines = p.stderr.decode().strip().splitlines()
    return secs, int(lines[-1]) / 1024, "\n".join(lines[:-1])


PY_INGEST = r'''
import os, sys, time, chromadb
from sentence_transformers import SentenceTransformer
root, path, model_dir = sys.argv[1:4]
m = SentenceTransformer(model_dir, device="cpu")
tok = m.tokenizer
client = chromadb.PersistentClient(path=path)
c = client.get_or_create_collection("notes", metadata={"hnsw:space": "cosine"}, embedding_function=None)
ids, docs, metas = [], [], []
def flush():
    if docs:
        embs = m.encode(docs, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
        for s in range(0, len(ids), 1000):
            c.upsert(ids=ids[s:s+1000], embeddings=embs[s:s+1000], documents=docs[s:s+1000], metadatas=metas[s:s+1000])
        ids.clear(); docs.clear(); metas.clear()
for dirpath, _, files in os.walk(root):
    for f in sorted(files):
        p = os.path.join(dirpath, f)
        text = open(p, encoding="utf-8").read()
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        step = 160
        starts = list(range(0, max(len(enc), 1), step))
        for i, s in enumerate(starts):
            e = min(s + 200, len(enc))
            chunk = text[enc[s][0]:enc[e-1][1]] if enc else text
            ids.append(f"{p}-{i}"); docs.append(chunk); metas.append({"source": p, "chunk": i})
            if e == len(enc):
                break
        if len(docs) >= 256:
            flush()
flush()
print(c.count())
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ochre", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--skip-ingest", action="store_true")
    args = ap.parse_args()
    import torch
    from sentence_transformers import SentenceTransformer

    threads = os.cpu_count()
    torch.set_num_threads(threads)
    print(f"machine: {threads} cores, {os.uname().machine}; torch {torch.__version__} threads {torch.get_num_threads()}")

    # 1. Fidelity.
    texts = summaries(max(args.texts, 1000))
    got, _ = ochre_embed(args.ochre, args.model, texts[:1000])
    cos = cos_rows(got, shipped(1000))
    print(f"fidelity (1,000 pypi-minilm summaries vs shipped vectors): min cosine {cos.min():.7f}, mean {cos.mean():.7f}")

    # 2. Throughput.
    st = SentenceTransformer(args.model, device="cpu")
    st.encode(texts[:64], batch_size=32)
    long_texts = [" ".join(texts[i:i + 8]) for i in range(0, len(texts), 8)][: max(1, args.texts // 4)]
    load = ochre_load_seconds(args.ochre, args.model)
    rows = []
    for label, batch in [("summaries", texts[: args.texts]), ("~200-token texts", long_texts)]:
        start = time.perf_counter()
        ref = st.encode(batch, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
        st_secs = time.perf_counter() - start
        mine, secs = ochre_embed(args.ochre, args.model, batch)
        agree = cos_rows(mine, ref).min()
        o_rate = len(batch) / max(secs - load, 1e-9)
        s_rate = len(batch) / st_secs
        rows.append((label, len(batch), o_rate, s_rate, agree))
    print(f"`ochre embed` model load: {load:.2f} s (excluded from the rates)")
    print("| texts | n | ochre texts/s | sentence-transformers texts/s | ratio | min cosine ochre vs ST |")
    print("|---|---|---|---|---|---|")
    for label, n, o, s, a in rows:
        print(f"| {label} | {n} | {o:.0f} | {s:.0f} | {o / s:.2f}x | {a:.7f} |")

    if args.skip_ingest:
        return
    # 3. Folder ingest.
    work = tempfile.mkdtemp(prefix="ochre-embed-bench-")
    try:
        folder = os.path.join(work, "notes")
        all_texts = summaries(min(100000, args.files * 8))
        for i in range(args.files):
            sub = os.path.join(folder, f"d{i // 1000:02d}")
            os.makedirs(sub, exist_ok=True)
            body = "\n\n".join(all_texts[(i * 8 + j) % len(all_texts)] for j in range(8))
            with open(os.path.join(sub, f"note{i:05d}.md"), "w", encoding="utf-8") as f:
                f.write(f"# Note {i}\n\n{body}\n")
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
        o_secs, o_rss, o_err = peak_rss_of([args.ochre, "ingest", folder, "--collection", "notes",
                                            "--path", os.path.join(work, "ochre"), "--model", args.model])
        summary = [l for l in o_err.splitlines() if l.startswith("ingested")]
        r_secs, r_rss, _ = peak_rss_of([sys.executable, "-c", PY_INGEST, folder, os.path.join(work, "chroma"), args.model])
        a_secs, _, a_err = peak_rss_of([args.ochre, "ingest", folder, "--collection", "notes",
                                        "--path", os.path.join(work, "ochre"), "--model", args.model])
        print(f"folder: {args.files} files, {size / 2**20:.1f} MiB; {summary[0] if summary else ''}")
        print("| ingest | seconds | files/s | peak RSS MiB |")
        print("|---|---|---|---|")
        print(f"| ochre ingest --path | {o_secs:.1f} | {args.files / o_secs:.0f} | {o_rss:.0f} |")
        print(f"| sentence-transformers + chromadb PersistentClient | {r_secs:.1f} | {args.files / r_secs:.0f} | {r_rss:.0f} |")
        print(f"| ratio | {o_secs / r_secs:.2f}x | {r_secs / o_secs:.2f}x faster | {o_rss / r_rss:.2f}x |")
        print(f"| ochre ingest again (nothing changed) | {a_secs:.1f} | {args.files / a_secs:.0f} | |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
