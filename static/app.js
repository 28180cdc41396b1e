// gemgate dashboard: a client of the admin API (api/…, relative to this page,
// so it works under any path prefix). Session cookie + x-csrf-token header.
'use strict';

const API = new URL('api/', location.href);
let csrf = sessionStorage.getItem('gemgate.csrf') || '';
let timers = [];

// ---------- small helpers ----------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}
const $ = sel => document.querySelector(sel);
const fmt = n => (n === null || n === undefined) ? '–' : Number(n).toLocaleString(LANG === 'zh' ? 'zh-CN' : 'en');
const pct = r => (r * 100).toFixed(r >= 0.9995 || r === 0 ? 0 : 1) + '%';
const when = ms => ms ? new Date(ms).toLocaleString(LANG === 'zh' ? 'zh-CN' : 'en') : t('common.never');
// A time as a datetime-local input's value (the browser's local time).
const localInput = ms => { const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000); return d.toISOString().slice(0, 16); };
const clock = ms => new Date(ms).toLocaleTimeString(LANG === 'zh' ? 'zh-CN' : 'en', { hour: '2-digit', minute: '2-digit' });
function countdown(ms) {
  let s = Math.max(0, Math.round((ms - Date.now()) / 1000));
  const d = Math.floor(s / 86400); s %= 86400;
  const hh = Math.floor(s / 3600); s %= 3600;
  const mm = Math.floor(s / 60); s %= 60;
  return (d ? d + 'd ' : '') + (d || hh ? hh + 'h ' : '') + (d || hh || mm ? mm + 'm ' : '') + s + 's';
}
// A short message; with `action` ({ label, run }) it carries a button and
// stays longer (an undo).
function toast(text, bad, action) {
  const el = $('#toast');
  el.replaceChildren(text);
  if (action) el.append(' ', h('button', { type: 'button', id: 'toast-action', onclick: () => { el.classList.remove('show'); action.run(); } }, action.label));
  el.classList.toggle('bad', !!bad);
  el.classList.toggle('actionable', !!action);
  el.classList.add('show');
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove('show'), action ? 15000 : 3500);
}
function every(ms, fn) { timers.push(setInterval(fn, ms)); }
function clearTimers() { timers.forEach(clearInterval); timers = []; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  const res = await fetch(new URL(path, API), {
    method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  const type = res.headers.get('content-type') || '';
  if (res.ok && type.startsWith('text/plain')) data = await res.text();
  else try { data = await res.json(); } catch (_) { /* empty body */ }
  if (res.status === 401 && path !== 'login') { showLogin(); throw new ApiError(401, t('login.title')); }
  if (!res.ok) throw new ApiError(res.status, serverMessage(data && data.error) || res.statusText);
  return data;
}

// The server's message in the operator's language: English as sent, other
// languages from the message's id (the English text when none is known).
function serverMessage(error) {
  if (!error) return '';
  if (LANG === 'en' || !error.id) return error.message;
  return tOr('err.' + error.id, error.message).split(/\{(\w+)\}/).map((part, i) => i % 2 ? ((error.args || {})[part] ?? '') : part).join('');
}

function fail(err) { if (err.status !== 401) toast(err.message, true); }

// ---------- dialog ----------
function dialog(title, body, okText) {
  const dlg = $('#dialog');
  $('#dialog-title').textContent = title;
  const holder = $('#dialog-body');
  holder.replaceChildren(body);
  $('#dialog-ok').textContent = okText || t('common.ok');
  $('#dialog-cancel').textContent = t('common.cancel');
  return new Promise(resolve => {
    const done = ok => { dlg.close(); resolve(ok); };
    $('#dialog-ok').onclick = ev => { ev.preventDefault(); done(true); };
    $('#dialog-cancel').onclick = () => done(false);
    dlg.oncancel = () => resolve(false);
    dlg.showModal();
  });
}
const confirmBox = text => dialog(text, h('p', { text: '' }));
// Google's message without its boilerplate (links to docs, "Please retry").
function cleanGoogle(text) {
  return String(text || '').split(/ (?:Please refer to|For more information|Learn more|To monitor your current usage)/)[0]
    .replace(/\s*\* Quota exceeded for metric:.*$/s, m => m.split('\n')[0]).trim();
}
// A translation, or `fallback` when there is none.
const tOr = (key, fallback) => { const text = t(key); return text === key ? fallback : text; };
const reasonText = reason => tOr('keys.disableReason.' + reason, reason);

// The last attempts of a key as a strip of cells (newest right): green
// succeeded, red failed.
function heatStrip(recent, last = 24) {
  const outcomes = (recent || '').slice(-last);
  const strip = h('span', { class: 'heat', role: 'img', 'aria-label': t('keys.heat', { n: outcomes.length, failed: outcomes.split('x').length - 1 }),
    title: t('keys.heat', { n: outcomes.length, failed: outcomes.split('x').length - 1 }) });
  for (const o of outcomes) strip.appendChild(h('i', { class: o === 'x' ? 'bad' : 'ok' }));
  return strip;
}

// A confirm for what cannot be taken back lightly: the OK button in red.
async function dangerBox(title, detail, okText) {
  const ok = $('#dialog-ok');
  ok.classList.add('danger');
  try { return await dialog(title, h('p', { id: 'danger-detail', text: detail }), okText); } finally { ok.classList.remove('danger'); }
}

// ---------- login ----------
function showLogin() {
  clearTimers();
  $('#nav').hidden = true; $('#logout').hidden = true;
  $('#view').replaceChildren();
  $('#login').hidden = false;
  $('#login-key').focus();
}

async function login(ev) {
  ev.preventDefault();
  $('#login-error').textContent = '';
  try {
    const res = await api('POST', 'login', { key: $('#login-key').value });
    csrf = res.csrf_token; sessionStorage.setItem('gemgate.csrf', csrf);
    $('#login-key').value = '';
    $('#login').hidden = true;
    route();
  } catch (err) { $('#login-error').textContent = err.message; }
}

async function logout() {
  try { await api('DELETE', 'session'); } catch (_) { /* already gone */ }
  csrf = ''; sessionStorage.removeItem('gemgate.csrf');
  showLogin();
}

// ---------- overview ----------
async function overview(view) {
  let range = sessionStorage.getItem('gemgate.range') || 'hour';
  const rangeSel = h('select', { 'aria-label': 'range', onchange: e => { range = e.target.value; sessionStorage.setItem('gemgate.range', range); load(); } },
    ['hour', 'day', 'week'].map(r => h('option', { value: r, selected: r === range }, t('ov.range.' + r))));
  const cards = h('div', { class: 'grid', id: 'ov-cards' });
  const traffic = h('div', { id: 'ov-traffic' });
  // What the chart shows and how it is split (kept for the session).
  let metric = sessionStorage.getItem('gemgate.metric') || 'requests';
  let split = sessionStorage.getItem('gemgate.split') || 'none';
  const metricSel = h('select', { id: 'ov-metric', 'aria-label': t('ov.metric'), onchange: e => { metric = e.target.value; sessionStorage.setItem('gemgate.metric', metric); load(); } },
    ['requests', 'errors', 'rate_limited', 'google_429'].map(m => h('option', { value: m, selected: m === metric }, t('ov.metric.' + m))));
  const splitSel = h('select', { id: 'ov-split', 'aria-label': t('ov.split'), onchange: e => { split = e.target.value; sessionStorage.setItem('gemgate.split', split); load(); } },
    ['none', 'model', 'group', 'client'].map(m => h('option', { value: m, selected: m === split }, t('ov.split.' + m))));
  const legend = h('div', { class: 'legend', id: 'ov-legend' });
  const states = h('div', { id: 'ov-states' });
  const tables = h('div', { class: 'grid2', id: 'ov-tables' });
  const note = h('p', { class: 'muted', id: 'ov-note' });
  view.append(
    h('div', { class: 'row' }, h('h1', { text: t('ov.title') }), h('span', { class: 'spacer' }), rangeSel),
    cards, note,
    h('div', { class: 'grid-wide' },
      h('div', { class: 'card' }, h('div', { class: 'row' }, h('h2', { text: t('ov.traffic') }), h('span', { class: 'spacer' }), metricSel, splitSel),
        traffic, legend),
      h('div', { class: 'card' }, h('h2', { text: t('ov.states') }), states)),
    tables);
  async function load() {
    let s;
    try { s = await api('GET', 'stats?' + new URLSearchParams({ range, split })); } catch (err) { return fail(err); }
    const p = s.pool;
    const stat = (label, value, id, sub) => h('div', { class: 'stat', 'data-stat': id }, h('div', { class: 'label', text: label }),
      h('div', { class: 'value', text: value }), sub ? h('div', { class: 'sub muted', text: sub }) : '');
    cards.replaceChildren(
      stat(t('ov.requests'), fmt(s.totals.requests), 'requests'),
      stat(t('ov.success'), pct(s.totals.success_rate), 'success'),
      stat(t('ov.latency'), `${fmt(s.totals.p50_ms)} / ${fmt(s.totals.p95_ms)} ms`, 'latency'),
      stat(t('ov.tokens'), fmt(s.totals.tokens), 'tokens'),
      stat(t('ov.inflight'), fmt(p.in_flight), 'inflight'),
      // Ready means serving every model: keys resting on some models are
      // counted apart, cooling and disabled ones not at all.
      stat(t('ov.keys'), `${fmt(p.active)} / ${fmt(p.keys)}`, 'keys',
        p.partial ? t('ov.keysPartial', { n: fmt(p.partial) }) : ''));
    note.textContent = [s.sampled ? t('ov.sampled') : '', p.policy_faults ? `${t('ov.faults')}: ${p.policy_faults}` : '',
      p.cluster === 'down' ? t('ov.clusterDown', { why: p.cluster_error || '' }) : ''].filter(Boolean).join(' ');
    const label = range === 'hour' ? clock : ms => new Date(ms).toLocaleString(LANG === 'zh' ? 'zh-CN' : 'en', { month: 'numeric', day: 'numeric', hour: '2-digit' });
    if (metric === 'requests' && split === 'none') {
      // Failed requests under the succeeded ones.
      traffic.replaceChildren(stackedChart(s.buckets.map(b => b.start_ms), [
        { name: t('ov.err'), values: s.buckets.map(b => b.errors), cls: 'bar-bad' },
        { name: t('ov.ok'), values: s.buckets.map(b => b.requests - b.errors), cls: 'bar-ok' }], label));
      legend.replaceChildren(h('span', {}, h('i', { class: 'ok' }), t('ov.ok')), h('span', {}, h('i', { class: 'bad' }), t('ov.err')));
    } else {
      const series = s.series.map(x => ({ name: x.name === 'all' ? t('ov.metric.' + metric) : x.name, values: x.points.map(p => p[metric]) }));
      traffic.replaceChildren(stackedChart(s.buckets.map(b => b.start_ms), series, label));
      legend.replaceChildren(...series.map((x, n) => h('span', { class: 'series-name' }, h('i', { class: 'series s' + (n % 6) }),
        `${x.name} (${fmt(x.values.reduce((a, b) => a + b, 0))})`)));
    }
    states.replaceChildren(stateBar(p),
      h('ul', { class: 'state-list' }, ['active', 'partial', 'cooling', 'disabled'].map(st =>
        h('li', {}, h('a', { href: '#keys/' + st, class: 'state-link', 'data-state': st }, h('i', { class: 'dot ' + st }), t('state.' + st)),
          h('b', { text: fmt(p[st]) })))));
    const table = (title, rows) => {
      if (!rows.length) return h('div', { class: 'card' }, h('h2', { text: title }), h('p', { class: 'muted', text: t('common.none') }));
      const head = h('thead', {}, h('tr', {}, [t('ov.name'), t('ov.requests'), t('ov.success'), t('ov.p95'), t('ov.tokens')].map(c => h('th', { text: c }))));
      const body = h('tbody', {}, rows.map(r => h('tr', {},
        h('td', { class: 'mono', text: r.name }), h('td', { text: fmt(r.requests) }),
        h('td', { text: pct(r.success_rate) }), h('td', { text: fmt(r.p95_ms) + ' ms' }), h('td', { text: fmt(r.tokens) }))));
      return h('div', { class: 'card' }, h('h2', { text: title }), h('div', { class: 'table-wrap' }, h('table', { class: 'compact' }, head, body)));
    };
    tables.replaceChildren(table(t('ov.byModel'), s.by_model), table(t('ov.byGroup'), s.by_group), table(t('ov.byClient'), s.by_client));
  }
  await load();
  every(5000, load);
}

// ---------- keys ----------
async function keysView(view, tab) {
  // The selection is scoped to what is shown: changing the tab, group,
  // search or page clears it (fingerprint → group, for the confirm).
  const state = { tab: ['active', 'partial', 'cooling', 'disabled'].includes(tab) ? tab : '', search: '', group: '', sort: 'state', order: '', page: 1, selected: new Map(), everything: false, data: null };
  const rescope = () => { state.selected.clear(); state.everything = false; state.page = 1; };
  const tabs = h('div', { class: 'tabs', role: 'tablist' });
  const search = h('input', { type: 'search', class: 'search', placeholder: t('keys.search'), 'aria-label': t('keys.search'),
    oninput: debounce(e => { state.search = e.target.value; rescope(); load(); }, 250) });
  const group = h('select', { id: 'key-group', 'aria-label': t('keys.group'), onchange: e => { state.group = e.target.value; rescope(); load(); } });
  const sort = h('select', { id: 'key-sort', 'aria-label': t('keys.sort'), onchange: e => { state.sort = e.target.value; state.order = ''; load(); } },
    ['state', 'failures', 'cooling_until', 'last_used', 'requests', 'group', 'fingerprint'].map(s => h('option', { value: s }, t('keys.sort.' + s))));
  // Each sort has its natural direction (largest first for counts and
  // times); the button turns it around.
  const natural = s => ['requests', 'failures', 'last_used', 'cooling_until'].includes(s) ? 'desc' : 'asc';
  const direction = h('button', { type: 'button', id: 'key-order', class: 'ghost', title: t('keys.order'),
    onclick: () => { state.order = (state.order || natural(state.sort)) === 'asc' ? 'desc' : 'asc'; load(); } });
  const bar = h('div', { class: 'progress', hidden: true }, h('div'));
  const scanText = h('span', { class: 'muted', id: 'scan-text' });
  const selText = h('span', { class: 'muted', id: 'selection-text' });
  const selectEverything = h('button', { type: 'button', class: 'link', id: 'select-matching', hidden: true, onclick: selectMatching });
  const bulk = (label, action, cls) => h('button', { type: 'button', class: cls, 'data-action': action, onclick: () => bulkAction(action) }, label);
  const actions = h('div', { class: 'row' }, selText, selectEverything,
    bulk(t('keys.enable'), 'enable'), bulk(t('keys.disable'), 'disable'), bulk(t('keys.verify'), 'verify'), bulk(t('keys.delete'), 'delete', 'danger'));
  const body = h('tbody');
  const pager = h('div', { class: 'row' });
  const importReport = h('div', { id: 'import-report' });
  const all = h('input', { type: 'checkbox', id: 'select-page', 'aria-label': 'select all', onchange: e => {
    for (const k of state.data.items) e.target.checked ? state.selected.set(k.fingerprint, k.group) : state.selected.delete(k.fingerprint);
    state.everything = false;
    render();
  } });
  view.append(
    h('div', { class: 'row' }, h('h1', { text: t('keys.title') }), h('span', { class: 'spacer' }),
      h('button', { type: 'button', class: 'primary', id: 'add-keys', onclick: addKeys }, t('keys.add')),
      h('button', { type: 'button', id: 'scan', onclick: startScan }, t('keys.scan'))),
    // Hygiene in one click each: the selection they make goes through the usual confirms.
    h('div', { class: 'row hygiene' },
      h('button', { type: 'button', id: 'pick-invalid', onclick: () => pickAll({ state: 'disabled', reason: 'invalid' }, 'disabled') }, t('keys.pickInvalid')),
      h('button', { type: 'button', id: 'reverify-disabled', onclick: reverifyDisabled }, t('keys.reverifyDisabled')),
      h('button', { type: 'button', id: 'export-keys', onclick: exportKeys }, t('keys.export'))),
    importReport,
    h('div', { class: 'card' },
      h('div', { class: 'row' }, bar, scanText),
      tabs,
      h('div', { class: 'row' }, search, group, sort, direction, h('span', { class: 'spacer' }), actions),
      h('div', { class: 'table-wrap' }, h('table', { id: 'keys-table' },
        h('thead', {}, h('tr', {}, h('th', {}, all), [t('keys.key'), t('keys.group'), t('keys.state'), t('keys.cooldown'),
          t('keys.requests'), t('keys.failures'), t('keys.lastUsed'), t('keys.lastError'), ''].map((c, i) => h('th', { class: i === 7 || i === 6 ? 'hide-sm' : '', text: c })))),
        body)),
      pager));

  async function load() {
    const order = state.order || natural(state.sort);
    direction.textContent = order === 'asc' ? '↑' : '↓';
    const q = new URLSearchParams({ page: state.page, per_page: 50, sort: state.sort, order });
    if (state.tab) q.set('state', state.tab);
    if (state.search.trim()) q.set('search', state.search.trim());
    if (state.group) q.set('group', state.group);
    try { state.data = await api('GET', 'keys?' + q); } catch (err) { return fail(err); }
    render();
  }
  function render() {
    const d = state.data;
    const counts = d.counts, total = counts.active + counts.partial + counts.cooling + counts.disabled;
    tabs.replaceChildren(...[['', t('keys.all'), total], ['active', t('state.active'), counts.active],
      ['partial', t('state.partial'), counts.partial], ['cooling', t('state.cooling'), counts.cooling], ['disabled', t('state.disabled'), counts.disabled]].map(([key, label, n]) =>
      h('button', { type: 'button', role: 'tab', class: state.tab === key ? 'active' : '', 'data-tab': key || 'all',
        onclick: () => { state.tab = key; rescope(); load(); } }, `${label} (${fmt(n)})`)));
    const current = state.group;
    group.replaceChildren(h('option', { value: '' }, t('keys.allGroups')),
      ...d.groups.map(g => h('option', { value: g.name, selected: g.name === current }, `${g.name} (${g.keys})`)));
    body.replaceChildren(...d.items.map(k => {
      const picked = state.selected.has(k.fingerprint);
      const cooling = k.cooling_until_ms ? h('span', { class: 'countdown', 'data-until': k.cooling_until_ms,
        title: k.cooldowns.map(c => `${c.model || t('keys.every')}: ${when(c.until_ms)} (${c.reason})`).join('\n') }, countdown(k.cooling_until_ms)) : '';
      return h('tr', { class: picked ? 'selected' : '', 'data-fingerprint': k.fingerprint },
        h('td', {}, h('input', { type: 'checkbox', checked: picked, 'aria-label': k.fingerprint, onchange: e => {
          e.target.checked ? state.selected.set(k.fingerprint, k.group) : state.selected.delete(k.fingerprint);
          state.everything = false; render();
        } })),
        h('td', { class: 'mono' }, h('button', { type: 'button', class: 'link key-open', onclick: ev => { ev.stopPropagation(); panel(k, ev.target.closest('tr')); } }, k.masked),
          h('br'), h('span', { class: 'muted', text: k.fingerprint })),
        h('td', { text: k.group }),
        h('td', {}, h('span', { class: 'badge ' + k.state, text: t('state.' + k.state) }),
          k.disabled_reason ? h('div', { class: 'muted disabled-why', text: [t('keys.disabledBy', { reason: reasonText(k.disabled_reason) }),
            when(k.disabled_since_ms), t('keys.until.' + k.disabled_until)].join(' · ') }) : '',
          heatStrip(k.recent)),
        h('td', {}, cooling),
        h('td', { text: fmt(k.requests) }),
        h('td', { text: fmt(k.failures) }),
        h('td', { class: 'hide-sm', text: when(k.last_used_ms) }),
        h('td', { class: 'wrap hide-sm', text: cleanGoogle(k.last_error), title: k.last_error || '' }),
        h('td', {}, h('button', { type: 'button', class: 'ghost', onclick: () => copyKey(k.fingerprint) }, t('keys.copy'))));
    }));
    all.checked = d.items.length > 0 && d.items.every(k => state.selected.has(k.fingerprint));
    selText.textContent = state.everything ? t('keys.selectedAll', { n: fmt(state.selected.size) }) : t('keys.selected', { n: state.selected.size });
    // Every key of the page is picked and more match: offer them all.
    selectEverything.hidden = state.everything || !all.checked || d.total <= d.items.length;
    selectEverything.textContent = t('keys.selectMatching', { n: fmt(d.total) });
    for (const b of actions.querySelectorAll('button[data-action]')) b.disabled = state.selected.size === 0;
    pagerFor(pager, d.page, d.per_page, d.total, p => { state.selected.clear(); state.everything = false; state.page = p; load(); });
  }
  // The why behind a key, under its row: its rests per model (reason and
  // countdown), its disable (reason, since, how it ends), counters, Google's
  // last words without the boilerplate, and its recent failed attempts.
  async function panel(k, row) {
    const next = row.nextElementSibling;
    if (next && next.classList.contains('key-panel')) { next.remove(); return; }
    const cell = h('td', { colspan: 10 });
    row.after(h('tr', { class: 'key-panel', 'data-panel': k.fingerprint }, cell));
    const rests = k.cooldowns.length
      ? h('ul', { class: 'rests' }, k.cooldowns.map(c => h('li', { 'data-source': c.source }, h('b', { text: c.model || t('keys.every') }), ': ',
        tOr('keys.restReason.' + c.reason, c.reason), ' · ', tOr('keys.source.' + c.source, c.source), ' · ',
        h('span', { class: 'countdown', 'data-until': c.until_ms, text: countdown(c.until_ms) }), ' (', when(c.until_ms), ')')))
      : h('p', { class: 'muted', text: t('keys.noRests') });
    const disabled = k.disabled_reason ? h('p', { class: 'disabled-why' }, h('b', { text: t('keys.disabledBy', { reason: reasonText(k.disabled_reason) }) }), ' · ',
      t('keys.since', { when: when(k.disabled_since_ms) }), ' · ', t('keys.until.' + k.disabled_until)) : '';
    const numbers = h('p', { class: 'muted', text: t('keys.numbers', { requests: fmt(k.requests), ok: fmt(k.successes), failed: fmt(k.failures),
      row: k.consecutive_failures, latency: k.mean_latency_ms == null ? '–' : k.mean_latency_ms, tokens: fmt(k.tokens) }) });
    const last = k.last_error ? h('p', {}, h('b', { text: t('keys.lastError') + ': ' }), cleanGoogle(k.last_error)) : '';
    const recent = h('div', {}, h('p', { class: 'muted', text: t('common.loading') }));
    // The last hour's success rate in five-minute steps, and the last attempts.
    const hourAgo = h('div', { class: 'spark-row' }, h('span', { class: 'muted', text: t('keys.successHour') }),
      successSparkline(k.hour, ms => clock(ms)), heatStrip(k.recent, 64));
    cell.replaceChildren(h('h3', { text: `${k.masked} · ${k.group}` }), disabled, h('h4', { text: t('keys.rests') }), rests, numbers, hourAgo, last,
      h('h4', { text: t('keys.recent') }), recent);
    try {
      const res = await api('GET', 'logs/errors?' + new URLSearchParams({ key: k.fingerprint, per_page: 10 }));
      recent.replaceChildren(res.items.length ? h('ul', { class: 'recent' }, res.items.map(e => h('li', {}, when(e.at_ms), ' · ',
        h('b', { text: `${e.http_status} ${e.google_status}` }), e.reason ? ` (${e.reason})` : '', ' · ', e.model, ' · ', cleanGoogle(e.message))))
        : h('p', { class: 'muted', text: t('keys.noRecent') }));
    } catch (err) { recent.replaceChildren(h('p', { class: 'error', text: err.message })); }
  }
  // Every key matching the tab, group and search, page by page.
  async function selectMatching() {
    const filter = {};
    if (state.tab) filter.state = state.tab;
    if (state.search.trim()) filter.search = state.search.trim();
    if (state.group) filter.group = state.group;
    await selectWhere(filter);
  }
  async function selectWhere(filter) {
    const q = new URLSearchParams({ per_page: 1000, ...filter });
    try {
      for (let page = 1; ; page++) {
        q.set('page', page);
        const res = await api('GET', 'keys?' + q);
        for (const k of res.items) state.selected.set(k.fingerprint, k.group);
        if (page * res.per_page >= res.total) break;
      }
    } catch (err) { return fail(err); }
    state.everything = true;
    render();
  }
  // Shows `tab` and selects every key matching `filter` (e.g. all invalid ones).
  async function pickAll(filter, tab) {
    state.tab = tab; state.group = ''; state.search = ''; search.value = ''; rescope();
    await load();
    await selectWhere(filter);
    toast(t('keys.picked', { n: fmt(state.selected.size) }));
  }
  async function reverifyDisabled() {
    await pickAll({ state: 'disabled' }, 'disabled');
    if (state.selected.size) await bulkAction('verify');
  }
  async function exportKeys() {
    const st = h('select', { id: 'export-state' }, ['', 'active', 'partial', 'cooling', 'disabled'].map(v =>
      h('option', { value: v, text: v ? t('state.' + v) : t('keys.all') })));
    const gr = h('select', { id: 'export-group' }, h('option', { value: '', text: t('keys.allGroups') }),
      ...(state.data ? state.data.groups : []).map(g => h('option', { value: g.name, text: g.name })));
    const ok = await dialog(t('keys.exportTitle'), h('div', {}, h('p', { class: 'error', text: t('keys.exportWarn') }),
      h('label', { class: 'field' }, t('keys.state'), st), h('label', { class: 'field' }, t('keys.group'), gr)), t('keys.export'));
    if (!ok) return;
    const body = {};
    if (st.value) body.state = st.value;
    if (gr.value) body.group = gr.value;
    try {
      const text = await api('POST', 'keys/export', body);
      const link = h('a', { href: URL.createObjectURL(new Blob([text], { type: 'text/plain' })), download: 'gemgate-keys.txt' });
      document.body.append(link); link.click(); link.remove();
      toast(t('keys.exported', { n: text.split('\n').filter(Boolean).length }));
    } catch (err) { fail(err); }
  }
  // "51 keys: 50 in legacy, 1 in batch2"
  function scope() {
    const by = new Map();
    for (const g of state.selected.values()) by.set(g, (by.get(g) || 0) + 1);
    const parts = [...by].sort((a, b) => b[1] - a[1]).map(([g, n]) => t('keys.inGroup', { n: fmt(n), group: g }));
    return t('keys.scope', { n: fmt(state.selected.size), groups: parts.join(', ') });
  }
  async function bulkAction(action) {
    const fingerprints = [...state.selected.keys()];
    if (action === 'delete' && !(await dangerBox(t('keys.deleteTitle', { scope: scope() }), t('keys.deleteDetail'), t('keys.delete')))) return;
    if (action === 'disable' && fingerprints.length > 1 && !(await dangerBox(t('keys.disableTitle', { scope: scope() }), t('keys.disableDetail'), t('keys.disable')))) return;
    try {
      const res = await api('POST', 'keys/' + action, { fingerprints });
      if (action === 'verify') {
        const by = v => res.results.filter(r => r.verdict === v).length;
        toast(t('keys.verified', { n: res.results.length, alive: by('alive'), dead: by('invalid') + by('permission_denied'), unknown: by('unknown') }));
      } else if (action === 'delete' && res.backup) {
        toast(t('keys.deleted', { n: res.changed }), false, { label: t('keys.undo'), run: () => undo(res.backup) });
      } else {
        toast(t('keys.done', { n: res.changed }));
      }
      if (action === 'delete') { state.selected.clear(); state.everything = false; }
      setTimeout(load, 150);
    } catch (err) { fail(err); }
  }
  async function undo(backup) {
    try {
      const res = await api('POST', 'keys/restore', { backup });
      toast(t('keys.restored', { n: res.changed }));
      setTimeout(load, 150);
    } catch (err) { fail(err); }
  }
  async function addKeys() {
    const text = h('textarea', { rows: 8, id: 'paste-text', 'aria-label': t('keys.pasteTitle') });
    const grp = h('input', { id: 'paste-group', value: 'added', pattern: '[A-Za-z0-9_-]{1,40}' });
    const ok = await dialog(t('keys.pasteTitle'), h('div', {}, h('p', { class: 'muted', text: t('keys.pasteHint') }), text,
      h('label', { class: 'field' }, t('keys.pasteGroup'), grp)), t('keys.add'));
    if (!ok) return;
    try {
      const res = await api('POST', 'keys/import', { text: text.value, group: grp.value || 'added' });
      const summary = t('keys.added', { added: res.added.length, present: res.already_present.length, dup: res.duplicates_in_text, rejected: res.rejected.length });
      // The report stays on screen, with the way to check the new keys at once.
      const added = res.added.map(k => k.fingerprint);
      importReport.replaceChildren(h('div', { class: 'card report' }, h('p', { id: 'import-summary', text: summary }),
        res.rejected.length ? h('ul', { class: 'muted' }, res.rejected.slice(0, 20).map(r => h('li', { text: t('keys.rejectedLine', { line: r.line, reason: r.reason }) }))) : '',
        h('div', { class: 'row' },
          added.length ? h('button', { type: 'button', class: 'primary', id: 'verify-added', onclick: async () => {
            try {
              const v = await api('POST', 'keys/verify', { fingerprints: added });
              const by = x => v.results.filter(r => r.verdict === x).length;
              $('#import-summary').textContent = summary + ' · ' + t('keys.verified', { n: v.results.length, alive: by('alive'), dead: by('invalid') + by('permission_denied'), unknown: by('unknown') });
              setTimeout(load, 150);
            } catch (err) { fail(err); }
          } }, t('keys.verifyAdded')) : '',
          h('button', { type: 'button', class: 'ghost', onclick: () => importReport.replaceChildren() }, t('common.close')))));
      load();
    } catch (err) { fail(err); }
  }
  async function copyKey(fingerprint) {
    if (!(await confirmBox(t('keys.copyConfirm')))) return;
    try {
      const res = await api('POST', `keys/${fingerprint}/reveal`);
      await navigator.clipboard.writeText(res.key).catch(() => dialog(t('keys.copy'), h('div', { class: 'secret', text: res.key })));
      toast(t('keys.copied'));
    } catch (err) { fail(err); }
  }
  async function startScan() {
    try { await api('POST', 'scan'); } catch (err) { if (err.status !== 409) return fail(err); }
    followScan();
  }
  async function followScan() {
    let s;
    try { s = await api('GET', 'scan'); } catch (err) { return fail(err); }
    bar.hidden = !s.running && !s.finished_at_ms;
    bar.firstChild.style.width = (s.total ? 100 * s.done / s.total : 100) + '%';
    scanText.textContent = s.running ? t('keys.scanning', s) : (s.finished_at_ms ? t('keys.scanDone', s) : '');
    $('#scan').disabled = s.running;
    if (s.running) setTimeout(followScan, 700); else if (followScan.was) load();
    followScan.was = s.running;
  }
  await load();
  followScan();
  // Rests count down; one that ends says so instead of lingering at 0s.
  every(1000, () => {
    for (const el of body.querySelectorAll('.countdown')) {
      const ended = Number(el.dataset.until) <= Date.now();
      el.textContent = ended ? t('keys.restEnded') : countdown(Number(el.dataset.until));
      el.classList.toggle('ended', ended);
    }
  });
  every(10000, load);
}

function debounce(fn, ms) { let id; return (...args) => { clearTimeout(id); id = setTimeout(() => fn(...args), ms); }; }

function pagerFor(holder, page, perPage, total, go) {
  const pages = Math.max(1, Math.ceil(total / perPage));
  holder.replaceChildren(
    h('button', { type: 'button', disabled: page <= 1, onclick: () => go(page - 1) }, t('common.prev')),
    h('span', { class: 'muted', text: t('common.page', { page, pages, total: fmt(total) }) }),
    h('button', { type: 'button', disabled: page >= pages, onclick: () => go(page + 1) }, t('common.next')));
}

// ---------- clients ----------
async function clientsView(view) {
  const name = h('input', { id: 'client-name', required: true, maxlength: 64, pattern: '[A-Za-z0-9 ._\\-]{1,64}' });
  const rpm = h('input', { type: 'number', min: 0, value: 0, id: 'client-rpm' });
  const rpd = h('input', { type: 'number', min: 0, value: 0, id: 'client-rpd' });
  const models = h('input', { id: 'client-models', placeholder: 'gemini-2.5-flash, gemini-2.5-pro' });
  const created = h('div', { id: 'client-created' });
  const list = h('tbody');
  const extra = h('p', { class: 'muted' });
  const modelList = s => s.split(',').map(x => x.trim()).filter(Boolean);
  view.append(h('h1', { text: t('clients.title') }),
    h('form', { class: 'card', onsubmit: create },
      h('h2', { text: t('clients.new') }),
      h('div', { class: 'filters' },
        h('label', {}, t('clients.name'), name), h('label', {}, t('clients.rpm'), rpm),
        h('label', {}, t('clients.rpd'), rpd), h('label', {}, t('clients.models'), models),
        h('button', { type: 'submit', class: 'primary', id: 'client-create' }, t('clients.create'))),
      h('p', { class: 'muted', text: t('clients.limitsNote') }),
      created),
    h('div', { class: 'card' }, h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, [t('clients.name'), t('clients.hint'), t('clients.status'), t('clients.rpm'), t('clients.rpd'),
        t('logs.model'), t('clients.budget'), t('clients.created'), ''].map(c => h('th', { text: c })))), list)), extra));
  async function create(ev) {
    ev.preventDefault();
    try {
      const res = await api('POST', 'clients', { name: name.value, rpm_limit: Number(rpm.value) || 0, rpd_limit: Number(rpd.value) || 0, allowed_models: modelList(models.value) });
      created.replaceChildren(h('p', { text: t('clients.once') }), h('div', { class: 'secret', id: 'new-client-key', text: res.key }));
      name.value = '';
      load();
    } catch (err) { fail(err); }
  }
  async function edit(c) {
    const r1 = h('input', { type: 'number', min: 0, value: c.rpm_limit }), r2 = h('input', { type: 'number', min: 0, value: c.rpd_limit });
    const m = h('input', { value: c.allowed_models.join(', ') });
    const r3 = h('input', { type: 'number', min: 0, value: c.tpm_limit || 0 });
    const on = h('input', { type: 'checkbox' });
    on.checked = !c.disabled_ms;
    // Local time in the browser; empty: never expires.
    const exp = h('input', { type: 'datetime-local', id: 'client-expires', value: c.expires_ms != null ? localInput(c.expires_ms) : '' });
    const bt = h('input', { type: 'number', min: 0, value: c.budget_tokens || 0, id: 'client-budget-tokens' });
    const bu = h('input', { type: 'number', min: 0, step: '0.01', value: c.budget_usd || 0, id: 'client-budget-usd' });
    const bp = h('select', { id: 'client-budget-period' }, ['day', 'week', 'month'].map(p =>
      h('option', { value: p, text: t('clients.period.' + p) })));
    bp.value = c.budget_period || 'month';
    const field = (label, input) => h('label', { class: 'field' }, label, input);
    if (!(await dialog(`${t('clients.edit')}: ${c.name}`, h('div', {}, field(t('clients.rpm'), r1),
      field(t('clients.rpd'), r2), field(t('clients.tpm'), r3), field(t('clients.models'), m),
      field(t('clients.expires'), exp), field(t('clients.budgetTokens'), bt), field(t('clients.budgetUsd'), bu),
      field(t('clients.budgetPeriod'), bp), h('label', { class: 'field' }, on, t('clients.enabled')))))) return;
    // A PUT replaces every setting.
    const body = { rpm_limit: Number(r1.value) || 0, rpd_limit: Number(r2.value) || 0, tpm_limit: Number(r3.value) || 0,
      allowed_models: modelList(m.value), enabled: on.checked, budget_tokens: Number(bt.value) || 0,
      budget_usd: Number(bu.value) || 0, budget_period: bp.value };
    if (exp.value) body.expires_ms = new Date(exp.value).getTime();
    try { await api('PUT', 'clients/' + c.id, body); toast(t('common.saved')); load(); } catch (err) { fail(err); }
  }
  async function revoke(c) {
    if (!(await confirmBox(t('clients.revokeConfirm', { name: c.name })))) return;
    try { await api('DELETE', 'clients/' + c.id); load(); } catch (err) { fail(err); }
  }
  // "$1.20 of $5.00 / month", "12,000 of 1,000,000 tokens / day", or ∞.
  function budgetText(c) {
    const spent = c.spent || { tokens: 0, usd: 0 };
    const per = t('clients.period.' + (c.budget_period || 'month'));
    const parts = [];
    if (c.budget_usd > 0) parts.push(`$${spent.usd.toFixed(2)} / $${c.budget_usd.toFixed(2)}`);
    if (c.budget_tokens > 0) parts.push(`${fmt(spent.tokens)} / ${fmt(c.budget_tokens)} ${t('clients.tokens')}`);
    return parts.length ? `${parts.join(', ')} · ${per}` : '∞';
  }
  function clientBadge(c) {
    const [cls, key] = c.revoked_ms ? ['bad', 'clients.revoked'] : c.disabled_ms ? ['bad', 'clients.disabled']
      : (c.expires_ms != null && c.expires_ms <= Date.now()) ? ['bad', 'clients.expired'] : ['ok', 'clients.live'];
    return h('span', { class: 'badge ' + cls, text: t(key) });
  }
  async function load() {
    let res;
    try { res = await api('GET', 'clients'); } catch (err) { return fail(err); }
    list.replaceChildren(...res.items.map(c => h('tr', { 'data-client': c.name },
      h('td', { text: c.name }), h('td', { class: 'mono', text: c.key_hint }),
      h('td', {}, clientBadge(c)),
      h('td', { text: c.rpm_limit || '∞' }), h('td', { text: c.rpd_limit || '∞' }),
      h('td', { class: 'wrap', text: c.allowed_models.join(', ') || t('common.all') }),
      h('td', { class: 'budget', text: budgetText(c) }), h('td', { text: when(c.created_ms) }),
      h('td', {}, c.revoked_ms ? '' : h('span', { class: 'row' }, h('button', { type: 'button', onclick: () => edit(c) }, t('clients.edit')),
        h('button', { type: 'button', class: 'danger', onclick: () => revoke(c) }, t('clients.revoke')))))));
    extra.textContent = res.config_keys ? t('clients.config', { n: res.config_keys }) : '';
  }
  await load();
}

// ---------- usage ----------
async function usageView(view) {
  const st = { by: 'client', days: '7' };
  const by = h('select', { id: 'usage-by', onchange: e => { st.by = e.target.value; load(); } },
    ['client', 'model', 'group'].map(v => h('option', { value: v, text: t('usage.by.' + v) })));
  const days = h('select', { id: 'usage-days', onchange: e => { st.days = e.target.value; load(); } },
    ['1', '7', '30', '90'].map(v => h('option', { value: v, text: t('usage.days', { n: v }) })));
  days.value = st.days;
  const chart = h('div', { class: 'chart-wrap', id: 'usage-chart' });
  const body = h('tbody', { id: 'usage-rows' });
  const note = h('p', { class: 'muted' });
  const cols = ['ov.name', 'usage.requests', 'usage.input', 'usage.output', 'usage.thinking', 'usage.cached', 'usage.cost'];
  view.append(h('h1', { text: t('usage.title') }),
    h('div', { class: 'filters' }, h('label', {}, t('usage.split'), by), h('label', {}, t('usage.range'), days)),
    h('div', { class: 'card' }, h('h2', { text: t('usage.chart') }), chart),
    h('div', { class: 'card' }, h('div', { class: 'table-wrap' }, h('table', { class: 'compact' },
      h('thead', {}, h('tr', {}, cols.map(c => h('th', { text: t(c) })))), body)), note));
  const money = usd => '$' + (usd < 1 ? usd.toFixed(4) : usd.toFixed(2));
  async function load() {
    let u;
    try { u = await api('GET', `usage?by=${st.by}&days=${st.days}`); } catch (err) { return fail(err); }
    const row = (name, x) => h('tr', {}, h('td', { class: 'mono', text: name }), h('td', { text: fmt(x.requests) }),
      h('td', { text: fmt(x.input_tokens) }), h('td', { text: fmt(x.output_tokens) }), h('td', { text: fmt(x.thinking_tokens) }),
      h('td', { text: fmt(x.cached_tokens) }), h('td', { text: money(x.cost_usd) }));
    body.replaceChildren(...u.items.map(i => row(i.name, i)));
    if (u.items.length) body.append(row(t('usage.total'), u.totals));
    else body.replaceChildren(h('tr', {}, h('td', { colspan: cols.length, class: 'muted', text: t('common.none') })));
    note.textContent = u.priced ? t('usage.pricedNote') : t('usage.unpricedNote');
    // One bar per hour (per day past two days), tokens in and out stacked.
    const bucket = Number(st.days) > 2 ? 86400000 : 3600000;
    const sums = new Map();
    for (let at = u.from_ms - (u.from_ms % bucket); at <= u.to_ms; at += bucket) sums.set(at, { input: 0, output: 0 });
    for (const r of u.hours) {
      const b = sums.get(r.hour_ms - (r.hour_ms % bucket));
      if (b) { b.input += r.input_tokens; b.output += r.output_tokens; }
    }
    const label = ms => new Date(ms).toLocaleString(LANG === 'zh' ? 'zh-CN' : 'en', bucket > 3600000 ? { month: 'numeric', day: 'numeric' } : { day: 'numeric', hour: '2-digit' });
    const hours = [...sums.values()];
    chart.replaceChildren(stackedChart([...sums.keys()], [
      { name: t('usage.output'), values: hours.map(b => b.output), cls: 'bar-bad' },
      { name: t('usage.input'), values: hours.map(b => b.input), cls: 'bar-ok' }], label),
    h('p', { class: 'muted', text: t('usage.chartNote') }));
  }
  await load();
  every(30000, load);
}

// ---------- egress ----------
async function egressView(view) {
  const proxies = h('tbody', { id: 'egress-proxies' });
  const relays = h('tbody', { id: 'egress-relays' });
  const summary = h('p', { class: 'muted', id: 'egress-summary' });
  const pcols = ['egress.name', 'egress.address', 'egress.state', 'egress.keys', 'egress.calls', 'egress.failures', 'egress.latency', 'egress.lastError'];
  const rcols = ['egress.relay', 'egress.state', 'egress.calls', 'egress.failures', 'egress.latency', 'egress.lastError'];
  const table = (cols, body) => h('div', { class: 'table-wrap' }, h('table', { class: 'compact' },
    h('thead', {}, h('tr', {}, cols.map(c => h('th', { text: t(c) })))), body));
  view.append(h('h1', { text: t('egress.title') }), summary,
    h('div', { class: 'card' }, h('h2', { text: t('egress.proxies') }), table(pcols, proxies), h('p', { class: 'muted', text: t('egress.proxiesNote') })),
    h('div', { class: 'card' }, h('h2', { text: t('egress.relays') }), table(rcols, relays)));
  const health = x => [
    h('td', {}, h('span', { class: 'badge ' + (x.state === 'ok' ? 'ok' : 'warn'),
      text: x.state === 'ok' ? t('egress.ok') : t('egress.resting', { left: countdown(x.resting_until_ms) }) })),
    h('td', { text: fmt(x.calls) }), h('td', { text: fmt(x.failures) }),
    h('td', { text: x.mean_latency_ms === null || x.mean_latency_ms === undefined ? '–' : x.mean_latency_ms + ' ms' }),
    h('td', { class: 'muted', text: x.last_error ? `${x.last_error} (${when(x.last_error_ms)})` : '–' })];
  async function load() {
    let e;
    try { e = await api('GET', 'egress'); } catch (err) { return fail(err); }
    summary.textContent = t('egress.summary', { proxies: e.proxies.length, direct: e.direct_keys, order: t('egress.order.' + e.relay_order) });
    proxies.replaceChildren(...e.proxies.map(p => {
      const [state, ...figures] = health(p.health);
      return h('tr', {}, h('td', { class: 'mono', text: p.name }), h('td', { class: 'mono', text: p.label }), state,
        h('td', { text: fmt(p.key_count) }), ...figures);
    }));
    if (!e.proxies.length) proxies.replaceChildren(h('tr', {}, h('td', { colspan: pcols.length, class: 'muted', text: t('egress.noProxies') })));
    relays.replaceChildren(...e.relays.map(r => h('tr', {}, h('td', { class: 'mono', text: r.base }), ...health(r.health))));
  }
  await load();
  every(10000, load);
}

// ---------- logs ----------
async function logsView(view) {
  const st = { kind: 'requests', page: 1, open: new Set() };
  const field = (label, input) => h('label', {}, label, input);
  const f = {
    from: h('input', { type: 'datetime-local', id: 'log-from' }), to: h('input', { type: 'datetime-local', id: 'log-to' }),
    status: h('input', { id: 'log-status', maxlength: 3, size: 4, placeholder: '429, 4xx', pattern: '[0-5][0-9x][0-9x]|0' }),
    model: h('input', { id: 'log-model' }), client: h('input', { id: 'log-client' }),
    key: h('input', { id: 'log-key', maxlength: 12 }), q: h('input', { type: 'search', id: 'log-q' }),
    request_id: h('input', { id: 'log-request-id', maxlength: 64 }),
  };
  const tabs = h('div', { class: 'tabs' });
  const table = h('table', { id: 'log-table', class: 'compact log-table' });
  const pager = h('div', { class: 'row' });
  const exportLink = h('a', { id: 'log-export', class: 'button', download: '', text: t('logs.export') });
  const auto = h('input', { type: 'checkbox', id: 'log-auto' });
  view.append(h('h1', { text: t('logs.title') }),
    h('div', { class: 'card' }, tabs,
      h('form', { class: 'filters', onsubmit: ev => { ev.preventDefault(); st.page = 1; load(); } },
        field(t('logs.from'), f.from), field(t('logs.to'), f.to), field(t('logs.status'), f.status), field(t('logs.model'), f.model),
        field(t('logs.client'), f.client), field(t('logs.key'), f.key), field(t('logs.text'), f.q), field(t('logs.requestId'), f.request_id),
        h('button', { type: 'submit', class: 'primary', id: 'log-apply' }, t('logs.apply')), exportLink,
        h('label', { class: 'inline' }, auto, t('logs.auto'))),
      h('p', { class: 'muted', text: t('logs.traceHint') }),
      h('div', { class: 'table-wrap' }, table), pager));
  every(5000, () => { if (auto.checked) load(); });
  function renderTabs() {
    tabs.replaceChildren(...[['requests', t('logs.requests')], ['errors', t('logs.errors')]].map(([k, label]) =>
      h('button', { type: 'button', class: st.kind === k ? 'active' : '', 'data-tab': k, onclick: () => { st.kind = k; st.page = 1; renderTabs(); load(); } }, label)));
  }
  const badge = s => h('span', { class: 'badge ' + (s >= 500 || s === 0 ? 'bad' : s >= 400 ? 'warn' : 'ok'), text: s });
  const cut = (text, cls) => h('td', { class: cls || 'cut', text: text || '', title: text || '' });
  // A request's attempts: the failed ones from the error log (same request id), then its outcome.
  async function trace(r, holder) {
    let res;
    try { res = await api('GET', 'logs/errors?' + new URLSearchParams({ request_id: r.request_id, per_page: 100 })); } catch (err) { return fail(err); }
    const steps = res.items.slice().reverse().map(e => h('li', { class: 'attempt' },
      h('b', { text: `#${e.attempt}` }), ' ', h('span', { class: 'mono', text: e.key_fingerprint || '' }), ' ', badge(e.http_status), ' ',
      h('span', { class: 'mono', text: [e.google_status, e.reason].filter(Boolean).join(' · ') }), ' ',
      h('span', { class: 'muted', text: e.latency_ms != null ? e.latency_ms + ' ms' : '' }), ' ', h('span', { text: tOr('keys.restReason.' + e.kind, e.kind), title: e.kind }),
      h('div', { class: 'muted wrap', text: e.message })));
    steps.push(h('li', { class: 'attempt final' }, h('b', { text: `#${r.attempts}` }), ' ',
      h('span', { class: 'mono', text: r.key_fingerprint || '' }), ' ', badge(r.status), ' ', h('span', { text: t('logs.outcome') }),
      r.error ? h('div', { class: 'muted wrap', text: r.error }) : ''));
    holder.replaceChildren(h('div', { class: 'muted', text: `${t('logs.requestId')}: ${r.request_id}` }), h('ol', { class: 'attempts' }, steps));
  }
  function query() {
    const q = new URLSearchParams();
    if (f.from.value) q.set('from_ms', new Date(f.from.value).getTime());
    if (f.to.value) q.set('to_ms', new Date(f.to.value).getTime());
    for (const k of ['status', 'model', 'client', 'key', 'q', 'request_id']) if (f[k].value.trim()) q.set(k, f[k].value.trim());
    if (q.has('status')) q.set('status', q.get('status').toLowerCase());
    return q;
  }
  async function load() {
    const q = query();
    const csv = new URLSearchParams(q); csv.set('format', 'csv');
    exportLink.href = `api/logs/${st.kind}?` + csv;
    q.set('page', st.page); q.set('per_page', 50);
    let res;
    try { res = await api('GET', `logs/${st.kind}?` + q); } catch (err) { return fail(err); }
    const cols = st.kind === 'requests'
      ? [t('logs.time'), t('logs.client'), t('logs.route'), t('logs.model'), t('logs.key'), t('logs.attempts'), t('logs.status'), t('logs.latency'), t('logs.tokens'), t('logs.error')]
      : [t('logs.time'), t('logs.model'), t('logs.key'), t('logs.attempt'), t('logs.status'), t('logs.google'), t('logs.reason'), t('logs.kind'), t('logs.message')];
    const rows = [];
    for (const r of res.items) {
      if (st.kind !== 'requests') {
        rows.push(h('tr', {}, h('td', { text: when(r.at_ms) }), h('td', { text: r.model }), h('td', { class: 'mono', text: r.key_fingerprint || '' }),
          h('td', { text: r.attempt }), h('td', {}, badge(r.http_status)), h('td', { class: 'mono', text: r.google_status }),
          h('td', { class: 'mono', text: r.reason || '' }), h('td', { text: tOr('keys.restReason.' + r.kind, r.kind), title: r.kind }), cut(r.message)));
        continue;
      }
      const detail = h('tr', { class: 'detail', hidden: true }, h('td', { colspan: cols.length }));
      const open = () => {
        detail.hidden = !detail.hidden;
        if (detail.hidden) st.open.delete(r.request_id); else { st.open.add(r.request_id); trace(r, detail.firstChild); }
      };
      const row = h('tr', { class: r.request_id ? 'expandable' : '', 'data-request': r.request_id || '', onclick: r.request_id ? open : null },
        h('td', { text: when(r.at_ms) }), h('td', { text: r.client }), h('td', { text: r.route }), h('td', { text: r.model }),
        h('td', { class: 'mono', text: r.key_fingerprint || '' }), h('td', { text: r.attempts }), h('td', {}, badge(r.status)),
        h('td', { text: r.latency_ms + ' ms' }), h('td', { text: fmt(r.total_tokens) }), cut(r.error));
      rows.push(row, detail);
      if (r.request_id && st.open.has(r.request_id)) { detail.hidden = false; trace(r, detail.firstChild); }
    }
    table.replaceChildren(h('thead', {}, h('tr', {}, cols.map(c => h('th', { text: c })))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: cols.length, class: 'muted', text: t('common.none') }))));
    pagerFor(pager, res.page, res.per_page, res.total, p => { st.page = p; load(); });
  }
  renderTabs();
  await load();
}

// ---------- settings ----------
async function settingsView(view) {
  const configText = h('textarea', { class: 'code', id: 'config-text', spellcheck: 'false', 'aria-label': 'config.toml' });
  const configMsg = h('p', { class: 'error', id: 'config-msg', role: 'alert' });
  const effective = h('pre', { id: 'config-effective' });
  const policyText = h('textarea', { class: 'code', id: 'policy-text', spellcheck: 'false', 'aria-label': t('set.policy') });
  const policyMsg = h('p', { class: 'error', id: 'policy-msg', role: 'alert' });
  const caseText = h('textarea', { rows: 3, id: 'policy-case' });
  caseText.value = '{"status": 429, "model": "gemini-2.5-pro", "retry_delay_secs": 20}';
  const caseOut = h('pre', { id: 'policy-result' });
  const reloads = h('tbody');
  const configCard = h('div', { class: 'card' });
  const policyCard = h('div', { class: 'card' });
  view.append(h('h1', { text: t('set.title') }), h('div', { class: 'grid2' }, configCard, policyCard),
    h('div', { class: 'card' }, h('h2', { text: t('set.reloads') }), h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, [t('logs.time'), t('set.what'), t('set.result'), t('logs.message')].map(c => h('th', { text: c })))), reloads))));
  const ok = (el, text) => { el.textContent = text; el.classList.add('ok-text'); };
  const bad = (el, text) => { el.textContent = text; el.classList.remove('ok-text'); };
  async function loadConfig() {
    const c = await api('GET', 'config');
    effective.textContent = JSON.stringify(c.effective, null, 2);
    if (c.text == null) { configCard.replaceChildren(h('h2', { text: t('set.config') }), h('p', { class: 'muted', text: t('set.noFile') }), h('h3', { text: t('set.effective') }), effective); return; }
    configText.value = c.text;
    configCard.replaceChildren(h('h2', {}, t('set.config'), ' ', h('span', { class: 'muted mono', text: c.file })),
      h('p', { class: 'muted', text: t('set.secrets') }),
      ...(c.env_overrides || []).map(o => h('p', { class: 'warn-text', text: t('set.envOverride', { setting: o.setting, variable: o.variable }) })),
      configText, configMsg,
      h('div', { class: 'row' },
        h('button', { type: 'button', id: 'config-validate', onclick: async () => {
          try { const v = await api('POST', 'config/validate', { text: configText.value }); (v.valid ? ok : bad)(configMsg, v.valid ? t('set.valid') : v.message); } catch (err) { bad(configMsg, err.message); }
        } }, t('set.validate')),
        h('button', { type: 'button', class: 'primary', id: 'config-save', onclick: async () => {
          try { const v = await api('PUT', 'config', { text: configText.value }); ok(configMsg, `${t('common.saved')}: ${v.message}`); loadReloads(); loadConfig(); } catch (err) { bad(configMsg, err.message); }
        } }, t('set.save'))),
      h('details', {}, h('summary', { text: t('set.effective') }), effective));
  }
  async function loadPolicy() {
    const p = await api('GET', 'policy');
    const tester = [h('h3', { text: t('set.test') }), h('label', { class: 'field' }, t('set.case'), caseText),
      h('button', { type: 'button', id: 'policy-run', onclick: async () => {
        let c;
        try { c = JSON.parse(caseText.value); } catch (err) { caseOut.textContent = err.message; return; }
        try { const r = await api('POST', 'policy/test', { text: p.text == null ? undefined : policyText.value, case: c }); caseOut.textContent = JSON.stringify(r, null, 2); }
        catch (err) { caseOut.textContent = err.message; }
      } }, t('set.run')), caseOut];
    if (p.text == null) { policyCard.replaceChildren(h('h2', { text: t('set.policy') }), h('p', { class: 'muted', text: t('set.noPolicy') })); return; }
    policyText.value = p.text;
    policyCard.replaceChildren(h('h2', {}, t('set.policy'), ' ', h('span', { class: 'muted mono', text: p.file })),
      h('p', { class: 'muted', text: t('set.faults', { n: p.faults }) }), policyText, policyMsg,
      h('div', { class: 'row' }, h('button', { type: 'button', class: 'primary', id: 'policy-save', onclick: async () => {
        try { const v = await api('PUT', 'policy', { text: policyText.value }); ok(policyMsg, `${t('common.saved')}: ${v.message}`); loadReloads(); } catch (err) { bad(policyMsg, err.message); }
      } }, t('set.save'))), ...tester);
  }
  async function loadReloads() {
    const list = await api('GET', 'reloads');
    reloads.replaceChildren(...list.map(e => h('tr', {}, h('td', { text: when(e.at_ms) }), h('td', { text: e.what }),
      h('td', {}, h('span', { class: 'badge ' + (e.accepted ? 'ok' : 'bad'), text: e.accepted ? t('set.accepted') : t('set.rejected') })),
      h('td', { class: 'wrap', text: e.message }))));
    if (!list.length) reloads.replaceChildren(h('tr', {}, h('td', { colspan: 4, class: 'muted', text: t('common.none') })));
  }
  try { await Promise.all([loadConfig(), loadPolicy(), loadReloads()]); } catch (err) { fail(err); }
}

// ---------- routing ----------
const VIEWS = { overview, keys: keysView, clients: clientsView, usage: usageView, egress: egressView, logs: logsView, settings: settingsView };

async function route() {
  clearTimers();
  // `#keys/cooling` opens a view on one of its tabs.
  const [name, sub] = (location.hash || '#overview').slice(1).split('/');
  const render = VIEWS[name] || overview;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === name);
  const view = $('#view');
  view.replaceChildren();
  view.dataset.view = name;
  $('#nav').hidden = false; $('#logout').hidden = false;
  try { await render(view, sub || ''); } catch (err) { fail(err); }
}

async function start() {
  setLang(LANG);
  $('#lang').textContent = LANG === 'zh' ? 'English' : '中文';
  $('#lang').addEventListener('click', () => {
    setLang(LANG === 'zh' ? 'en' : 'zh');
    $('#lang').textContent = LANG === 'zh' ? 'English' : '中文';
    if (!$('#login').hidden) return;
    route();
  });
  $('#login-form').addEventListener('submit', login);
  $('#logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  try {
    const s = await api('GET', 'session');
    csrf = s.csrf_token; sessionStorage.setItem('gemgate.csrf', csrf);
    route();
  } catch (_) { showLogin(); }
}

document.addEventListener('DOMContentLoaded', start);
