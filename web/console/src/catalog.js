// ServiceHub: the service catalog (/service-catalog/), full-text search (?q=) and a
// service's versions with their state and gateway bindings.
import { useState } from 'preact/hooks';

import { api } from './api.js';
import { ErrorBox, Heading, enc, formatTime, html, navigate, useLoad } from './ui.js';

export function Catalog({ query }) {
  const q = (query.q || '').trim();
  const page = Number(query.page || 1);
  const [text, setText] = useState(q);
  const list = useLoad(
    () => api('GET', `/service-catalog/services?page[size]=50&page[number]=${page}${q ? `&q=${enc(q)}` : ''}`),
    [q, page],
  );
  const total = list.data?.meta?.page?.total ?? 0;
  const link = (n) => `#/catalog?${new URLSearchParams({ ...(q ? { q } : {}), page: String(n) })}`;
  return html`<section>
    <${Heading}>Service catalog<//>
    <form role="search" class="search" onSubmit=${(e) => {
      e.preventDefault();
      navigate(text.trim() ? `#/catalog?q=${enc(text.trim())}` : '#/catalog');
    }}>
      <label for="catalog-search">Search services, descriptions, labels and API operations</label>
      <input id="catalog-search" type="search" value=${text} onInput=${(e) => setText(e.currentTarget.value)} />
      <button type="submit">Search</button>
    </form>
    <${ErrorBox} error=${list.error} />
    ${list.data
      ? html`<div><p class="sub" role="status">${total} service${total === 1 ? '' : 's'}${q ? ` matching “${q}”` : ''}</p>
        <table class="list" aria-label="Catalog services">
          <thead><tr><th scope="col">name</th><th scope="col">display name</th><th scope="col">owner team</th><th scope="col">description</th><th scope="col">labels</th></tr></thead>
          <tbody>
            ${list.data.data.map(
              (s) => html`<tr key=${s.id}>
                <td><a href=${`#/catalog/${enc(s.name)}`}>${s.name}</a></td>
                <td>${s.display_name || ''}</td>
                <td>${s.owner_team || ''}</td>
                <td class="desc">${s.description || ''}</td>
                <td>${Object.entries(s.labels || {}).map(([k, v]) => `${k}:${v}`).join(', ')}</td>
              </tr>`,
            )}
          </tbody>
        </table>
        <nav class="pager" aria-label="Pages">
          ${page > 1 ? html`<a class="button" href=${link(page - 1)}>Previous page</a>` : null}
          <span>Page ${page} of ${Math.max(1, Math.ceil(total / 50))}</span>
          ${page * 50 < total ? html`<a class="button" href=${link(page + 1)}>Next page</a>` : null}
        </nav></div>`
      : html`<p>Loading…</p>`}
  </section>`;
}

function percent(rate) {
  return `${(rate * 100).toFixed(rate > 0 && rate < 0.001 ? 3 : 1)}%`;
}

// Requests, 5xx errors and latency of the gateway services the versions are bound to, over
// the last hour (GET .../usage): the service as a whole (a gateway service two versions
// share counted once), then each version.
function Usage({ name, versions }) {
  // 10 s rows: the 1 min ones are rolled up a minute after their period, the 10 s ones are
  // stored as they arrive (kept an hour, the window shown).
  const usage = useLoad(() => api('GET', `/service-catalog/services/${enc(name)}/usage?granularity=10s`), [name]);
  if (!usage.data) return html`<div><${ErrorBox} error=${usage.error} /></div>`;
  const u = usage.data.data;
  const label = new Map((versions || []).map((v) => [v.id, v.version]));
  const rows = [['all versions', u], ...u.versions.map((v) => [label.get(v.id) || v.id, v])];
  return html`<div>
    <table class="list" aria-label="Usage in the last hour">
      <thead><tr><th scope="col">version</th><th scope="col">requests</th><th scope="col">5xx errors</th><th scope="col">error rate</th><th scope="col">p50 ms</th><th scope="col">p99 ms</th></tr></thead>
      <tbody>
        ${rows.map(
          ([v, t]) => html`<tr key=${v}>
            <td>${v}</td><td>${t.requests}</td><td>${t.errors_5xx}</td><td>${percent(t.error_rate)}</td>
            <td>${t.latency_ms.p50}</td><td>${t.latency_ms.p99}</td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

export function CatalogService({ name }) {
  const svc = useLoad(() => api('GET', `/service-catalog/services/${enc(name)}`), [name]);
  const versions = useLoad(() => api('GET', `/service-catalog/services/${enc(name)}/versions?page[size]=100`), [name]);
  const s = svc.data;
  return html`<section>
    <${Heading}>${s ? s.display_name || s.name : name}<//>
    <p class="sub"><a href="#/catalog">← Service catalog</a></p>
    <${ErrorBox} error=${svc.error || versions.error} />
    ${s
      ? html`<dl class="facts">
          <dt>name</dt><dd>${s.name}</dd>
          <dt>owner team</dt><dd>${s.owner_team || ''}</dd>
          <dt>description</dt><dd class="desc">${s.description || ''}</dd>
          <dt>labels</dt><dd>${Object.entries(s.labels || {}).map(([k, v]) => `${k}:${v}`).join(', ')}</dd>
          <dt>links</dt><dd>${Object.entries(s.links || {}).map(
            ([k, v]) => html`<span key=${k}>${k}: ${/^https?:\/\//i.test(v) ? html`<a href=${v} rel="noopener noreferrer">${v}</a>` : v} </span>`,
          )}</dd>
        </dl>`
      : null}
    <h2>Versions</h2>
    ${versions.data
      ? html`<table class="list" aria-label="Versions">
          <thead><tr><th scope="col">version</th><th scope="col">state</th><th scope="col">gateway services</th><th scope="col">updated</th></tr></thead>
          <tbody>
            ${versions.data.data.length === 0
              ? html`<tr><td colspan="4" class="empty">No versions.</td></tr>`
              : versions.data.data.map(
                  (v) => html`<tr key=${v.id}>
                    <td>${v.version}</td>
                    <td><span class=${`state state-${v.state}`}>${v.state}</span></td>
                    <td>${(v.gateway_services || []).map((g) => `${g.control_plane_id} / ${g.service_id}`).join(', ')}</td>
                    <td>${formatTime(v.updated_at)}</td>
                  </tr>`,
                )}
          </tbody>
        </table>`
      : html`<p>Loading…</p>`}
    <h2>Usage in the last hour</h2>
    ${versions.data ? html`<${Usage} name=${name} versions=${versions.data.data} />` : html`<p>Loading…</p>`}
  </section>`;
}
