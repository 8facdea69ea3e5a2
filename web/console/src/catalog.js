// ServiceHub: the service catalog (/service-catalog/), full-text search (?q=), services
// created and edited through a form, and a service's versions with their state and gateway
// bindings, its usage, and its dependencies both ways, declared and observed in the vitals.
import { useState } from 'preact/hooks';

import { api, session } from './api.js';
import { SchemaForm } from './schema_form.js';
import { DeleteButton, ErrorBox, Heading, enc, formatTime, html, navigate, useLoad } from './ui.js';

// A catalog service's fields in Kong's schema shape, so SchemaForm draws the form and puts the
// Admin API's field errors beside their inputs, as for gateway entities. The catalog has no
// /schemas endpoint: its rules are the API's (control_plane/admin_api/catalog_endpoints.cc).
const SERVICE_SCHEMA = {
  fields: [
    { name: { type: 'string', required: true } },
    { display_name: { type: 'string' } },
    { description: { type: 'string' } },
    { owner_team: { type: 'string' } },
    { labels: { type: 'map', keys: { type: 'string' }, values: { type: 'string' } } },
    { links: { type: 'record', fields: [{ repository: { type: 'string' } }, { runbook: { type: 'string' } }] } },
    // [{control_plane_id, consumer_id}] by id or name: the consumers its calls authenticate as.
    { calls_as: { type: 'array', elements: { type: 'record' } } },
  ],
};

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
  const [creating, setCreating] = useState(false);
  return html`<section>
    <${Heading}>Service catalog<//>
    ${session.canWrite && !creating
      ? html`<p><button type="button" class="primary" onClick=${() => setCreating(true)}>New catalog service</button></p>`
      : null}
    ${creating
      ? html`<div class="editor"><h2>New catalog service</h2>
          <${SchemaForm} formId="catalog-service-form" schema=${SERVICE_SCHEMA} entity=${null} submitLabel="Create"
            onSubmit=${async (body) => {
              const created = await api('POST', '/service-catalog/services', body);
              navigate(`#/catalog/${enc(created.name)}`);
            }} />
          <button type="button" onClick=${() => setCreating(false)}>Cancel</button></div>`
      : null}
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

// One direction of a service's dependencies over the last hour: declared ones and those the
// vitals show (a consumer it calls as reaching a gateway service another service runs as).
function Dependencies({ name, dependents }) {
  const path = `/service-catalog/services/${enc(name)}/dependencies`;
  // 10 s rows: stored as they arrive, so an observed call shows within a flush.
  const deps = useLoad(
    () => api('GET', `${path}?granularity=10s&page[size]=1000${dependents ? '&direction=dependents' : ''}`),
    [name, dependents],
  );
  const [target, setTarget] = useState('');
  const [error, setError] = useState(null);
  const title = dependents ? 'Used by' : 'Depends on';
  const inputId = dependents ? 'dependents-add' : 'dependencies-add';
  return html`<div>
    <h3>${title}</h3>
    <${ErrorBox} error=${deps.error} />
    ${deps.data
      ? html`<table class="list" aria-label=${title}>
          <thead><tr><th scope="col">service</th><th scope="col">declared</th><th scope="col">requests (last hour)</th><th scope="col">5xx errors</th><th scope="col">last seen</th>${session.canWrite && !dependents ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}</tr></thead>
          <tbody>
            ${deps.data.data.length === 0
              ? html`<tr><td colspan=${session.canWrite && !dependents ? 6 : 5} class="empty">None declared or observed.</td></tr>`
              : deps.data.data.map(
                  (d) => html`<tr key=${d.id}>
                    <td><a href=${`#/catalog/${enc(d.name)}`}>${d.display_name || d.name}</a></td>
                    <td>${d.declared ? 'yes' : 'no'}</td>
                    <td>${d.observed ? d.observed.requests : 'not observed'}</td>
                    <td>${d.observed ? d.observed.errors_5xx : ''}</td>
                    <td>${d.observed ? formatTime(d.observed.last_seen) : ''}</td>
                    ${session.canWrite && !dependents
                      ? html`<td class="row-actions">${d.declared
                          ? html`<${DeleteButton} label=${`declared dependency on ${d.name}`} onDelete=${async () => {
                              await api('DELETE', `${path}/${enc(d.id)}`);
                              deps.reload();
                            }} />`
                          : null}</td>`
                      : null}
                  </tr>`,
                )}
          </tbody>
        </table>`
      : html`<p>Loading…</p>`}
    ${session.canWrite && !dependents
      ? html`<form class="inline-form" onSubmit=${async (e) => {
          e.preventDefault();
          setError(null);
          try {
            await api('POST', path, { service: target.trim() });
            setTarget('');
            deps.reload();
          } catch (err) {
            setError(err);
          }
        }}>
          <label for=${inputId}>Declare a dependency on (catalog service name or id)</label>
          <input id=${inputId} type="text" value=${target} autocomplete="off"
            aria-invalid=${error ? 'true' : undefined} aria-describedby=${error ? `${inputId}-error` : undefined}
            onInput=${(e) => setTarget(e.currentTarget.value)} />
          <button type="submit">Declare</button>
          ${error ? html`<span class="field-error" id=${`${inputId}-error`} role="alert">${error.message}</span>` : null}
        </form>`
      : null}
  </div>`;
}

export function CatalogService({ name }) {
  const svc = useLoad(() => api('GET', `/service-catalog/services/${enc(name)}`), [name]);
  const versions = useLoad(() => api('GET', `/service-catalog/services/${enc(name)}/versions?page[size]=100`), [name]);
  const [editing, setEditing] = useState(false);
  const s = svc.data;
  return html`<section>
    <${Heading}>${s ? s.display_name || s.name : name}<//>
    <p class="sub"><a href="#/catalog">← Service catalog</a></p>
    <${ErrorBox} error=${svc.error || versions.error} />
    ${s && session.canWrite
      ? html`<p class="row-actions">
          ${editing ? null : html`<button type="button" onClick=${() => setEditing(true)}>Edit</button>`}
          <${DeleteButton} label=${`catalog service ${s.name}`} onDelete=${async () => {
            await api('DELETE', `/service-catalog/services/${enc(s.id)}`);
            navigate('#/catalog');
          }} />
        </p>`
      : null}
    ${s && editing
      ? html`<div class="editor"><h2>Edit ${s.name}</h2>
          <${SchemaForm} key=${s.updated_at} formId="catalog-service-form" schema=${SERVICE_SCHEMA} entity=${s} submitLabel="Save"
            onSubmit=${async (body) => {
              const updated = await api('PATCH', `/service-catalog/services/${enc(s.id)}`, body);
              setEditing(false);
              if (updated.name !== name) navigate(`#/catalog/${enc(updated.name)}`);
              else svc.reload();
            }} />
          <button type="button" onClick=${() => setEditing(false)}>Cancel</button></div>`
      : null}
    ${s
      ? html`<dl class="facts">
          <dt>name</dt><dd>${s.name}</dd>
          <dt>owner team</dt><dd>${s.owner_team || ''}</dd>
          <dt>description</dt><dd class="desc">${s.description || ''}</dd>
          <dt>labels</dt><dd>${Object.entries(s.labels || {}).map(([k, v]) => `${k}:${v}`).join(', ')}</dd>
          <dt>links</dt><dd>${Object.entries(s.links || {}).map(
            ([k, v]) => html`<span key=${k}>${k}: ${/^https?:\/\//i.test(v) ? html`<a href=${v} rel="noopener noreferrer">${v}</a>` : v} </span>`,
          )}</dd>
          <dt>calls as</dt><dd>${(s.calls_as || []).map((c) => `${c.control_plane_name} / consumer ${c.consumer_id}`).join(', ')}</dd>
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
    <h2>Dependencies</h2>
    <${Dependencies} name=${name} dependents=${false} />
    <${Dependencies} name=${name} dependents=${true} />
  </section>`;
}
