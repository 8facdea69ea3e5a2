// Kong entities of a control plane: paged lists (Kong's offset paging), search by name (the
// entity's key) or tag, and create/edit/delete through forms generated from the schemas.
import { useState } from 'preact/hooks';

import { api, cpPrefix, session } from './api.js';
import { SchemaForm } from './schema_form.js';
import { DeleteButton, ErrorBox, Heading, cellText, enc, html, navigate, useLoad } from './ui.js';

export const ENTITIES = {
  services: { title: 'Services', one: 'service', key: 'name', columns: ['name', 'protocol', 'host', 'port', 'path', 'enabled', 'tags'] },
  routes: { title: 'Routes', one: 'route', key: 'name', columns: ['name', 'protocols', 'paths', 'hosts', 'methods', 'service', 'tags'] },
  consumers: { title: 'Consumers', one: 'consumer', key: 'username', columns: ['username', 'custom_id', 'tags'] },
  plugins: { title: 'Plugins', one: 'plugin', key: null, columns: ['name', 'enabled', 'service', 'route', 'consumer', 'protocols', 'tags'] },
  upstreams: { title: 'Upstreams', one: 'upstream', key: 'name', columns: ['name', 'algorithm', 'slots', 'tags'] },
  certificates: { title: 'Certificates', one: 'certificate', key: null, columns: ['id', 'snis', 'tags'] },
};

export const PAGE_SIZE = 100;

function label(entity, row) {
  const key = ENTITIES[entity].key;
  return (key && row[key]) || row.id;
}

// The list: `offset` is Kong's opaque cursor of the page shown; `back` the cursors before it.
export function EntityList({ cp, entity, query }) {
  const spec = ENTITIES[entity];
  const prefix = cpPrefix(cp);
  const [offsets, setOffsets] = useState([]);
  const offset = offsets[offsets.length - 1] || '';
  const search = (query.q || '').trim();
  const [text, setText] = useState(search);
  const [error, setError] = useState(null);

  const list = useLoad(async () => {
    if (search) {
      // By key (name or id): one lookup; by tag: Kong's ?tags= filter. Both, merged.
      const [byKey, byTag] = await Promise.all([
        api('GET', `${prefix}/${entity}/${enc(search)}`).catch((e) => (e.status === 404 || e.status === 400 ? null : Promise.reject(e))),
        /^[^,/\s]+$/.test(search)
          ? api('GET', `${prefix}/${entity}?size=${PAGE_SIZE}&tags=${enc(search)}`).catch((e) => (e.status === 400 ? { data: [] } : Promise.reject(e)))
          : { data: [] },
      ]);
      const rows = byKey ? [byKey] : [];
      for (const r of byTag.data) if (!rows.some((x) => x.id === r.id)) rows.push(r);
      return { data: rows, next: null };
    }
    return api('GET', `${prefix}/${entity}?size=${PAGE_SIZE}${offset ? `&offset=${enc(offset)}` : ''}`);
  }, [cp, entity, offset, search]);

  const base = `#/cp/${enc(cp)}/${entity}`;
  const onSearch = (e) => {
    e.preventDefault();
    setOffsets([]);
    navigate(text.trim() ? `${base}?q=${enc(text.trim())}` : base);
  };
  const rows = list.data?.data || [];
  return html`<section>
    <${Heading}>${spec.title}<//>
    <p class="sub">Control plane <strong>${cp}</strong></p>
    <div class="toolbar">
      <form role="search" class="search" onSubmit=${onSearch}>
        <label for="entity-search">Search ${spec.title.toLowerCase()} by ${spec.key ? `${spec.key}, id` : 'id'} or tag</label>
        <input id="entity-search" type="search" value=${text} onInput=${(e) => setText(e.currentTarget.value)} />
        <button type="submit">Search</button>
        ${search ? html`<a class="button" href=${base}>Clear</a>` : null}
      </form>
      ${session.canWrite ? html`<a class="button primary" href=${`${base}/new`}>New ${spec.one}</a>` : null}
    </div>
    <${ErrorBox} error=${list.error || error} />
    ${list.loading && !list.data ? html`<p aria-live="polite">Loading…</p>` : null}
    ${list.data
      ? html`<div><table class="list" aria-label=${spec.title}>
          <thead><tr>${spec.columns.map((c) => html`<th scope="col" key=${c}>${c}</th>`)}${session.canWrite ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}</tr></thead>
          <tbody>
            ${rows.length === 0
              ? html`<tr><td colspan=${spec.columns.length + 1} class="empty">${search ? `Nothing matches “${search}”.` : `No ${spec.title.toLowerCase()} yet.`}</td></tr>`
              : rows.map(
                  (row) => html`<tr key=${row.id}>
                    ${spec.columns.map((c, i) =>
                      i === 0
                        ? html`<td key=${c}><a href=${`${base}/${enc(row.id)}`}>${cellText(row[c]) || row.id}</a></td>`
                        : html`<td key=${c}>${cellText(row[c])}</td>`,
                    )}
                    ${session.canWrite
                      ? html`<td class="row-actions"><${DeleteButton} label=${`${spec.one} ${label(entity, row)}`}
                          onDelete=${async () => {
                            setError(null);
                            try {
                              await api('DELETE', `${prefix}/${entity}/${enc(row.id)}`);
                              list.reload();
                            } catch (e) {
                              setError(e);
                            }
                          }} /></td>`
                      : null}
                  </tr>`,
                )}
          </tbody>
        </table>
        <nav class="pager" aria-label="Pages">
          <button type="button" disabled=${offsets.length === 0} onClick=${() => setOffsets(offsets.slice(0, -1))}>Previous page</button>
          <span>Page ${offsets.length + 1}</span>
          <button type="button" disabled=${!list.data.offset} onClick=${() => setOffsets([...offsets, list.data.offset])}>Next page</button>
        </nav></div>`
      : null}
  </section>`;
}

// New or edit (`id` set). Plugins first pick a plugin name; their form is that plugin's
// schema. Read-only admins see the values, disabled, without a submit button.
export function EntityForm({ cp, entity, id, query }) {
  const spec = ENTITIES[entity];
  const prefix = cpPrefix(cp);
  const base = `#/cp/${enc(cp)}/${entity}`;
  const [pluginName, setPluginName] = useState(query.plugin || '');
  const [saved, setSaved] = useState('');

  const current = useLoad(() => (id ? api('GET', `${prefix}/${entity}/${enc(id)}`) : Promise.resolve(null)), [cp, entity, id]);
  const name = entity === 'plugins' ? (id ? current.data?.name : pluginName) : null;
  const schema = useLoad(async () => {
    if (entity === 'plugins') {
      if (!name) return null;
      return api('GET', `/schemas/plugins/${enc(name)}`);
    }
    return api('GET', `/schemas/${entity}`);
  }, [entity, name]);
  const enabled = useLoad(
    () => (entity === 'plugins' && !id ? api('GET', '/plugins/enabled') : Promise.resolve(null)),
    [entity, id],
  );

  const title = id ? `${spec.one[0].toUpperCase()}${spec.one.slice(1)} ${current.data ? label(entity, current.data) : ''}` : `New ${spec.one}`;
  const readOnly = !session.canWrite;
  const submit = async (body) => {
    if (id) {
      const updated = await api('PATCH', `${prefix}/${entity}/${enc(id)}`, body);
      setSaved(`Saved ${spec.one} ${label(entity, updated)}.`);
      current.reload();
    } else {
      if (entity === 'plugins') body.name = pluginName;
      const created = await api('POST', `${prefix}/${entity}`, body);
      navigate(`${base}/${enc(created.id)}?created=1`);
    }
  };

  return html`<section>
    <${Heading}>${title}<//>
    <p class="sub"><a href=${base}>← ${spec.title}</a> · control plane <strong>${cp}</strong></p>
    ${query.created ? html`<p class="notice" role="status">Created.</p>` : null}
    ${saved ? html`<p class="notice" role="status">${saved}</p>` : null}
    <${ErrorBox} error=${current.error || schema.error || enabled.error} />
    ${entity === 'plugins' && !id && enabled.data
      ? html`<div class="field">
          <label for="plugin-name">Plugin</label>
          <select id="plugin-name" value=${pluginName} onChange=${(e) => setPluginName(e.currentTarget.value)}>
            <option value="">Choose a plugin…</option>
            ${enabled.data.enabled_plugins.map((p) => html`<option key=${p} value=${p}>${p}</option>`)}
          </select>
        </div>`
      : null}
    ${schema.data && (!id || current.data)
      ? html`<${SchemaForm} key=${`${entity}-${id || 'new'}-${name || ''}-${current.data?.updated_at || ''}`}
          formId=${`${entity}-form`} schema=${schema.data} entity=${current.data}
          hidden=${entity === 'plugins' ? ['name'] : []} readOnly=${readOnly}
          preset=${id ? {} : Object.fromEntries(['service', 'route', 'consumer'].filter((k) => query[k]).map((k) => [k, query[k]]))}
          submitLabel=${id ? 'Save' : `Create ${spec.one}`} onSubmit=${submit} />`
      : schema.loading || current.loading
        ? html`<p>Loading…</p>`
        : null}
    ${id && current.data
      ? html`<div>${(CHILDREN[entity] || []).map(
          (c) => html`<${Children} key=${c.path} cp=${cp} entity=${entity} parent=${current.data} child=${c} />`,
        )}</div>`
      : null}
  </section>`;
}

// What an entity's page lists under it: nested collections of the Admin API
// (/consumers/{c}/key-auth, /upstreams/{u}/targets, /services/{s}/routes, ...). `schema`:
// created here with its own generated form (the parent field hidden); without one, rows
// link to their own pages and "Add" opens the full form with the parent filled in.
const CHILDREN = {
  services: [
    { path: 'routes', title: 'Routes', link: 'routes', columns: ['name', 'paths', 'hosts'] },
    { path: 'plugins', title: 'Plugins', link: 'plugins', columns: ['name', 'enabled'] },
  ],
  routes: [{ path: 'plugins', title: 'Plugins', link: 'plugins', columns: ['name', 'enabled'] }],
  consumers: [
    { path: 'key-auth', title: 'Key-auth credentials', schema: 'keyauth_credentials', columns: ['key', 'ttl', 'tags'] },
    { path: 'basic-auth', title: 'Basic-auth credentials', schema: 'basicauth_credentials', columns: ['username', 'tags'] },
    { path: 'acls', title: 'ACL groups', schema: 'acls', columns: ['group', 'tags'] },
    { path: 'jwt', title: 'JWT credentials', schema: 'jwt_secrets', columns: ['key', 'algorithm', 'tags'] },
    { path: 'hmac-auth', title: 'HMAC credentials', schema: 'hmacauth_credentials', columns: ['username', 'tags'] },
    { path: 'plugins', title: 'Plugins', link: 'plugins', columns: ['name', 'enabled'] },
  ],
  upstreams: [{ path: 'targets', title: 'Targets', schema: 'targets', columns: ['target', 'weight', 'tags'] }],
};

function Children({ cp, entity, parent, child }) {
  const prefix = cpPrefix(cp);
  const base = `${prefix}/${entity}/${enc(parent.id)}/${child.path}`;
  const parentField = ENTITIES[entity].one;
  const list = useLoad(() => api('GET', `${base}?size=${PAGE_SIZE}`), [base]);
  const schema = useLoad(() => (child.schema && session.canWrite ? api('GET', `/schemas/${child.schema}`) : Promise.resolve(null)), [child.schema]);
  const [error, setError] = useState(null);
  const [adding, setAdding] = useState(false);
  const [formKey, setFormKey] = useState(0);
  const id = `child-${child.path}`;
  return html`<section class="children" aria-labelledby=${`${id}-title`}>
    <h2 id=${`${id}-title`}>${child.title}</h2>
    <${ErrorBox} error=${list.error || error} />
    ${list.data
      ? html`<table class="list" aria-label=${child.title}>
          <thead><tr>${child.columns.map((c) => html`<th scope="col" key=${c}>${c}</th>`)}${session.canWrite && child.schema ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : null}</tr></thead>
          <tbody>
            ${list.data.data.length === 0
              ? html`<tr><td colspan=${child.columns.length + 1} class="empty">None.</td></tr>`
              : list.data.data.map(
                  (row) => html`<tr key=${row.id}>
                    ${child.columns.map((c, i) =>
                      i === 0 && child.link
                        ? html`<td key=${c}><a href=${`#/cp/${enc(cp)}/${child.link}/${enc(row.id)}`}>${cellText(row[c]) || row.id}</a></td>`
                        : html`<td key=${c}>${cellText(row[c])}</td>`,
                    )}
                    ${session.canWrite && child.schema
                      ? html`<td class="row-actions"><${DeleteButton} label=${`${child.title} ${cellText(row[child.columns[0]]) || row.id}`}
                          onDelete=${async () => {
                            setError(null);
                            try {
                              await api('DELETE', `${base}/${enc(row.id)}`);
                              list.reload();
                            } catch (e) {
                              setError(e);
                            }
                          }} /></td>`
                      : null}
                  </tr>`,
                )}
          </tbody>
        </table>`
      : html`<p>Loading…</p>`}
    ${!session.canWrite
      ? null
      : child.link
        ? html`<p><a href=${`#/cp/${enc(cp)}/${child.link}/new?${parentField}=${enc(parent.id)}`}>Add ${child.title.toLowerCase()}</a></p>`
        : !adding
          ? html`<p><button type="button" onClick=${() => setAdding(true)}>Add ${child.title.toLowerCase()}</button></p>`
          : schema.data
            ? html`<${SchemaForm} key=${formKey} formId=${`${id}-form`} schema=${schema.data} entity=${null}
                hidden=${[parentField]} submitLabel="Add"
                onSubmit=${async (body) => {
                  await api('POST', base, body);
                  setFormKey((k) => k + 1);
                  setAdding(false);
                  list.reload();
                }} />`
            : html`<${ErrorBox} error=${schema.error} />`}
  </section>`;
}
