// The web console (--console_listen) in headless chromium against a real PostgreSQL-backed
// portico-cp with --admin_auth=on and a connected portico-dp: login, the generated forms
// (a service and a route created, Kong's error beside a bad field), the Runtime Manager
// listing the DP, a catalog search, XSS payloads shown as text, the read-only role without
// edit controls, keyboard access, vitals charts of real traffic, and axe-core on every page
// (no serious or critical violation). Screenshots: <build>/tests/browser/screenshots/console-*.png.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, afterEach, before, test } from 'node:test';

import { TestEnv, http, waitFor } from './lib/harness.mjs';

// Each test stops at 2 minutes with its logs and screenshots, before CTest's 5 would kill it.
const T = { timeout: 120000 };

let env;
let cp;
let adminToken;
let readOnlyToken;
let dp;

const XSS_DISPLAY = '<img src=x onerror="window.__xss=1">Payments';
const XSS_DESCRIPTION = '<script>window.__xss=2</script> Takes card payments & refunds.';

async function adminApi(method, path, body) {
  return http(method, `${cp.urls.admin}${path}`, { body, headers: { 'Kong-Admin-Token': adminToken } });
}

async function open(page, hash) {
  await page.goto(`${cp.urls.console}/${hash}`);
  await page.waitForSelector('main h1');
}

// The heading text once it is `text` (pages load asynchronously).
async function heading(page, text) {
  await page.waitForFunction((t) => document.querySelector('main h1')?.textContent.includes(t), {}, text);
}

async function noSeriousViolations(page, name) {
  const violations = await env.axe(page);
  assert.deepEqual(violations, [], `axe on ${name}: ${JSON.stringify(violations, null, 2)}`);
}

async function signIn(page, token) {
  await open(page, '');
  await page.waitForSelector('#admin-token');
  await page.type('#admin-token', token);
  await page.click('button[type=submit]');
}

before(async () => {
  env = await TestEnv.create('console');
  adminToken = env.adminToken('alice', 'admin');
  readOnlyToken = env.adminToken('grafana', 'read-only');
  // Vitals sent every second (closed 10 s buckets), so the charts have data within ~11 s.
  cp = await env.startCp({ args: ['--admin_auth=on', '--vitals_flush_interval_s=1'] });
  assert.ok(cp.urls.console, 'this portico-cp has --console_listen');
  dp = await env.startDp(cp);
  // Traffic for the vitals charts: a route to an upstream that refuses connections (502s).
  await adminApi('POST', '/services', { name: 'vitals-probe', url: 'http://127.0.0.1:1' });
  await adminApi('POST', '/services/vitals-probe/routes', { name: 'vitals-probe', paths: ['/probe'] });
  await waitFor(async () => (await http('GET', `http://127.0.0.1:${dp.proxyPort}/probe`)).status === 502,
    'the DP to route /probe');
  for (let i = 0; i < 20; i++) await http('GET', `http://127.0.0.1:${dp.proxyPort}/probe`);
});

afterEach(async () => {
  await env?.closePages();
});

after(async () => {
  await env?.close();
});

test('the console listener serves the app, its config and nothing else', T, async () => {
  await env.withLogs(async () => {
    const index = await http('GET', `${cp.urls.console}/`);
    assert.equal(index.status, 200);
    assert.match(index.headers.get('content-type'), /text\/html/);
    assert.match(index.headers.get('content-security-policy'), /script-src 'self'/);
    const config = await http('GET', `${cp.urls.console}/config.json`);
    assert.deepEqual(config.json, {
      admin_api_url: '',
      admin_api_port: cp.adminPort,
      admin_api_scheme: 'http',
      admin_auth: true,
    });
    const etag = (await http('GET', `${cp.urls.console}/app.js`)).headers.get('etag');
    assert.equal((await http('GET', `${cp.urls.console}/app.js`, { headers: { 'If-None-Match': etag } })).status, 304);
    assert.equal((await http('GET', `${cp.urls.console}/services`)).status, 404);
    assert.equal((await http('POST', `${cp.urls.console}/`, { body: {} })).status, 405);
    // Nothing of the Admin API is reachable through the console's listener.
    assert.equal((await http('GET', `${cp.urls.console}/status`)).status, 404);
  });
});

test('login: a bad token is refused beside the input, a good one opens the console', T, async () => {
  await env.withLogs(async () => {
    const page = await env.newPage();
    await open(page, '');
    await heading(page, 'Sign in');
    await noSeriousViolations(page, 'login');
    await page.type('#admin-token', 'ptk_not_a_token');
    await page.click('button[type=submit]');
    await page.waitForSelector('#admin-token-error');
    assert.equal(await page.$eval('#admin-token', (e) => e.getAttribute('aria-invalid')), 'true');
    await env.screenshot(page, 'login-refused');

    await page.click('#admin-token', { count: 3 });
    await page.keyboard.press('Backspace');
    await page.type('#admin-token', adminToken);
    await page.keyboard.press('Enter');
    await heading(page, 'Control planes');
    await page.waitForSelector('table.list tbody tr');
    assert.ok((await page.$eval('main', (e) => e.textContent)).includes('default'));
    await noSeriousViolations(page, 'control planes');
    await env.screenshot(page, 'control-planes');
    assert.deepEqual(page.problems.filter((p) => !p.includes('401')), []);
  });
});

test('a service and a route through the generated forms; Kong errors beside the bad field', T, async () => {
  await env.withLogs(async () => {
    const page = await env.newPage();
    await signIn(page, adminToken);
    await heading(page, 'Control planes');

    await open(page, '#/cp/default/services/new');
    await heading(page, 'New service');
    await page.waitForSelector('#services-form-host');
    await noSeriousViolations(page, 'new service form');
    await page.type('#services-form-name', 'orders');
    await page.type('#services-form-host', 'orders.internal');
    // Replace the default port with one out of range: the Admin API's message shows beside it.
    await page.click('#services-form-port', { count: 3 });
    await page.type('#services-form-port', '99999');
    await page.click('#services-form button[type=submit]');
    await page.waitForSelector('#services-form-port-error');
    const expected = await adminApi('POST', '/schemas/services/validate', { host: 'orders.internal', port: 99999 });
    assert.equal(await page.$eval('#services-form-port-error', (e) => e.textContent), expected.json.fields.port);
    assert.equal(await page.$eval('#services-form-port', (e) => e.getAttribute('aria-invalid')), 'true');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'services-form-port');
    assert.match(await page.$eval('.form-error', (e) => e.textContent), /schema violation/);
    await noSeriousViolations(page, 'service form with an error');
    await env.screenshot(page, 'service-port-error');

    await page.click('#services-form-port', { count: 3 });
    await page.type('#services-form-port', '8080');
    await page.click('#services-form button[type=submit]');
    await page.waitForFunction(() => location.hash.includes('created=1'));
    await heading(page, 'Service orders');
    const svc = await adminApi('GET', '/services/orders');
    assert.equal(svc.status, 200);
    assert.equal(svc.json.port, 8080);
    assert.equal(svc.json.host, 'orders.internal');
    assert.equal(svc.json.retries, 5, 'defaults left alone are the Admin API\'s');

    // A route for it, from the service's page (its `service` field filled in).
    // A DOM click on the link: the page's lists below it load after the heading and shift the
    // layout, so a click at the link's coordinates could land beside it (seen once in a
    // clean-clone run: the page stayed on the service).
    await page.waitForSelector('a[href*="routes/new?service="]');
    await page.$eval('a[href*="routes/new?service="]', (a) => a.click());
    await heading(page, 'New route');
    await page.waitForSelector('#routes-form-paths');
    assert.equal(await page.$eval('#routes-form-service', (e) => e.value), svc.json.id);
    await page.type('#routes-form-name', 'orders');
    await page.type('#routes-form-paths', 'orders');  // not a path: Kong's message
    await page.click('#routes-form button[type=submit]');
    await page.waitForSelector('#routes-form-paths-error');
    assert.match(await page.$eval('#routes-form-paths-error', (e) => e.textContent), /should start with: \//);
    await env.screenshot(page, 'route-paths-error');
    await page.click('#routes-form-paths', { count: 3 });
    await page.type('#routes-form-paths', '/orders, /v2/orders');
    await page.click('#routes-form button[type=submit]');
    await page.waitForFunction(() => location.hash.includes('created=1'));
    const route = await adminApi('GET', '/routes/orders');
    assert.equal(route.status, 200);
    assert.deepEqual(route.json.paths, ['/orders', '/v2/orders']);
    assert.equal(route.json.service.id, svc.json.id);

    // Edit: PATCH only what changed.
    await page.waitForSelector('#routes-form-strip_path');
    await page.click('#routes-form-strip_path');
    await page.click('#routes-form button[type=submit]');
    await page.waitForFunction(() => [...document.querySelectorAll('.notice')].some((n) => n.textContent.startsWith('Saved route orders')));
    assert.equal((await adminApi('GET', '/routes/orders')).json.strip_path, false);

    // The list: the service, found by name and by tag.
    await adminApi('PATCH', '/services/orders', { tags: ['team-a'] });
    await open(page, '#/cp/default/services');
    await page.waitForSelector('table.list tbody tr a');
    await noSeriousViolations(page, 'services list');
    for (const q of ['orders', 'team-a']) {
      await page.click('#entity-search', { count: 3 });
      await page.type('#entity-search', q);
      await page.keyboard.press('Enter');
      await page.waitForFunction(
        (query) => location.hash.endsWith(`q=${query}`) && document.querySelector('table.list tbody a')?.textContent === 'orders',
        {},
        q,
      );
    }
    await env.screenshot(page, 'services-search');
    assert.deepEqual(page.problems.filter((p) => !p.includes('status of 4')), []);
  });
});

test('Runtime Manager lists the connected DP with its sync status and config hash', T, async () => {
  await env.withLogs(async () => {
    const page = await env.newPage();
    await signIn(page, adminToken);
    await heading(page, 'Control planes');
    const node = await waitFor(async () => {
      const r = await adminApi('GET', '/clustering/data-planes');
      return r.json?.data?.find((n) => n.connected && n.sync_status === 'normal' && n.config_hash);
    }, 'the DP to report its config');
    await open(page, '#/runtime');
    await heading(page, 'Runtime Manager');
    const row = await page.waitForSelector(`tr.node.status-normal`);
    const cells = await row.$$eval('td', (tds) => Object.fromEntries(tds.map((td) => [td.dataset.col || 'id', td.textContent])));
    assert.equal(cells.id, node.id);
    assert.equal(cells.connected, 'yes');
    assert.equal(cells.sync_status, 'normal');
    assert.equal(cells.config_hash, node.config_hash);
    assert.equal(cells.control_plane, 'default');
    assert.equal(cells.compatibility_issues, 'none');
    assert.match(cells.last_seen, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/);
    await noSeriousViolations(page, 'runtime manager');
    await env.screenshot(page, 'runtime-manager');
  });
});

test('catalog search, a service\'s versions, and XSS payloads shown as text', T, async () => {
  await env.withLogs(async () => {
    for (const s of [
      { name: 'payments', display_name: XSS_DISPLAY, description: XSS_DESCRIPTION, owner_team: 'money', labels: { tier: '1' } },
      { name: 'shipping', display_name: 'Shipping', description: 'Ships parcels.', owner_team: 'logistics' },
    ]) {
      assert.equal((await adminApi('POST', '/service-catalog/services', s)).status, 201);
    }
    assert.equal((await adminApi('POST', '/service-catalog/services/payments/versions', { version: '1.0.0', state: 'published' })).status, 201);

    const page = await env.newPage();
    await signIn(page, adminToken);
    await heading(page, 'Control planes');
    await open(page, '#/catalog');
    await heading(page, 'Service catalog');
    await page.waitForSelector('#catalog-search');
    await page.type('#catalog-search', 'refunds');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('[role=status]')?.textContent.startsWith('1 service'));
    const names = await page.$$eval('table.list tbody tr td:first-child', (tds) => tds.map((td) => td.textContent));
    assert.deepEqual(names, ['payments']);
    // The payloads are text: shown as typed, nothing ran, no element was made of them.
    const row = await page.$eval('table.list tbody tr', (tr) => tr.textContent);
    assert.ok(row.includes(XSS_DISPLAY) && row.includes(XSS_DESCRIPTION), row);
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.$$eval('main img, main script', (els) => els.length), 0);
    await noSeriousViolations(page, 'catalog search');
    await env.screenshot(page, 'catalog-search');

    await page.click('table.list tbody a');
    await heading(page, XSS_DISPLAY);
    await page.waitForFunction(() => document.querySelector('table[aria-label=Versions] tbody td')?.textContent === '1.0.0');
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    await noSeriousViolations(page, 'catalog service');
    await env.screenshot(page, 'catalog-service');
  });
});

test('control planes: create and delete through the console; vitals and the other lists pass axe', T, async () => {
  await env.withLogs(async () => {
    const page = await env.newPage();
    await signIn(page, adminToken);
    await heading(page, 'Control planes');
    await page.waitForSelector('#cp-name');
    await page.type('#cp-name', 'eu-west');
    await page.type('#cp-description', '<b>EU</b> gateways');
    await page.click('form.inline-form button[type=submit]');
    await page.waitForFunction(() => [...document.querySelectorAll('table.list td')].some((td) => td.textContent === '<b>EU</b> gateways'));
    // A name the API refuses: its reason beside the input.
    await page.type('#cp-name', 'a/b');
    await page.click('form.inline-form button[type=submit]');
    await page.waitForSelector('#cp-name-error');
    assert.match(await page.$eval('#cp-name-error', (e) => e.textContent), /without '\/'/);
    await env.screenshot(page, 'control-plane-error');
    // By keyboard: Enter on Delete moves focus to its confirmation, Enter again deletes.
    await page.focus('button[aria-label="Delete control plane eu-west"]');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement?.getAttribute('aria-label') === 'Confirm delete control plane eu-west');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => ![...document.querySelectorAll('table.list td a')].some((a) => a.textContent === 'eu-west'));
    assert.equal((await adminApi('GET', '/control-planes/eu-west')).status, 404);

    // Vitals: the probe's requests and 502s, charted (and the figures in text for readers).
    await waitFor(async () => {
      const r = await adminApi('GET', '/vitals/requests?granularity=1m&service=vitals-probe');
      return r.json?.data?.length > 0;
    }, 'vitals of the probe\'s requests', 40000);
    await open(page, '#/vitals?cp=default&service=vitals-probe');
    await heading(page, 'Vitals');
    await page.waitForFunction(() => document.querySelectorAll('.chart canvas').length === 3);
    const captions = await page.$$eval('.chart figcaption', (fs) => fs.map((f) => f.textContent));
    assert.deepEqual(captions.map((c) => c.split(':')[0]), ['Requests per minute', '5xx errors per minute', 'p99 latency']);
    await noSeriousViolations(page, 'vitals charts');
    await env.screenshot(page, 'vitals');

    for (const [hash, title] of [
      ['#/cp/default/routes', 'Routes'],
      ['#/cp/default/consumers', 'Consumers'],
      ['#/cp/default/plugins', 'Plugins'],
      ['#/cp/default/plugins/new?plugin=key-auth', 'New plugin'],
      ['#/cp/default/upstreams', 'Upstreams'],
      ['#/cp/default/certificates', 'Certificates'],
      ['#/vitals?cp=default&service=nothing-here', 'Vitals'],
    ]) {
      await open(page, hash);
      await heading(page, title);
      await page.waitForFunction(() => !document.querySelector('main')?.textContent.includes('Loading…'));
      await noSeriousViolations(page, hash);
    }
  });
});

test('keyboard: the skip link comes first and moves focus to the page heading', T, async () => {
  await env.withLogs(async () => {
    const page = await env.newPage();
    await signIn(page, adminToken);
    await heading(page, 'Control planes');
    // The skip link is the first stop: Shift+Tab from the first navigation link reaches it.
    await page.focus('header nav a');
    await page.keyboard.down('Shift');
    await page.keyboard.press('Tab');
    await page.keyboard.up('Shift');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.tagName), 'H1');
    // Every navigation link is reachable by Tab.
    const reached = new Set();
    await page.evaluate(() => document.querySelector('.skip').focus());
    for (let i = 0; i < 12; i++) {
      await page.keyboard.press('Tab');
      reached.add(await page.evaluate(() => document.activeElement.textContent));
    }
    for (const link of ['Control planes', 'Runtime Manager', 'Services', 'Service catalog', 'Vitals']) {
      assert.ok(reached.has(link), `${link} not reached by Tab: ${[...reached]}`);
    }
  });
});

test('a read-only token sees no edit controls', T, async () => {
  await env.withLogs(async () => {
    const page = await env.newPage();
    await signIn(page, readOnlyToken);
    await heading(page, 'Control planes');
    assert.equal(await page.$('#cp-name'), null);
    assert.equal(await page.$('button.danger'), null);
    await open(page, '#/cp/default/services');
    await page.waitForSelector('table.list tbody tr a');
    assert.equal(await page.$('a.button.primary'), null, 'no "New service"');
    assert.equal(await page.$('button.danger'), null, 'no "Delete"');
    await open(page, '#/cp/default/services/orders');
    await heading(page, 'Service orders');
    await page.waitForSelector('#services-form-host');
    assert.equal(await page.$eval('#services-form-host', (e) => e.disabled), true);
    assert.equal(await page.$('#services-form button[type=submit]'), null);
    assert.match(await page.$eval('.role', (e) => e.textContent), /read-only/);
    await noSeriousViolations(page, 'read-only service');
    await env.screenshot(page, 'read-only-service');
  });
});

test('every enabled plugin gets a generated form; a plugin and a certificate created through theirs', T, async () => {
  await env.withLogs(async () => {
    const page = await env.newPage();
    await signIn(page, adminToken);
    await heading(page, 'Control planes');
    const enabled = (await adminApi('GET', '/plugins/enabled')).json.enabled_plugins;
    assert.ok(enabled.length > 10);
    for (const name of enabled) {
      await open(page, `#/cp/default/plugins/new?plugin=${name}`);
      await heading(page, 'New plugin');
      await page.waitForSelector('#plugins-form fieldset.record legend');
      assert.equal(await page.$eval('#plugins-form fieldset.record legend', (e) => e.textContent), 'config', name);
      assert.equal(await page.$eval('#plugin-name', (e) => e.value), name);
    }
    await noSeriousViolations(page, `new ${enabled[enabled.length - 1]} plugin form`);

    // rate-limiting on the probe's service; a record field's error beside its input.
    await open(page, '#/cp/default/plugins/new?plugin=rate-limiting');
    await page.waitForSelector('#plugins-form-config-minute');
    await page.type('#plugins-form-service', 'vitals-probe');
    await page.type('#plugins-form-config-minute', '-5');
    await page.click('#plugins-form button[type=submit]');
    await page.waitForSelector('#plugins-form-config-minute-error');
    assert.match(await page.$eval('#plugins-form-config-minute-error', (e) => e.textContent), /greater than|between|positive|at least/);
    await env.screenshot(page, 'plugin-config-error');
    await page.click('#plugins-form-config-minute', { count: 3 });
    await page.type('#plugins-form-config-minute', '100');
    await page.click('#plugins-form button[type=submit]');
    await page.waitForFunction(() => location.hash.includes('created=1'));
    const plugins = (await adminApi('GET', '/services/vitals-probe/plugins')).json.data;
    assert.equal(plugins.length, 1);
    assert.equal(plugins[0].name, 'rate-limiting');
    assert.equal(plugins[0].config.minute, 100);

    // A certificate: PEM text in textareas, SNIs as a list.
    const dir = fs.mkdtempSync(path.join(env.tmp, 'cert-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`, '-subj', '/CN=shop.example.test', '-days', '2'], { stdio: 'ignore' });
    await open(page, '#/cp/default/certificates/new');
    await page.waitForSelector('textarea#certificates-form-cert');
    for (const [field, file] of [['cert', 'cert.pem'], ['key', 'key.pem']]) {
      await page.$eval(`#certificates-form-${field}`, (e, v) => {
        e.value = v;
        e.dispatchEvent(new Event('input', { bubbles: true }));
      }, fs.readFileSync(`${dir}/${file}`, 'utf8'));
    }
    await page.type('#certificates-form-snis', 'shop.example.test');
    await noSeriousViolations(page, 'certificate form');
    await page.click('#certificates-form button[type=submit]');
    await page.waitForFunction(() => location.hash.includes('created=1'));
    const certs = (await adminApi('GET', '/certificates')).json.data;
    assert.equal(certs.length, 1);
    assert.deepEqual(certs[0].snis, ['shop.example.test']);
    await env.screenshot(page, 'certificate');
  });
});

test('Dev Portal admin view: a signed-up developer approved from the console; settings', T, async () => {
  await env.withLogs(async () => {
    assert.ok(cp.urls.portal, 'this portico-cp has --portal_listen');
    // A developer signs up on the portal (its CSRF cookie, then the form's JSON).
    const csrf = await http('GET', `${cp.urls.portal}/api/csrf`);
    const cookie = csrf.headers.get('set-cookie').split(';')[0];
    const name = '<img src=x onerror="window.__xss=3">Dev';
    const signup = await http('POST', `${cp.urls.portal}/api/signup`, {
      body: { email: 'dev@example.test', password: 'correct horse battery', name },
      headers: { Cookie: cookie, 'X-CSRF-Token': csrf.json.csrf_token },
    });
    assert.ok(signup.status < 300, `sign-up: ${signup.status} ${signup.body}`);

    const page = await env.newPage();
    await signIn(page, adminToken);
    await heading(page, 'Control planes');
    await open(page, '#/portal?tab=developers&status=pending');
    await heading(page, 'Dev Portal');
    await page.waitForFunction(() => document.querySelector('table[aria-label=Developers] tbody td')?.textContent === 'dev@example.test');
    assert.ok((await page.$eval('table[aria-label=Developers] tbody tr', (tr) => tr.textContent)).includes(name));
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    await noSeriousViolations(page, 'portal developers');
    await env.screenshot(page, 'portal-developers');
    await page.click('button[aria-label="Approve dev@example.test"]');
    await page.waitForFunction(() => document.querySelector('table[aria-label=Developers] tbody td.empty'));
    const devs = (await adminApi('GET', '/portal/developers')).json.data;
    assert.equal(devs.find((d) => d.email === 'dev@example.test').status, 'approved');

    await open(page, '#/portal?tab=settings');
    await page.waitForSelector('#portal-auto_approve_registrations');
    await page.click('#portal-auto_approve_registrations');
    await page.waitForSelector('.notice[role=status]');
    assert.equal((await adminApi('GET', '/portal/settings')).json.auto_approve_registrations, true);
    await noSeriousViolations(page, 'portal settings');
    for (const tab of ['registrations', 'applications']) {
      await open(page, `#/portal?tab=${tab}`);
      await page.waitForSelector(`table.list`);
      await noSeriousViolations(page, `portal ${tab}`);
    }
  });
});

test('a consumer\'s credentials and an upstream\'s targets through their nested forms', T, async () => {
  await env.withLogs(async () => {
    const page = await env.newPage();
    await signIn(page, adminToken);
    await heading(page, 'Control planes');
    await open(page, '#/cp/default/consumers/new');
    await page.waitForSelector('#consumers-form-username');
    await page.type('#consumers-form-username', 'mobile-app');
    await page.click('#consumers-form button[type=submit]');
    await page.waitForFunction(() => location.hash.includes('created=1'));
    await heading(page, 'Consumer mobile-app');

    // A key-auth credential with a key of our own, then an ACL group.
    await page.waitForSelector('#child-key-auth-title');
    await page.click('#child-key-auth-title ~ p button');
    await page.waitForSelector('#child-key-auth-form-key');
    await page.type('#child-key-auth-form-key', 'mobile-secret-key');
    await page.click('#child-key-auth-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('table[aria-label="Key-auth credentials"] tbody td')?.textContent === 'mobile-secret-key');
    await page.click('#child-acls-title ~ p button');
    await page.waitForSelector('#child-acls-form-group');
    await page.click('#child-acls-form button[type=submit]');  // no group: Kong's error beside it
    await page.waitForSelector('#child-acls-form-group-error');
    await page.type('#child-acls-form-group', 'partners');
    await page.click('#child-acls-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('table[aria-label="ACL groups"] tbody td')?.textContent === 'partners');
    await noSeriousViolations(page, 'consumer with credentials');
    await env.screenshot(page, 'consumer-credentials');
    assert.equal((await adminApi('GET', '/consumers/mobile-app/key-auth')).json.data[0].key, 'mobile-secret-key');
    assert.equal((await adminApi('GET', '/consumers/mobile-app/acls')).json.data[0].group, 'partners');

    // Deleting the credential from its row.
    await page.click('button[aria-label="Delete Key-auth credentials mobile-secret-key"]');
    await page.click('button[aria-label="Confirm delete Key-auth credentials mobile-secret-key"]');
    await page.waitForFunction(() => document.querySelector('table[aria-label="Key-auth credentials"] tbody td.empty'));
    assert.equal((await adminApi('GET', '/consumers/mobile-app/key-auth')).json.data.length, 0);

    // An upstream and a target.
    assert.equal((await adminApi('POST', '/upstreams', { name: 'orders-pool' })).status, 201);
    await open(page, '#/cp/default/upstreams/orders-pool');
    await page.waitForSelector('#child-targets-title');
    await page.click('#child-targets-title ~ p button');
    await page.waitForSelector('#child-targets-form-target');
    await page.type('#child-targets-form-target', '10.0.0.7:8080');
    await page.click('#child-targets-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('table[aria-label=Targets] tbody td')?.textContent === '10.0.0.7:8080');
    assert.equal((await adminApi('GET', '/upstreams/orders-pool/targets')).json.data[0].weight, 100);
  });
});

test('a catalog service\'s usage: the vitals of the gateway service its version runs as', T, async () => {
  await env.withLogs(async () => {
    // The probe's 502s (sent at start, in the vitals since the control plane test).
    await waitFor(async () => (await adminApi('GET', '/vitals/requests?service=vitals-probe')).json?.data?.length > 0,
      'vitals of the probe', 40000);
    assert.equal((await adminApi('POST', '/service-catalog/services', { name: 'probe-api' })).status, 201);
    const v = await adminApi('POST', '/service-catalog/services/probe-api/versions', {
      version: '2.0.0', gateway_services: [{ control_plane_id: 'default', service_id: 'vitals-probe' }],
    });
    assert.equal(v.status, 201, v.body);
    const page = await env.newPage();
    await signIn(page, adminToken);
    await heading(page, 'Control planes');
    await open(page, '#/catalog/probe-api');
    await page.waitForSelector('table[aria-label="Usage in the last hour"] tbody tr');
    const rows = await page.$$eval('table[aria-label="Usage in the last hour"] tbody tr',
      (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
    assert.equal(rows.length, 2);
    assert.deepEqual([rows[0][0], rows[1][0]], ['all versions', '2.0.0']);
    assert.ok(Number(rows[0][1]) >= 20, rows[0].join(' '));
    assert.equal(rows[0][1], rows[0][2], 'every probe request was a 502');
    assert.equal(rows[0][3], '100.0%');
    await noSeriousViolations(page, 'catalog usage');
    await env.screenshot(page, 'catalog-usage');
  });
});

test('a catalog service through its form; dependencies declared, and observed in the vitals', T, async () => {
  await env.withLogs(async () => {
    // billing calls ledger-gw (key-auth) as the consumer billing-bot; ledger runs as ledger-gw.
    assert.equal((await adminApi('POST', '/services', { name: 'ledger-gw', url: 'http://127.0.0.1:1' })).status, 201);
    assert.equal((await adminApi('POST', '/services/ledger-gw/routes', { name: 'ledger', paths: ['/ledger'] })).status, 201);
    assert.equal((await adminApi('POST', '/services/ledger-gw/plugins', { name: 'key-auth' })).status, 201);
    assert.equal((await adminApi('POST', '/consumers', { username: 'billing-bot' })).status, 201);
    assert.equal((await adminApi('POST', '/consumers/billing-bot/key-auth', { key: 'billing-key' })).status, 201);
    for (const name of ['ledger', 'audit']) {
      assert.equal((await adminApi('POST', '/service-catalog/services', { name })).status, 201);
    }
    const v = await adminApi('POST', '/service-catalog/services/ledger/versions', {
      version: '1.0.0', gateway_services: [{ control_plane_id: 'default', service_id: 'ledger-gw' }],
    });
    assert.equal(v.status, 201, v.body);
    const proxy = `http://127.0.0.1:${dp.proxyPort}/ledger`;
    await waitFor(async () => (await http('GET', proxy)).status === 401, 'the DP to guard /ledger');
    // Identified by its key, refused by the upstream (502): 5 calls billing-bot made.
    for (let i = 0; i < 5; i++) {
      assert.equal((await http('GET', proxy, { headers: { apikey: 'billing-key' } })).status, 502);
    }

    const page = await env.newPage();
    await signIn(page, adminToken);
    await heading(page, 'Control planes');
    await open(page, '#/catalog');
    await heading(page, 'Service catalog');
    await page.waitForSelector('main button.primary');
    await page.click('main button.primary');
    await page.waitForSelector('#catalog-service-form-name');
    await page.type('#catalog-service-form-name', 'billing');
    await page.type('#catalog-service-form-links-repository', 'javascript:alert(1)');
    await page.type('#catalog-service-form-calls_as', '[{"control_plane_id": "default", "consumer_id": "billing-bot"}]');
    await page.click('#catalog-service-form button[type=submit]');
    // The API's message beside the bad link, which is marked invalid.
    await page.waitForSelector('#catalog-service-form-links-repository-error');
    assert.match(await page.$eval('#catalog-service-form-links-repository-error', (e) => e.textContent), /http or https URL/);
    assert.equal(await page.$eval('#catalog-service-form-links-repository', (e) => e.getAttribute('aria-invalid')), 'true');
    await noSeriousViolations(page, 'catalog service form with an error');
    await env.screenshot(page, 'catalog-service-form-error');
    await page.click('#catalog-service-form-links-repository', { count: 3 });
    await page.keyboard.press('Backspace');
    await page.type('#catalog-service-form-links-repository', 'https://git.example/billing');
    await page.click('#catalog-service-form button[type=submit]');
    await heading(page, 'billing');
    const service = (await adminApi('GET', '/service-catalog/services/billing')).json;
    assert.equal(service.links.repository, 'https://git.example/billing');
    assert.equal(service.calls_as[0].control_plane_name, 'default');

    // Observed: ledger, with the 5 calls, once the DP's vitals are in (1 s flushes of 10 s
    // buckets; the page reads them when opened). Declared: audit, through the form; a name that
    // is no service is refused.
    await waitFor(async () => (await adminApi('GET', '/service-catalog/services/billing/dependencies?granularity=10s'))
      .json?.data?.[0]?.observed?.requests === 5, 'the calls in the vitals', 60000);
    await page.reload();  // the page's URL already: goto would not load it again
    await heading(page, 'billing');
    await page.waitForFunction(() => {
      const row = [...document.querySelectorAll('table[aria-label="Depends on"] tbody tr')]
        .find((tr) => tr.children[0].textContent === 'ledger');
      return row && row.children[2].textContent === '5';
    });
    const ledgerRow = await page.$$eval('table[aria-label="Depends on"] tbody tr',
      (trs) => trs.map((tr) => [...tr.children].slice(0, 4).map((td) => td.textContent)));
    assert.deepEqual(ledgerRow, [['ledger', 'no', '5', '5']]);
    await page.type('#dependencies-add', 'nope');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#dependencies-add-error');
    assert.match(await page.$eval('#dependencies-add-error', (e) => e.textContent), /catalog service 'nope' not found/);
    await page.click('#dependencies-add', { count: 3 });
    await page.keyboard.press('Backspace');
    await page.type('#dependencies-add', 'audit');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => [...document.querySelectorAll('table[aria-label="Depends on"] tbody tr')]
      .some((tr) => tr.children[0].textContent === 'audit' && tr.children[1].textContent === 'yes'));
    await noSeriousViolations(page, 'catalog dependencies');
    await env.screenshot(page, 'catalog-dependencies');

    // The other side lists billing as observed.
    await open(page, '#/catalog/ledger');
    await page.waitForFunction(() => [...document.querySelectorAll('table[aria-label="Used by"] tbody tr')]
      .some((tr) => tr.children[0].textContent === 'billing' && tr.children[2].textContent === '5'));

    // Edited through the same form.
    await open(page, '#/catalog/billing');
    await heading(page, 'billing');
    await page.waitForSelector('main p.row-actions button');
    await page.click('main p.row-actions button');
    await page.waitForSelector('#catalog-service-form-owner_team');
    await page.type('#catalog-service-form-owner_team', 'finance');
    await page.click('#catalog-service-form button[type=submit]');
    await page.waitForFunction(() => document.querySelector('dl.facts')?.textContent.includes('finance'));
    assert.equal((await adminApi('GET', '/service-catalog/services/billing')).json.owner_team, 'finance');
  });
});
