// The Dev Portal in a real browser: a developer signs up, is approved, logs in, creates an
// application and registers it for a published API; once an admin approves, the key shown on
// the page works at a real portico-dp, and stops when revoked. Hostile names render as text,
// the API reference renders from the vendored Redoc, and axe finds no serious violations.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { TestEnv, http, waitFor } from './lib/harness.mjs';

const XSS = '<img src=x onerror="window.__xss=1">';
const SPEC = {
  openapi: '3.0.3',
  info: { title: 'Orders API', version: '1.0.0', description: `Orders. ${XSS}` },
  paths: {
    '/orders/{id}': {
      get: {
        operationId: 'getOrder',
        summary: 'Fetch one order',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: { 200: { description: 'the order' } },
      },
    },
  },
};

let env;

before(async () => {
  env = await TestEnv.create('portal');
});

after(async () => {
  await env?.close();
});

async function admin(cp, method, path, body, want) {
  const r = await http(method, `${cp.urls.admin}${path}`, { body });
  assert.equal(r.status, want, `${method} ${path} -> ${r.status} ${r.body}`);
  return r.json;
}

test('a developer goes from sign-up to a working key at the proxy', async () => {
  await env.withLogs(async () => {
    const cp = await env.startCp();
    assert.ok(cp.urls.portal, 'this portico-cp has --portal_listen');
    const dp = await env.startDp(cp);
    const proxy = (key) =>
      http('GET', `http://127.0.0.1:${dp.proxyPort}/orders`, key ? { headers: { apikey: key } } : {});

    // An API to publish: the Admin API's own /status stands in for the upstream (GET /orders).
    await admin(cp, 'POST', '/services', { name: 'orders', url: `${cp.urls.admin}/status` }, 201);
    await admin(cp, 'POST', '/services/orders/routes', { name: 'orders', paths: ['/orders'] }, 201);
    await admin(cp, 'POST', '/service-catalog/services',
      { name: 'orders', display_name: 'Orders', description: `Order book ${XSS}` }, 201);
    const version = await admin(cp, 'POST', '/service-catalog/services/orders/versions', {
      version: 'v1', state: 'published', spec: SPEC,
      gateway_services: [{ control_plane_id: 'default', service_id: 'orders' }],
    }, 201);
    // Published: the route admits registered applications only.
    await waitFor(async () => (await proxy()).status === 401, 'the proxy to ask for a key');
    await waitFor(async () => (await http('GET', `${cp.urls.portal}/api/apis`)).status === 200,
      'the portal to answer');

    const page = await env.newPage();
    // Nothing may leave loopback: the renderer is vendored, and the CSP blocks the rest (a
    // blocked request never finishes).
    const offsite = [];
    page.on('requestfinished', (req) => {
      const url = req.url();
      if (!/^(http:\/\/127\.0\.0\.1[:/]|data:|blob:|about:)/.test(url)) offsite.push(url);
    });
    await page.goto(`${cp.urls.portal}/`);
    await page.waitForSelector('#api-list article.api');
    const card = await page.$eval('#api-list article.api', (el) => el.textContent);
    assert.match(card, /Orders/);
    assert.ok(card.includes(XSS), 'the hostile description shows as text');
    assert.deepEqual(await env.axe(page), []);
    await env.screenshot(page, 'apis');

    // Sign up.
    await page.goto(`${cp.urls.portal}/#/signup`);
    await page.waitForSelector('#signup-form');
    await page.type('#signup-form input[name=name]', XSS);
    await page.type('#signup-form input[name=email]', 'dev@example.com');
    await page.type('#signup-form input[name=password]', 'correct horse battery');
    assert.deepEqual(await env.axe(page), []);
    await page.click('#signup-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('status').textContent.includes('approve'));
    await page.waitForSelector('#login-form');

    // An administrator approves the developer.
    const pending = await admin(cp, 'GET', '/portal/developers?status=pending', undefined, 200);
    assert.equal(pending.data.length, 1);
    assert.equal(pending.data[0].name, XSS);
    await admin(cp, 'PATCH', `/portal/developers/${pending.data[0].id}`, { status: 'approved' }, 200);

    // Log in, create an application with a hostile name, register it.
    await page.type('#login-form input[name=email]', 'dev@example.com');
    await page.type('#login-form input[name=password]', 'correct horse battery');
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#app-form');
    await page.type('#app-form input[name=name]', XSS);
    await page.click('#app-form button[type=submit]');
    await page.waitForSelector('#app-list article.app code.key');
    assert.equal(await page.$eval('#app-list article.app .app-name', (el) => el.textContent), XSS);
    const key = await page.$eval('#app-list article.app code.key', (el) => el.textContent);
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.equal((await proxy(key)).status, 401, 'not registered yet');
    await page.select('#app-list article.app select', version.id);
    await page.click('#app-list article.app .register-form button[type=submit]');
    await page.waitForSelector('#app-list article.app .registrations li .badge.pending');
    assert.deepEqual(await env.axe(page), []);
    await env.screenshot(page, 'application-pending');

    // An administrator approves the registration: the key works at the proxy.
    const regs = await admin(cp, 'GET', '/portal/registrations?status=pending', undefined, 200);
    assert.equal(regs.data.length, 1);
    await admin(cp, 'PATCH', `/portal/registrations/${regs.data[0].id}`, { status: 'approved' }, 200);
    await waitFor(async () => (await proxy(key)).status === 200, 'the key to work at the proxy');
    await page.reload();
    await page.waitForSelector('#app-list article.app .registrations li .badge.approved');
    await env.screenshot(page, 'application-approved');

    assert.equal(await page.evaluate(() => window.__xss), undefined, 'no injected script ran');

    // The API reference, rendered by the vendored Redoc; the spec's markup stays inert.
    await page.goto(`${cp.urls.portal}/docs/orders/v1`);
    await page.waitForFunction(() => document.body.innerText.includes('Fetch one order'), { timeout: 20000 });
    await env.screenshot(page, 'api-reference');

    assert.equal(await page.evaluate(() => window.__xss), undefined, 'no injected script ran');
    assert.ok(await page.evaluate(() => document.body.innerText.includes('onerror=')),
      "the spec's markup shows as text");
    assert.deepEqual(offsite, []);
    // Redoc's footer asks for its logo from its CDN: the page's CSP refuses it (expected).
    const problems = page.problems.filter(
      (p) => !(p.includes('https://cdn.redoc.ly/') && p.includes('Content Security Policy')));
    assert.deepEqual(problems, []);

    // Revoked: refused within seconds.
    await admin(cp, 'PATCH', `/portal/registrations/${regs.data[0].id}`, { status: 'revoked' }, 200);
    await waitFor(async () => (await proxy(key)).status === 403, 'the revoked key to be refused');
  });
});
