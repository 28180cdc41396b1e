// The admin dashboard in headless Chromium (Debian's, driven by playwright-core):
// sign in, add keys by paste, disable one, scan, find an error in the logs,
// change a setting, make a client key, switch to Chinese. Screenshots of every
// page go to SCREENSHOT_DIR.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const BASE = process.env.GEMGATE_URL;
const ADMIN = process.env.GEMGATE_ADMIN_KEY;
const NEW_KEYS = (process.env.NEW_KEYS || '').split(',');
const { DAILY_FP, DENIED_FP, RPM_FP } = process.env;
const SHOTS = process.env.SCREENSHOT_DIR || 'screenshots';
mkdirSync(SHOTS, { recursive: true });

let browser, page;
const shot = name => page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
const problems = [];

before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  // A CSP violation or a script error fails the run (a 401 while signed out is expected).
  page.on('console', msg => {
    if (msg.type() === 'error' && /Content Security Policy|Uncaught/.test(msg.text())) problems.push(msg.text());
  });
  page.on('pageerror', err => problems.push(err.message));
});
after(async () => { await browser?.close(); });

test('the dashboard does what an operator needs', async () => {
  await page.goto(`${BASE}/admin`);
  await page.waitForSelector('#login-form');
  assert.ok(!(await page.content()).includes(ADMIN), 'no secret in the page');
  await shot('login');

  await page.fill('#login-key', 'wrong-key-123');
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => document.querySelector('#login-error').textContent.length > 0);
  await page.fill('#login-key', ADMIN);
  await page.click('#login-form button[type=submit]');
  await page.waitForSelector('[data-stat=requests]');
  await page.waitForSelector('#ov-traffic svg');
  const requests = await page.textContent('[data-stat=requests] .value');
  assert.ok(Number(requests.replace(/\D/g, '')) > 0, `traffic shows on the overview: ${requests}`);
  // Ready keys are those serving every model; keys resting on some are counted apart.
  const ready = await page.textContent('[data-stat=keys]');
  assert.match(ready, /resting on some models/, ready);
  // The chart split by model, then Google's 429s (absorbed by failover).
  await page.selectOption('#ov-split', 'model');
  await page.waitForFunction(() => /gemini-2\.5-flash/.test(document.querySelector('#ov-legend').textContent));
  await page.selectOption('#ov-metric', 'google_429');
  await page.waitForFunction(() => [...document.querySelectorAll('#ov-legend .series-name')].some(s => /\(([1-9]\d*)\)$/.test(s.textContent)));
  assert.ok(await page.$('#ov-traffic svg rect.series'), 'bars per series');
  await shot('overview-split');
  await page.selectOption('#ov-metric', 'requests');
  await page.selectOption('#ov-split', 'none');
  await page.waitForSelector('#ov-traffic svg rect.bar-ok');
  // A state on the overview opens that tab of the key list.
  await page.click('a.state-link[data-state=partial]');
  await page.waitForSelector('button[data-tab=partial].active');
  await page.waitForSelector(`tr[data-fingerprint="${DAILY_FP}"]`);
  await page.click('a[data-view=overview]');
  await page.waitForSelector('[data-stat=requests]');
  await shot('overview');

  // Keys: paste two new ones.
  await page.click('a[data-view=keys]');
  await page.waitForSelector('#keys-table tbody tr');
  const before = await page.locator('#keys-table tbody tr').count();
  await page.click('#add-keys');
  await page.fill('#paste-text', `here are some keys:\n${NEW_KEYS[0]}\nKEY2=${NEW_KEYS[1]}\n`);
  await page.fill('#paste-group', 'pasted');
  await page.click('#dialog-ok');
  await page.waitForFunction(n => document.querySelectorAll('#keys-table tbody tr').length === n + 2, before);
  // The import report stays, with "verify these now".
  await page.waitForSelector('#verify-added');
  await page.click('#verify-added');
  await page.waitForFunction(() => /2 alive|2 个/.test(document.querySelector('#import-summary').textContent));
  await page.selectOption('select[aria-label=Group]', 'pasted');
  await page.waitForFunction(() => document.querySelectorAll('#keys-table tbody tr[data-fingerprint]').length === 2);
  // The page's keys selected; the confirm names the scope, in red; undo
  // puts the deleted keys back.
  await page.check('#select-page');
  assert.match(await page.textContent('#selection-text'), /2/);
  await page.click('button[data-action=delete]');
  await page.waitForSelector('#dialog-ok.danger');
  assert.match(await page.textContent('#dialog-title'), /2 key\(s\): 2 in pasted/);
  await page.click('#dialog-ok');
  await page.waitForSelector('#toast-action');
  await page.waitForFunction(() => document.querySelectorAll('#keys-table tbody tr[data-fingerprint]').length === 0);
  await page.click('#toast-action');
  await page.waitForFunction(() => document.querySelectorAll('#keys-table tbody tr[data-fingerprint]').length === 2);
  // A change of group clears the selection: an action never reaches keys no longer shown.
  await page.check('#select-page');
  await page.selectOption('select[aria-label=Group]', '');
  await page.waitForFunction(n => document.querySelectorAll('#keys-table tbody tr').length === n + 2, before);
  assert.match(await page.textContent('#selection-text'), /\b0\b/);
  assert.ok(await page.isDisabled('button[data-action=delete]'));
  // Sorted by state (problems first) by default; the direction turns around.
  assert.equal(await page.inputValue('#key-sort'), 'state');
  await page.selectOption('#key-sort', 'requests');
  await page.waitForFunction(() => document.querySelector('#key-order').textContent === '↓');
  // Most requests first (once the reloaded list is shown).
  await page.waitForFunction(() => {
    const counts = [...document.querySelectorAll('#keys-table tbody tr')].map(r => Number(r.children[5].textContent.replace(/\D/g, '')));
    return counts[0] > counts[counts.length - 1] && counts.every((n, i) => i === 0 || counts[i - 1] >= n);
  });
  await page.selectOption('#key-sort', 'state');
  await page.waitForFunction(() => document.querySelector('#key-order').textContent === '↑');
  await page.waitForFunction(() => document.querySelector('#keys-table tbody tr .badge').classList.contains('disabled'));

  // The rate-limited key's last attempts show as a strip with failures in it.
  await page.waitForSelector(`tr[data-fingerprint="${RPM_FP}"] .heat i.bad`);
  // The daily-quota key's panel: which model rests, why, for how long and why that long.
  await page.click(`tr[data-fingerprint="${DAILY_FP}"] .key-open`);
  const daily = `tr.key-panel[data-panel="${DAILY_FP}"]`;
  await page.waitForSelector(`${daily} li[data-source=daily_quota]`);
  const restText = async panel => (await page.locator(`${panel} li[data-source=daily_quota]`).allTextContents()).find(text => text.startsWith('gemini-2.5-flash')) || '';
  const dailyText = await restText(daily);
  assert.match(dailyText, /gemini-2\.5-flash: daily quota used up · until midnight Pacific/);
  assert.match(dailyText, /\d+h|\d+m/, 'a countdown');
  assert.ok(await page.$(`${daily} svg.spark circle`), 'a success-rate sparkline');
  await shot('key-panel-daily');
  await page.click(`tr[data-fingerprint="${DAILY_FP}"] .key-open`);

  // Disable the first active key by hand (not the one the scan will judge).
  const fingerprint = await page.locator(`#keys-table tbody tr:has(.badge.active):not([data-fingerprint="${DENIED_FP}"])`).first().getAttribute('data-fingerprint');
  await page.locator(`tr[data-fingerprint="${fingerprint}"] input[type=checkbox]`).check();
  await page.click('button[data-action=disable]');
  await page.waitForSelector(`tr[data-fingerprint="${fingerprint}"] .badge.disabled`, { timeout: 5000 });
  await page.click('button[data-tab=disabled]');
  await page.waitForSelector(`tr[data-fingerprint="${fingerprint}"]`);

  // The key panel says why: disabled by hand, since when, and that only an operator ends it.
  await page.click(`tr[data-fingerprint="${fingerprint}"] .key-open`);
  await page.waitForSelector(`tr.key-panel[data-panel="${fingerprint}"] h4`);
  const why = await page.textContent(`tr.key-panel[data-panel="${fingerprint}"]`);
  assert.match(why, /manual/);
  assert.match(why, /operator/i);
  await shot('key-panel');

  // Hygiene: every invalid key selected in one click (the delete confirm
  // would name them); the export of the pasted group in clear.
  await page.click('#pick-invalid');
  await page.waitForFunction(() => /[1-9]/.test(document.querySelector('#selection-text').textContent));
  await page.click('button[data-action=delete]');
  await page.waitForSelector('#dialog-ok.danger');
  assert.match(await page.textContent('#dialog-title'), /1 key\(s\): 1 in /);
  await page.click('#dialog-cancel');
  await page.click('#export-keys');
  await page.selectOption('#export-group', 'pasted');
  const download = page.waitForEvent('download');
  await page.click('#dialog-ok');
  const file = await (await download).path();
  const exported = (await import('node:fs')).readFileSync(file, 'utf8').trim().split('\n');
  assert.deepEqual(exported.sort(), [...NEW_KEYS].sort());
  await page.click('button[data-tab=all]');

  // A full scan with its progress bar, to the end.
  await page.click('button[data-tab=all]');
  await page.click('#scan');
  await page.waitForFunction(() => /finished|完成/.test(document.querySelector('#scan-text').textContent), null, { timeout: 20000 });
  assert.match(await page.textContent('#scan-text'), /alive/);
  // The key the scan found refused: why, since when, and what ends it.
  await page.click('button[data-tab=disabled]');
  await page.waitForSelector(`tr[data-fingerprint="${DENIED_FP}"] .disabled-why`);
  await page.click(`tr[data-fingerprint="${DENIED_FP}"] .key-open`);
  const denied = await page.textContent(`tr.key-panel[data-panel="${DENIED_FP}"] .disabled-why`);
  assert.match(denied, /refused by Google/);
  assert.match(denied, /since .*\d/);
  assert.match(denied, /until a scan finds it alive/);
  await shot('key-panel-scan-disabled');
  await page.click('button[data-tab=all]');
  await shot('keys');

  // The rate-limited key's 429 is in the error log with Google's words.
  await page.click('a[data-view=logs]');
  await page.waitForSelector('#log-table');
  await shot('logs-requests');
  await page.click('button[data-tab=errors]');
  await page.fill('#log-status', '429');
  await page.click('#log-apply');
  await page.waitForFunction(() => document.querySelector('#log-table').textContent.includes('RESOURCE_EXHAUSTED'));
  await shot('logs-errors');

  // Trace: the request that failed over three times opens to its three
  // attempts (key, Google's status and reason, latency), then its outcome;
  // export as CSV.
  await page.fill('#log-status', '');
  await page.click('button[data-tab=requests]');
  await page.waitForSelector('#log-table tr.expandable');
  const tried = await page.evaluate(() => [...document.querySelectorAll('#log-table tr.expandable')]
    .findIndex(r => Number(r.children[5].textContent) === 3 && Number(r.children[6].textContent) >= 400));
  assert.ok(tried >= 0, 'the request that tried three keys is in the log');
  await page.locator('#log-table tr.expandable').nth(tried).click();
  await page.waitForSelector('#log-table ol.attempts li.final');
  assert.equal(await page.locator('#log-table ol.attempts li.attempt:not(.final)').count(), 3);
  const attempts = await page.textContent('#log-table ol.attempts');
  for (const why of ['RESOURCE_EXHAUSTED', 'UNAVAILABLE']) assert.ok(attempts.includes(why), `${why} in ${attempts}`);
  await shot('logs-trace');
  assert.match(await page.getAttribute('#log-export', 'href'), /format=csv/);
  const csv = await page.evaluate(async () => (await fetch(document.querySelector('#log-export').href)).text());
  assert.match(csv.split('\n')[0], /^time,request_id,client/);

  // Change a setting; a broken one shows its error inline first.
  await page.click('a[data-view=settings]');
  await page.waitForSelector('#config-text');
  const config = await page.inputValue('#config-text');
  assert.ok(config.includes('<hidden>') && !config.includes(ADMIN), 'secrets are hidden in the editor');
  await page.fill('#config-text', config.replace('[retry]', '[retry]\nmax_attempts = "lots"'));
  await page.click('#config-validate');
  await page.waitForFunction(() => document.querySelector('#config-msg').textContent.includes('max_attempts'));
  await page.fill('#config-text', config.replace('[retry]', '[retry]\nmax_attempts = 3'));
  await page.click('#config-save');
  await page.waitForFunction(() => /Saved|已保存/.test(document.querySelector('#config-msg').textContent));
  await page.click('#policy-run');
  await page.waitForFunction(() => document.querySelector('#policy-result').textContent.includes('retry_other_key'));
  await shot('settings');

  // A client key, shown once.
  await page.click('a[data-view=clients]');
  await page.fill('#client-name', 'browser-test');
  await page.click('#client-create');
  await page.waitForSelector('#new-client-key');
  assert.match(await page.textContent('#new-client-key'), /^gg-[0-9a-f]{40}$/);
  await page.waitForSelector('tr[data-client="browser-test"]');
  // Its limits, edited: a token limit, and disabled (the badge says so).
  await page.click('tr[data-client="browser-test"] button:not(.danger)');
  await page.fill('dialog input[type=number] >> nth=2', '5000');
  await page.fill('#client-budget-usd', '2.5');
  await page.selectOption('#client-budget-period', 'week');
  await page.fill('#client-expires', '2031-06-01T12:00');
  await page.uncheck('dialog input[type=checkbox]');
  await page.click('#dialog-ok');
  await page.waitForFunction(() => document.querySelector('tr[data-client="browser-test"] .badge').classList.contains('bad'));
  // The budget is shown with what was spent; the expiry went to the API.
  await page.waitForFunction(() => /\$0\.00 \/ \$2\.50/.test(document.querySelector('tr[data-client="browser-test"] .budget').textContent));
  const saved = await page.evaluate(async () => {
    const list = await (await fetch('api/clients')).json();
    return list.items.find(c => c.name === 'browser-test');
  });
  assert.equal(saved.budget_period, 'week');
  assert.equal(saved.expires_ms, new Date('2031-06-01T12:00').getTime());
  await shot('clients');

  // Usage and cost: the traffic sent before the test, per client and per model.
  await page.click('a[data-view=usage]');
  await page.waitForSelector('#usage-rows tr td.mono');
  assert.match(await page.textContent('#usage-rows'), /client-/);
  await page.selectOption('#usage-by', 'model');
  await page.waitForFunction(() => /gemini-2\.5-flash/.test(document.querySelector('#usage-rows').textContent));
  assert.ok(await page.$('#usage-chart svg'));
  await shot('usage');

  // Egress: no proxies in this config, one relay (base_url), healthy after the traffic.
  await page.click('a[data-view=egress]');
  await page.waitForSelector('#egress-relays tr td.mono');
  assert.match(await page.textContent('#egress-summary'), /^0 proxies; \d+ key\(s\) leave directly/);
  assert.match(await page.textContent('#egress-relays'), /http:\/\/127\.0\.0\.1:\d+ok/);
  assert.match(await page.textContent('#egress-proxies'), /No proxies/);
  await shot('egress');

  // Chinese, and a phone.
  await page.click('a[data-view=overview]');
  await page.click('#lang');
  await page.waitForFunction(() => document.querySelector('a[data-view=keys]').textContent === '密钥');
  await page.waitForSelector('[data-stat=requests]');
  await shot('overview-zh');
  // Reasons and server messages in Chinese too.
  await page.click('a[data-view=keys]');
  await page.waitForSelector(`tr[data-fingerprint="${DAILY_FP}"]`);
  await page.click(`tr[data-fingerprint="${DAILY_FP}"] .key-open`);
  await page.waitForSelector(`tr.key-panel[data-panel="${DAILY_FP}"] li[data-source=daily_quota]`);
  assert.match(await restText(`tr.key-panel[data-panel="${DAILY_FP}"]`), /当日配额用尽 · 至太平洋时间午夜/);
  await shot('keys-zh');
  await page.click('a[data-view=clients]');
  await page.fill('#client-name', 'browser-test');
  await page.click('#client-create');
  await page.waitForFunction(() => document.querySelector('#toast').textContent.includes('已有名为“browser-test”的客户端'));
  await page.click('#lang');
  // Nothing wider than the screen on a phone or a desktop (tables and the
  // phone's page menu scroll inside their own box), on every page.
  const overflow = () => page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const scrolls = el => {
      for (let up = el.parentElement; up; up = up.parentElement) {
        if (['auto', 'scroll'].includes(getComputedStyle(up).overflowX)) return true;
      }
      return false;
    };
    const wide = [...document.querySelectorAll('body *')].filter(el => {
      if (scrolls(el) || el.closest('dialog') || el.closest('#toast')) return false;
      const box = el.getBoundingClientRect();
      return box.width > 0 && box.right > width + 1;
    }).map(el => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${[...el.classList].join('.')} ${Math.round(el.getBoundingClientRect().right)}`);
    return { scroll: document.documentElement.scrollWidth - width, wide: wide.slice(0, 8) };
  });
  for (const width of [390, 1400]) {
    await page.setViewportSize({ width, height: 844 });
    const loaded = { overview: '#ov-traffic svg', keys: '#keys-table tbody tr', clients: 'tr[data-client]',
      usage: '#usage-rows tr', egress: '#egress-relays tr', logs: '#log-table tbody tr', settings: '#config-text' };
    for (const [view, content] of Object.entries(loaded)) {
      await page.click(`a[data-view=${view}]`);
      await page.waitForSelector(`#view[data-view=${view}] ${content}`);
      const found = await overflow();
      assert.ok(found.scroll <= 0 && found.wide.length === 0, `${view} at ${width}px overflows: ${JSON.stringify(found)}`);
    }
  }
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('a[data-view=keys]');
  await page.waitForSelector('#keys-table tbody tr');
  await shot('keys-phone');
  await page.click('a[data-view=overview]');
  await page.waitForSelector('[data-stat=requests]');
  await shot('overview-phone');

  assert.deepEqual(problems, [], 'no script errors or CSP violations');
});

test('the dashboard works under a path prefix behind a reverse proxy', async () => {
  const prefixed = process.env.PREFIX_URL;
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const tab = await context.newPage();
  const outside = [];
  tab.on('request', req => { if (!req.url().startsWith(prefixed + '/')) outside.push(req.url()); });
  await tab.goto(`${prefixed}/admin`);
  await tab.waitForSelector('#login-form');
  assert.equal(new URL(tab.url()).pathname, '/gg/admin/');
  await tab.fill('#login-key', ADMIN);
  await tab.click('#login-form button[type=submit]');
  await tab.waitForSelector('[data-stat=requests]');
  await tab.click('a[data-view=keys]');
  await tab.waitForSelector('#keys-table tbody tr');
  // A change (cookie + CSRF token) through the prefix.
  const row = tab.locator('#keys-table tbody tr').nth(1);
  const fingerprint = await row.getAttribute('data-fingerprint');
  await row.locator('input[type=checkbox]').check();
  await tab.click('button[data-action=verify]');
  await tab.waitForFunction(() => /Checked|已验证/.test(document.querySelector('#toast').textContent));
  assert.ok(fingerprint);
  assert.deepEqual(outside, [], 'every request stays under the prefix');
  await tab.goto(`${prefixed}/admin/docs`);
  await tab.waitForSelector('.swagger-ui');
  await context.close();
});
