#!/usr/bin/env python3
"""Reference numbers for the vector-index benchmark: hnswlib (the library Chroma uses, from
`chroma-hnswlib`) and faiss-cpu HNSW, with the same M and ef_construction as Ochre's defaults,
on the pypi-minilm data set. Prints a markdown table like `ochre-bench`.

    python bench/index_reference.py <dataset dir> [n] [threads]
"""
import sys
import time

import numpy as np


def load(path, rows, dim=384):
    data = np.fromfile(path, dtype="<f2").astype(np.float32)
    return data.reshape(-1, dim)[:rows]


def recall(found, truth, k=10):
    hits = sum(len(set(f[:k]) & set(t[:k])) for f, t in zip(found, truth))
    return hits / (len(found) * k)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/pypi-minilm"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    k, m, efc = 10, 16, 100
    base = load(f"{d}/base.f16", n)
    queries = load(f"{d}/queries.f16", 1000)
    truth = np.fromfile(f"{d}/gt_{n}.i32", dtype="<i4").reshape(1000, 100)
    print(f"data: {len(base)} base x {base.shape[1]}, {len(queries)} queries, k={k}, threads={threads}")
    efs = [10, 20, 40, 60, 80, 100, 150, 200, 300]
    rows = []

    import hnswlib

    idx = hnswlib.Index(space="ip", dim=base.shape[1])
    idx.init_index(max_elements=len(base), M=m, ef_construction=efc)
    t0 = time.perf_counter()
    idx.set_num_threads(threads)
    idx.add_items(base, np.arange(len(base)))
    print(f"hnswlib build ({threads} threads): {time.perf_counter() - t0:.2f}s")
    for ef in efs:
        idx.set_ef(ef)
        res = {1: 0.0, threads: 0.0}
        for t in (1, threads):
            idx.set_num_threads(t)
            for _ in range(3):  # best of three, as ochre-bench
                t0 = time.perf_counter()
                if t == 1:
                    labels = [idx.knn_query(q, k=k)[0][0] for q in queries]
                else:
                    labels, _ = idx.knn_query(queries, k=k)
                res[t] = max(res[t], len(queries) / (time.perf_counter() - t0))
        rows.append(("hnswlib", ef, recall(labels, truth), res[1], res[threads]))

    import faiss

    fidx = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    fidx.hnsw.efConstruction = efc
    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    fidx.add(base)
    print(f"faiss build ({threads} threads): {time.perf_counter() - t0:.2f}s")
    for ef in efs:
        fidx.hnsw.efSearch = ef
        res = {1: 0.0, threads: 0.0}
        for t in (1, threads):
            faiss.omp_set_num_threads(t)
            for _ in range(3):
                t0 = time.perf_counter()
                if t == 1:
                    labels = [fidx.search(q[None, :], k)[1][0] for q in queries]
                else:
                    labels = fidx.search(queries, k)[1]
                res[t] = max(res[t], len(queries) / (time.perf_counter() - t0))
        rows.append(("faiss-hnsw", ef, recall(labels, truth), res[1], res[threads]))

    print(f"| index | ef_search | recall@10 | qps 1 thread | qps {threads} threads |")
    print("|---|---|---|---|---|")
    for name, ef, r, q1, q2 in rows:
        print(f"| {name} | {ef} | {r:.4f} | {q1:.0f} | {q2:.0f} |")

    # Filtered: hnswlib with a filter functor at 50%, 10%, 1% (row % 100 buckets, as ochre-bench).
    idx.set_ef(100)
    idx.set_num_threads(1)
    print()
    print("| filter (bucket) | selectivity | recall@10 vs filtered exact | qps 1 thread |")
    print("|---|---|---|---|")
    for name, mod in (("bucket < 50", 2), ("bucket < 10", 10), ("bucket == 7", 100)):
        allowed = np.arange(len(base))[np.arange(len(base)) % mod == 0]
        sub = base[allowed]
        exact = [allowed[np.argsort(-(sub @ q))[:k]] for q in queries]
        qps = 0.0
        for _ in range(3):
            t0 = time.perf_counter()
            found = []
            for q in queries:
                try:
                    labels, _ = idx.knn_query(q, k=k, filter=lambda i, mod=mod: i % mod == 0)
                    found.append(labels[0])
                except RuntimeError:
                    found.append([])
            qps = max(qps, len(queries) / (time.perf_counter() - t0))
        print(f"| {name} | {100 / mod:.0f}% | {recall(found, exact):.4f} | {qps:.0f} |")


if __name__ == "__main__":
    main()
