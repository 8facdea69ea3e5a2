// The harness itself: a PostgreSQL-backed portico-cp and a portico-dp come up, the DP is
// listed as connected, and chromium loads a page of the CP and saves a screenshot.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';

import { TestEnv, http, waitFor } from './lib/harness.mjs';

let env;
let cp;

before(async () => {
  env = await TestEnv.create('harness');
});

after(async () => {
  await env?.close();
});

test('a CP and a DP start, the DP connects, chromium reads the CP', async () => {
  await env.withLogs(async () => {
    cp = await env.startCp();
    await env.startDp(cp);
    const node = await waitFor(async () => {
      const r = await http('GET', `${cp.urls.admin}/clustering/data-planes`);
      return r.json?.data?.find((n) => n.sync_status === 'normal');
    }, 'the DP to be listed with sync_status normal');
    assert.ok(node.id);

    const page = await env.newPage();
    const resp = await page.goto(`${cp.urls.admin}/clustering/data-planes`);
    assert.equal(resp.status(), 200);
    const listed = JSON.parse(await page.evaluate(() => document.body.innerText));
    assert.ok(listed.data.some((n) => n.id === node.id));
    const shot = await env.screenshot(page, 'data-planes-json');
    assert.ok(fs.statSync(shot).size > 0);
  });
});
