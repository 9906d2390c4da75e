// End-to-end tests of the dashboard (/dashboard) in headless Chromium, against real `ochre run`
// servers on loopback: one without auth, holding data the tests seed over the API, and one with a
// token. Run by scripts/dashboard-test.sh (OCHRE_BIN, CHROMIUM, OCHRE_TEST_MODEL_DIR, SCREENSHOTS).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = resolve(process.env.OCHRE_BIN || '../../target/debug/ochre');
const MODEL = process.env.OCHRE_TEST_MODEL_DIR || '';
const SHOTS = process.env.SCREENSHOTS || mkdtempSync(join(tmpdir(), 'ochre-shots-'));
const OWN_SHOTS = !process.env.SCREENSHOTS;
const TOKEN = 'dashboard-test-secret';
/** Reaches only default_tenant's `staging` database. */
const SCOPED = 'staging-only-secret';
/** A user of the htpasswd file: `open-sesame`, bcrypt cost 4. */
const USER = ['alice', 'open-sesame', '$2b$04$zPGgg0DmLExf6DFahGRhzO9ZDNhXY9ONSPOUVd/wkxjFn0CtNVfBu'];
/** Every server started, so none outlives the tests whatever fails. */
const children = [];
const DB = '/api/v2/tenants/default_tenant/databases/default_database';
const WAIT = { timeout: 20000 };

mkdirSync(SHOTS, { recursive: true });

/** Starts `ochre run` on a free port; resolves once it prints where it serves. */
function serve(config) {
  const data = mkdtempSync(join(tmpdir(), 'ochre-dashboard-'));
  const args = ['run', '--path', data, '--host', '127.0.0.1', '--port', '0'];
  if (MODEL) args.push('--model', MODEL);
  const file = config ? `${data}.yaml` : null;
  if (config) {
    writeFileSync(`${data}.htpasswd`, `${USER[0]}:${USER[2]}\n`);
    writeFileSync(file, config.replace('HTPASSWD', `${data}.htpasswd`));
    args.push(file);
  }
  const base = { ...process.env };
  // Only what the test gives: no token, model or collector from the developer's environment.
  for (const k of ['OCHRE_AUTH_TOKENS', 'OCHRE_MODEL_DIR', 'CHROMA_OPEN_TELEMETRY__ENDPOINT']) delete base[k];
  const child = spawn(BIN, args, {
    env: base,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const server = { data, file, child };
  children.push(server);
  return new Promise((done, fail) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error('ochre run did not start: ' + out));
    }, 60000);
    child.on('error', (e) => fail(new Error(`cannot start ${BIN}: ${e.message}`)));
    child.on('exit', (code) => fail(new Error(`ochre run exited with ${code}: ${out}`)));
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const api = out.match(/serving (http:\/\/[^/\s]+)\/api\/v2/);
      const dashboard = out.match(/Dashboard: (http:\/\/\S+)\n/);
      if (api && dashboard) {
        clearTimeout(timer);
        done(Object.assign(server, { url: api[1], dashboard: dashboard[1] }));
      }
    });
  });
}

/** Stops a server (SIGTERM, then SIGKILL after 10 s) and removes its files. */
async function stop(s) {
  const { child } = s;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(s.data, { recursive: true, force: true });
  for (const f of [s.file, `${s.data}.htpasswd`]) if (f) rmSync(f, { force: true });
}

async function call(server, method, path, body, token) {
  const headers = { 'Content-Type': 'application/json' };
  if (token) headers['X-Chroma-Token'] = token;
  const resp = await fetch(server.url + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await resp.text();
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const TOPICS = {
  bread: (i) => `Sourdough bread recipe ${i}: feed the starter, fold the dough and bake it in a hot oven.`,
  rust: (i) => `Rust note ${i}: the borrow checker enforces lifetimes so references never outlive their data.`,
  hiking: (i) => `Trail report ${i}: a steep mountain path with a view over the glacier and the valley below.`,
  markets: (i) => `Market wrap ${i}: stocks fell as bond yields rose and investors sold technology shares.`,
};

/** 120 articles (30 per topic, in turn), embedded by the server when it has the model. */
async function seed(server, token) {
  const keys = Object.keys(TOPICS);
  const ids = [];
  const documents = [];
  const metadatas = [];
  for (let i = 0; i < 120; i++) {
    const topic = keys[i % keys.length];
    ids.push(`doc-${String(i).padStart(3, '0')}`);
    documents.push(TOPICS[topic](i));
    metadatas.push({ topic, n: i, even: i % 2 === 0 });
  }
  const vector = { space: 'cosine' };
  const body = { ids, documents, metadatas };
  if (MODEL) {
    Object.assign(vector, { source_key: '#document', embedding_function: { type: 'known', name: 'default', config: {} } });
  } else {
    // Without the model: 8-d vectors that still put each topic in its own direction.
    body.embeddings = metadatas.map((m, i) => {
      const v = new Array(8).fill(0.05 * ((i % 7) + 1));
      v[keys.indexOf(m.topic)] = 1;
      return v;
    });
  }
  const schema = {
    keys: {
      '#embedding': { float_list: { vector_index: { enabled: true, config: vector } } },
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
  const c = await call(server, 'POST', `${DB}/collections`, { name: 'articles', schema, metadata: { owner: 'docs-team' } }, token);
  await call(server, 'POST', `${DB}/collections/${c.id}/add`, body, token);
  await call(server, 'POST', '/api/v2/tenants/default_tenant/databases', { name: 'staging' }, token);
  await call(server, 'POST', '/api/v2/tenants/default_tenant/databases/staging/collections', { name: 'staged-notes' }, token);
  return c;
}

let open;
let secured;
let browser;
/** Every URL any page of the test requested. */
const requested = [];

before(async () => {
  const auth = `auth:\n  tokens:\n    - ${TOKEN}\n    - {token: ${SCOPED}, user_id: sam, tenant: default_tenant, databases: [staging]}\n  htpasswd_file: HTPASSWD\n`;
  [open, secured] = await Promise.all([serve(), serve(auth)]);
  await Promise.all([seed(open), seed(secured, TOKEN)]);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  await Promise.all(children.map(stop));
  if (OWN_SHOTS) rmSync(SHOTS, { recursive: true, force: true });
});

async function newPage(viewport = { width: 1280, height: 860 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('request', (r) => requested.push(r.url()));
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.errors = errors;
  return page;
}

async function rowIds(page, table) {
  return page.$$eval(`${table} tbody tr`, (rows) => rows.map((r) => r.dataset.id || r.dataset.collection));
}

test('the start-up message links the dashboard, and /dashboard redirects to it', async () => {
  assert.equal(open.dashboard, open.url + '/dashboard');
  const resp = await fetch(open.dashboard, { redirect: 'manual' });
  assert.equal(resp.status, 308);
  assert.equal(resp.headers.get('location'), 'dashboard/');
  const index = await fetch(open.dashboard + '/');
  assert.match(index.headers.get('content-security-policy'), /default-src 'none'/);
  assert.match(await index.text(), /<title>Ochre dashboard<\/title>/);
});

test('collections, databases and paging through records', async () => {
  const page = await newPage();
  await page.goto(open.dashboard);
  await page.waitForSelector('#collections tr[data-collection="articles"]', WAIT);
  const row = await page.$eval('#collections tr[data-collection="articles"]', (r) => [...r.cells].map((c) => c.textContent));
  assert.equal(row[1], '120', 'record count');
  assert.equal(row[2], MODEL ? '384' : '8', 'dimension');
  assert.equal(row[3], 'cosine');
  assert.match(row[4], /docs-team/);
  await page.screenshot({ path: join(SHOTS, 'collections.png') });

  // Another database of the tenant, from the sidebar.
  await page.click('.db-list a:text("staging")');
  await page.waitForSelector('#collections tr[data-collection="staged-notes"]', WAIT);
  await page.click('.db-list a:text("default_database")');

  await page.click('#collections a:text("articles")');
  await page.waitForSelector('table.records tbody tr', WAIT);
  assert.equal((await rowIds(page, 'table.records')).length, 25);
  assert.equal(await page.textContent('.page-label'), 'Rows 1–25 of 120');
  assert.equal((await rowIds(page, 'table.records'))[0], 'doc-000');
  await page.screenshot({ path: join(SHOTS, 'records.png') });
  await page.click('.pager .next');
  await page.waitForFunction(() => document.querySelector('.page-label')?.textContent === 'Rows 26–50 of 120', null, WAIT);
  assert.equal((await rowIds(page, 'table.records'))[0], 'doc-025');
  await page.selectOption('#page-size', '100');
  await page.waitForFunction(() => document.querySelector('.page-label')?.textContent === 'Rows 1–100 of 120', null, WAIT);
  await page.click('.pager .next');
  await page.waitForFunction(() => document.querySelector('.page-label')?.textContent === 'Rows 101–120 of 120', null, WAIT);
  assert.equal(await page.isDisabled('.pager .next'), true, 'the last page has no next');
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('filters, and the server\'s own error for a bad one', async () => {
  const page = await newPage();
  await page.goto(open.dashboard + '/#/t/default_tenant/d/default_database/c/articles/records');
  await page.waitForSelector('table.records tbody tr', WAIT);
  await page.fill('#where', '{"topic": "bread"}');
  await page.fill('#where-document', '{"$contains": "oven"}');
  await page.click('#apply-filter');
  await page.waitForFunction(() => /matching/.test(document.querySelector('.page-label')?.textContent || ''), null, WAIT);
  const metas = await page.$$eval('table.records tbody td.meta', (cells) => cells.map((c) => c.textContent));
  assert.equal(metas.length, 25);
  assert.ok(metas.every((m) => m.includes('"topic":"bread"')), metas.join('\n'));
  await page.click('.pager .next');
  await page.waitForFunction(() => document.querySelector('.page-label')?.textContent === 'Rows 26–30 matching', null, WAIT);
  assert.equal(await page.isDisabled('.pager .next'), true);

  // An operator the server does not know: its InvalidArgumentError, word for word.
  const direct = await fetch(`${open.url}${DB}/collections/${(await call(open, 'GET', `${DB}/collections/articles`)).id}/get`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ where: { topic: { $bogus: 1 } }, limit: 26 }),
  });
  const expected = await direct.json();
  await page.fill('#where', '{"topic": {"$bogus": 1}}');
  await page.fill('#where-document', '');
  await page.click('#apply-filter');
  await page.waitForSelector('#records .error-box', WAIT);
  const shown = await page.textContent('#records .error-box');
  assert.ok(shown.includes(expected.error) && shown.includes(expected.message), `${shown} vs ${JSON.stringify(expected)}`);

  // Not JSON at all: said so before anything is sent.
  await page.fill('#where', '{topic: bread');
  await page.click('#apply-filter');
  await page.waitForFunction(() => /not valid JSON/.test(document.querySelector('#records .error-box')?.textContent || ''), null, WAIT);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('a record\'s full view, and more like it', async () => {
  const page = await newPage();
  await page.goto(open.dashboard + '/#/t/default_tenant/d/default_database/c/articles/records');
  await page.click('table.records tr[data-id="doc-005"]');
  await page.waitForSelector('#record-embedding', WAIT);
  assert.equal(await page.textContent('#record-id'), 'doc-005');
  assert.match(await page.textContent('#record-document'), /borrow checker/);
  assert.match(await page.textContent('#record-metadata'), /"topic": "rust"/);
  assert.match(await page.textContent('#record-embedding'), new RegExp(`Dimension${MODEL ? 384 : 8}`));
  await page.screenshot({ path: join(SHOTS, 'record.png') });
  await page.click('#modal-ok');
  await page.waitForSelector('table.results tbody tr', WAIT);
  const ids = await rowIds(page, 'table.results');
  assert.equal(ids.length, 10);
  assert.ok(!ids.includes('doc-005'), 'the record itself is left out');
  const metas = await page.$$eval('table.results td.meta', (cells) => cells.map((c) => c.textContent));
  assert.ok(metas.slice(0, 5).every((m) => m.includes('"topic":"rust"')), metas.join('\n'));
  await page.close();
});

test('search: text (dense, BM25, hybrid), a pasted vector, and errors', async () => {
  const page = await newPage();
  await page.goto(open.dashboard + '/#/t/default_tenant/d/default_database/c/articles/search');
  await page.waitForSelector('#search-form', WAIT);
  const search = async (query, mode, kind = 'text') => {
    await page.selectOption('#query-kind', kind);
    await page.selectOption('#mode', mode);
    await page.fill('#query', query);
    await page.evaluate(() => document.querySelector('#search-results').replaceChildren());
    await page.click('#run-search');
    await page.waitForSelector('#search-results table.results, #search-results .error-box, #search-results .empty', WAIT);
  };
  await search('sourdough starter', 'bm25');
  let docs = await page.$$eval('table.results td.doc', (c) => c.map((x) => x.textContent));
  assert.equal(docs.length, 10);
  assert.ok(docs.every((d) => d.includes('Sourdough')), docs.join('\n'));
  const scores = await page.$$eval('table.results td.score', (c) => c.map((x) => Number(x.textContent)));
  assert.deepEqual([...scores].sort((a, b) => a - b), scores, 'best first');

  await search('glacier valley', 'hybrid');
  if (MODEL) {
    docs = await page.$$eval('table.results td.doc', (c) => c.map((x) => x.textContent));
    assert.equal(docs.length, 10);
    assert.ok(docs.slice(0, 5).every((d) => d.includes('glacier')), docs.join('\n'));
  } else {
    // Hybrid text needs the dense side embedded: without the model the server says so.
    assert.match(await page.textContent('#search-results .error-box'), /model|embed/i);
  }

  if (MODEL) {
    // Embedded on the server with all-MiniLM-L6-v2; no keyword in common with the documents.
    await search('programming language memory safety', 'dense');
    docs = await page.$$eval('table.results td.doc', (c) => c.map((x) => x.textContent));
    assert.ok(docs.slice(0, 5).every((d) => d.includes('borrow checker')), docs.join('\n'));
    await page.screenshot({ path: join(SHOTS, 'search.png') });
  }

  // A vector of the wrong dimension: the server's error.
  await search('[0.1, 0.2, 0.3]', 'dense', 'vector');
  assert.match(await page.textContent('#search-results .error-box'), /dimension/i);
  const dim = MODEL ? 384 : 8;
  const vector = Array.from({ length: dim }, (_, i) => (i === 2 ? 1 : 0.01));
  await search(vector.join(', '), 'dense', 'vector');
  assert.equal((await rowIds(page, 'table.results')).length, 10);
  if (!MODEL) await page.screenshot({ path: join(SHOTS, 'search.png') });
  await search('no-such-record', 'dense', 'id');
  assert.match(await page.textContent('#search-results .error-box'), /No record has the ID no-such-record/);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('create, rename and delete a collection (with confirmation)', async () => {
  const page = await newPage();
  await page.goto(open.dashboard);
  await page.waitForSelector('#new-collection', WAIT);
  await page.click('#new-collection');
  await page.fill('#new-name', 'x'); // too short: the server's message, the dialog stays
  await page.click('#modal-ok');
  await page.waitForSelector('#modal-error:not([hidden])', WAIT);
  assert.match(await page.textContent('#modal-error'), /InvalidArgumentError/);
  await page.fill('#new-name', 'made-in-browser');
  await page.selectOption('#new-space', 'ip');
  await page.selectOption('#new-ef', 'none');
  await page.check('#new-bm25');
  await page.fill('#new-metadata', '{"purpose": "test"}');
  await page.click('#modal-ok');
  await page.waitForFunction(() => document.querySelector('#collection-name')?.textContent === 'made-in-browser', null, WAIT);
  const made = await call(open, 'GET', `${DB}/collections/made-in-browser`);
  assert.deepEqual(made.metadata, { purpose: 'test' });
  assert.equal(made.schema.keys['#embedding'].float_list.vector_index.config.space, 'ip');
  assert.equal(made.schema.keys.bm25.sparse_vector.sparse_vector_index.enabled, true);

  await page.click('.tabs a[data-tab="details"]');
  await page.waitForSelector('#rename', WAIT);
  assert.match(await page.textContent('#details'), /BM25 keybm25/);
  await page.fill('#rename', 'renamed-in-browser');
  await page.click('#rename-button');
  await page.waitForFunction(() => document.querySelector('#collection-name')?.textContent === 'renamed-in-browser', null, WAIT);

  await page.click('#delete-collection');
  await page.fill('#confirm-name', 'wrong');
  await page.click('#modal-ok');
  await page.waitForSelector('#modal-error:not([hidden])', WAIT);
  assert.match(await page.textContent('#modal-error'), /does not match/);
  await call(open, 'GET', `${DB}/collections/renamed-in-browser`); // still there
  await page.fill('#confirm-name', 'renamed-in-browser');
  await page.click('#modal-ok');
  await page.waitForSelector('#collections tr[data-collection="articles"]', WAIT);
  assert.equal(await page.$('#collections tr[data-collection="renamed-in-browser"]'), null);
  await assert.rejects(call(open, 'GET', `${DB}/collections/renamed-in-browser`), /404/);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('health: status, live charts and requests by route', async () => {
  const page = await newPage();
  await page.goto(open.dashboard + '/#/health');
  await page.waitForSelector('#status', WAIT);
  const status = await page.textContent('#status');
  assert.match(status, /Version\d+\.\d+\.\d+/);
  assert.ok(status.includes(open.data.split('/').pop()), status);
  assert.match(status, MODEL ? /all-MiniLM-L6-v2/ : /Embedding modelnone/);
  // Traffic the table and the charts must see: gets beside the page's own polling.
  const gets = () =>
    page.evaluate(() => {
      const row = [...document.querySelectorAll('#routes tr')].find((tr) => tr.cells[1]?.textContent.endsWith('{collection_id}/get'));
      return row ? Number(row.cells[2].textContent.replace(/,/g, '')) : 0;
    });
  await page.waitForSelector('#routes tbody tr', WAIT);
  const before = await gets();
  const id = (await call(open, 'GET', `${DB}/collections/articles`)).id;
  for (let i = 0; i < 5; i++) await call(open, 'POST', `${DB}/collections/${id}/get`, { limit: 1 });
  await page.waitForFunction(
    (n) => {
      const row = [...document.querySelectorAll('#routes tr')].find((tr) => tr.cells[1]?.textContent.endsWith('{collection_id}/get'));
      return row && Number(row.cells[2].textContent.replace(/,/g, '')) >= n;
    },
    before + 5,
    WAIT,
  );
  // The rate chart saw them: some sample above zero.
  await page.waitForFunction(() => {
    const pts = document.querySelector('#chart-rate polyline')?.getAttribute('points') || '';
    return pts.split(' ').some((p) => Number(p.split(',')[1]) < 34);
  }, null, WAIT);
  await page.waitForFunction(() => document.querySelectorAll('#chart-rate polyline').length === 1, null, WAIT);
  const records = (await call(open, 'GET', '/api/v2/admin/status')).records;
  assert.match(await page.textContent('#health-collections'), new RegExp(`collections, ${records} records`));
  assert.equal(await page.textContent('#chart-records .big'), String(records));
  await page.screenshot({ path: join(SHOTS, 'health.png') });
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('on a phone: the pages fit the screen', async () => {
  const page = await newPage({ width: 390, height: 844 });
  await page.goto(open.dashboard + '/#/t/default_tenant/d/default_database/c/articles/records');
  await page.waitForSelector('table.records tbody tr', WAIT);
  const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
  assert.equal(await fits(), true, 'records view is wider than the screen');
  await page.screenshot({ path: join(SHOTS, 'phone.png') });
  await page.goto(open.dashboard + '/#/health');
  await page.waitForSelector('#status', WAIT);
  assert.equal(await fits(), true, 'health view is wider than the screen');
  await page.close();
});

test('with auth on, nothing is shown before signing in', async () => {
  const page = await newPage();
  const refused = [];
  page.on('response', (r) => {
    if (r.url().includes('/api/v2/') && r.status() === 401) refused.push(r.url());
  });
  await page.goto(secured.dashboard);
  await page.waitForSelector('#login:not([hidden])', WAIT);
  assert.ok(refused.length > 0, 'the page asked the API and was refused');
  const text = () => page.evaluate(() => document.body.innerText);
  assert.ok(!(await text()).includes('articles'));
  assert.equal(await page.$eval('#view', (v) => v.childElementCount), 0);
  await page.screenshot({ path: join(SHOTS, 'login.png') });

  // A wrong token: refused, still nothing.
  await page.fill('#login-token', 'not-the-token');
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => /invalid credentials/i.test(document.querySelector('#login-error')?.textContent || ''), null, WAIT);
  assert.ok(!(await text()).includes('articles'));

  await page.fill('#login-token', TOKEN);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#collections tr[data-collection="articles"]', WAIT);
  assert.equal(await page.isHidden('#login'), true);
  // The records too (through the token), and the health view's metrics.
  await page.click('#collections a:text("articles")');
  await page.waitForSelector('table.records tbody tr', WAIT);
  await page.goto(secured.dashboard + '/#/health');
  await page.waitForSelector('#routes tbody tr', WAIT);

  // Signing out forgets the token.
  await page.click('#logout');
  await page.waitForSelector('#login:not([hidden])', WAIT);
  assert.equal(await page.$eval('#view', (v) => v.childElementCount), 0);
  await page.reload();
  await page.waitForSelector('#login:not([hidden])', WAIT);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('a user name and password work too, for every request of a page at once', async () => {
  const page = await newPage();
  const refused = [];
  page.on('response', (r) => {
    if (r.status() === 429 || r.status() === 403) refused.push(`${r.status()} ${r.url()}`);
  });
  await page.goto(secured.dashboard);
  await page.waitForSelector('#login:not([hidden])', WAIT);
  await page.click('#login-basic summary');
  await page.fill('#login-user', USER[0]);
  await page.fill('#login-password', USER[1]);
  await page.click('#login-form button[type=submit]');
  // The collections view sends its lists and every count at once.
  await page.waitForSelector('#collections tr[data-collection="articles"]', WAIT);
  assert.equal(await page.textContent('#collections tr[data-collection="articles"] td:nth-child(2)'), '120');
  assert.match(await page.textContent('#identity'), /Signed in as alice/);
  assert.deepEqual(refused, []);
  // The password is not kept beyond the page: a reload asks again.
  assert.equal(await page.evaluate(() => sessionStorage.getItem('ochre.cred')), null);
  await page.reload();
  await page.waitForSelector('#login:not([hidden])', WAIT);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('a token scoped to one database sees only that database', async () => {
  const page = await newPage();
  await page.goto(secured.dashboard);
  await page.waitForSelector('#login:not([hidden])', WAIT);
  await page.fill('#login-token', SCOPED);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('#collections tr[data-collection="staged-notes"]', WAIT);
  assert.match(await page.textContent('#identity'), /Signed in as sam/);
  assert.deepEqual(await page.$$eval('.db-list a', (a) => a.map((x) => x.textContent)), ['staging']);
  assert.ok(!(await page.evaluate(() => document.body.innerText)).includes('articles'));
  // The whole server's status is not for it: said so, nothing else shown.
  await page.goto(secured.dashboard + '/#/health');
  await page.waitForSelector('.error-box', WAIT);
  assert.match(await page.textContent('.error-box'), /AuthorizationError/);
  await page.click('#logout');
  await page.waitForSelector('#login:not([hidden])', WAIT);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('the pages ask nothing of any host but the server', () => {
  assert.ok(requested.length > 50, `only ${requested.length} requests seen`);
  const elsewhere = requested.filter((u) => !u.startsWith(open.url + '/') && !u.startsWith(secured.url + '/'));
  assert.deepEqual(elsewhere, []);
});
