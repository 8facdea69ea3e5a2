// Forms generated from Kong schemas (GET /schemas/<entity>, /schemas/plugins/<name>): one
// input per field, records as fieldsets, Kong's error `fields` shown beside their inputs.
// Values are kept as text per field path and converted by the field's type on submit, so a
// bad value reaches the Admin API and its own message is what the user sees.
import { h } from 'preact';
import { useState } from 'preact/hooks';
import htm from 'htm';

const html = htm.bind(h);

// [{name, def}] of a schema's `fields` list ([{name: def}, ...]).
export function fieldList(fields) {
  return (fields || []).map((f) => {
    const name = Object.keys(f)[0];
    return { name, def: f[name] };
  });
}

const SCALARS = new Set(['string', 'integer', 'number', 'boolean']);
// String fields that hold several lines (PEM certificates and keys, a response body): a
// textarea. Schemas do not say so; Kong Manager lists them too.
const MULTILINE = new Set(['cert', 'key', 'cert_alt', 'key_alt', 'body', 'rsa_public_key']);

function isScalarList(def) {
  return (def.type === 'array' || def.type === 'set') && SCALARS.has(def.elements?.type);
}

// How a field is edited: 'text', 'number', 'select', 'checkbox', 'tristate', 'list' (comma-
// separated scalars), 'foreign' (an id or a name), 'record' (a fieldset) or 'json' (anything
// else, as JSON text).
export function widgetOf(def, name = '') {
  if (def.type === 'record') return 'record';
  if (def.type === 'foreign') return 'foreign';
  if (def.type === 'boolean') return def.default === undefined ? 'tristate' : 'checkbox';
  if (def.type === 'string' && Array.isArray(def.one_of)) return 'select';
  if (def.type === 'string') return MULTILINE.has(name) ? 'multiline' : 'text';
  if (def.type === 'integer' || def.type === 'number') return 'number';
  if (isScalarList(def)) return 'list';
  return 'json';
}

// The text shown for a value of a field (the form's state is text, per path).
function toText(def, value) {
  if (value === null || value === undefined) return '';
  switch (widgetOf(def)) {
    case 'checkbox':
      return value ? 'true' : 'false';
    case 'tristate':
      return value === true ? 'true' : value === false ? 'false' : '';
    case 'list':
      return value.join(', ');
    case 'foreign':
      return value.id || value.name || '';
    case 'json':
      return JSON.stringify(value, null, 2);
    default:
      return String(value);
  }
}

// Text → the JSON value sent; undefined leaves the field out. What does not parse is sent
// as typed, for the Admin API to name the problem.
function fromText(def, text) {
  switch (widgetOf(def)) {
    case 'checkbox':
      return text === 'true';
    case 'tristate':
      return text === '' ? null : text === 'true';
    case 'number': {
      if (text.trim() === '') return null;
      const n = Number(text);
      return Number.isFinite(n) && text.trim() !== '' ? n : text;
    }
    case 'list': {
      if (text.trim() === '') return null;
      const items = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
      return def.elements.type === 'integer' || def.elements.type === 'number'
        ? items.map((s) => (Number.isFinite(Number(s)) ? Number(s) : s))
        : items;
    }
    case 'foreign': {
      const v = text.trim();
      if (v === '') return null;
      return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v)
        ? { id: v }
        : { name: v };
    }
    case 'json':
      if (text.trim() === '') return null;
      try {
        return JSON.parse(text);
      } catch {
        return text;
      }
    default:
      return text === '' ? null : text;
  }
}

// path (dotted) → text, for every leaf of `fields` in `entity` (or the defaults).
export function initialTexts(fields, entity, prefix = '') {
  const out = {};
  for (const { name, def } of fieldList(fields)) {
    const path = prefix + name;
    const value = entity ? entity[name] : undefined;
    if (def.type === 'record') {
      Object.assign(out, initialTexts(def.fields, value || (entity ? null : undefined), `${path}.`));
    } else if (entity) {
      out[path] = toText(def, value);
    } else {
      out[path] = def.default !== undefined && widgetOf(def) !== 'json' ? toText(def, def.default) : '';
    }
  }
  return out;
}

// The body to send: on create the fields the user changed from their initial text; on edit
// (PATCH) the same, a cleared field as null. Records carry only their changed fields.
export function buildBody(fields, texts, initial, prefix = '') {
  const body = {};
  for (const { name, def } of fieldList(fields)) {
    const path = prefix + name;
    if (def.type === 'record') {
      const sub = buildBody(def.fields, texts, initial, `${path}.`);
      if (Object.keys(sub).length) body[name] = sub;
      continue;
    }
    if (texts[path] === undefined || texts[path] === initial[path]) continue;
    body[name] = fromText(def, texts[path]);
  }
  return body;
}

// Kong's error `fields` as path → message (arrays of per-element messages joined; nested
// records dotted); `@entity` messages under '@entity'.
export function flattenErrors(fields, prefix = '', out = {}) {
  if (!fields || typeof fields !== 'object') return out;
  for (const [key, value] of Object.entries(fields)) {
    const path = prefix + key;
    if (key === '@entity') {
      out['@entity'] = [...(out['@entity'] || []), ...[].concat(value).map(String)];
    } else if (typeof value === 'string') {
      out[path] = value;
    } else if (Array.isArray(value)) {
      const msgs = value
        .map((v, i) => (v === null ? null : typeof v === 'string' ? `item ${i + 1}: ${v}` : `item ${i + 1}: ${JSON.stringify(v)}`))
        .filter(Boolean);
      out[path] = msgs.join('; ');
    } else if (typeof value === 'object' && value !== null) {
      flattenErrors(value, `${path}.`, out);
    }
  }
  return out;
}

function inputId(formId, path) {
  return `${formId}-${path.replace(/[^a-zA-Z0-9_-]/g, '-')}`;
}

function hint(def) {
  const w = widgetOf(def);
  const bits = [];
  if (w === 'list') bits.push('comma-separated');
  if (w === 'foreign') bits.push(`id or name of one of the ${def.reference}`);
  if (w === 'json') bits.push('JSON');
  if (def.between) bits.push(`${def.between[0]}–${def.between[1]}`);
  if (def.auto) bits.push('generated when left empty');
  if (def.default !== undefined && w !== 'checkbox' && w !== 'select') {
    bits.push(`default ${JSON.stringify(def.default)}`);
  }
  return bits.join(', ');
}

function Field({ formId, path, name, def, texts, setText, errors, readOnly }) {
  const w = widgetOf(def, name);
  if (w === 'record') {
    return html`<fieldset class="record">
      <legend>${name}</legend>
      ${fieldList(def.fields).map(
        (f) => html`<${Field} key=${f.name} formId=${formId} path=${`${path}.${f.name}`} name=${f.name}
          def=${f.def} texts=${texts} setText=${setText} errors=${errors} readOnly=${readOnly} />`,
      )}
    </fieldset>`;
  }
  const id = inputId(formId, path);
  const error = errors[path];
  const help = hint(def);
  const described = [help ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
  const common = {
    id,
    name: path,
    'aria-invalid': error ? 'true' : undefined,
    'aria-describedby': described,
    'aria-required': def.required ? 'true' : undefined,
    disabled: readOnly,
  };
  const value = texts[path] ?? '';
  const onInput = (e) => setText(path, e.currentTarget.value);
  let input;
  if (w === 'checkbox') {
    input = html`<input type="checkbox" ...${common} checked=${value === 'true'}
      onChange=${(e) => setText(path, e.currentTarget.checked ? 'true' : 'false')} />`;
  } else if (w === 'tristate') {
    input = html`<select ...${common} value=${value} onChange=${onInput}>
      <option value="">(unset)</option><option value="true">true</option><option value="false">false</option>
    </select>`;
  } else if (w === 'select') {
    input = html`<select ...${common} value=${value} onChange=${onInput}>
      <option value="">(unset)</option>
      ${def.one_of.map((o) => html`<option key=${o} value=${o}>${o}</option>`)}
    </select>`;
  } else if (w === 'json' || w === 'multiline') {
    input = html`<textarea ...${common} rows=${w === 'json' ? 3 : 6} value=${value} onInput=${onInput}></textarea>`;
  } else {
    input = html`<input type="text" ...${common} inputmode=${w === 'number' ? 'decimal' : undefined}
      value=${value} onInput=${onInput} autocomplete="off" />`;
  }
  return html`<div class=${`field${error ? ' has-error' : ''}`}>
    <label for=${id}>${name}${def.required ? html`<span class="req"> (required)</span>` : null}</label>
    ${input}
    ${help ? html`<span class="hint" id=${`${id}-hint`}>${help}</span>` : null}
    ${error ? html`<span class="field-error" id=${`${id}-error`} role="alert">${error}</span>` : null}
  </div>`;
}

// A form for `schema` (a Kong schema's JSON). `entity`: the current values (edit) or null
// (create). `hidden`: top-level fields not shown (auto fields always are). onSubmit(body)
// returns a promise; an ApiError with Kong's `fields` is shown field by field.
// `preset`: path → text filled in on create (sent, unlike defaults).
export function SchemaForm({ formId, schema, entity, hidden = [], preset = {}, readOnly, submitLabel, onSubmit, extra }) {
  // `auto` fields the server always fills (ids, timestamps) are not shown; others (a
  // credential's key) are optional inputs, generated when left empty.
  const visible = (schema.fields || []).filter((f) => {
    const name = Object.keys(f)[0];
    const def = f[name];
    const serverOnly = def.auto && (def.uuid || name === 'created_at' || name === 'updated_at');
    return !serverOnly && !hidden.includes(name);
  });
  const [initial] = useState(() => initialTexts(visible, entity));
  const [texts, setTexts] = useState(() => ({ ...initial, ...preset }));
  const [errors, setErrors] = useState({});
  const [message, setMessage] = useState('');
  const [busy, setBusy] = useState(false);
  const setText = (path, v) => setTexts((t) => ({ ...t, [path]: v }));

  async function submit(e) {
    e.preventDefault();
    setBusy(true);
    setMessage('');
    try {
      await onSubmit(buildBody(visible, texts, initial));
      setErrors({});
    } catch (err) {
      const flat = flattenErrors(err.body?.fields);
      const known = new Set(Object.keys(texts));
      // A message about a part of a field (a foreign key's `service.name`) goes beside the
      // field's input.
      const shown = {};
      const elsewhere = [];
      for (const [p, m] of Object.entries(flat)) {
        if (p === '@entity') continue;
        let at = p;
        while (at && !known.has(at)) at = at.includes('.') ? at.slice(0, at.lastIndexOf('.')) : '';
        if (at) shown[at] = shown[at] ? `${shown[at]}; ${m}` : at === p ? m : `${p.slice(at.length + 1)}: ${m}`;
        else elsewhere.push(`${p}: ${m}`);
      }
      setErrors(shown);
      setMessage([err.message, ...(flat['@entity'] || []), ...elsewhere].join(' — '));
      // Focus the first offending input, so keyboard and screen-reader users land on it.
      const first = Object.keys(shown)[0];
      if (first) {
        setTimeout(() => document.getElementById(inputId(formId, first))?.focus(), 0);
      }
    } finally {
      setBusy(false);
    }
  }

  return html`<form class="schema-form" id=${formId} onSubmit=${submit} novalidate>
    ${message ? html`<p class="form-error" role="alert">${message}</p>` : null}
    ${extra}
    ${fieldList(visible).map(
      (f) => html`<${Field} key=${f.name} formId=${formId} path=${f.name} name=${f.name} def=${f.def}
        texts=${texts} setText=${setText} errors=${errors} readOnly=${readOnly} />`,
    )}
    ${readOnly ? null : html`<div class="actions"><button type="submit" class="primary" disabled=${busy}>${submitLabel}</button></div>`}
  </form>`;
}
