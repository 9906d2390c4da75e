// Dashboard benchmark: how long each view takes to show its data in headless Chromium on a
// collection of N pypi-minilm records, against the same API call timed alone (the dashboard's
// overhead). Run by bench/dashboard.sh; prints a Markdown table.
//
//   node bench/dashboard.mjs --n 100000 [--runs 5]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createRequire } from 'node:module';

const require = createRequire(join(process.cwd(), 'tests/dashboard/package.json'));
const { chromium } = require('playwright-core');

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const N = Number(args.n || 100000);
const RUNS = Number(args.runs || 5);
const BIN = process.env.OCHRE_BIN || 'target/release/ochre';
const DATA = process.env.OCHRE_DATASET || '../shared/datasets/pypi-minilm';
const DIM = 384;
const BATCH = 1000;
const DB = '/api/v2/tenants/default_tenant/databases/default_database';

function log(msg) {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function f16(h) {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

function load() {
  const base = readFileSync(join(DATA, 'base.f16'));
  const rows = gunzipSync(readFileSync(join(DATA, 'records.tsv.gz'))).toString('utf8').split('\n');
  const cols = rows[0].split('\t');
  const records = [];
  for (let r = 0; r < N; r++) {
    const fields = rows[r + 1].split('\t');
    const rec = Object.fromEntries(cols.map((c, i) => [c, fields[i]]));
    const v = new Array(DIM);
    for (let j = 0; j < DIM; j++) v[j] = f16(base.readUInt16LE((r * DIM + j) * 2));
    records.push({ id: `pkg-${r}`, v, doc: rec.summary, meta: { name: rec.name, year: Number(rec.year), bucket: Number(rec.bucket), letter: rec.letter } });
  }
  return records;
}

function serve() {
  const data = mkdtempSync(join(tmpdir(), 'ochre-bench-dashboard-'));
  const child = spawn(BIN, ['run', '--path', data, '--host', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.on('error', reject);
    child.stdout.on('data', (c) => {
      out += c;
      const m = out.match(/serving (http:\/\/[^/\s]+)\/api\/v2/);
      if (m) resolve({ url: m[1], data, child });
    });
  });
}

async function call(server, method, path, body) {
  const resp = await fetch(server.url + path, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await resp.text();
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main() {
  log(`loading ${N} records`);
  const records = load();
  const server = await serve();
  const schema = {
    keys: {
      '#embedding': { float_list: { vector_index: { enabled: true, config: { space: 'cosine' } } } },
      bm25: {
        sparse_vector: {
          sparse_vector_index: {
            enabled: true,
            config: { bm25: true, source_key: '#document', embedding_function: { type: 'known', name: 'chroma_bm25', config: {} } },
          },
        },
      },
    },
  };
  const c = await call(server, 'POST', `${DB}/collections`, { name: 'pypi', schema });
  const coll = `${DB}/collections/${c.id}`;
  const t0 = performance.now();
  for (let i = 0; i < N; i += BATCH) {
    const b = records.slice(i, i + BATCH);
    await call(server, 'POST', `${coll}/add`, { ids: b.map((r) => r.id), embeddings: b.map((r) => r.v), documents: b.map((r) => r.doc), metadatas: b.map((r) => r.meta) });
  }
  log(`ingested ${N} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
  const dash = `${server.url}/dashboard/#/t/default_tenant/d/default_database`;
  const lastPage = Math.ceil(N / 25);
  const probe = records[Math.floor(N / 2)];
  const enc = encodeURIComponent;
  // Each case: a URL (or an action) and what must be on screen; the API call it corresponds to.
  const cases = [
    { name: 'collections list', url: dash, ready: '#collections tbody tr', api: () => call(server, 'GET', `${DB}/collections?limit=20&offset=0`) },
    { name: 'records, first page (25)', url: `${dash}/c/pypi/records`, ready: 'table.records tbody tr', api: () => call(server, 'POST', `${coll}/get`, { limit: 26, offset: 0, include: ['documents', 'metadatas'] }) },
    { name: `records, last page (offset ${(lastPage - 1) * 25})`, url: `${dash}/c/pypi/records?page=${lastPage}`, ready: 'table.records tbody tr', api: () => call(server, 'POST', `${coll}/get`, { limit: 26, offset: (lastPage - 1) * 25, include: ['documents', 'metadatas'] }) },
    { name: 'records, where {"bucket": 7}', url: `${dash}/c/pypi/records?where=${enc('{"bucket": 7}')}`, ready: 'table.records tbody tr', api: () => call(server, 'POST', `${coll}/get`, { limit: 26, offset: 0, where: { bucket: 7 }, include: ['documents', 'metadatas'] }) },
    { name: 'records, where_document $contains "database"', url: `${dash}/c/pypi/records?where_document=${enc('{"$contains": "database"}')}`, ready: 'table.records tbody tr', api: () => call(server, 'POST', `${coll}/get`, { limit: 26, offset: 0, where_document: { $contains: 'database' }, include: ['documents', 'metadatas'] }) },
    {
      name: 'search, more like this (dense, 10)',
      url: `${dash}/c/pypi/search?like=${probe.id}`,
      ready: 'table.results tbody tr',
      api: async () => {
        const got = await call(server, 'POST', `${coll}/get`, { ids: [probe.id], include: ['embeddings', 'documents'] });
        return call(server, 'POST', `${coll}/search`, { searches: [{ filter: { '#id': { $nin: [probe.id] } }, rank: { $knn: { query: got.embeddings[0], limit: 50 } }, limit: { offset: 0, limit: 10 }, select: { keys: ['#document', '#metadata', '#score'] } }] });
      },
    },
    { name: 'health view', url: `${server.url}/dashboard/#/health`, ready: '#routes tbody tr', api: async () => { await call(server, 'GET', '/api/v2/admin/status'); return fetch(server.url + '/metrics').then((r) => r.text()); } },
  ];
  const rows = [];
  for (const k of cases) {
    const page_ = [];
    const api = [];
    for (let r = 0; r < RUNS; r++) {
      await page.goto('about:blank');
      const s = performance.now();
      await page.goto(k.url);
      await page.waitForSelector(k.ready, { timeout: 60000 });
      page_.push(performance.now() - s);
      const a = performance.now();
      await k.api();
      api.push(performance.now() - a);
    }
    rows.push([k.name, median(page_), median(api)]);
    log(`${k.name}: ${median(page_).toFixed(0)} ms (API ${median(api).toFixed(1)} ms)`);
  }
  await browser.close();
  server.child.kill('SIGTERM');
  await new Promise((r) => server.child.once('exit', r));
  rmSync(server.data, { recursive: true, force: true });
  console.log(`N = ${N} records, ${RUNS} runs each (median); ${cpus().length} CPUs (${cpus()[0].model}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB`);
  console.log('');
  console.log('| view | on screen (fresh page load), ms | its main API call alone, ms |');
  console.log('|---|---|---|');
  for (const [name, p, a] of rows) console.log(`| ${name} | ${p.toFixed(0)} | ${a.toFixed(1)} |`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
