// Benchmark (not a CTest test): the console's first view of a control plane with 10,000
// services, on loopback. Loads them with one POST /config, then opens
// <console>/#/cp/default/services in a fresh tab REPEAT times and reports, from the page's
// own performance timing: navigation start -> the first page of services rendered and
// interactive (its rows and the "Next page" button in the DOM, then a task posted at that
// moment has run), timed inside the page.
//   PORTICO_BUILD_DIR=build [PORTICO_TEST_PG_DSN=...] node tests/browser/console_first_view.bench.mjs
//   SERVICES=10000 REPEAT=5 (defaults)
import { TestEnv, http } from './lib/harness.mjs';

const services = Number(process.env.SERVICES || 10000);
const repeat = Number(process.env.REPEAT || 5);

const env = await TestEnv.create('console-bench');
try {
  const cp = await env.startCp();
  const config = {
    _format_version: '3.0',
    services: Array.from({ length: services }, (_, i) => ({
      name: `svc-${String(i).padStart(5, '0')}`,
      url: `http://upstream-${i % 50}.internal:8080/v1`,
      tags: [`team-${i % 20}`],
    })),
  };
  const loaded = await http('POST', `${cp.urls.admin}/config`, { body: { config: JSON.stringify(config) } });
  if (loaded.status !== 201) throw new Error(`POST /config: ${loaded.status} ${loaded.body.slice(0, 300)}`);

  const results = [];
  for (let i = 0; i < repeat; i++) {
    const page = await env.newPage();
    // Timed inside the page, so no DevTools round trip counts: the moment the rows and an
    // enabled "Next page" are in the DOM, then the moment a task posted then has run.
    await page.evaluateOnNewDocument(() => {
      const observer = new MutationObserver(() => {
        if (document.querySelectorAll('table.list tbody tr a').length > 0 &&
            document.querySelector('.pager button:last-child:not([disabled])')) {
          observer.disconnect();
          setTimeout(() => {
            window.__interactive = performance.now();
          }, 0);
        }
      });
      document.addEventListener('DOMContentLoaded', () => observer.observe(document.body, { childList: true, subtree: true }));
    });
    await page.goto(`${cp.urls.console}/#/cp/default/services`);
    await page.waitForFunction(() => window.__interactive !== undefined);
    const ms = await page.evaluate(() => window.__interactive);
    const rows = await page.$$eval('table.list tbody tr', (trs) => trs.length);
    // Where the time went: the bundle's load and the Admin API's answer for the page.
    const parts = await page.evaluate(() => {
      const nav = performance.getEntriesByType('navigation')[0];
      const api = performance.getEntriesByType('resource').find((r) => r.name.includes('/services?size='));
      return { dom: nav.domContentLoadedEventEnd, apiStart: api?.startTime, apiEnd: api?.responseEnd };
    });
    results.push(ms);
    console.log(
      `run ${i + 1}: first page (${rows} rows of ${services} services) interactive at ${ms.toFixed(0)} ms ` +
        `(app loaded ${parts.dom.toFixed(0)} ms; GET /services?size=100 ${parts.apiStart.toFixed(0)}-${parts.apiEnd.toFixed(0)} ms)`,
    );
    await page.close();
  }
  results.sort((a, b) => a - b);
  console.log(
    `median ${results[Math.floor(results.length / 2)].toFixed(0)} ms, max ${results[results.length - 1].toFixed(0)} ms over ${repeat} runs`,
  );
} finally {
  await env.close();
}
