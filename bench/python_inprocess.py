#!/usr/bin/env python3
"""In-process benchmark: chromadb.PersistentClient (chromadb 1.5.9) against ochre.PersistentClient
(the `ochre` Python package, python/), same data, same run, same code path.

Run it through `bench/python_inprocess.sh` (picks or creates the venv), e.g.

    bench/python_inprocess.sh --n 10000                       # quick, a minute or two
    bench/python_inprocess.sh                                 # headline, 100,000 records
    bench/python_inprocess.sh --impl chromadb --n 10000       # one implementation only
    bench/python_inprocess.sh --help                          # all options

Data: the pypi-minilm set (`../shared/datasets/pypi-minilm`, env OCHRE_DATASET or --dataset): the
first N base rows (384-d all-MiniLM-L6-v2, read as f32 from f16), id = row number, document =
summary, metadata year, letter, bucket, rank; the held-out query vectors. The collection is
`configuration={"hnsw": {"space": "cosine"}}`, `embedding_function=None` (the vectors are unit
length, so cosine = inner product; the shipped ground truth is inner product).

Each implementation runs in fresh subprocesses on a fresh temporary directory, one after the
other (never both at once):

1. ingest+query process: `PersistentClient(path)`, `get_or_create_collection`, `add()` in batches
   of `--batch` (1,000) with numpy float32 embeddings, documents and metadatas; then `--queries`
   single-embedding queries, n_results 10, for each of: include=["distances"];
   include=["metadatas", "documents", "distances"]; include=["distances"] with
   where={"bucket": {"$lt": B}} (B = --filter-lt, 10: 10 % of the rows). Each query phase is run
   `--passes` times and the pass with the lowest p50 is reported (this machine varies by tens of
   percent between runs); a few warm-up queries precede the first pass.
2. reopen processes (`--reopens`, 5), one after the other on the directory the first left: the
   clock starts just before `PersistentClient(path)` and stops when the first query's answer is
   back (after `get_collection`); then `--reopen-queries` more queries give the latency after
   reopen. A single reopen on this machine varies by a factor of two or more from run to run (for
   both implementations), so the table reports the median run, with the fastest and slowest.

Recall@10: unfiltered against the shipped exact top-100 `gt_<N>.i32` when the data set has one
for N, else against an exact inner-product top-10 computed here with numpy; filtered against an
exact inner-product top-10 among the matching rows. Peak RSS is the child's own high-water mark
(VmHWM of /proc/self/status; `getrusage(RUSAGE_SELF).ru_maxrss` would not do: Linux carries it over
from the parent through fork and exec); the table also shows the RSS just before the first add
(interpreter, library, the loaded data), which is the harness's share of the peak.

The Markdown table (both implementations, ratio ochre/chroma) is printed on stdout; progress goes
to stderr. `--json FILE` also writes the raw results.
"""
import argparse
import datetime
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

# The exact neighbours and recall of the HTTP benchmark (bench/neighbours.py: numpy only).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from neighbours import exact_top_k, pct, recall  # noqa: E402

os.environ["ANONYMIZED_TELEMETRY"] = "False"  # before chromadb is imported, here and in children
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DIM = 384
K = 10
COLLECTION = "bench"
IMPLS = ("chromadb", "ochre")
LABEL = {"chromadb": "chromadb 1.5.9", "ochre": "ochre"}
INCLUDE_FULL = ["metadatas", "documents", "distances"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Data (read by the parent for the exact answers, and by each child for itself)


def load_f16(path, rows, offset_rows=0):
    data = np.fromfile(path, dtype="<f2", count=rows * DIM, offset=offset_rows * DIM * 2)
    if data.size != rows * DIM:
        raise SystemExit(f"{path}: fewer than {offset_rows + rows} rows")
    return data.reshape(-1, DIM)


def load_records(path, n):
    """The first n rows of records.tsv.gz as (summary, metadata dict) lists."""
    docs, metas = [], []
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        cols = f.readline().rstrip("\n").split("\t")
        for line in f:
            if len(docs) == n:
                break
            r = dict(zip(cols, line.rstrip("\n").split("\t", len(cols) - 1)))
            if r["row"] != str(len(docs)):
                raise SystemExit(f"{path}: rows are not 0..N-1 in order")
            docs.append(r["summary"])
            metas.append({"year": int(r["year"]), "letter": r["letter"],
                          "bucket": int(r["bucket"]), "rank": int(r["rank"])})
    if len(docs) != n:
        raise SystemExit(f"{path}: only {len(docs)} records, {n} wanted")
    return docs, metas


def dir_size(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def maxrss_bytes():
    """This process's peak RSS: VmHWM, the high-water mark of its own address space. Not
    `getrusage(RUSAGE_SELF).ru_maxrss`: Linux carries that across fork and exec, so a child's
    figure starts at the parent's RSS when it was spawned (the parent here holds the data set)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def err_text(e):
    return f"{type(e).__module__}.{type(e).__qualname__}: {e}"


# ---------------------------------------------------------------------------------------------
# Children


def import_impl(name):
    t = time.perf_counter()
    if name == "chromadb":
        import chromadb as mod
    elif name == "ochre":
        import ochre as mod
    else:
        raise SystemExit(f"unknown implementation {name!r}")
    return mod, time.perf_counter() - t


def version_of(mod, name):
    v = getattr(mod, "__version__", None)
    if v:
        return str(v)
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return "?"


class Api:
    """Calls the collection the way chromadb users do (numpy arrays); if an implementation refuses
    a form chromadb accepts, the error is recorded once and the call retried with plain lists, so
    the benchmark still yields numbers and the report names the difference."""

    def __init__(self, res):
        self.res = res
        self.add_lists = False
        self.query_lists = False

    def note(self, what, e):
        self.res.setdefault("api_differences", []).append(f"{what}: {err_text(e)}")
        log(f"API difference: {what}: {err_text(e)}")

    def add(self, col, ids, emb, docs, metas):
        if not self.add_lists:
            try:
                return col.add(ids=ids, embeddings=emb, documents=docs, metadatas=metas)
            except Exception as e:  # noqa: BLE001
                self.note("add(embeddings=<numpy float32 2-d array>) failed; retried with lists", e)
                self.add_lists = True
        return col.add(ids=ids, embeddings=emb.tolist(), documents=docs, metadatas=metas)

    def query(self, col, q, **kw):
        if not self.query_lists:
            try:
                return col.query(query_embeddings=q, n_results=K, **kw)
            except Exception as e:  # noqa: BLE001
                self.note("query(query_embeddings=<numpy float32 (1, d) array>) failed; retried with lists", e)
                self.query_lists = True
        return col.query(query_embeddings=q.tolist(), n_results=K, **kw)


def check_result(res, key, r, include):
    """Records (once per phase) a result whose shape differs from chromadb's."""
    problems = []
    if not isinstance(r.get("ids"), list) or len(r["ids"]) != 1:
        problems.append(f"ids is {type(r.get('ids')).__name__} of len {len(r.get('ids') or [])}, want a list of 1 list")
    for field in include:
        v = r.get(field)
        if v is None or len(v) != 1 or len(v[0]) != len(r["ids"][0]):
            problems.append(f"{field} is {v!r:.80}")
    for field in ("embeddings", "metadatas", "documents", "distances"):
        if field not in include and r.get(field) is not None:
            problems.append(f"{field} returned though not included")
    if problems:
        res.setdefault("api_differences", []).append(f"{key} result: " + "; ".join(problems))


def run_queries(api, col, queries, include, where=None, res=None, key=None):
    lat, found = [], []
    kw = {"include": include}
    if where is not None:
        kw["where"] = where
    for i in range(len(queries)):
        q = queries[i: i + 1]
        t = time.perf_counter()
        r = api.query(col, q, **kw)
        lat.append(time.perf_counter() - t)
        if i == 0 and res is not None:
            check_result(res, key, r, include)
        found.append([int(x) for x in r["ids"][0]])
    return lat, found


def child_ingest(args):
    res = {"impl": args.impl}
    mod, res["import_s"] = import_impl(args.impl)
    res["version"] = version_of(mod, args.impl)
    n = args.n
    base16 = load_f16(os.path.join(args.dataset, "base.f16"), n)
    queries = load_f16(os.path.join(args.dataset, "queries.f16"), args.queries).astype(np.float32)
    docs, metas = load_records(os.path.join(args.dataset, "records.tsv.gz"), n)
    ids = [str(i) for i in range(n)]
    api = Api(res)

    t = time.perf_counter()
    client = mod.PersistentClient(path=args.dir)
    col = client.get_or_create_collection(COLLECTION, configuration={"hnsw": {"space": "cosine"}},
                                          embedding_function=None)
    res["open_create_s"] = time.perf_counter() - t
    res["rss_before_add"] = rss_bytes()
    res["maxrss_before_add"] = maxrss_bytes()

    log(f"{args.impl}: ingest {n} records, batches of {args.batch}")
    t0 = time.perf_counter()
    for i in range(0, n, args.batch):
        j = min(i + args.batch, n)
        api.add(col, ids[i:j], base16[i:j].astype(np.float32), docs[i:j], metas[i:j])
    res["ingest_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    res["count"] = col.count()
    res["count_s"] = time.perf_counter() - t
    if res["count"] != n:
        res.setdefault("api_differences", []).append(f"count() = {res['count']} after adding {n}")
    res["rss_after_ingest"] = rss_bytes()
    log(f"{args.impl}: {n / res['ingest_s']:.0f} records/s, count() = {res['count']}")

    where = {"bucket": {"$lt": args.filter_lt}}
    phases = [("q_dist", ["distances"], None), ("q_full", INCLUDE_FULL, None), ("q_filt", ["distances"], where)]
    run_queries(api, col, queries[: args.warmup], ["distances"])  # warm-up, not timed
    for p in range(args.passes):
        for key, include, w in phases:
            lat, found = run_queries(api, col, queries, include, w, res if p == 0 else None, key)
            p50, p95 = pct(lat, 50), pct(lat, 95)
            prev = res.get(key)
            if prev is None or p50 < prev["p50"]:
                res[key] = {"p50": p50, "p95": p95, "pass": p + 1}
            if p == 0:
                res[key + "_ids"] = found
            log(f"{args.impl}: pass {p + 1} {key}: p50 {p50:.3f} ms, p95 {p95:.3f} ms")
    res["maxrss"] = maxrss_bytes()
    res["rss_end"] = rss_bytes()
    return res


def child_reopen(args):
    res = {"impl": args.impl}
    mod, res["import_s"] = import_impl(args.impl)
    queries = load_f16(os.path.join(args.dataset, "queries.f16"), max(1, args.reopen_queries + 1)).astype(np.float32)
    api = Api(res)
    res["maxrss_before_open"] = maxrss_bytes()
    res["rss_before_open"] = rss_bytes()
    t0 = time.perf_counter()
    client = mod.PersistentClient(path=args.dir)
    t1 = time.perf_counter()
    col = client.get_collection(COLLECTION, embedding_function=None)
    t2 = time.perf_counter()
    r = api.query(col, queries[0:1], include=["distances"])
    t3 = time.perf_counter()
    res.update(open_s=t1 - t0, get_collection_s=t2 - t1, first_query_s=t3 - t2, reopen_total_s=t3 - t0)
    res["first_ids"] = [int(x) for x in r["ids"][0]]
    log(f"{args.impl}: reopen to first answer {res['reopen_total_s']:.3f} s")
    if args.reopen_queries > 0:
        lat, _ = run_queries(api, col, queries[1:], ["distances"])
        res["q_reopen"] = {"p50": pct(lat, 50), "p95": pct(lat, 95)}
    res["count"] = col.count()
    res["maxrss"] = maxrss_bytes()
    return res


def child_main(args):
    try:
        res = child_ingest(args) if args.child == "ingest" else child_reopen(args)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        res = {"impl": args.impl, "error": err_text(e)}
    with open(args.out, "w") as f:
        json.dump(res, f)


# ---------------------------------------------------------------------------------------------
# Parent


def run_child(args, mode, impl, data_dir, work):
    out = os.path.join(work, f"{impl}-{mode}.json")
    argv = [sys.executable, os.path.abspath(__file__), "--child", mode, "--impl", impl, "--dir", data_dir,
            "--out", out, "--n", str(args.n), "--dataset", args.dataset, "--queries", str(args.queries),
            "--batch", str(args.batch), "--passes", str(args.passes), "--warmup", str(args.warmup),
            "--filter-lt", str(args.filter_lt), "--reopen-queries", str(args.reopen_queries)]
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
    # Runs of one mode share the file: a child that dies before writing must not leave the last
    # one's result in place.
    try:
        os.remove(out)
    except FileNotFoundError:
        pass
    t = time.perf_counter()
    # The child's stdout goes to our stderr: stdout is for the table only.
    p = subprocess.run(argv, env=env, stdout=sys.stderr, stdin=subprocess.DEVNULL, timeout=args.timeout)
    wall = time.perf_counter() - t
    try:
        with open(out) as f:
            res = json.load(f)
    except (OSError, ValueError):
        res = {"impl": impl, "error": f"child exited with status {p.returncode} and no result"}
    if p.returncode != 0 and "error" not in res:
        res["error"] = f"child exited with status {p.returncode}"
    res["process_s"] = wall
    return res


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = 0
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {cores} CPUs (nproc {cores}, os.cpu_count {os.cpu_count()}), {mem:.0f} GiB RAM, "
            f"{platform.system()} {platform.machine()}, Python {platform.python_version()}; "
            f"load average at start {load}")


def git_commit():
    try:
        c = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                           text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return c + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def fmt(v, digits):
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def table(args, results, truth):
    impls = [i for i in args.impl if i in results]
    mib = 2**20
    rows = []  # (label, {impl: value}, digits, better)

    def get(impl, *path):
        v = results[impl]
        for p in path:
            if not isinstance(v, dict) or p not in v:
                return None
            v = v[p]
        return v

    def row(label, digits, better, f):
        vals = {}
        for i in impls:
            try:
                vals[i] = f(i)
            except (TypeError, KeyError, ZeroDivisionError):
                vals[i] = None
        rows.append((label, vals, digits, better))

    ing = lambda i: results[i]["ingest"]  # noqa: E731
    reo = lambda i: results[i]["reopen"]  # noqa: E731
    row(f"ingest, records/s (add() in batches of {args.batch:,})", 0, "higher",
        lambda i: args.n / ing(i)["ingest_s"])
    row("ingest, s", 2, "lower", lambda i: ing(i)["ingest_s"])
    for key, what in (("q_dist", 'include=["distances"]'),
                      ("q_full", 'include=["metadatas","documents","distances"]'),
                      ("q_filt", f'include=["distances"], where bucket < {args.filter_lt}')):
        for p in ("p50", "p95"):
            row(f"query {p}, ms, {what}", 3, "lower", lambda i, key=key, p=p: ing(i)[key][p])
    row("recall@10, unfiltered", 4, "higher", lambda i: recall(ing(i)["q_dist_ids"], truth["unfiltered"]))
    row(f"recall@10, where bucket < {args.filter_lt} ({truth['filter_share']:.0%} of rows)", 4, "higher",
        lambda i: recall(ing(i)["q_filt_ids"], truth["filtered"]))
    row(f"reopen: PersistentClient + get_collection + first query, s (median of {args.reopens})", 3,
        "lower", lambda i: reo(i)["reopen_total_s"])
    if args.reopens > 1:
        row(f"  fastest of the {args.reopens} reopens, s", 3, "lower", lambda i: min(results[i]["reopen_totals"]))
        row(f"  slowest of the {args.reopens} reopens, s", 3, "lower", lambda i: max(results[i]["reopen_totals"]))
    row("  of which PersistentClient(path), s (the median run)", 3, "lower", lambda i: reo(i)["open_s"])
    row("  of which get_collection, s", 3, "lower", lambda i: reo(i)["get_collection_s"])
    row("  of which first query, s", 3, "lower", lambda i: reo(i)["first_query_s"])
    if args.reopen_queries:
        row(f"query p50 after reopen, ms ({args.reopen_queries} queries)", 3, "lower",
            lambda i: reo(i)["q_reopen"]["p50"])
    row("peak RSS, ingest+query process, MiB", 1, "lower", lambda i: ing(i)["maxrss"] / mib)
    row("  RSS before the first add (interpreter, library, data), MiB", 1, "lower",
        lambda i: ing(i)["rss_before_add"] / mib)
    row("  peak RSS − RSS before the first add, MiB", 1, "lower",
        lambda i: (ing(i)["maxrss"] - ing(i)["rss_before_add"]) / mib)
    row("peak RSS, reopen process, MiB", 1, "lower", lambda i: reo(i)["maxrss"] / mib)
    row("  RSS before PersistentClient(path) (interpreter, library), MiB", 1, "lower",
        lambda i: reo(i)["rss_before_open"] / mib)
    row("data directory after ingest, MiB", 1, "lower", lambda i: results[i]["dir_size"] / mib)
    row("import of the package, s", 3, "lower", lambda i: ing(i)["import_s"])

    head = ["metric"] + [LABEL[i] for i in impls]
    both = "chromadb" in impls and "ochre" in impls
    if both:
        head += ["ochre / chroma", "better"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, vals, digits, better in rows:
        cells = [label] + [fmt(vals[i], digits) for i in impls]
        if both:
            a, b = vals.get("ochre"), vals.get("chromadb")
            cells += [f"{a / b:.2f}×" if a is not None and b else "–", better]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--impl", default="chromadb,ochre",
                    help="comma-separated, run in this order: chromadb, ochre (default both)")
    ap.add_argument("--n", type=int, default=100000, help="records (default 100000; 10000 for a quick run)")
    ap.add_argument("--dataset", default=os.environ.get("OCHRE_DATASET",
                                                        os.path.join(ROOT, "..", "shared", "datasets", "pypi-minilm")))
    ap.add_argument("--queries", type=int, default=1000, help="queries per phase (at most 1000)")
    ap.add_argument("--batch", type=int, default=1000, help="records per add() (default 1000)")
    ap.add_argument("--passes", type=int, default=3, help="passes of each query phase; the best p50 is kept")
    ap.add_argument("--warmup", type=int, default=20, help="untimed queries before the first pass")
    ap.add_argument("--filter-lt", type=int, default=10,
                    help='the filtered queries use where={"bucket": {"$lt": B}} (bucket = 0..99)')
    ap.add_argument("--reopen-queries", type=int, default=200, help="queries timed after the first one on reopen")
    ap.add_argument("--reopens", type=int, default=5,
                    help="reopen processes, one after the other; the median by time to first answer is reported")
    ap.add_argument("--tmp", default=None, help="where the temporary data directories go")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    ap.add_argument("--json", default=None, help="also write the raw results to this file")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per child process")
    # Internal: the child processes.
    ap.add_argument("--child", choices=("ingest", "reopen"), help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return args
    if args.reopens < 1:
        ap.error("--reopens: at least 1")
    args.impl = [s.strip() for s in args.impl.split(",") if s.strip()]
    bad = [i for i in args.impl if i not in IMPLS]
    if bad or not args.impl or len(set(args.impl)) != len(args.impl):
        ap.error(f"--impl: a comma-separated list of {', '.join(IMPLS)} (got {','.join(args.impl)})")
    if not 1 <= args.queries <= 1000:
        ap.error("--queries: 1..1000")
    if args.n < K or args.batch < 1 or args.passes < 1:
        ap.error("--n must be at least 10, --batch and --passes at least 1")
    args.dataset = os.path.abspath(args.dataset)
    return args


def main():
    args = parse_args()
    if args.child:
        return child_main(args)
    ds = args.dataset
    for f in ("base.f16", "queries.f16", "records.tsv.gz"):
        if not os.path.exists(os.path.join(ds, f)):
            raise SystemExit(f"{os.path.join(ds, f)} is missing (data set: --dataset or OCHRE_DATASET)")
    command = os.environ.get("OCHRE_BENCH_COMMAND") or " ".join(
        ["python", os.path.relpath(os.path.abspath(__file__), ROOT)] + sys.argv[1:])
    host = machine()
    started = datetime.datetime.now()

    # The exact answers (in this process, before any child runs).
    log(f"loading {args.n} records from {ds}; exact answers")
    base = load_f16(os.path.join(ds, "base.f16"), args.n).astype(np.float32)
    queries = load_f16(os.path.join(ds, "queries.f16"), args.queries).astype(np.float32)
    _, metas = load_records(os.path.join(ds, "records.tsv.gz"), args.n)
    gt_path = os.path.join(ds, f"gt_{args.n}.i32")
    if os.path.exists(gt_path):
        unfiltered = np.fromfile(gt_path, dtype="<i4").reshape(1000, 100)[: args.queries, :K]
        gt_source = f"the shipped `gt_{args.n}.i32` (exact inner product)"
    else:
        unfiltered = exact_top_k(base, queries, np.arange(args.n))
        gt_source = "an exact inner-product top-10 computed with numpy (no shipped gt for this N)"
    mask = np.array([m["bucket"] < args.filter_lt for m in metas])
    if mask.sum() < K:
        raise SystemExit(f"--filter-lt {args.filter_lt}: only {mask.sum()} matching rows")
    truth = {"unfiltered": unfiltered, "filtered": exact_top_k(base, queries, np.flatnonzero(mask)),
             "filter_share": float(mask.mean())}
    normed = base / np.linalg.norm(base, axis=1, keepdims=True)
    cos_ceiling = recall(exact_top_k(normed, queries, np.arange(args.n)), unfiltered)
    del base, normed, metas

    work = tempfile.mkdtemp(prefix="ochre-py-inprocess-", dir=args.tmp)
    results = {}
    try:
        for impl in args.impl:
            data_dir = os.path.join(work, f"{impl}-data")
            log(f"{impl}: ingest+query process on {data_dir}")
            ingest = run_child(args, "ingest", impl, data_dir, work)
            results[impl] = {"ingest": ingest, "dir_size": dir_size(data_dir)}
            if "error" in ingest:
                log(f"{impl}: ingest+query failed: {ingest['error']}")
                if "ingest_s" not in ingest:
                    continue
            runs = []
            for k in range(args.reopens):
                log(f"{impl}: reopen process {k + 1}/{args.reopens}")
                reopen = run_child(args, "reopen", impl, data_dir, work)
                if "error" in reopen:
                    log(f"{impl}: reopen failed: {reopen['error']}")
                    runs = [reopen]
                    break
                runs.append(reopen)
            # The median run by time to first answer stands for them all; the spread is kept.
            runs.sort(key=lambda r: r.get("reopen_total_s", float("inf")))
            results[impl]["reopen"] = runs[len(runs) // 2]
            results[impl]["reopen_totals"] = [r.get("reopen_total_s") for r in runs]
            if not args.keep:
                shutil.rmtree(data_dir, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"data kept in {work}")

    out = [f"In-process Python: chromadb.PersistentClient vs ochre.PersistentClient "
           f"({started:%Y-%m-%d %H:%M}, Ochre {git_commit()})", "",
           f"* **Command:** `{command}`",
           f"* **Machine:** {host}",
           "* **Versions:** " + ", ".join(
               f"{i} {results[i]['ingest'].get('version', '?')}" for i in args.impl if i in results),
           f"* **Data:** pypi-minilm, first {args.n:,} rows (384-d, f16 → f32), document = summary, "
           f"metadata year, letter, bucket, rank; {args.queries} held-out queries; "
           f'`configuration={{"hnsw": {{"space": "cosine"}}}}`, `embedding_function=None`.',
           f"* **Queries:** one embedding per call (numpy (1, 384) float32), n_results {K}, one thread; "
           f"best of {args.passes} pass{'es' if args.passes > 1 else ''} by p50 after {args.warmup} warm-up queries. Recall@10 against "
           f"{gt_source}; filtered against an exact inner-product top-10 of the matching rows; an exact "
           f"cosine scan scores {cos_ceiling:.4f} against the unfiltered truth (f16 rounding).",
           "* **Processes:** each implementation in fresh subprocesses on a fresh directory, one after "
           "the other; peak RSS = the child's VmHWM (its own high-water mark), including the "
           "interpreter, the imported package and the data set the child loaded (the row below it).",
           "", table(args, results, truth)]
    notes = []
    for impl in args.impl:
        r = results.get(impl, {})
        for phase in ("ingest", "reopen"):
            rp = r.get(phase, {})
            if "error" in rp:
                notes.append(f"* {impl} {phase} process failed: `{rp['error']}`")
            for d in rp.get("api_differences", []):
                notes.append(f"* {impl} ({phase}): {d}")
        ing, reo = r.get("ingest", {}), r.get("reopen", {})
        if ing.get("q_dist_ids") and reo.get("first_ids") and reo["first_ids"] != ing["q_dist_ids"][0]:
            same = len(set(reo["first_ids"]) & set(ing["q_dist_ids"][0]))
            notes.append(f"* {impl}: the first query after reopen shares {same}/{K} ids with the same "
                         "query before it")
        if reo.get("count") is not None and ing.get("count") is not None and reo["count"] != ing["count"]:
            notes.append(f"* {impl}: count() after reopen {reo['count']}, before {ing['count']}")
    if notes:
        out += ["", "Notes:", ""] + notes
    print("\n".join(out), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": command, "machine": host, "results": results}, f)


if __name__ == "__main__":
    main()
