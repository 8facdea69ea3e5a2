// The Dev Portal's admin side (/portal/... on the Admin API): its settings, developers,
// applications and registrations, with approve, reject and revoke.
import { useState } from 'preact/hooks';

import { api, session } from './api.js';
import { DeleteButton, ErrorBox, Heading, enc, formatTime, html, navigate, useLoad } from './ui.js';

const TABS = [
  ['registrations', 'Registrations'],
  ['developers', 'Developers'],
  ['applications', 'Applications'],
  ['settings', 'Settings'],
];
const STATUSES = ['pending', 'approved', 'rejected', 'revoked'];
// What each status may become from here, as the Admin API allows.
const NEXT = {
  pending: [['approved', 'Approve'], ['rejected', 'Reject']],
  approved: [['revoked', 'Revoke']],
  rejected: [['approved', 'Approve']],
  revoked: [['approved', 'Approve']],
};

function StatusActions({ what, item, label, onDone, onError }) {
  if (!session.canWrite) return null;
  return html`<span class="row-actions">
    ${(NEXT[item.status] || []).map(
      ([status, verb]) => html`<button type="button" key=${status} class=${status === 'approved' ? 'primary' : 'danger'}
        aria-label=${`${verb} ${label}`}
        onClick=${async () => {
          try {
            await api('PATCH', `/portal/${what}/${enc(item.id)}`, { status });
            onDone();
          } catch (e) {
            onError(e);
          }
        }}>${verb}</button> `,
    )}
  </span>`;
}

function StatusFilter({ tab, status }) {
  return html`<div class="field inline">
    <label for="portal-status">Status</label>
    <select id="portal-status" value=${status} onChange=${(e) => navigate(`#/portal?tab=${tab}${e.currentTarget.value ? `&status=${e.currentTarget.value}` : ''}`)}>
      <option value="">all</option>
      ${STATUSES.map((s) => html`<option key=${s} value=${s}>${s}</option>`)}
    </select>
  </div>`;
}

function Registrations({ status }) {
  const [error, setError] = useState(null);
  const list = useLoad(() => api('GET', `/portal/registrations?page[size]=100${status ? `&status=${status}` : ''}`), [status]);
  return html`<div>
    <${StatusFilter} tab="registrations" status=${status} />
    <${ErrorBox} error=${list.error || error} />
    ${list.data
      ? html`<table class="list" aria-label="Registrations">
          <thead><tr><th scope="col">application</th><th scope="col">developer</th><th scope="col">API version</th><th scope="col">status</th><th scope="col">requested</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            ${list.data.data.length === 0
              ? html`<tr><td colspan="6" class="empty">No registrations.</td></tr>`
              : list.data.data.map(
                  (r) => html`<tr key=${r.id}>
                    <td>${r.application.name}</td>
                    <td>${r.developer.email}</td>
                    <td>${r.service.name} ${r.version.version}</td>
                    <td>${r.status}</td>
                    <td>${formatTime(r.created_at)}</td>
                    <td><${StatusActions} what="registrations" item=${r} label=${`${r.application.name} for ${r.service.name} ${r.version.version}`}
                      onDone=${list.reload} onError=${setError} /></td>
                  </tr>`,
                )}
          </tbody>
        </table>`
      : html`<p>Loading…</p>`}
  </div>`;
}

function Developers({ status }) {
  const [error, setError] = useState(null);
  const list = useLoad(() => api('GET', `/portal/developers?page[size]=100${status ? `&status=${status}` : ''}`), [status]);
  return html`<div>
    <${StatusFilter} tab="developers" status=${status} />
    <${ErrorBox} error=${list.error || error} />
    ${list.data
      ? html`<table class="list" aria-label="Developers">
          <thead><tr><th scope="col">email</th><th scope="col">name</th><th scope="col">status</th><th scope="col">signed up</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            ${list.data.data.length === 0
              ? html`<tr><td colspan="5" class="empty">No developers.</td></tr>`
              : list.data.data.map(
                  (d) => html`<tr key=${d.id}>
                    <td>${d.email}</td>
                    <td>${d.name}</td>
                    <td>${d.status}</td>
                    <td>${formatTime(d.created_at)}</td>
                    <td><${StatusActions} what="developers" item=${d} label=${d.email} onDone=${list.reload} onError=${setError} /></td>
                  </tr>`,
                )}
          </tbody>
        </table>`
      : html`<p>Loading…</p>`}
  </div>`;
}

function Applications() {
  const [error, setError] = useState(null);
  const list = useLoad(() => api('GET', '/portal/applications?page[size]=100'), []);
  return html`<div>
    <${ErrorBox} error=${list.error || error} />
    ${list.data
      ? html`<table class="list" aria-label="Applications">
          <thead><tr><th scope="col">name</th><th scope="col">description</th><th scope="col">developer</th><th scope="col">created</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            ${list.data.data.length === 0
              ? html`<tr><td colspan="5" class="empty">No applications.</td></tr>`
              : list.data.data.map(
                  (a) => html`<tr key=${a.id}>
                    <td>${a.name}</td>
                    <td class="desc">${a.description || ''}</td>
                    <td>${a.developer.email}</td>
                    <td>${formatTime(a.created_at)}</td>
                    <td>${session.canWrite
                      ? html`<${DeleteButton} label=${`application ${a.name}`} onDelete=${async () => {
                          try {
                            await api('DELETE', `/portal/applications/${enc(a.id)}`);
                            list.reload();
                          } catch (e) {
                            setError(e);
                          }
                        }} />`
                      : null}</td>
                  </tr>`,
                )}
          </tbody>
        </table>`
      : html`<p>Loading…</p>`}
  </div>`;
}

function Settings() {
  const current = useLoad(() => api('GET', '/portal/settings'), []);
  const [saved, setSaved] = useState('');
  const [error, setError] = useState(null);
  if (!current.data) return html`<div><${ErrorBox} error=${current.error} />${current.error ? null : html`<p>Loading…</p>`}</div>`;
  const toggle = async (field, value) => {
    setSaved('');
    setError(null);
    try {
      await api('PATCH', '/portal/settings', { [field]: value });
      setSaved('Saved.');
      current.reload();
    } catch (e) {
      setError(e);
    }
  };
  return html`<div>
    <${ErrorBox} error=${error} />
    ${saved ? html`<p class="notice" role="status">${saved}</p>` : null}
    ${[
      ['auto_approve_developers', 'Approve developers automatically when they sign up'],
      ['auto_approve_registrations', 'Approve registrations automatically (keys issued at once)'],
    ].map(
      ([field, text]) => html`<div class="field check" key=${field}>
        <input type="checkbox" id=${`portal-${field}`} checked=${current.data[field]} disabled=${!session.canWrite}
          onChange=${(e) => toggle(field, e.currentTarget.checked)} />
        <label for=${`portal-${field}`}>${text}</label>
      </div>`,
    )}
  </div>`;
}

export function PortalAdmin({ query }) {
  const tab = TABS.some(([k]) => k === query.tab) ? query.tab : 'registrations';
  const status = STATUSES.includes(query.status) ? query.status : '';
  return html`<section>
    <${Heading}>Dev Portal<//>
    <nav class="tabs" aria-label="Dev Portal">
      ${TABS.map(([k, t]) => html`<a key=${k} href=${`#/portal?tab=${k}`} aria-current=${k === tab ? 'page' : undefined}>${t}</a>`)}
    </nav>
    ${tab === 'registrations' ? html`<${Registrations} status=${status} />` : null}
    ${tab === 'developers' ? html`<${Developers} status=${status} />` : null}
    ${tab === 'applications' ? html`<${Applications} />` : null}
    ${tab === 'settings' ? html`<${Settings} />` : null}
  </section>`;
}
