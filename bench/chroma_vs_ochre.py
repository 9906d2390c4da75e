#!/usr/bin/env python3
"""End-to-end benchmark: Chroma 1.5.9 (`chroma run`) against Ochre (`ochre run`) over HTTP with
the official `chromadb.HttpClient`, plus the same workload through Ochre's embedded Rust API
(crates/bench `embedded`) to show what HTTP costs.

Run it through `bench/chroma_vs_ochre.sh` (creates the venv, builds Ochre), e.g.

    bench/chroma_vs_ochre.sh --scale 10000      # quick, a few minutes
    bench/chroma_vs_ochre.sh                    # headline, 100,000 records

Data: the pypi-minilm set (`../shared/datasets/pypi-minilm`, env OCHRE_DATASET): the first N
base rows with their summary as document and year, letter, bucket, rank as metadata; the 1,000
held-out queries; recall@10 against the shipped exact ground truth `gt_<N>.i32` (inner product)
and, for filtered and `$contains` queries, against an exact inner-product ranking of the
matching rows computed here with numpy.

Both servers run side by side on fresh temporary directories and free ports; phases alternate
between them (Chroma then Ochre, pass by pass), each timed phase is repeated `--passes` times
and the fastest pass is reported (this machine varies by tens of percent between runs). Every
request is one client call with one query embedding, n_results 10 and the client's default
`include` (documents, metadatas, distances). Peak RSS is sampled with psutil (server process and
children) for the whole run. The Markdown table is printed and, unless `--no-write`, appended
to docs/benchmarks.md.
"""
import argparse
import atexit
import datetime
import gzip
import itertools
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request

import numpy as np
from neighbours import exact_top_k, pct, recall  # noqa: E402  (bench/, beside this file)
import psutil

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import chromadb  # noqa: E402  (after the telemetry switch)
from chromadb.config import Settings  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DIM = 384
K = 10
COLLECTION = "bench"
SECTION = "## End to end: Ochre vs Chroma 1.5.9 over HTTP"
CHROMA_CLI = "import sys; from chromadb.cli.cli import app; sys.argv[0] = 'chroma'; sys.exit(app())"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Data


def load_f16(path, rows):
    data = np.fromfile(path, dtype="<f2", count=rows * DIM).astype(np.float32)
    return data.reshape(-1, DIM)


def load_records(path, n):
    """The first n rows of records.tsv.gz as dicts, and the uncompressed TSV text (for Rust)."""
    recs, lines = [], []
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        header = f.readline()
        lines.append(header)
        cols = header.rstrip("\n").split("\t")
        for line in f:
            if len(recs) == n:
                break
            lines.append(line)
            fields = line.rstrip("\n").split("\t", len(cols) - 1)
            r = dict(zip(cols, fields))
            recs.append(r)
    if len(recs) != n:
        raise SystemExit(f"{path}: only {len(recs)} records, {n} wanted")
    return recs, "".join(lines)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dir_size(path):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


class Server:
    """One server process on its own data directory and port; restartable; peak RSS sampled."""

    live = []

    def __init__(self, name, argv, data_dir, port, logs_dir, start_timeout):
        self.name, self.argv, self.data_dir, self.port = name, argv, data_dir, port
        self.log_path = os.path.join(logs_dir, f"{name.lower()}.log")
        self.start_timeout = start_timeout
        self.proc = None
        self.peak_rss = 0
        self._stop_sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        Server.live.append(self)

    def start(self):
        """Spawns the process; returns its Popen time (perf_counter)."""
        logf = open(self.log_path, "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        logf.close()
        if not self._sampler.is_alive():
            self._sampler.start()
        return t0

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def check_alive(self):
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise RuntimeError(
                f"{self.name} exited (status {code}); last lines of {self.log_path}:\n{self.log_tail()}"
            )

    def wait_heartbeat(self):
        deadline = time.time() + self.start_timeout
        url = f"http://127.0.0.1:{self.port}/api/v2/heartbeat"
        while time.time() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(
            f"{self.name} did not answer {url} within {self.start_timeout:.0f} s; "
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout=120):
        """SIGTERM and wait; SIGKILL after `timeout`. Returns the seconds it took to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        t0 = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"{self.name} ignored SIGTERM for {timeout} s; killing it")
            self.kill()
        return time.perf_counter() - t0

    def kill(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def close(self):
        self._stop_sampling.set()
        if self.proc is not None and self.proc.poll() is None:
            self.stop(timeout=30)
        self.kill()

    def _sample(self):
        while not self._stop_sampling.is_set():
            proc = self.proc
            if proc is not None and proc.poll() is None:
                try:
                    p = psutil.Process(proc.pid)
                    rss = p.memory_info().rss
                    for c in p.children(recursive=True):
                        try:
                            rss += c.memory_info().rss
                        except psutil.Error:
                            pass
                    self.peak_rss = max(self.peak_rss, rss)
                except psutil.Error:
                    pass
            self._stop_sampling.wait(0.05)

    def client(self):
        return chromadb.HttpClient(
            host="127.0.0.1", port=self.port, settings=Settings(anonymized_telemetry=False)
        )

    def handle(self):
        """A new client and its handle on the benchmark collection."""
        client = self.client()
        return Handle(client, client.get_collection(COLLECTION, embedding_function=None))

    def server_seconds(self, route_suffix):
        """(requests, total seconds) on POST routes ending in `route_suffix`, from Ochre's
        /metrics; None when the server has no such metrics (Chroma)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
                text = r.read().decode()
        except OSError:
            return None
        count = total = None
        for line in text.splitlines():
            labels, _, value = line.rpartition(" ")
            if 'method="POST"' not in labels or not labels.endswith(f'{route_suffix}"}}'):
                continue
            value = float(value)
            if line.startswith("ochre_http_requests_total{"):
                count = value
            elif line.startswith("ochre_http_request_duration_seconds_sum{"):
                total = value
        return None if count is None or total is None else (count, total)


class Handle:
    def __init__(self, client, col):
        self.client, self.col = client, col


def _cleanup():
    for s in Server.live:
        try:
            s.close()
        except Exception as e:  # keep cleaning up the others
            log(f"cleanup of {s.name}: {e}")


atexit.register(_cleanup)


def _on_signal(signum, _frame):
    log(f"signal {signum}: stopping servers")
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


# ---------------------------------------------------------------------------------------------
# Workload over HTTP


def ingest(server, ids, base, docs, metas, batch):
    client = server.client()
    col = client.create_collection(
        COLLECTION, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    t0 = time.perf_counter()
    for i in range(0, len(ids), batch):
        j = i + batch
        col.add(ids=ids[i:j], embeddings=base[i:j], documents=docs[i:j], metadatas=metas[i:j])
    t_added = time.perf_counter()
    # Visible: count says N and a query with the last added vector finds its record.
    deadline = time.time() + 900
    last_id, last_vec = ids[-1], base[len(ids) - 1]
    while True:
        n = col.count()
        if n == len(ids):
            res = col.query(query_embeddings=[last_vec], n_results=K, include=[])
            if last_id in res["ids"][0]:
                break
        if time.time() > deadline:
            raise RuntimeError(f"{server.name}: records not visible 900 s after the last add (count {n})")
        server.check_alive()
        time.sleep(0.02)
    t_visible = time.perf_counter()
    return {
        "seconds": t_added - t0,
        "records_per_s": len(ids) / (t_added - t0),
        "visible_s": t_visible - t_added,
    }


def run_phase(server, items, clients, call, warmup):
    """One timed pass: `clients` threads, each with its own HttpClient, take items from a shared
    cursor. Returns latencies (s), throughput and per-item results, in item order."""
    handles = [server.handle() for _ in range(max(1, clients))]
    for item in items[:warmup]:
        call(handles[0], item)
    latencies = [0.0] * len(items)
    results = [None] * len(items)
    cursor = itertools.count()
    errors = []
    barrier = threading.Barrier(len(handles) + 1)

    def worker(h):
        barrier.wait()
        try:
            while True:
                i = next(cursor)
                if i >= len(items):
                    return
                t = time.perf_counter()
                results[i] = call(h, items[i])
                latencies[i] = time.perf_counter() - t
        except Exception as e:  # reported below, with the server's log
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(h,), daemon=True) for h in handles]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        server.check_alive()
        raise RuntimeError(f"{server.name}: {errors[0]!r}")
    return {"latencies": latencies, "qps": len(items) / elapsed, "results": results}


def best_of(servers, passes, items, clients, call, warmup):
    """Alternates servers pass by pass; keeps each server's fastest pass."""
    best = {}
    for _ in range(passes):
        for s in servers:
            r = run_phase(s, items, clients, call, warmup)
            if s.name not in best or r["qps"] > best[s.name]["qps"]:
                best[s.name] = r
    return best


def query_call(where=None, where_document=None):
    def call(h, q):
        res = h.col.query(query_embeddings=[q], n_results=K, where=where, where_document=where_document)
        return [int(i) for i in res["ids"][0]]

    return call


def get_call(h, ids):
    return h.col.get(ids=ids)["ids"]


def count_call(h, _):
    return h.col.count()


def heartbeat_call(h, _):
    return h.client.heartbeat()


def time_to_first_query(server, query):
    """Restart: SIGTERM, wait, spawn, and time until a query returns K results."""
    stop_s = server.stop()
    t0 = server.start()
    deadline = time.time() + server.start_timeout
    while True:
        server.check_alive()
        try:
            res = server.handle().col.query(query_embeddings=[query], n_results=K, include=[])
            if len(res["ids"][0]) == K:
                break
        except Exception:
            if time.time() > deadline:
                raise RuntimeError(
                    f"{server.name}: no answer to a query {server.start_timeout:.0f} s after restart; "
                    f"last lines of {server.log_path}:\n{server.log_tail()}"
                )
            time.sleep(0.01)
    return stop_s, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Report


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram = psutil.virtual_memory().total / 2**30
    return f"{model}, {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {ram:.0f} GiB RAM, {platform.system()} {platform.machine()}"


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", ROOT, "status", "--porcelain"], capture_output=True, text=True).stdout
        # Changes that can alter what is measured: Ochre's crates other than the benchmark's.
        dirty = sorted({line[3:] for line in status.splitlines() if line[3:].startswith("crates/") and not line[3:].startswith("crates/bench/")})
        if not dirty:
            return rev
        shown = ", ".join(f"`{d}`" for d in dirty[:4]) + (f" and {len(dirty) - 4} more" if len(dirty) > 4 else "")
        return f"{rev} with uncommitted changes to {shown}"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "recall":
        return f"{v:.4f}"
    if unit in ("ms", "s") and v < 0.001:
        return "<0.001"
    if unit == "ms":
        return f"{v:.3f}" if v < 0.1 else f"{v:.2f}" if v < 10 else f"{v:.1f}"
    if unit == "s":
        return f"{v:.3f}" if v < 1 else f"{v:.2f}"
    if unit == "MiB":
        return f"{v / 2**20:.1f}"
    return f"{v:,.0f}"


def table(rows, with_embedded):
    head = "| metric | Chroma | Ochre | Ochre / Chroma | better |"
    sep = "|---|---|---|---|---|"
    if with_embedded:
        head = "| metric | Chroma | Ochre | Ochre embedded | Ochre / Chroma | better |"
        sep = "|---|---|---|---|---|---|"
    out = [head, sep]
    for name, unit, better, c, o, e in rows:
        if c is not None and o is not None and c > 0:
            ratio = f"{o / c:.2f}×"
        else:
            ratio = "–"
        cells = [name, fmt(c, unit), fmt(o, unit)]
        if with_embedded:
            cells.append(fmt(e, unit))
        cells += [ratio, better]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def append_to_doc(path, text):
    with open(path, encoding="utf-8") as f:
        doc = f.read()
    if SECTION not in doc:
        doc = doc.rstrip("\n") + "\n\n" + SECTION + "\n\n" + METHOD + "\n"
    start = doc.index(SECTION) + len(SECTION)
    nxt = doc.find("\n## ", start)
    end = len(doc) if nxt < 0 else nxt + 1
    doc = doc[:end].rstrip("\n") + "\n\n" + text.strip("\n") + "\n" + ("\n" + doc[end:] if end < len(doc) else "")
    with open(path, "w", encoding="utf-8") as f:
        f.write(doc)


METHOD = """\
`bench/chroma_vs_ochre.sh [--scale N]` starts `chroma run` (chromadb 1.5.9 from PyPI) and
`ochre run` (release build) on fresh temporary directories and drives both with the official
`chromadb.HttpClient` (1.5.9), alternating between them phase by phase and pass by pass; the
same workload also runs through Ochre's embedded Rust API (`crates/bench` binary `embedded`, no
HTTP) to show what the HTTP layer and the Python client cost.

* **Data:** `../shared/datasets/pypi-minilm`: the first N base rows (all-MiniLM-L6-v2, 384
  dimensions, read as f32 from f16), summary as document, `year`, `letter`, `bucket`, `rank` as
  metadata; collection `{"hnsw": {"space": "cosine"}}` with Chroma's other defaults.
* **Ingest:** `add` in batches of 1,000 with embeddings, documents and metadata, one client,
  one pass (not best of three: expect ±15 %); "visible" is the time from the last `add`
  returning until `count()` is N and a query with the last vector finds it.
* **Queries:** one embedding per request, n_results 10, the client's default `include`
  (documents, metadatas, distances); latencies measured in the client; 4 clients are 4 threads
  with their own `HttpClient` sharing one queue of queries (the Python client holds the GIL
  while it encodes and decodes, so it caps what either server can show). Each timed phase runs
  `--passes` times (default 3) and the fastest pass is reported.
* **Recall@10:** unfiltered against the shipped `gt_<N>.i32`; filtered (`bucket < 50`, `< 10`,
  `== 7`: 50 %, 10 %, 1 %) and `$contains` against an exact inner-product ranking of the
  matching rows (numpy).
* **Heartbeat:** `client.heartbeat()` p50, the per-request floor of the Python client and HTTP
  on loopback; Ochre's `/metrics` give its own time per query request (in a note below a run).
* **Peak RSS:** the server process and its children, sampled every 50 ms over the whole run
  (ingest, queries, restart). **Data dir:** apparent size of all files.
* **Restart:** SIGTERM, wait for exit, spawn, time until the first query returns 10 results.
  The embedded column times close (`drop`) and `Ochre::open` to the first query instead."""


# ---------------------------------------------------------------------------------------------


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_ds = os.environ.get("OCHRE_DATASET", os.path.join(ROOT, "..", "shared", "datasets", "pypi-minilm"))
    ap.add_argument("--scale", type=int, default=100_000,
                    help="records; a gt_<N>.i32 must exist (10000, 20000, 100000). Default 100000")
    ap.add_argument("--dataset", default=default_ds, help="default ../shared/datasets/pypi-minilm or $OCHRE_DATASET")
    ap.add_argument("--ochre-bin", default=os.environ.get("OCHRE_BIN", os.path.join(ROOT, "target", "release", "ochre")))
    ap.add_argument("--embedded-bin", default=os.environ.get("OCHRE_EMBEDDED_BIN"),
                    help="default $OCHRE_EMBEDDED_BIN, else cargo run --release -p ochre-bench --bin embedded")
    ap.add_argument("--chroma", default=None,
                    help="a `chroma` CLI to run (default: chromadb's CLI in this Python, as its `chroma` script does)")
    ap.add_argument("--queries", type=int, default=1000, help="unfiltered queries per pass (at most 1000)")
    ap.add_argument("--filtered-queries", type=int, default=200, help="queries per filtered and $contains pass")
    ap.add_argument("--passes", type=int, default=3, help="passes per timed phase; the fastest is reported")
    ap.add_argument("--clients", default="1,4", help="concurrent clients of the unfiltered phase")
    ap.add_argument("--batch", type=int, default=1000, help="records per add")
    ap.add_argument("--word", default="data", help="the $contains word (case-sensitive, as in Chroma)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed requests before each pass")
    ap.add_argument("--no-embedded", action="store_true", help="skip the embedded Rust run")
    ap.add_argument("--no-write", action="store_true", help="print the table only; do not append to docs/benchmarks.md")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (data, logs)")
    ap.add_argument("--timeout", type=float, default=4 * 3600, help="abort the whole run after this many seconds")
    args = ap.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    args.dataset = os.path.abspath(args.dataset)
    return args


class Workload:
    """The data of one run, and the exact answers recall is measured against."""

    def __init__(self, args):
        n, ds = args.scale, args.dataset
        for f in ("base.f16", "queries.f16", "records.tsv.gz", f"gt_{n}.i32"):
            if not os.path.exists(os.path.join(ds, f)):
                raise SystemExit(f"{os.path.join(ds, f)} is missing "
                                 "(data set: --dataset or OCHRE_DATASET; --scale needs its gt_<N>.i32)")
        log(f"loading {n} records from {ds}")
        self.n = n
        self.base = load_f16(os.path.join(ds, "base.f16"), n)
        self.queries = load_f16(os.path.join(ds, "queries.f16"), 1000)[: args.queries]
        self.truth = np.fromfile(os.path.join(ds, f"gt_{n}.i32"), dtype="<i4").reshape(1000, 100)[: args.queries]
        recs, self.tsv = load_records(os.path.join(ds, "records.tsv.gz"), n)
        self.ids = [r["row"] for r in recs]
        if self.ids != [str(i) for i in range(n)]:
            raise SystemExit("records.tsv.gz: rows are not 0..N-1 in order")
        self.docs = [r["summary"] for r in recs]
        self.metas = [
            {"year": int(r["year"]), "letter": r["letter"], "bucket": int(r["bucket"]), "rank": int(r["rank"])}
            for r in recs
        ]
        bucket = np.array([m["bucket"] for m in self.metas])
        self.fq = self.queries[: args.filtered_queries]
        # (name, where, matching rows)
        self.filters = [
            ("50 %", {"bucket": {"$lt": 50}}, bucket < 50),
            ("10 %", {"bucket": {"$lt": 10}}, bucket < 10),
            ("1 %", {"bucket": 7}, bucket == 7),
        ]
        self.filter_truth = {name: exact_top_k(self.base, self.fq, np.flatnonzero(m)) for name, _, m in self.filters}
        self.word = args.word
        self.contains_mask = np.array([args.word in d for d in self.docs])
        self.contains_truth = exact_top_k(self.base, self.fq, np.flatnonzero(self.contains_mask))
        rng = np.random.default_rng(7)
        self.get_batches = [[str(i) for i in rng.choice(n, 100, replace=False)] for _ in range(200)]
        # What an exact cosine search scores against the inner-product ground truth (f16 rounding
        # leaves the vectors only nearly unit length).
        normed = self.base / np.linalg.norm(self.base, axis=1, keepdims=True)
        self.cos_ceiling = recall(exact_top_k(normed, self.queries, np.arange(n)), self.truth)


def run_http(args, work, w, ochre_bin):
    """Both servers through every phase; returns per-server results."""
    # The venv's `chroma` script, run with this interpreter (its #! line may name another).
    chroma = [args.chroma] if args.chroma else [sys.executable, "-c", CHROMA_CLI]
    servers = []
    for name, exe in (("Chroma", chroma), ("Ochre", [ochre_bin])):
        data_dir, port = os.path.join(work, f"{name.lower()}-data"), free_port()
        argv = exe + ["run", "--path", data_dir, "--host", "127.0.0.1", "--port", str(port)]
        servers.append(Server(name, argv, data_dir, port, work, start_timeout=300))
    for s in servers:
        s.start()
    for s in servers:
        t = time.perf_counter()
        s.wait_heartbeat()
        log(f"{s.name} up on port {s.port} ({time.perf_counter() - t:.1f} s)")

    res = {s.name: {} for s in servers}

    def phase(key, items, clients, call):
        best = best_of(servers, args.passes, items, clients, call, args.warmup)
        for s in servers:
            res[s.name][key] = best[s.name]

    for s in servers:
        log(f"{s.name}: ingest {w.n} records")
        before = s.server_seconds("/add")
        r = res[s.name]["ingest"] = ingest(s, w.ids, w.base, w.docs, w.metas, args.batch)
        after = s.server_seconds("/add")
        if after and after[0] > (before or (0, 0))[0]:
            b = before or (0, 0)
            res[s.name]["server_add_ms"] = (after[1] - b[1]) / (after[0] - b[0]) * 1000
        res[s.name]["size_ingest"] = dir_size(s.data_dir)
        log(f"{s.name}: {r['records_per_s']:.0f} records/s, visible {r['visible_s']:.3f} s after the last add")
    for c in args.clients:
        log(f"unfiltered queries, {c} client(s)")
        before = [s.server_seconds("/query") for s in servers]
        phase(f"query{c}", list(w.queries), c, query_call())
        for s, b in zip(servers, before):
            a = s.server_seconds("/query")
            if a and b and a[0] > b[0]:
                res[s.name][f"server_ms{c}"] = (a[1] - b[1]) / (a[0] - b[0]) * 1000
    for name, where, _ in w.filters:
        log(f"filtered queries {name}")
        phase(f"filter {name}", list(w.fq), 1, query_call(where=where))
    log(f"$contains {w.word!r} queries")
    phase("contains", list(w.fq), 1, query_call(where_document={"$contains": w.word}))
    log("get by 100 ids, count")
    phase("get", w.get_batches, 1, get_call)
    phase("count", list(range(1000)), 1, count_call)
    phase("heartbeat", list(range(1000)), 1, heartbeat_call)
    for s in servers:
        if sorted(res[s.name]["get"]["results"][0]) != sorted(w.get_batches[0]):
            raise RuntimeError(f"{s.name}: get by ids returned the wrong records")
        if res[s.name]["count"]["results"][0] != w.n:
            raise RuntimeError(f"{s.name}: count {res[s.name]['count']['results'][0]}, {w.n} added")

    for s in servers:
        log(f"{s.name}: restart")
        stop_s, restart_s = time_to_first_query(s, w.queries[0])
        res[s.name].update(stop_s=stop_s, restart_s=restart_s, size_restart=dir_size(s.data_dir))
        log(f"{s.name}: stopped in {stop_s:.2f} s, first query {restart_s:.2f} s after spawn")
    for s in servers:
        s.close()
        res[s.name]["peak_rss"] = s.peak_rss
    return res


def report(args, w, res, emb):
    """The Markdown section: header lines, the table, notes."""
    clients = args.clients
    cols = [http_column(res["Chroma"], clients, w.filters), http_column(res["Ochre"], clients, w.filters),
            embedded_column(emb, clients, w.filters) if emb else None]

    def row(label, unit, better, f):
        return (label, unit, better, *[None if c is None else f(c) for c in cols])

    rows = [
        row("ingest, records/s (batches of 1,000)", "n", "higher", lambda c: c["ingest"]),
        row("last add → visible to queries, s", "s", "lower", lambda c: c["visible"]),
    ]
    for c in clients:
        who = "1 client" if c == 1 else f"{c} clients"
        rows += [
            row(f"query p50, ms ({who})", "ms", "lower", lambda x, c=c: pct(x[f"q{c}"][0], 50)),
            row(f"query p95, ms ({who})", "ms", "lower", lambda x, c=c: pct(x[f"q{c}"][0], 95)),
            row(f"query p99, ms ({who})", "ms", "lower", lambda x, c=c: pct(x[f"q{c}"][0], 99)),
            row(f"queries/s ({who})", "n", "higher", lambda x, c=c: x[f"q{c}"][1]),
        ]
    rows.append(row("recall@10 (unfiltered)", "recall", "higher", lambda x: recall(x[f"q{clients[0]}"][2], w.truth)))
    for f, _, mask in w.filters:
        rows += [
            row(f"filtered {f} ({mask.sum():,} rows): p50, ms", "ms", "lower", lambda x, f=f: pct(x[f"f{f}"][0], 50)),
            row(f"filtered {f}: recall@10", "recall", "higher",
                lambda x, f=f: recall(x[f"f{f}"][2], w.filter_truth[f])),
        ]
    contains = f"`$contains \"{w.word}\"`"
    rows += [
        row(f"{contains} ({w.contains_mask.sum():,} rows): p50, ms", "ms", "lower", lambda x: pct(x["contains"][0], 50)),
        row(f"{contains}: recall@10", "recall", "higher", lambda x: recall(x["contains"][2], w.contains_truth)),
        row("get 100 ids: p50, ms", "ms", "lower", lambda x: pct(x["get"], 50)),
        row("count: p50, ms", "ms", "lower", lambda x: pct(x["count"], 50)),
        row("heartbeat (client + HTTP floor): p50, ms", "ms", "lower", lambda x: x["heartbeat"]),
        row("peak RSS, MiB", "MiB", "lower", lambda x: x["rss"]),
        row("data dir after ingest, MiB", "MiB", "lower", lambda x: x["size"]),
        row("data dir after restart, MiB", "MiB", "lower", lambda x: x["size_closed"]),
        row("restart → first query, s", "s", "lower", lambda x: x["restart"]),
    ]
    notes = [
        f"An exact cosine search scores recall@10 {w.cos_ceiling:.4f} against the inner-product ground "
        "truth (f16 rounding leaves the vectors only nearly unit length).",
        "Shutdown on SIGTERM: " + ", ".join(f"{name} {res[name]['stop_s']:.2f} s" for name in ("Chroma", "Ochre"))
        + (f"; embedded close {emb['close_s']:.2f} s" if emb else "") + ".",
    ]
    if "server_ms1" in res["Ochre"]:
        notes.append(
            f"Ochre's `/metrics` put its own time per unfiltered query request (JSON in and out, the "
            f"engine, the blocking pool) at {res['Ochre']['server_ms1']:.3f} ms on average with 1 client"
            + (f", {res['Ochre']['server_ms4']:.3f} ms with 4" if "server_ms4" in res["Ochre"] else "")
            + "; the rest of the client-side latency is the Python client and the loopback round trip.")
    if "server_add_ms" in res["Ochre"]:
        per_batch = args.batch / res["Ochre"]["ingest"]["records_per_s"] * 1000
        notes.append(
            f"Ingest: Ochre's `/metrics` put its own time per `add` of {args.batch:,} records at "
            f"{res['Ochre']['server_add_ms']:.1f} ms, of the {per_batch:.1f} ms per batch the client saw"
            + (f"; the embedded `add` takes {args.batch / emb['ingest']['records_per_s'] * 1000:.1f} ms" if emb else "")
            + ".")
    cpus = len(os.sched_getaffinity(0))
    if max(clients) > cpus:
        notes.append(f"With {max(clients)} clients on {cpus} CPUs requests also wait for a core (the clients, "
                     "the server and its threads share them): that wait is most of the embedded column's "
                     f"{max(clients)}-client p99.")
    if emb and emb.get("peak_rss_bytes"):
        notes.append(f"The embedded process peaked at {emb['peak_rss_bytes'] / 2**20:.0f} MiB, including the "
                     "data set it holds in memory, so its column has no RSS figure.")
    bullet = dict(width=100, initial_indent="* ", subsequent_indent="  ", break_on_hyphens=False)
    command = os.environ.get("OCHRE_BENCH_COMMAND") or " ".join(["python", "bench/chroma_vs_ochre.py"] + sys.argv[1:])
    return "\n".join([
        f"### {w.n:,} records ({datetime.date.today().isoformat()})",
        "",
        f"* **Command:** `{command}`",
        f"* **Machine:** {machine()}",
        textwrap.fill(f"**Versions:** chromadb {chromadb.__version__} (`chroma run`), Ochre {git_rev()}", **bullet),
        textwrap.fill(f"**Workload:** {len(w.queries):,} queries per pass (filtered and `$contains`: "
                      f"{len(w.fq):,}), {args.passes} pass{'es' if args.passes != 1 else ''} per phase (fastest reported), n_results {K}.", **bullet),
        "",
        table(rows, emb is not None),
        "",
        *[textwrap.fill(x, **bullet) for x in notes],
    ])


def start_run(args, prefix, need_ochre=True):
    """What every benchmark run of this folder does first: a watchdog that ends the run (and its
    servers) after `args.timeout` seconds, checks of the binaries it will start, a work directory
    removed at exit when the run finished (`mark_finished`, which also stops the watchdog) and
    not `args.keep`. Returns
    `(work, mark_finished)`."""
    watchdog = threading.Timer(
        args.timeout, lambda: (log(f"run exceeded {args.timeout:.0f} s; aborting"), _cleanup(), os._exit(3))
    )
    watchdog.daemon = True
    watchdog.start()
    if args.chroma is not None and not os.path.exists(args.chroma):
        raise SystemExit(f"{args.chroma}: no such `chroma` CLI")
    if need_ochre and not os.path.exists(args.ochre_bin):
        raise SystemExit(f"{args.ochre_bin}: no ochre binary (cargo build --release -p ochre-cli, or set OCHRE_BIN)")
    if chromadb.__version__ != "1.5.9":
        log(f"warning: chromadb {chromadb.__version__}, not 1.5.9")
    work = tempfile.mkdtemp(prefix=prefix)
    log(f"work directory {work}")
    finished = []

    def remove_work():
        if finished and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work} (data directories and server logs)")

    # Registered after this module's server cleanup, so it runs first at exit; on success the
    # servers have stopped by then, on failure the directory is kept anyway.
    atexit.register(remove_work)

    def mark_finished():
        finished.append(True)
        watchdog.cancel()

    return work, mark_finished


def main():
    args = parse_args()
    work, mark_finished = start_run(args, "ochre-vs-chroma-")
    w = Workload(args)

    # A copy: a rebuild elsewhere during the run must not swap the binary under the restart.
    ochre_bin = shutil.copy2(args.ochre_bin, os.path.join(work, "ochre"))

    res = run_http(args, work, w, ochre_bin)
    emb = None if args.no_embedded else run_embedded(args, w, work)
    text = report(args, w, res, emb)
    print(text)
    if not args.no_write:
        append_to_doc(os.path.join(ROOT, "docs", "benchmarks.md"), text)
        log("appended to docs/benchmarks.md")
    mark_finished()


def http_column(r, clients, filters):
    """A server's figures for the table, from what the HTTP phases recorded."""
    out = {
        "ingest": r["ingest"]["records_per_s"],
        "visible": r["ingest"]["visible_s"],
        "contains": (r["contains"]["latencies"], r["contains"]["qps"], r["contains"]["results"]),
        "get": r["get"]["latencies"],
        "count": r["count"]["latencies"],
        "heartbeat": pct(r["heartbeat"]["latencies"], 50),
        "rss": r["peak_rss"],
        "size": r["size_ingest"],
        "size_closed": r["size_restart"],
        "restart": r["restart_s"],
    }
    for c in clients:
        q = r[f"query{c}"]
        out[f"q{c}"] = (q["latencies"], q["qps"], q["results"])
    for fname, _, _ in filters:
        q = r[f"filter {fname}"]
        out[f"f{fname}"] = (q["latencies"], q["qps"], q["results"])
    return out


def embedded_column(e, clients, filters):
    """The same figures from the JSON of the embedded run."""

    def phase(p):
        return (p["latencies"], p["qps"], [[int(i) for i in ids] for ids in p["ids"]])

    out = {
        "ingest": e["ingest"]["records_per_s"],
        "visible": e["ingest"]["visible_s"],
        "contains": phase(e["contains"]),
        "get": e["get"]["latencies"],
        "count": e["count"]["latencies"],
        "heartbeat": None,
        "rss": None,
        "size": e["data_dir_bytes"],
        "size_closed": e["data_dir_bytes_closed"],
        "restart": e["restart_s"],
    }
    for c in clients:
        out[f"q{c}"] = phase(e["query"][str(c)])
    for p, (fname, _, _) in zip(e["filtered"], filters):
        out[f"f{fname}"] = phase(p)
    return out


def run_embedded(args, w, work):
    """The workload through Ochre's embedded API (crates/bench `embedded`); its JSON results."""
    tsv_path = os.path.join(work, "records.tsv")
    with open(tsv_path, "w", encoding="utf-8", newline="\n") as f:
        f.write(w.tsv)
    spec = {
        "dataset": args.dataset,
        "records_tsv": tsv_path,
        "data_dir": os.path.join(work, "embedded-data"),
        "n": w.n,
        "batch_size": args.batch,
        "queries": len(w.queries),
        "passes": args.passes,
        "clients": args.clients,
        "warmup": args.warmup,
        "filters": [{"name": name, "where": where, "queries": len(w.fq)} for name, where, _ in w.filters],
        "contains": {"word": w.word, "queries": len(w.fq)},
        "get_batches": w.get_batches,
        "count_calls": 1000,
    }
    spec_path = os.path.join(work, "workload.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    if args.embedded_bin:
        argv = [shutil.copy2(args.embedded_bin, os.path.join(work, "embedded")), spec_path]
    else:
        argv = ["cargo", "run", "--release", "-q", "-p", "ochre-bench", "--bin", "embedded", "--", spec_path]
    log("embedded: " + " ".join(argv))
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
    if p.returncode != 0:
        raise RuntimeError(f"embedded run failed (status {p.returncode}):\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout)
    log(f"embedded: {out['ingest']['records_per_s']:.0f} records/s")
    return out


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        log(f"error: {e}")
        sys.exit(1)
