// The Admin API client: where it is (/config.json of the console listener), the admin
// token of this tab (sessionStorage), and Kong's answers turned into values or ApiErrors.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message || body.detail)) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

const TOKEN_KEY = 'portico.console.token';
const ROLE_KEY = 'portico.console.role';

export const session = {
  config: null,
  base: '',
  token: sessionStorage.getItem(TOKEN_KEY) || '',
  role: sessionStorage.getItem(ROLE_KEY) || '',
  get canWrite() {
    return !this.config?.admin_auth || this.role === 'admin';
  },
  get signedIn() {
    return !this.config?.admin_auth || this.token !== '';
  },
  remember(token, role) {
    this.token = token;
    this.role = role;
    sessionStorage.setItem(TOKEN_KEY, token);
    sessionStorage.setItem(ROLE_KEY, role);
  },
  forget() {
    this.token = '';
    this.role = '';
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ROLE_KEY);
  },
};

export async function loadConfig() {
  const r = await fetch('/config.json', { cache: 'no-store' });
  const config = await r.json();
  session.config = config;
  session.base =
    config.admin_api_url?.replace(/\/+$/, '') ||
    `${config.admin_api_scheme}://${location.hostname}:${config.admin_api_port}`;
  return config;
}

// One Admin API call; resolves to the parsed JSON (null for an empty body), rejects with
// an ApiError carrying Kong's error body. 401 forgets the token (the app shows the login).
export async function api(method, path, body, { token = session.token } = {}) {
  const headers = {};
  if (token) headers['Kong-Admin-Token'] = token;
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(session.base + path, init);
  } catch (e) {
    throw new ApiError(0, { message: `cannot reach the Admin API at ${session.base} (${e.message})` });
  }
  const text = await r.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = { message: text };
    }
  }
  if (!r.ok) {
    if (r.status === 401 && token === session.token && session.config?.admin_auth) {
      session.forget();
      window.dispatchEvent(new Event('portico-signed-out'));
    }
    throw new ApiError(r.status, json);
  }
  return json;
}

// The path prefix of a control plane: the root for `default`, else /control-planes/{name}.
export function cpPrefix(cp) {
  return !cp || cp === 'default' ? '' : `/control-planes/${encodeURIComponent(cp)}`;
}

// Checks a token and finds its role. A read-only token is refused (403) on any write before
// the request is looked at, so a POST to the schema validator, which writes nothing, tells
// the two roles apart.
export async function signIn(token) {
  await api('GET', '/status', undefined, { token });
  let role = 'admin';
  try {
    await api('POST', '/schemas/services/validate', { host: 'example.com' }, { token });
  } catch (e) {
    if (e.status === 403) role = 'read-only';
    else if (e.status !== 400) throw e;
  }
  session.remember(token, role);
  return role;
}
