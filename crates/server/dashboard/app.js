// Ochre's dashboard: a single page over the server's own API v2, with the caller's credentials.
//
// No framework and no build step: the server compiles these files into its binary. Every value
// that comes from the database is put on the page as text (textContent), never as markup.
'use strict';

// The server's root, relative to this page (/dashboard/), so the dashboard also works behind a
// proxy that serves Ochre under a path prefix.
const ROOT = new URL('../', location.origin + location.pathname).pathname;
const API = ROOT + 'api/v2';
const METRICS = ROOT + 'metrics';
const PAGE_SIZES = [25, 50, 100];
const COLLECTIONS_PER_PAGE = 20;
const HEALTH_EVERY_MS = 2000;
const HEALTH_SAMPLES = 60;
/** Routes the dashboard itself polls: left out of the health charts. */
const OWN_ROUTES = new Set(['/metrics', '/api/v2/admin/status', '/dashboard', '/dashboard/', '/dashboard/{file}']);

const state = {
  cred: null,
  identity: null,
  timers: [],
  /** Bumped at every navigation: a slow answer for a view the user left is dropped. */
  generation: 0,
};

// ----- small DOM helpers -----

/** An element with attributes (`class`, `text`, `on<event>`, anything else as an attribute). */
function el(tag, attrs = {}, ...children) {
  const ns = attrs.svg ? 'http://www.w3.org/2000/svg' : null;
  const node = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false || k === 'svg') continue;
    if (k === 'text') node.textContent = v;
    else if (k === 'class') node.setAttribute('class', v);
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'value') node.value = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);

/** A scrolling table with `headers` over `body` (a tbody, or its rows); `attrs` go on the table. */
function dataTable(attrs, headers, body) {
  const tbody = body instanceof Node ? body : el('tbody', {}, body);
  return el(
    'div',
    { class: 'table-wrap' },
    el('table', attrs, el('thead', {}, el('tr', {}, headers.map((h) => el('th', { text: h })))), tbody),
  );
}

function view() {
  return $('view');
}

function json(v) {
  return JSON.stringify(v, null, 2);
}

function excerpt(text, n = 140) {
  if (text === null || text === undefined) return '';
  const s = String(text).replace(/\s+/g, ' ').trim();
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

function isSparse(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && (v['#type'] === 'sparse_vector' || (Array.isArray(v.indices) && Array.isArray(v.values)));
}

/** Metadata for reading: sparse vectors (BM25 weights, say) shortened to their size. */
function readableMetadata(m) {
  if (!m) return m;
  const plain = {};
  const sparse = {};
  for (const [k, v] of Object.entries(m)) {
    if (isSparse(v)) sparse[k] = `‹sparse vector, ${v.indices.length} terms›`;
    else plain[k] = v;
  }
  return { ...plain, ...sparse };
}

function metaExcerpt(m, n) {
  return m ? excerpt(JSON.stringify(readableMetadata(m)), n) : '';
}

function fmtNumber(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: 3 });
}

function fmtDuration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = [];
  if (d) parts.push(d + 'd');
  if (d || h) parts.push(h + 'h');
  if (d || h || m) parts.push(m + 'm');
  parts.push((s % 60) + 's');
  return parts.join(' ');
}

function toast(message) {
  const t = $('toast');
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 4000);
}

function errorBox(err) {
  const box = el('div', { class: 'error-box', role: 'alert' });
  if (err instanceof ApiError && err.status) {
    box.append(el('strong', { text: err.name }), ' ', el('span', { text: err.message }));
  } else {
    box.append(el('span', { text: err.message || String(err) }));
  }
  return box;
}

/** Runs `fn` every `ms` after the previous run finished (never two at once), until the view
 * changes or `fn` returns false. */
function every(ms, fn, gen) {
  const next = () => {
    const id = setTimeout(async () => {
      if (!current(gen)) return;
      const more = await fn();
      if (more !== false && current(gen)) next();
    }, ms);
    state.timers.push(id);
  };
  next();
}

// ----- credentials and the API -----

class ApiError extends Error {
  constructor(status, name, message) {
    super(message);
    this.status = status;
    this.name = name;
  }

  /** True when the server refused the credentials themselves (not their scope). */
  get needsLogin() {
    return this.status === 401 || (this.status === 403 && /invalid credentials/i.test(this.message));
  }
}

function loadCred() {
  try {
    const cred = JSON.parse(sessionStorage.getItem('ochre.cred') || 'null');
    return cred && cred.kind === 'token' && typeof cred.token === 'string' ? cred : null;
  } catch {
    return null;
  }
}

/** A token is kept for the tab's life (sessionStorage); a password only in memory. */
function saveCred(cred) {
  state.cred = cred;
  if (cred && cred.kind === 'token') sessionStorage.setItem('ochre.cred', JSON.stringify(cred));
  else sessionStorage.removeItem('ochre.cred');
}

function base64(text) {
  const bytes = new TextEncoder().encode(text);
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function authHeaders() {
  const c = state.cred;
  if (!c) return {};
  if (c.kind === 'basic') return { Authorization: 'Basic ' + base64(c.user + ':' + c.password) };
  return { Authorization: 'Bearer ' + c.token };
}

/** Calls the server; resolves to the parsed JSON (or text, with `raw`), throws an ApiError. */
async function api(method, path, body, { raw = false } = {}) {
  const opts = { method, headers: authHeaders(), cache: 'no-store' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, 'NetworkError', 'The server did not answer (' + e.message + ')');
  }
  const text = await resp.text();
  if (resp.ok) {
    if (raw) return text;
    return text ? JSON.parse(text) : null;
  }
  let name = 'HTTP ' + resp.status;
  let message = text || resp.statusText;
  try {
    const data = JSON.parse(text);
    name = data.error || name;
    message = data.message || message;
  } catch {
    // not JSON: keep the text
  }
  const err = new ApiError(resp.status, name, message);
  if (err.needsLogin && path !== API + '/auth/identity') showLogin(err);
  throw err;
}

const enc = encodeURIComponent;

function dbPath(t, d) {
  return `${API}/tenants/${enc(t)}/databases/${enc(d)}`;
}

function collPath(c) {
  return `${dbPath(c.tenant, c.database)}/collections/${enc(c.id)}`;
}

// ----- sign in -----

function showLogin(err) {
  state.generation++;
  clearTimers();
  closeModal();
  view().replaceChildren();
  $('identity').textContent = '';
  $('logout').hidden = true;
  const box = $('login-error');
  if (err && state.cred) {
    box.textContent = err.message;
    box.hidden = false;
  } else {
    box.hidden = true;
  }
  $('login').hidden = false;
  $('login-token').focus();
}

async function signIn(event) {
  event.preventDefault();
  const token = $('login-token').value.trim();
  const user = $('login-user').value;
  const password = $('login-password').value;
  if (token) saveCred({ kind: 'token', token });
  else if (user) saveCred({ kind: 'basic', user, password });
  else {
    const box = $('login-error');
    box.textContent = 'Enter a token, or a user name and password.';
    box.hidden = false;
    return;
  }
  await start();
}

async function start() {
  try {
    state.identity = await api('GET', API + '/auth/identity');
  } catch (err) {
    if (err.needsLogin) {
      showLogin(err);
      return;
    }
    view().replaceChildren(errorBox(err));
    return;
  }
  $('login').hidden = true;
  $('login-form').reset();
  const who = state.identity.user_id;
  $('identity').textContent = state.cred ? (who ? 'Signed in as ' + who : 'Signed in') : 'Auth is off';
  $('logout').hidden = !state.cred;
  route();
}

function logout() {
  saveCred(null);
  state.identity = null;
  start();
}

// ----- routing -----
//
// #/                                  the caller's default tenant and database
// #/t/TENANT                          the tenant's first database
// #/t/TENANT/d/DATABASE?page=N        a database's collections
// #/t/TENANT/d/DATABASE/c/NAME/TAB    a collection: records | search | details (with ?like=ID)
// #/health                            the server's health

function parseHash() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  const decode = (p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p; // a malformed escape: taken as it is (the API then says what is missing)
    }
  };
  const parts = path ? path.split('/').map(decode) : [];
  return { parts, params: new URLSearchParams(query || '') };
}

/** A whole number from the URL, at least 1 (1 for anything else). */
function pageParam(params) {
  const n = Math.floor(Number(params.get('page')));
  return Number.isFinite(n) && n >= 1 ? n : 1;
}

/** Rows per page: one of PAGE_SIZES (25 for anything else). */
function sizeParam(params) {
  const n = Number(params.get('size'));
  return PAGE_SIZES.includes(n) ? n : PAGE_SIZES[0];
}

function href(tenant, database, name, tab, params) {
  let h = `#/t/${enc(tenant)}/d/${enc(database)}`;
  if (name !== undefined) h += `/c/${enc(name)}/${tab || 'records'}`;
  if (params) {
    const q = new URLSearchParams(params).toString();
    if (q) h += '?' + q;
  }
  return h;
}

function clearTimers() {
  for (const id of state.timers) clearTimeout(id);
  state.timers = [];
}

function route() {
  if (!state.identity) return;
  clearTimers();
  closeModal();
  const gen = ++state.generation;
  const { parts, params } = parseHash();
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === (parts[0] === 'health' ? 'health' : 'collections'));
  }
  const run = async () => {
    if (parts[0] === 'health') return healthView(gen);
    if (parts[0] === 't' && parts[2] === 'd') {
      const [tenant, database] = [parts[1], parts[3]];
      if (parts[4] === 'c' && parts[5] !== undefined) {
        return collectionView(gen, tenant, database, parts[5], parts[6] || 'records', params);
      }
      return databaseView(gen, tenant, database, pageParam(params));
    }
    if (parts[0] === 't' && parts[1] !== undefined) return tenantView(gen, parts[1]);
    const id = state.identity;
    const database = id.databases.find((d) => d !== '*') || 'default_database';
    const tenant = id.tenant === '*' ? 'default_tenant' : id.tenant;
    location.replace(href(tenant, database));
  };
  run().catch((err) => {
    if (gen !== state.generation || (err instanceof ApiError && err.needsLogin)) return;
    view().replaceChildren(errorBox(err));
  });
}

/** Whether the answer belongs to the view still on screen. */
function current(gen) {
  return gen === state.generation;
}

// ----- tenants, databases and their collections -----

async function tenantsAndDatabases(tenant) {
  const id = state.identity;
  let tenants;
  try {
    tenants = (await api('GET', API + '/tenants?limit=200')).map((t) => t.name);
  } catch (err) {
    if (err.status !== 403 && err.status !== 404) throw err;
    tenants = [id.tenant === '*' ? tenant : id.tenant];
  }
  if (!tenants.includes(tenant)) tenants.push(tenant);
  let databases;
  try {
    databases = (await api('GET', `${API}/tenants/${enc(tenant)}/databases?limit=200`)).map((d) => d.name);
  } catch (err) {
    if (err.status !== 403) throw err;
    databases = id.databases.filter((d) => d !== '*');
  }
  return { tenants, databases };
}

async function tenantView(gen, tenant) {
  const { databases } = await tenantsAndDatabases(tenant);
  if (!current(gen)) return;
  if (databases.length) {
    location.replace(href(tenant, databases.includes('default_database') ? 'default_database' : databases[0]));
    return;
  }
  view().replaceChildren(el('p', { class: 'empty', text: `Tenant ${tenant} has no databases.` }));
}

function sidebar(tenant, database, tenants, databases) {
  const tenantSelect = el(
    'select',
    {
      id: 'tenant-select',
      'aria-label': 'Tenant',
      onchange: (e) => {
        location.hash = `#/t/${enc(e.target.value)}`;
      },
    },
    tenants.map((t) => el('option', { value: t, text: t, selected: t === tenant })),
  );
  return el(
    'aside',
    { class: 'side' },
    el('label', { class: 'side-label' }, 'Tenant', tenantSelect),
    el('div', { class: 'side-label' }, 'Databases'),
    el(
      'ul',
      { class: 'db-list' },
      databases.map((d) =>
        el('li', {}, el('a', { href: href(tenant, d), class: d === database ? 'active' : null, text: d })),
      ),
    ),
  );
}

function spaceOf(c) {
  const cfg = c.configuration_json || {};
  const fromSchema = c.schema?.keys?.['#embedding']?.float_list?.vector_index?.config?.space;
  return cfg.hnsw?.space || cfg.spann?.space || fromSchema || 'l2';
}

/** The metadata key of a BM25 sparse index on the documents, if the collection has one. */
function bm25Key(c) {
  for (const [key, types] of Object.entries(c.schema?.keys || {})) {
    const index = types?.sparse_vector?.sparse_vector_index;
    if (index?.enabled && index.config?.embedding_function?.name === 'chroma_bm25') return key;
  }
  return null;
}

function embeddingFunctionOf(c) {
  const ef = c.configuration_json?.embedding_function;
  if (!ef) return 'none';
  return ef.name || ef.type || 'custom';
}

async function databaseView(gen, tenant, database, page) {
  const base = dbPath(tenant, database);
  const [{ tenants, databases }, total] = await Promise.all([
    tenantsAndDatabases(tenant),
    api('GET', `${base}/collections_count`),
  ]);
  const pages = Math.max(1, Math.ceil(total / COLLECTIONS_PER_PAGE));
  page = Math.min(Math.max(1, page || 1), pages);
  const offset = (page - 1) * COLLECTIONS_PER_PAGE;
  const collections = await api('GET', `${base}/collections?limit=${COLLECTIONS_PER_PAGE}&offset=${offset}`);
  const counts = await Promise.all(
    collections.map((c) => api('GET', `${collPath(c)}/count`).catch(() => null)),
  );
  if (!current(gen)) return;
  const rows = collections.map((c, i) =>
    el(
      'tr',
      { 'data-collection': c.name },
      el('td', {}, el('a', { href: href(tenant, database, c.name), text: c.name })),
      el('td', { class: 'num', text: fmtNumber(counts[i]) }),
      el('td', { class: 'num', text: c.dimension ?? '–' }),
      el('td', { text: spaceOf(c) }),
      el('td', { class: 'meta', text: c.metadata ? excerpt(JSON.stringify(c.metadata), 80) : '' }),
      el('td', { class: 'mono muted', text: c.id }),
    ),
  );
  const table = rows.length
    ? dataTable({ id: 'collections' }, ['Name', 'Records', 'Dimension', 'Space', 'Metadata', 'ID'], rows)
    : el('p', { class: 'empty', text: 'No collections in this database yet.' });
  view().replaceChildren(
    el(
      'div',
      { class: 'with-side' },
      sidebar(tenant, database, tenants, databases),
      el(
        'section',
        { class: 'content' },
        el(
          'div',
          { class: 'heading' },
          el('h1', {}, el('span', { class: 'muted', text: tenant + ' / ' }), database),
          el('button', { class: 'primary', id: 'new-collection', type: 'button', onclick: () => createCollection(tenant, database) }, 'New collection'),
        ),
        el('p', { class: 'muted', text: `${fmtNumber(total)} collection${total === 1 ? '' : 's'}` }),
        table,
        pager(page, pages, (p) => (location.hash = href(tenant, database, undefined, undefined, { page: p }))),
      ),
    ),
  );
}

function pager(page, pages, go, label) {
  if (pages <= 1 && !label) return null;
  return el(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    el('button', { type: 'button', class: 'prev', disabled: page <= 1, onclick: () => go(page - 1) }, '‹ Previous'),
    el('span', { class: 'page-label', text: label || `Page ${page} of ${pages}` }),
    el('button', { type: 'button', class: 'next', disabled: page >= pages, onclick: () => go(page + 1) }, 'Next ›'),
  );
}

function parseJsonField(text, what) {
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not valid JSON: ${e.message}`);
  }
}

function createCollection(tenant, database) {
  const name = el('input', { id: 'new-name', required: true, placeholder: 'my-collection', autocomplete: 'off' });
  const space = el(
    'select',
    { id: 'new-space' },
    ['l2', 'cosine', 'ip'].map((s) => el('option', { value: s, text: s })),
  );
  const ef = el(
    'select',
    { id: 'new-ef' },
    el('option', { value: 'default', text: "Chroma's default (all-MiniLM-L6-v2)" }),
    el('option', { value: 'none', text: 'None: records come with their vectors' }),
  );
  const bm25 = el('input', { type: 'checkbox', id: 'new-bm25' });
  const metadata = el('textarea', { id: 'new-metadata', rows: 3, placeholder: '{"owner": "search-team"}' });
  openModal({
    title: 'New collection',
    okText: 'Create',
    content: [
      el('label', {}, 'Name', name),
      el('label', {}, 'Distance', space),
      el('label', {}, 'Embedding function', ef),
      el('label', { class: 'check' }, bm25, 'BM25 index on the documents (key "bm25"), for keyword and hybrid search'),
      el('label', {}, 'Metadata (JSON, optional)', metadata),
    ],
    onOk: async () => {
      const body = { name: name.value.trim() };
      const meta = parseJsonField(metadata.value, 'Metadata');
      if (meta !== undefined) body.metadata = meta;
      const function_ = ef.value === 'default' ? { type: 'known', name: 'default', config: {} } : null;
      if (bm25.checked) {
        const vector = { space: space.value };
        if (function_) Object.assign(vector, { source_key: '#document', embedding_function: function_ });
        body.schema = {
          keys: {
            '#embedding': { float_list: { vector_index: { enabled: true, config: vector } } },
            bm25: {
              sparse_vector: {
                sparse_vector_index: {
                  enabled: true,
                  config: {
                    bm25: true,
                    source_key: '#document',
                    embedding_function: { type: 'known', name: 'chroma_bm25', config: {} },
                  },
                },
              },
            },
          },
        };
      } else {
        body.configuration = { hnsw: { space: space.value } };
        if (function_) body.configuration.embedding_function = function_;
      }
      const c = await api('POST', `${dbPath(tenant, database)}/collections`, body);
      toast(`Created ${c.name}`);
      location.hash = href(tenant, database, c.name);
    },
  });
  name.focus();
}

// ----- one collection -----

async function collectionView(gen, tenant, database, name, tab, params) {
  const c = await api('GET', `${dbPath(tenant, database)}/collections/${enc(name)}`);
  const count = await api('GET', `${collPath(c)}/count`);
  if (!current(gen)) return;
  const tabs = ['records', 'search', 'details'];
  const body = el('div', { class: 'tab-body' });
  view().replaceChildren(
    el(
      'section',
      { class: 'content wide' },
      el(
        'nav',
        { class: 'crumbs' },
        el('a', { href: href(tenant, database), text: `${tenant} / ${database}` }),
        ' / ',
      ),
      el(
        'div',
        { class: 'heading' },
        el('h1', { id: 'collection-name', text: c.name }),
        el('span', { class: 'badges' }, [
          el('span', { class: 'badge', text: `${fmtNumber(count)} records` }),
          el('span', { class: 'badge', text: `dim ${c.dimension ?? '–'}` }),
          el('span', { class: 'badge', text: spaceOf(c) }),
          bm25Key(c) ? el('span', { class: 'badge', text: 'BM25' }) : null,
        ]),
      ),
      el(
        'nav',
        { class: 'tabs', role: 'tablist' },
        tabs.map((t) =>
          el('a', {
            href: href(tenant, database, c.name, t),
            class: t === tab ? 'active' : null,
            role: 'tab',
            'data-tab': t,
            text: t[0].toUpperCase() + t.slice(1),
          }),
        ),
      ),
      body,
    ),
  );
  if (tab === 'search') return searchTab(gen, c, body, params);
  if (tab === 'details') return detailsTab(c, count, body);
  return recordsTab(gen, c, count, body, params);
}

function recordsTab(gen, c, count, body, params) {
  const where = el('textarea', { id: 'where', rows: 2, placeholder: '{"category": {"$eq": "news"}}', value: params.get('where') || '' });
  const whereDocument = el('textarea', { id: 'where-document', rows: 2, placeholder: '{"$contains": "rust"}', value: params.get('where_document') || '' });
  const size = el(
    'select',
    { id: 'page-size', 'aria-label': 'Rows per page' },
    PAGE_SIZES.map((n) => el('option', { value: n, text: `${n} per page`, selected: n === sizeParam(params) })),
  );
  const results = el('div', { id: 'records' });
  const apply = (page) => {
    const p = { page };
    if (where.value.trim()) p.where = where.value.trim();
    if (whereDocument.value.trim()) p.where_document = whereDocument.value.trim();
    if (size.value !== '25') p.size = size.value;
    const h = href(c.tenant, c.database, c.name, 'records', p);
    if (location.hash === h) route();
    else location.hash = h;
  };
  body.replaceChildren(
    el(
      'form',
      {
        class: 'filters',
        id: 'filter-form',
        onsubmit: (e) => {
          e.preventDefault();
          apply(1);
        },
      },
      el('label', {}, 'where', where),
      el('label', {}, 'where_document', whereDocument),
      el(
        'div',
        { class: 'filter-actions' },
        size,
        el('button', { type: 'submit', class: 'primary', id: 'apply-filter' }, 'Apply'),
        el(
          'button',
          {
            type: 'button',
            onclick: () => {
              where.value = '';
              whereDocument.value = '';
              apply(1);
            },
          },
          'Clear',
        ),
      ),
    ),
    results,
  );
  size.addEventListener('change', () => apply(1));
  loadRecords(gen, c, count, results, params).catch((err) => {
    if (err instanceof ApiError && err.needsLogin) return;
    if (current(gen)) results.replaceChildren(errorBox(err));
  });
}

async function loadRecords(gen, c, count, results, params) {
  const limit = sizeParam(params);
  const page = pageParam(params);
  const request = { limit: limit + 1, offset: (page - 1) * limit, include: ['documents', 'metadatas'] };
  const filtered = params.has('where') || params.has('where_document');
  if (params.has('where')) request.where = parseJsonField(params.get('where'), 'where');
  if (params.has('where_document')) request.where_document = parseJsonField(params.get('where_document'), 'where_document');
  const started = performance.now();
  const got = await api('POST', `${collPath(c)}/get`, request);
  const ms = performance.now() - started;
  if (!current(gen)) return;
  const more = got.ids.length > limit;
  const ids = got.ids.slice(0, limit);
  const rows = ids.map((id, i) =>
    el(
      'tr',
      { class: 'clickable', 'data-id': id, onclick: () => showRecord(c, id) },
      el('td', { class: 'mono', text: id }),
      el('td', { class: 'doc', text: excerpt(got.documents?.[i]) }),
      el('td', { class: 'meta', text: metaExcerpt(got.metadatas?.[i], 120) }),
    ),
  );
  const pages = filtered ? page + (more ? 1 : 0) : Math.max(1, Math.ceil(count / limit));
  const first = ids.length ? (page - 1) * limit + 1 : 0;
  const last = (page - 1) * limit + ids.length;
  const label = filtered
    ? `Rows ${fmtNumber(first)}–${fmtNumber(last)} matching`
    : `Rows ${fmtNumber(first)}–${fmtNumber(last)} of ${fmtNumber(count)}`;
  const go = (p) => {
    const next = new URLSearchParams(params);
    next.set('page', p);
    location.hash = href(c.tenant, c.database, c.name, 'records', Object.fromEntries(next));
  };
  results.replaceChildren(
    rows.length
      ? dataTable({ class: 'records' }, ['ID', 'Document', 'Metadata'], rows)
      : el('p', { class: 'empty', text: filtered ? 'No record matches the filter.' : 'This collection has no records yet.' }),
    el('p', { class: 'muted small', text: `${ids.length} rows in ${ms.toFixed(0)} ms` }),
    pager(page, pages, go, label),
  );
}

function stats(v) {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sq = 0;
  for (const x of v) {
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
    sq += x * x;
  }
  return { min, max, mean: sum / v.length, norm: Math.sqrt(sq) };
}

/** A strip of bars, one per component (averaged down to at most 128 bars). */
function embeddingStrip(v) {
  const bars = Math.min(v.length, 128);
  const per = v.length / bars;
  const values = [];
  for (let i = 0; i < bars; i++) {
    const from = Math.floor(i * per);
    const to = Math.max(from + 1, Math.floor((i + 1) * per));
    let s = 0;
    for (let j = from; j < to; j++) s += v[j];
    values.push(s / (to - from));
  }
  const top = Math.max(1e-12, ...values.map(Math.abs));
  const svg = el('svg', { svg: true, class: 'strip', viewBox: `0 0 ${bars} 40`, preserveAspectRatio: 'none', role: 'img', 'aria-label': 'embedding components' });
  values.forEach((x, i) => {
    const h = (Math.abs(x) / top) * 20;
    svg.append(el('rect', { svg: true, x: i + 0.1, width: 0.8, y: x >= 0 ? 20 - h : 20, height: Math.max(h, 0.2), class: x >= 0 ? 'pos' : 'neg' }));
  });
  return svg;
}

async function showRecord(c, id) {
  const gen = state.generation;
  const got = await api('POST', `${collPath(c)}/get`, {
    ids: [id],
    include: ['documents', 'metadatas', 'embeddings', 'uris'],
  }).catch((err) => {
    toast(err.message);
    return null;
  });
  if (!got || !current(gen)) return;
  if (!got.ids.length) {
    toast(`Record ${id} is gone`);
    return;
  }
  const emb = got.embeddings?.[0];
  const content = [el('dl', { class: 'facts' }, el('dt', { text: 'ID' }), el('dd', { class: 'mono', id: 'record-id', text: id }))];
  if (got.uris?.[0]) content[0].append(el('dt', { text: 'URI' }), el('dd', { class: 'mono', text: got.uris[0] }));
  content.push(el('h3', { text: 'Document' }), el('pre', { class: 'document', id: 'record-document', text: got.documents?.[0] ?? '(none)' }));
  content.push(el('h3', { text: 'Metadata' }), el('pre', { id: 'record-metadata', text: got.metadatas?.[0] ? json(readableMetadata(got.metadatas[0])) : '(none)' }));
  if (emb && emb.length) {
    const s = stats(emb);
    content.push(
      el('h3', { text: 'Embedding' }),
      factList([
        ['Dimension', emb.length],
        ['L2 norm', s.norm.toFixed(4)],
        ['Min / max', `${s.min.toFixed(4)} / ${s.max.toFixed(4)}`],
        ['Mean', s.mean.toFixed(4)],
      ], 'record-embedding'),
      embeddingStrip(emb),
      el('p', { class: 'mono small', text: '[' + emb.slice(0, 8).map((x) => x.toFixed(4)).join(', ') + (emb.length > 8 ? ', …]' : ']') }),
    );
  }
  openModal({
    title: 'Record',
    okText: 'More like this',
    wide: true,
    content,
    onOk: async () => {
      location.hash = href(c.tenant, c.database, c.name, 'search', { like: id });
    },
  });
}

function factList(pairs, id) {
  const dl = el('dl', { class: 'facts', id });
  for (const [k, v] of pairs) dl.append(el('dt', { text: k }), el('dd', { text: v }));
  return dl;
}

// ----- search -----

const RRF_K = 60;

function parseVector(text) {
  const t = text.trim();
  let values;
  if (t.startsWith('[')) {
    values = parseJsonField(t, 'The vector');
  } else {
    values = t.split(/[\s,]+/).filter(Boolean).map(Number);
  }
  if (!Array.isArray(values) || !values.length || values.some((x) => typeof x !== 'number' || !Number.isFinite(x))) {
    throw new Error('A vector is a list of numbers: [0.1, 0.2, …] or 0.1, 0.2, …');
  }
  return values;
}

async function searchTab(gen, c, body, params) {
  const key = bm25Key(c);
  const query = el('textarea', { id: 'query', rows: 2, required: true, placeholder: 'what are you looking for?' });
  const kind = el(
    'select',
    { id: 'query-kind', 'aria-label': 'The query is' },
    el('option', { value: 'text', text: 'Text' }),
    el('option', { value: 'id', text: 'Record ID (more like this)' }),
    el('option', { value: 'vector', text: 'Vector' }),
  );
  const mode = el(
    'select',
    { id: 'mode', 'aria-label': 'Ranking' },
    el('option', { value: 'dense', text: 'Dense (vectors)' }),
    el('option', { value: 'bm25', text: 'BM25 (keywords)', disabled: !key }),
    el('option', { value: 'hybrid', text: 'Hybrid (RRF of both)', disabled: !key }),
  );
  const n = el('input', { id: 'n-results', type: 'number', min: 1, max: 1000, value: 10, 'aria-label': 'Results' });
  const where = el('textarea', { id: 'search-where', rows: 1, placeholder: 'optional filter: {"category": "news"}' });
  const results = el('div', { id: 'search-results' });
  const hint = el('p', { class: 'muted small' });
  const hintText = () => {
    const k = kind.value;
    hint.textContent =
      k === 'text'
        ? mode.value === 'bm25'
          ? 'Keywords are weighted by BM25 over the documents.'
          : 'Text is embedded by the server with the collection\'s embedding function (all-MiniLM-L6-v2, when the server was started with the model).'
        : k === 'id'
          ? 'Finds the records nearest to this one (its vector; for BM25, its document).'
          : 'Paste the numbers of a vector as JSON or separated by commas.';
  };
  kind.addEventListener('change', hintText);
  mode.addEventListener('change', hintText);
  if (params.get('like')) {
    kind.value = 'id';
    query.value = params.get('like');
  }
  if (!key) mode.title = 'This collection has no BM25 index.';
  hintText();
  const form = el(
    'form',
    {
      class: 'search-form',
      id: 'search-form',
      onsubmit: (e) => {
        e.preventDefault();
        runSearch(gen, c, key, { query: query.value, kind: kind.value, mode: mode.value, n: Number(n.value) || 10, where: where.value }, results);
      },
    },
    el('label', { class: 'grow' }, 'Query', query),
    el('div', { class: 'search-options' }, kind, mode, el('label', { class: 'inline' }, 'Results', n), el('button', { type: 'submit', class: 'primary', id: 'run-search' }, 'Search')),
    el('label', {}, 'where', where),
    hint,
  );
  body.replaceChildren(form, results);
  if (params.get('like')) form.requestSubmit();
}

function buildSearch(key, mode, dense, sparse, n, filter) {
  const candidates = Math.min(1000, Math.max(50, n * 4));
  const knn = (q, k, rank) => {
    const spec = { query: q, limit: candidates };
    if (k) spec.key = k;
    if (rank) Object.assign(spec, { return_rank: true, default: candidates });
    return { $knn: spec };
  };
  const rrf = (r) => ({ $div: { left: { $val: 1 }, right: { $sum: [{ $val: RRF_K }, r] } } });
  let rank;
  if (mode === 'dense') rank = knn(dense, null, false);
  else if (mode === 'bm25') rank = knn(sparse, key, false);
  else rank = { $mul: [{ $val: -1 }, { $sum: [rrf(knn(dense, null, true)), rrf(knn(sparse, key, true))] }] };
  const search = { rank, limit: { offset: 0, limit: n }, select: { keys: ['#document', '#metadata', '#score'] } };
  if (filter) search.filter = filter;
  return { searches: [search] };
}

async function runSearch(gen, c, key, form, results) {
  // Only the latest search of this view shows its answer.
  const seq = (runSearch.seq = (runSearch.seq || 0) + 1);
  const latest = () => current(gen) && seq === runSearch.seq;
  results.replaceChildren(el('p', { class: 'muted', text: 'Searching…' }));
  try {
    if (!form.query.trim()) throw new Error('Enter a query.');
    const n = Math.min(1000, Math.max(1, Math.floor(form.n)));
    let filter = parseJsonField(form.where, 'The filter');
    let dense = null;
    let sparse = null;
    if (form.kind === 'text') {
      dense = form.query;
      sparse = form.query;
    } else if (form.kind === 'vector') {
      if (form.mode !== 'dense') throw new Error('A pasted vector is dense: choose the Dense ranking.');
      dense = parseVector(form.query);
    } else {
      const id = form.query.trim();
      const got = await api('POST', `${collPath(c)}/get`, { ids: [id], include: ['embeddings', 'documents'] });
      if (!got.ids.length) throw new Error(`No record has the ID ${id}.`);
      dense = got.embeddings?.[0];
      sparse = got.documents?.[0];
      if (form.mode !== 'dense' && !sparse) throw new Error(`Record ${id} has no document for BM25.`);
      const notItself = { '#id': { $nin: [id] } };
      filter = filter ? { $and: [filter, notItself] } : notItself;
    }
    const started = performance.now();
    const answer = await api('POST', `${collPath(c)}/search`, buildSearch(key, form.mode, dense, sparse, n, filter));
    const ms = performance.now() - started;
    if (!latest()) return;
    const ids = answer.ids[0] || [];
    const scoreLabel = form.mode === 'dense' ? 'Distance' : form.mode === 'bm25' ? 'Score' : 'Fused score';
    const rows = ids.map((id, i) =>
      el(
        'tr',
        { class: 'clickable', 'data-id': id, onclick: () => showRecord(c, id) },
        el('td', { class: 'num', text: i + 1 }),
        el('td', { class: 'mono', text: id }),
        el('td', { class: 'num score', text: answer.scores?.[0]?.[i]?.toFixed(4) ?? '' }),
        el('td', { class: 'doc', text: excerpt(answer.documents?.[0]?.[i], 200) }),
        el('td', { class: 'meta', text: metaExcerpt(answer.metadatas?.[0]?.[i], 100) }),
      ),
    );
    results.replaceChildren(
      el('p', { class: 'muted small', text: `${ids.length} result${ids.length === 1 ? '' : 's'} in ${ms.toFixed(0)} ms; lower scores rank first` }),
      rows.length
        ? dataTable({ class: 'results' }, ['#', 'ID', scoreLabel, 'Document', 'Metadata'], rows)
        : el('p', { class: 'empty', text: 'Nothing found.' }),
    );
  } catch (err) {
    if (latest()) results.replaceChildren(errorBox(err));
  }
}

// ----- details, rename, delete -----

function detailsTab(c, count, body) {
  const rename = el('input', { id: 'rename', value: c.name, 'aria-label': 'New name' });
  body.replaceChildren(
    factList(
      [
        ['ID', c.id],
        ['Tenant', c.tenant],
        ['Database', c.database],
        ['Records', fmtNumber(count)],
        ['Dimension', c.dimension ?? '– (no records yet)'],
        ['Distance', spaceOf(c)],
        ['Embedding function', embeddingFunctionOf(c)],
        ['BM25 key', bm25Key(c) || 'none'],
      ],
      'details',
    ),
    el('h3', { text: 'Metadata' }),
    el('pre', { id: 'details-metadata', text: c.metadata ? json(c.metadata) : '(none)' }),
    el('h3', { text: 'Configuration' }),
    el('pre', { id: 'details-configuration', text: json(c.configuration_json || {}) }),
    el('details', {}, el('summary', { text: 'Schema' }), el('pre', { id: 'details-schema', text: json(c.schema || {}) })),
    el('h3', { text: 'Rename' }),
    el(
      'form',
      {
        class: 'inline-form',
        onsubmit: async (e) => {
          e.preventDefault();
          const name = rename.value.trim();
          if (name === c.name) return;
          try {
            await api('PUT', collPath(c), { new_name: name });
            toast(`Renamed ${c.name} to ${name}`);
            location.hash = href(c.tenant, c.database, name, 'details');
          } catch (err) {
            body.querySelector('.rename-error')?.remove();
            e.target.after(el('div', { class: 'rename-error' }, errorBox(err)));
          }
        },
      },
      rename,
      el('button', { type: 'submit', id: 'rename-button' }, 'Rename'),
    ),
    el('h3', { text: 'Danger zone' }),
    el('button', { type: 'button', class: 'danger', id: 'delete-collection', onclick: () => deleteCollection(c, count) }, 'Delete collection'),
  );
}

function deleteCollection(c, count) {
  const confirmName = el('input', { id: 'confirm-name', autocomplete: 'off', 'aria-label': 'Collection name' });
  openModal({
    title: `Delete ${c.name}?`,
    okText: 'Delete',
    danger: true,
    content: [
      el('p', { text: `This deletes the collection and its ${fmtNumber(count)} records. It cannot be undone.` }),
      el('label', {}, `Type ${c.name} to confirm`, confirmName),
    ],
    onOk: async () => {
      if (confirmName.value !== c.name) throw new Error('The name does not match.');
      await api('DELETE', `${dbPath(c.tenant, c.database)}/collections/${enc(c.name)}`);
      toast(`Deleted ${c.name}`);
      location.hash = href(c.tenant, c.database);
    },
  });
  confirmName.focus();
}

// ----- modal -----

function closeModal() {
  const dialog = $('modal');
  openModal.token = (openModal.token || 0) + 1;
  if (dialog.open) dialog.close();
}

function openModal({ title, content, okText = 'OK', danger = false, wide = false, onOk }) {
  const dialog = $('modal');
  // Each opening has its token: an answer for a dialog closed (or replaced) since is dropped.
  const token = (openModal.token = (openModal.token || 0) + 1);
  $('modal-title').textContent = title;
  $('modal-content').replaceChildren(...content);
  const ok = $('modal-ok');
  ok.disabled = false;
  ok.textContent = okText;
  ok.className = danger ? 'danger' : 'primary';
  dialog.classList.toggle('wide', wide);
  const error = $('modal-error');
  error.hidden = true;
  $('modal-form').onsubmit = async (e) => {
    e.preventDefault();
    ok.disabled = true;
    try {
      await onOk();
      if (token === openModal.token) closeModal();
    } catch (err) {
      if (token !== openModal.token) return;
      error.textContent = err instanceof ApiError ? `${err.name}: ${err.message}` : err.message;
      error.hidden = false;
    } finally {
      if (token === openModal.token) ok.disabled = false;
    }
  };
  if (!dialog.open) dialog.showModal();
}

// ----- health -----

function parseMetrics(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

function summarise(samples) {
  const routes = new Map();
  let collections = 0;
  let records = 0;
  for (const s of samples) {
    if (s.name === 'ochre_collections') collections = s.value;
    else if (s.name === 'ochre_records') records = s.value;
    else if (s.name.startsWith('ochre_http_')) {
      const k = `${s.labels.method} ${s.labels.route}`;
      const r = routes.get(k) || { method: s.labels.method, route: s.labels.route, count: 0, errors: 0, seconds: 0 };
      if (s.name === 'ochre_http_requests_total') r.count = s.value;
      if (s.name === 'ochre_http_request_errors_total') r.errors = s.value;
      if (s.name === 'ochre_http_request_duration_seconds_sum') r.seconds = s.value;
      routes.set(k, r);
    }
  }
  return { routes, collections, records, at: performance.now() };
}

function sparkline(values) {
  const svg = el('svg', { svg: true, class: 'spark', viewBox: '0 0 120 36', preserveAspectRatio: 'none', role: 'img' });
  if (values.length < 2) return svg;
  const max = Math.max(...values, 1e-9);
  // Spread over the width until the window is full, then scroll.
  const step = 120 / (Math.max(values.length, 8) - 1);
  const x0 = 120 - (values.length - 1) * step;
  const pts = values.map((v, i) => `${(x0 + i * step).toFixed(2)},${(34 - (v / max) * 32).toFixed(2)}`);
  svg.append(
    el('polygon', { svg: true, class: 'area', points: `${x0.toFixed(2)},36 ${pts.join(' ')} 120,36` }),
    el('polyline', { svg: true, class: 'line', points: pts.join(' ') }),
  );
  return svg;
}

function chartCard(id, title, unit) {
  const value = el('div', { class: 'big' });
  const chart = el('div', { class: 'chart' });
  const card = el('div', { class: 'card chart-card', id }, el('div', { class: 'card-title', text: title }), value, chart);
  return {
    card,
    draw(series, fmt = fmtNumber) {
      const last = series.length ? series[series.length - 1] : null;
      value.textContent = last === null ? '–' : fmt(last) + (unit ? ' ' + unit : '');
      chart.replaceChildren(sparkline(series));
    },
  };
}

async function healthView(gen) {
  let status = null;
  let statusError = null;
  try {
    status = await api('GET', API + '/admin/status');
  } catch (err) {
    if (err.needsLogin) throw err;
    statusError = err;
  }
  if (!current(gen)) return;
  const facts = status
    ? factList(
        [
          ['Version', status.version],
          ['Data directory', status.data_dir || 'in memory'],
          ['Uptime', fmtDuration(status.uptime_seconds)],
          ['Embedding model', status.embedding_model ? 'all-MiniLM-L6-v2 (text queries are embedded here)' : 'none'],
        ],
        'status',
      )
    : errorBox(statusError);
  const charts = {
    rate: chartCard('chart-rate', 'Requests / s'),
    latency: chartCard('chart-latency', 'Mean latency', 'ms'),
    errors: chartCard('chart-errors', 'Errors / s'),
    records: chartCard('chart-records', 'Records'),
  };
  const routeTable = el('tbody');
  const metricsError = el('div', { id: 'metrics-error' });
  const collectionsFact = el('span', { id: 'health-collections' });
  view().replaceChildren(
    el(
      'section',
      { class: 'content wide' },
      el('div', { class: 'heading' }, el('h1', { text: 'Health' }), el('span', { class: 'muted' }, collectionsFact)),
      el('div', { class: 'card' }, facts),
      metricsError,
      el('div', { class: 'charts' }, Object.values(charts).map((c) => c.card)),
      el('h3', { text: 'Requests by route (since start)' }),
      dataTable({ id: 'routes' }, ['Method', 'Route', 'Requests', 'Errors', 'Mean ms', 'Now / s', 'Last 2 min'], routeTable),
    ),
  );
  const series = { rate: [], latency: [], errors: [], records: [] };
  /** Each route's request rate, sample by sample. */
  const routeRates = new Map();
  let previous = null;
  const startedAt = performance.now();
  const push = (k, v) => {
    series[k].push(v);
    if (series[k].length > HEALTH_SAMPLES) series[k].shift();
  };
  const tick = async () => {
    let text;
    try {
      text = await api('GET', METRICS, undefined, { raw: true });
    } catch (err) {
      if (err.needsLogin || !current(gen)) return false;
      metricsError.replaceChildren(errorBox(err));
      // Not allowed (a scoped token): asking again will not change that.
      return err.status !== 403;
    }
    if (!current(gen)) return false;
    metricsError.replaceChildren();
    const now = summarise(parseMetrics(text));
    collectionsFact.textContent = `${fmtNumber(now.collections)} collections, ${fmtNumber(now.records)} records`;
    const uptime = status ? status.uptime_seconds + (performance.now() - startedAt) / 1000 : null;
    const uptimeCell = document.querySelector('#status dd:nth-of-type(3)');
    if (uptime !== null && uptimeCell) uptimeCell.textContent = fmtDuration(uptime);
    const rates = new Map();
    if (previous) {
      const dt = (now.at - previous.at) / 1000;
      let count = 0;
      let errors = 0;
      let seconds = 0;
      for (const [k, r] of now.routes) {
        const p = previous.routes.get(k) || { count: 0, errors: 0, seconds: 0 };
        const dc = Math.max(0, r.count - p.count);
        rates.set(k, dc / dt);
        const history = routeRates.get(k) || [];
        history.push(dc / dt);
        if (history.length > HEALTH_SAMPLES) history.shift();
        routeRates.set(k, history);
        if (OWN_ROUTES.has(r.route)) continue;
        count += dc;
        errors += Math.max(0, r.errors - p.errors);
        seconds += Math.max(0, r.seconds - p.seconds);
      }
      push('rate', count / dt);
      push('errors', errors / dt);
      // No request in the interval: the last mean stands (a gap, not a fall to zero).
      push('latency', count ? (seconds / count) * 1000 : (series.latency.at(-1) ?? 0));
    }
    push('records', now.records);
    charts.rate.draw(series.rate, (v) => v.toFixed(1));
    charts.latency.draw(series.latency, (v) => v.toFixed(1));
    charts.errors.draw(series.errors, (v) => v.toFixed(1));
    charts.records.draw(series.records);
    const sorted = [...now.routes.values()].sort((a, b) => b.count - a.count);
    routeTable.replaceChildren(
      ...sorted.map((r) =>
        el(
          'tr',
          {},
          el('td', { text: r.method }),
          el('td', { class: 'mono', text: r.route }),
          el('td', { class: 'num', text: fmtNumber(r.count) }),
          el('td', { class: 'num', text: fmtNumber(r.errors) }),
          el('td', { class: 'num', text: r.count ? ((r.seconds / r.count) * 1000).toFixed(2) : '–' }),
          el('td', { class: 'num', text: rates.has(`${r.method} ${r.route}`) ? rates.get(`${r.method} ${r.route}`).toFixed(1) : '–' }),
          el('td', { class: 'spark-cell' }, sparkline(routeRates.get(`${r.method} ${r.route}`) || [])),
        ),
      ),
    );
    previous = now;
    return true;
  };
  if ((await tick()) && current(gen)) every(HEALTH_EVERY_MS, tick, gen);
}

// ----- start -----

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', signIn);
  $('logout').addEventListener('click', logout);
  $('modal-cancel').addEventListener('click', closeModal);
  // Escape closes the dialog too: its pending answer is then dropped.
  $('modal').addEventListener('cancel', () => {
    openModal.token = (openModal.token || 0) + 1;
  });
  window.addEventListener('hashchange', route);
  state.cred = loadCred();
  start();
});
