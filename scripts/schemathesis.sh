#!/usr/bin/env bash
# Property-based API testing of `ochre run` with schemathesis (pinned in scripts/python-env.sh),
# against the server's own /openapi.json: every operation, in every phase (coverage, fuzzing,
# stateful). Fails on any server error (5xx), a response that does not match the document (status,
# content type, body schema, headers), a request that hangs past 20 s or a response slower than
# 10 s, and a server that dies or panics during the run.
#
#   scripts/schemathesis.sh                      # bounded (the CI run): 100 examples per operation
#   scripts/schemathesis.sh --max-examples 200 --max-time 1200   # a longer local run
#   OCHRE_BIN=/path/to/ochre scripts/schemathesis.sh --seed 123   # another binary, a fixed seed
#
# Options: --max-examples N; --max-time SECONDS (fuzzing and stateful testing then repeat until
# the budget is spent); --seed N (a failure prints the seed it ran with); --checks LIST (default:
# not_a_server_error and the four conformance checks); anything after `--` goes to `st run` as is.
# The binary is $OCHRE_BIN, default target/release/ochre (not built here). Only loopback is
# contacted: the server listens on 127.0.0.1 on a free port, with a fresh temporary data
# directory, and is stopped at the end.
#
# The fuzzer gets real identifiers to reach the engine: before the run, two collections with a few
# records (`st-main` of dimension 2 and `st-one` of dimension 1, in default_tenant/
# default_database) are created, and most generated path parameters are their names and ids (the
# rest stay random). Destructive operations are pointed at a sacrificial database and collection.
# Every 5xx fails.
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples=100
max_time=""
seed=""
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --max-examples) max_examples=$2; shift 2 ;;
    --max-time) max_time=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --checks) checks=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

bin=${OCHRE_BIN:-target/release/ochre}
[ -x "$bin" ] || { echo "no ochre binary at $bin (cargo build --release -p ochre-cli, or set OCHRE_BIN)" >&2; exit 2; }
bin=$(realpath "$bin")
venv=$(scripts/python-env.sh schemathesis)
py="$venv/bin/python"

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" run --path "$work/data" --host 127.0.0.1 --port "$port" > "$work/server.log" 2>&1 &
pid=$!

# Wait for the server, create the fixtures and write the schemathesis configuration.
if ! "$py" - "$port" "$work/schemathesis.toml" <<'PY'
import json, sys, time, urllib.request

port, config_path = sys.argv[1], sys.argv[2]
base = f"http://127.0.0.1:{port}/api/v2"
for _ in range(400):
    try:
        urllib.request.urlopen(f"{base}/heartbeat", timeout=1)
        break
    except OSError:
        time.sleep(0.05)
else:
    sys.exit("the server did not start")

def post(path, body):
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)

db = "/tenants/default_tenant/databases/default_database"
main = post(f"{db}/collections", {"name": "st-main", "metadata": {"purpose": "schemathesis"}})["id"]
post(f"{db}/collections/{main}/add", {
    "ids": ["a", "b", "c", "d"],
    "embeddings": [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [-1.0, 2.0]],
    "documents": ["hello world", "foo bar", None, "ab"],
    "metadatas": [{"k": 1, "s": "x"}, {"k": 2.5, "b": True}, None, {"s": "y", "tags": ["t1", "t2"]}],
})
# A second collection of dimension 1, which generated embeddings often match.
one = post(f"{db}/collections", {"name": "st-one"})["id"]
post(f"{db}/collections/{one}/add", {"ids": ["x", "y"], "embeddings": [[1.0], [-3.5]],
                                     "documents": ["one", "two"], "metadatas": [{"k": 1}, {"k": 2}]})
victim = post(f"{db}/collections", {"name": "st-victim"})["id"]
post("/tenants/default_tenant/databases", {"name": "st-victim-db"})

def values(*v):
    return "[" + ", ".join(json.dumps(x) for x in v) + "]"

by_name = "/api/v2/tenants/{tenant}/databases/{database}/collections/{collection_id}"
with open(config_path, "w") as f:
    f.write(f"""
[dictionaries.tenant]
values = {values("default_tenant")}
[dictionaries.database]
values = {values("default_database")}
[dictionaries.collection_id]
values = {values(main, one)}
[dictionaries.collection_name]
values = {values("st-main", "st-one")}
[dictionaries.crn]
values = {values("default_tenant:default_database:st-main")}
[dictionaries.victim_database]
values = {values("st-victim-db")}
[dictionaries.victim_collection]
values = {values("st-victim")}

[parameters]
"path.tenant" = {{ dictionary = "tenant", probability = 0.85 }}
"path.database" = {{ dictionary = "database", probability = 0.85 }}
"path.collection_id" = {{ dictionary = "collection_id", probability = 0.8 }}
"path.crn" = {{ dictionary = "crn", probability = 0.5 }}

# These two routes take the collection's name in their {{collection_id}} segment, as Chroma's do.
[[operations]]
include-name = "GET {by_name}"
parameters = {{ "path.collection_id" = {{ dictionary = "collection_name", probability = 0.7 }} }}

[[operations]]
include-name = "DELETE {by_name}"
parameters = {{ "path.collection_id" = {{ dictionary = "victim_collection", probability = 0.7 }} }}

[[operations]]
include-name = "DELETE /api/v2/tenants/{{tenant}}/databases/{{database}}"
parameters = {{ "path.database" = {{ dictionary = "victim_database", probability = 0.7 }} }}
""")
PY
then
  echo "setting up the fixtures failed; the server's log:" >&2
  tail -n 50 "$work/server.log" >&2
  exit 1
fi

args=(--checks "$checks" --max-examples "$max_examples" --workers 2 --request-timeout 20
  --max-response-time 10 --generation-database none --no-color)
[ -n "$max_time" ] && args+=(--max-time "$max_time")
[ -n "$seed" ] && args+=(--seed "$seed")

start=$(date +%s)
status=0
(cd "$work" && "$venv/bin/st" --config-file "$work/schemathesis.toml" run \
  "http://127.0.0.1:$port/openapi.json" "${args[@]}" "${extra[@]}") || status=$?
echo "schemathesis: $(( $(date +%s) - start )) s, exit $status"

if ! kill -0 "$pid" 2>/dev/null; then
  echo "the server died during the run; its log:" >&2
  tail -n 50 "$work/server.log" >&2
  status=1
elif grep -q "panicked" "$work/server.log"; then
  echo "the server panicked during the run:" >&2
  grep -A5 "panicked" "$work/server.log" | head -n 40 >&2
  status=1
fi
exit "$status"
