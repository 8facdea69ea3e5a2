// The console's shell: /config.json first (where the Admin API is, whether it wants a
// token), the login when it does, then the hash router over the pages.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';

import { api, loadConfig, session, signIn } from './api.js';
import { Catalog, CatalogService } from './catalog.js';
import { ENTITIES, EntityForm, EntityList } from './entities.js';
import { ControlPlanes, RuntimeManager } from './fleet.js';
import { PortalAdmin } from './portal_admin.js';
import { Heading, enc, html, navigate, parseHash, useLoad } from './ui.js';
import { Vitals } from './vitals.js';

function Login({ onDone }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await signIn(token.trim());
      onDone();
    } catch (err) {
      setError(err.status === 401 ? 'That token is not valid.' : err.message);
    } finally {
      setBusy(false);
    }
  }
  return html`<main id="main" class="login">
    <${Heading}>Sign in to Portico<//>
    <form onSubmit=${submit}>
      <div class=${`field${error ? ' has-error' : ''}`}>
        <label for="admin-token">Admin token</label>
        <input id="admin-token" type="password" autocomplete="current-password" value=${token}
          aria-invalid=${error ? 'true' : undefined} aria-describedby=${error ? 'admin-token-error' : 'admin-token-hint'}
          onInput=${(e) => setToken(e.currentTarget.value)} />
        <span class="hint" id="admin-token-hint">From <code>portico-cp admins create NAME</code></span>
        ${error ? html`<span class="field-error" id="admin-token-error" role="alert">${error}</span>` : null}
      </div>
      <div class="actions"><button type="submit" class="primary" disabled=${busy || !token.trim()}>Sign in</button></div>
    </form>
  </main>`;
}

function ControlPlanePicker({ cp, rest }) {
  const list = useLoad(() => api('GET', '/control-planes?page[size]=100'), []);
  const names = list.data?.data?.map((c) => c.name) || [cp];
  return html`<div class="cp-picker">
    <label for="cp-picker">Control plane</label>
    <select id="cp-picker" value=${cp} onChange=${(e) => navigate(`#/cp/${enc(e.currentTarget.value)}/${rest}`)}>
      ${(names.includes(cp) ? names : [cp, ...names]).map((n) => html`<option key=${n} value=${n}>${n}</option>`)}
    </select>
  </div>`;
}

function Page({ segments, query }) {
  const [first, second, third, fourth] = segments;
  if (!first || first === 'control-planes') return html`<${ControlPlanes} />`;
  if (first === 'runtime') return html`<${RuntimeManager} query=${query} />`;
  if (first === 'catalog') return second ? html`<${CatalogService} name=${second} />` : html`<${Catalog} query=${query} />`;
  if (first === 'vitals') return html`<${Vitals} query=${query} />`;
  if (first === 'portal') return html`<${PortalAdmin} query=${query} />`;
  if (first === 'cp' && second && ENTITIES[third]) {
    if (fourth === 'new') return html`<${EntityForm} key=${`${second}/${third}/new`} cp=${second} entity=${third} query=${query} />`;
    if (fourth) return html`<${EntityForm} key=${`${second}/${third}/${fourth}`} cp=${second} entity=${third} id=${fourth} query=${query} />`;
    return html`<${EntityList} key=${`${second}/${third}/${query.q || ''}`} cp=${second} entity=${third} query=${query} />`;
  }
  return html`<section><${Heading}>Not found<//><p>No page at this address. <a href="#/control-planes">Control planes</a></p></section>`;
}

function App() {
  const [route, setRoute] = useState(parseHash());
  const [, setAuthTick] = useState(0);
  useEffect(() => {
    const onHash = () => setRoute(parseHash());
    const onSignOut = () => setAuthTick((t) => t + 1);
    window.addEventListener('hashchange', onHash);
    window.addEventListener('portico-signed-out', onSignOut);
    return () => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener('portico-signed-out', onSignOut);
    };
  }, []);
  if (!session.signedIn) {
    return html`<${Login} onDone=${() => setAuthTick((t) => t + 1)} />`;
  }
  const [segments, query] = route;
  const cp = segments[0] === 'cp' && segments[1] ? segments[1] : query.cp || 'default';
  const entity = segments[0] === 'cp' && ENTITIES[segments[2]] ? segments[2] : 'services';
  const here = (hash) => (location.hash.startsWith(hash) ? 'page' : undefined);
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e) => {
      e.preventDefault();
      document.querySelector('#main h1')?.focus();
    }}>Skip to content</a>
    <header>
      <span class="brand">Portico</span>
      <nav aria-label="Main">
        <ul>
          <li><a href="#/control-planes" aria-current=${here('#/control-planes')}>Control planes</a></li>
          <li><a href="#/runtime" aria-current=${here('#/runtime')}>Runtime Manager</a></li>
          ${Object.entries(ENTITIES).map(
            ([k, s]) => html`<li key=${k}><a href=${`#/cp/${enc(cp)}/${k}`} aria-current=${segments[0] === 'cp' && segments[2] === k ? 'page' : undefined}>${s.title}</a></li>`,
          )}
          <li><a href="#/catalog" aria-current=${here('#/catalog')}>Service catalog</a></li>
          <li><a href=${`#/vitals?cp=${enc(cp)}`} aria-current=${here('#/vitals')}>Vitals</a></li>
          <li><a href="#/portal" aria-current=${here('#/portal')}>Dev Portal</a></li>
        </ul>
      </nav>
      <div class="session">
        ${segments[0] === 'cp' ? html`<${ControlPlanePicker} cp=${cp} rest=${entity} />` : null}
        ${session.config.admin_auth
          ? html`<span class="signed-in"><span class="role">${session.role === 'read-only' ? 'read-only' : 'admin'}</span>
            <button type="button" onClick=${() => {
              session.forget();
              setAuthTick((t) => t + 1);
            }}>Sign out</button></span>`
          : null}
      </div>
    </header>
    <main id="main"><${Page} key=${location.hash} segments=${segments} query=${query} /></main>
  </div>`;
}

loadConfig().then(
  () => {
    const root = document.getElementById('app');
    root.textContent = ''; // the "Loading…" line: Preact renders beside what it did not create
    render(html`<${App} />`, root);
  },
  (e) => {
    document.getElementById('app').textContent = `The console cannot read its configuration: ${e.message}`;
  },
);
