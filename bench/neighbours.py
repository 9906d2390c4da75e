"""Exact neighbours, recall@k and latency percentiles, shared by the benchmarks (chroma_vs_ochre.py,
python_inprocess.py)."""
import numpy as np

K = 10


def exact_top_k(base, queries, rows, k=K):
    """Exact top-k row numbers by inner product among `rows` (int array), per query."""
    sub = base[rows]
    out = []
    for i in range(0, len(queries), 100):  # bounded memory at 100k rows
        scores = queries[i : i + 100] @ sub.T
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(scores, part, 1).argsort(axis=1)[:, ::-1]
        out.append(rows[np.take_along_axis(part, order, 1)])
    return np.concatenate(out)


def recall(found, truth, k=K):
    hits = sum(len(set(int(i) for i in f[:k]) & set(int(t) for t in tr[:k])) for f, tr in zip(found, truth))
    return hits / (len(truth) * k)


def pct(latencies_s, p):
    """The p-th percentile of latencies in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(latencies_s) * 1000.0, p))
