// The browser tests' shared harness: a PostgreSQL database of the test's own, real
// portico-cp and portico-dp processes on free loopback ports, and Debian's chromium driven
// headless by puppeteer-core, with axe-core for accessibility checks. Everything a TestEnv
// starts is stopped by close(), also when the test fails.
//
//   const env = await TestEnv.create('console');        // database + migrations
//   const cp = await env.startCp({ args: ['--admin_auth=on'] });
//   const dp = await env.startDp(cp);                   // joins cp's default group
//   const page = await env.newPage();
//   await page.goto(cp.urls.console);
//   await env.screenshot(page, 'services');             // <build>/tests/browser/screenshots/
//   assert.deepEqual(await env.axe(page), []);          // serious and critical violations
//   await env.withLogs(async () => { ... });            // a failure carries logs + screenshots
//   await env.closePages();                             // between tests (afterEach)
//   await env.close();
//
// Environment: PORTICO_BUILD_DIR (default <source>/build), PORTICO_TEST_PG_DSN (a server to
// create the test's database on; without it a private server is started with deploy/lib.sh),
// PORTICO_CHROMIUM (default /usr/bin/chromium), PORTICO_KEEP_TMP=1 keeps logs and profiles.
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const sourceDir =
  process.env.PORTICO_SOURCE_DIR ||
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const buildDir = process.env.PORTICO_BUILD_DIR || path.join(sourceDir, 'build');
export const artifactsDir = path.join(buildDir, 'tests', 'browser');
export const screenshotsDir = path.join(artifactsDir, 'screenshots');

// The npm packages are installed by tests/browser/setup.sh into the build folder (CTest's
// browser_setup fixture), so the source tree stays clean; a node_modules next to this
// folder (a developer's `npm ci` there) is used when present.
function packageRequire() {
  const local = path.join(sourceDir, 'tests', 'browser', 'node_modules');
  const base = fs.existsSync(local) ? local : path.join(artifactsDir, 'node_modules');
  if (!fs.existsSync(base)) {
    throw new Error(`no ${base}: run tests/browser/setup.sh ${buildDir} (npm ci) first`);
  }
  return createRequire(path.join(base, 'noop.js'));
}
const requirePackage = packageRequire();
const puppeteer = requirePackage('puppeteer-core');
const axeSource = fs.readFileSync(requirePackage.resolve('axe-core/axe.min.js'), 'utf8');

// `unref`: the timer does not keep the test process alive.
export function sleep(ms, { unref = false } = {}) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (unref) t.unref();
  });
}

// Polls `fn` (async, truthy = done) every 100 ms for up to `timeoutMs`; returns its value or
// throws naming `what`.
export async function waitFor(fn, what, timeoutMs = 20000) {
  const until = Date.now() + timeoutMs;
  let last;
  while (Date.now() < until) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

// A TCP port on 127.0.0.1 nothing listens on, below Linux's ephemeral range (as
// deploy/lib.sh's portico_free_port) and not handed out twice by this process.
const handedOut = new Set();
export async function freePort() {
  for (;;) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (handedOut.has(port)) continue;
    const free = await new Promise((resolve) => {
      const s = net.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) {
      handedOut.add(port);
      return port;
    }
  }
}

// Which optional listener flags this portico-cp has (--console_listen, --portal_listen):
// the harness gives each a free port, so tests can run in parallel.
let cpFlagsCache;
function cpHasFlag(flag) {
  if (cpFlagsCache === undefined) {
    const r = spawnSync(binary('portico-cp'), ['--help'], { encoding: 'utf8' });
    cpFlagsCache = `${r.stdout}${r.stderr}`;
  }
  return cpFlagsCache.includes(`--${flag} `) || cpFlagsCache.includes(`--${flag}\n`);
}

export function binary(name) {
  return path.join(buildDir, 'bin', name);
}

function runChecked(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

function shellQuote(s) {
  return `'${String(s).replace(/'/g, `'\\''`)}'`;
}

// A child process with its output in a log file; stop() sends SIGTERM, then SIGKILL.
class Child {
  constructor(name, cmd, args, logPath, env = {}) {
    this.name = name;
    this.logPath = logPath;
    const fd = fs.openSync(logPath, 'a');
    this.proc = spawn(cmd, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
    fs.closeSync(fd);
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, sig) => resolve(code ?? sig));
      this.proc.once('error', (e) => {
        fs.appendFileSync(logPath, `harness: cannot start ${cmd}: ${e.message}\n`);
        resolve(-1);
      });
    });
    this.running = true;
    this.exited.then(() => {
      this.running = false;
    });
    liveChildren.add(this.proc);
    this.exited.then(() => liveChildren.delete(this.proc));
  }
  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }
  async stop() {
    if (!this.running) return;
    this.proc.kill('SIGTERM');
    const done = await Promise.race([this.exited.then(() => true), sleep(10000, { unref: true }).then(() => false)]);
    if (!done) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

// Children die with the test process, whatever ends it.
const liveChildren = new Set();
process.on('exit', () => {
  for (const p of liveChildren) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

// One HTTP request from node (not the browser): { status, headers, body, json }.
export async function http(method, url, { body, headers = {} } = {}) {
  // Connection: close: a kept-alive socket would hold the test process open after its end.
  const init = { method, headers: { Connection: 'close', ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    if (!init.headers['Content-Type']) init.headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(url, init);
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, body: text, json };
}

export class TestEnv {
  // `name` names the database, the temporary folder and the screenshots' prefix.
  static async create(name) {
    const env = new TestEnv(name);
    try {
      await env.#startDatabase();
      runChecked(binary('portico-cp'), [`--pg_dsn=${env.dsn}`, 'migrations', 'up']);
    } catch (e) {
      await env.close();
      throw e;
    }
    return env;
  }

  constructor(name) {
    this.name = name;
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), `portico-browser-${name}-`));
    this.children = [];
    this.browserInstance = null;
    this.ownPg = null;
    this.dropDb = null;
    this.pages = [];
    fs.mkdirSync(screenshotsDir, { recursive: true });
  }

  async #startDatabase() {
    const shared = process.env.PORTICO_TEST_PG_DSN;
    const db = `browser_${this.name.replace(/[^a-z0-9_]/gi, '_')}_${process.pid}_${Date.now() % 100000}`;
    if (shared) {
      runChecked('psql', [shared, '-qc', `CREATE DATABASE ${db}`]);
      this.dsn = `${shared.replace(/dbname=\S+/, '')} dbname=${db}`.trim();
      this.dropDb = () =>
        spawnSync('psql', [shared, '-qc', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`]);
      return;
    }
    const port = await freePort();
    const dir = path.join(this.tmp, 'pg');
    const lib = path.join(sourceDir, 'deploy', 'lib.sh');
    runChecked('bash', ['-c', `source ${shellQuote(lib)} && portico_pg_start ${shellQuote(dir)} ${port}`]);
    this.ownPg = () =>
      spawnSync('bash', ['-c', `source ${shellQuote(lib)} && portico_pg_stop ${shellQuote(dir)}`]);
    runChecked('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-qc', `CREATE DATABASE ${db}`]);
    this.dsn = `host=127.0.0.1 port=${port} user=postgres dbname=${db}`;
  }

  // `portico-cp admins create`: a new token with `role` ('admin' or 'read-only').
  adminToken(name, role = 'admin') {
    const out = runChecked(binary('portico-cp'), [`--pg_dsn=${this.dsn}`, 'admins', 'create', name, role]);
    const m = out.match(/ptk_\S+/);
    if (!m) throw new Error(`no token in: ${out}`);
    return m[0];
  }

  // Starts portico-cp on free ports and waits for its Admin API. Returns
  // { adminPort, clusterPort, urls: { admin, console?, portal? }, log(), stop(), child }:
  // urls.console / urls.portal exist when this portico-cp has --console_listen /
  // --portal_listen (unless `args` set them itself). `args` are added last.
  async startCp({ args = [], env = {} } = {}) {
    const adminPort = await freePort();
    const clusterPort = await freePort();
    const urls = { admin: `http://127.0.0.1:${adminPort}` };
    const full = [
      `--pg_dsn=${this.dsn}`,
      `--admin_listen=127.0.0.1:${adminPort}`,
      `--cluster_listen=127.0.0.1:${clusterPort}`,
      '--cluster_insecure',
      '--cluster_heartbeat_interval_ms=500',
    ];
    for (const [flag, key] of [
      ['console_listen', 'console'],
      ['portal_listen', 'portal'],
    ]) {
      if (!cpHasFlag(flag) || args.some((a) => a.startsWith(`--${flag}=`))) continue;
      const port = await freePort();
      full.push(`--${flag}=127.0.0.1:${port}`);
      urls[key] = `http://127.0.0.1:${port}`;
    }
    full.push(...args);
    const n = this.children.length;
    const child = new Child('portico-cp', binary('portico-cp'), full, path.join(this.tmp, `cp${n}.log`), env);
    this.children.push(child);
    const cp = { adminPort, clusterPort, urls, child, log: () => child.log(), stop: () => child.stop() };
    await waitFor(async () => {
      if (!child.running) throw new Error(`portico-cp exited:\n${child.log()}`);
      const r = await http('GET', `${urls.admin}/status`);
      return r.status === 200 || r.status === 401;
    }, 'portico-cp to answer /status', 30000).catch((e) => {
      throw new Error(`${e.message}\ncp log:\n${child.log()}`);
    });
    // The web listeners start after the Admin API: any HTTP answer says they are up.
    for (const url of [urls.console, urls.portal].filter(Boolean)) {
      await waitFor(async () => (await http('GET', `${url}/`)).status > 0, `${url} to answer`).catch((e) => {
        throw new Error(`${e.message}\ncp log:\n${child.log()}`);
      });
    }
    return cp;
  }

  // Starts portico-dp joined to `cp` (its default group unless `args` say otherwise).
  // Returns { proxyPort, statusPort, nodeId?, log(), stop(), child }.
  async startDp(cp, { args = [] } = {}) {
    const proxyPort = await freePort();
    const statusPort = await freePort();
    const n = this.children.length;
    const full = [
      `--proxy_listen=127.0.0.1:${proxyPort}`,
      `--proxy_ssl_listen=127.0.0.1:${await freePort()}`,
      `--status_listen=127.0.0.1:${statusPort}`,
      `--cp_address=127.0.0.1:${cp.clusterPort}`,
      '--cluster_insecure',
      '--workers=1',
      `--config_cache_path=${path.join(this.tmp, `dp${n}.cache`)}`,
      ...args,
    ];
    const child = new Child('portico-dp', binary('portico-dp'), full, path.join(this.tmp, `dp${n}.log`));
    this.children.push(child);
    return { proxyPort, statusPort, child, log: () => child.log(), stop: () => child.stop() };
  }

  async browser() {
    if (this.browserInstance) return this.browserInstance;
    this.browserInstance = await puppeteer.launch({
      executablePath: process.env.PORTICO_CHROMIUM || '/usr/bin/chromium',
      headless: true,
      userDataDir: path.join(this.tmp, 'chromium-profile'),
      // As root (CI) chromium needs --no-sandbox; the rest keeps it off the network: this
      // machine reaches no host but loopback, and chromium would keep retrying its services.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-dev-shm-usage',
      ],
    });
    return this.browserInstance;
  }

  // A new tab, 1280x800, whose console errors and failed requests are recorded in
  // page.problems (tests may assert it stays empty).
  async newPage() {
    const browser = await this.browser();
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    // Waits get 60 s, not puppeteer's 30: on a 2-core machine under a parallel build a page's
    // first load has taken longer than 30 s (a clean-clone run, stop 28). Tests still stop
    // at their own 2 minutes.
    page.setDefaultTimeout(60000);
    page.problems = [];
    page.on('pageerror', (e) => page.problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') page.problems.push(`console: ${m.text()}`);
    });
    this.pages.push(page);
    return page;
  }

  // Closes every tab newPage() opened (the browser stays): between tests, so tabs of earlier
  // tests do not keep polling and rendering.
  async closePages() {
    for (const page of this.pages) {
      if (!page.isClosed()) await page.close().catch(() => {});
    }
    this.pages = [];
  }

  // Saves a full-page PNG as <build>/tests/browser/screenshots/<env name>-<name>.png.
  async screenshot(page, name) {
    const file = path.join(screenshotsDir, `${this.name}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  }

  // Runs axe-core on the page; returns the violations of impact `serious` or `critical`, as
  // [{ id, impact, help, nodes: [selector...] }] (empty: none).
  async axe(page, { impacts = ['serious', 'critical'] } = {}) {
    if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) {
      await page.evaluate(axeSource);
    }
    const result = await page.evaluate(async () => {
      const r = await window.axe.run(document, { resultTypes: ['violations'] });
      return r.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => n.target.join(' ')),
      }));
    });
    return result.filter((v) => impacts.includes(v.impact));
  }

  // Stops the browser, every process started (newest first) and the database. Logs and the
  // profile stay in env.tmp when PORTICO_KEEP_TMP=1 (or while a caller reads them first).
  async close() {
    if (this.browserInstance) {
      await this.browserInstance.close().catch(() => {});
      this.browserInstance = null;
    }
    for (const c of [...this.children].reverse()) {
      await c.stop();
    }
    this.children = [];
    if (this.dropDb) this.dropDb();
    if (this.ownPg) this.ownPg();
    if (!process.env.PORTICO_KEEP_TMP) {
      fs.rmSync(this.tmp, { recursive: true, force: true });
    }
  }

  // Runs `fn`; if it throws, every open tab is saved as <env name>-failure-<n>.png and the
  // error's message gets every process's log appended, so a failure in CI shows what the CP
  // and DP said.
  async withLogs(fn) {
    try {
      return await fn();
    } catch (e) {
      // What each open tab showed, for the failure's reader.
      const shots = [];
      for (const [i, page] of this.pages.entries()) {
        if (page.isClosed()) continue;
        // A tab that does not answer (a busy or crashed page) must not hold the failure up.
        const shot = await Promise.race([
          this.screenshot(page, `failure-${i}`).catch(() => null),
          sleep(5000, { unref: true }).then(() => null),
        ]);
        if (shot) shots.push(shot);
      }
      e.message = `${e.message}\nscreenshots: ${shots.join(' ')}\n${this.logs()}`;
      throw e;
    }
  }

  // Every process's log (the last 4,000 characters of each), for a failing test's message.
  logs() {
    return this.children.map((c) => `---- ${c.name} (${c.logPath})\n${c.log().slice(-4000)}`).join('\n');
  }
}
