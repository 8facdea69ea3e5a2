// Control planes (Konnect's /control-planes) and the Runtime Manager: every data plane with
// its version, sync status, config hash, generation, last contact and compatibility issues.
import { useState } from 'preact/hooks';

import { api, session } from './api.js';
import { DeleteButton, ErrorBox, Heading, enc, formatTime, html, useLoad } from './ui.js';

export function ControlPlanes() {
  const [page, setPage] = useState(1);
  const list = useLoad(() => api('GET', `/control-planes?page[size]=100&page[number]=${page}`), [page]);
  const [form, setForm] = useState({ name: '', description: '' });
  const [errors, setErrors] = useState({});
  const [error, setError] = useState(null);
  const total = list.data?.meta?.page?.total ?? 0;

  async function create(e) {
    e.preventDefault();
    setError(null);
    setErrors({});
    const body = { name: form.name };
    if (form.description) body.description = form.description;
    try {
      await api('POST', '/control-planes', body);
      setForm({ name: '', description: '' });
      list.reload();
    } catch (err) {
      setError(err);
      // Konnect's errors list invalid_parameters [{field, reason}]; Kong's, fields {}.
      const out = {};
      for (const p of err.body?.invalid_parameters || []) out[p.field] = p.reason;
      for (const [k, v] of Object.entries(err.body?.fields || {})) out[k] = String(v);
      setErrors(out);
    }
  }

  const input = (name, text) => html`<div class=${`field${errors[name] ? ' has-error' : ''}`}>
    <label for=${`cp-${name}`}>${text}</label>
    <input id=${`cp-${name}`} type="text" value=${form[name]} aria-invalid=${errors[name] ? 'true' : undefined}
      aria-describedby=${errors[name] ? `cp-${name}-error` : undefined}
      onInput=${(e) => { const v = e.currentTarget.value; setForm((f) => ({ ...f, [name]: v })); }} />
    ${errors[name] ? html`<span class="field-error" id=${`cp-${name}-error`} role="alert">${errors[name]}</span>` : null}
  </div>`;

  return html`<section>
    <${Heading}>Control planes<//>
    <${ErrorBox} error=${list.error || error} />
    <div class="list-area">${list.data
      ? html`<div><table class="list" aria-label="Control planes">
          <thead><tr><th scope="col">name</th><th scope="col">description</th><th scope="col">labels</th><th scope="col">created</th><th scope="col"><span class="sr-only">Links and actions</span></th></tr></thead>
          <tbody>
            ${list.data.data.map(
              (cp) => html`<tr key=${cp.id}>
                <td><a href=${`#/cp/${enc(cp.name)}/services`}>${cp.name}</a></td>
                <td>${cp.description || ''}</td>
                <td>${Object.entries(cp.labels || {}).map(([k, v]) => `${k}:${v}`).join(', ')}</td>
                <td>${formatTime(cp.created_at)}</td>
                <td class="row-actions">
                  <a href=${`#/runtime?cp=${enc(cp.name)}`}>Data planes</a>
                  ${session.canWrite && cp.name !== 'default'
                    ? html` <${DeleteButton} label=${`control plane ${cp.name}`} onDelete=${async () => {
                        try {
                          await api('DELETE', `/control-planes/${enc(cp.id)}`);
                          list.reload();
                        } catch (err) {
                          setError(err);
                        }
                      }} />`
                    : null}
                </td>
              </tr>`,
            )}
          </tbody>
        </table>
        <nav class="pager" aria-label="Pages">
          <button type="button" disabled=${page <= 1} onClick=${() => setPage(page - 1)}>Previous page</button>
          <span>Page ${page} of ${Math.max(1, Math.ceil(total / 100))}</span>
          <button type="button" disabled=${page * 100 >= total} onClick=${() => setPage(page + 1)}>Next page</button>
        </nav></div>`
      : html`<p>Loading…</p>`}</div>
    ${session.canWrite
      ? html`<div><h2>New control plane</h2>
        <form class="inline-form" onSubmit=${create} novalidate>
          ${input('name', 'Name')} ${input('description', 'Description')}
          <div class="actions"><button type="submit" class="primary">Create control plane</button></div>
        </form></div>`
      : null}
  </section>`;
}

const NODE_COLUMNS = [
  ['hostname', 'hostname'],
  ['control_plane', 'control plane'],
  ['version', 'version'],
  ['connected', 'connected'],
  ['sync_status', 'sync status'],
  ['config_hash', 'config hash'],
  ['generation', 'generation'],
  ['last_seen', 'last seen'],
  ['compatibility_issues', 'compatibility issues'],
];

function nodeCell(node, key) {
  const v = node[key];
  if (key === 'last_seen') return formatTime(v);
  if (key === 'compatibility_issues') {
    if (!v || (Array.isArray(v) && v.length === 0)) return 'none';
    return Array.isArray(v) ? v.map((i) => (typeof i === 'string' ? i : JSON.stringify(i))).join('; ') : JSON.stringify(v);
  }
  if (key === 'connected') return v ? 'yes' : 'no';
  return v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// `query.cp` narrows the list to one control plane.
export function RuntimeManager({ query }) {
  const cp = query.cp || '';
  const nodes = useLoad(async () => {
    const all = [];
    let next = '/clustering/data-planes';
    // Kong's paging: follow `next` (a path) while there is one, up to 10 pages.
    for (let i = 0; next && i < 10; i++) {
      const page = await api('GET', next);
      all.push(...(page.data || []));
      next = page.next || null;
    }
    return cp ? all.filter((n) => n.control_plane === cp) : all;
  }, [cp]);
  return html`<section>
    <${Heading}>Runtime Manager<//>
    <p class="sub">${cp ? html`Data planes of control plane <strong>${cp}</strong> · <a href="#/runtime">all control planes</a>` : 'Data planes of every control plane'}</p>
    <div class="toolbar"><button type="button" onClick=${nodes.reload}>Refresh</button></div>
    <${ErrorBox} error=${nodes.error} />
    ${nodes.data
      ? html`<table class="list" aria-label="Data planes">
          <thead><tr><th scope="col">id</th>${NODE_COLUMNS.map(([, t]) => html`<th scope="col" key=${t}>${t}</th>`)}</tr></thead>
          <tbody>
            ${nodes.data.length === 0
              ? html`<tr><td colspan=${NODE_COLUMNS.length + 1} class="empty">No data planes have connected.</td></tr>`
              : nodes.data.map(
                  (n) => html`<tr key=${n.id} class=${`node status-${n.sync_status || 'unknown'}`}>
                    <td><code>${n.id}</code></td>
                    ${NODE_COLUMNS.map(([k]) => html`<td key=${k} data-col=${k}>${nodeCell(n, k)}</td>`)}
                  </tr>`,
                )}
          </tbody>
        </table>`
      : html`<p>Loading…</p>`}
  </section>`;
}
