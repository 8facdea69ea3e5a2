// The Dev Portal's pages: published APIs, sign-up, login and a developer's applications, on
// the portal's JSON API (/api/...). Every value from the server is inserted as text (el()
// never parses HTML), and every state-changing request carries the CSRF token the server
// handed out (GET /api/csrf, with the developer when logged in).
'use strict';
(function () {
  const view = document.getElementById('view');
  const statusLine = document.getElementById('status');
  let csrf = '';
  let me = null;

  // An element with attributes and children; strings become text nodes, never markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === null || v === undefined) continue;
      if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
      else if (v === true) node.setAttribute(k, '');
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function say(text, error) {
    statusLine.textContent = text || '';
    statusLine.className = error ? 'error' : '';
  }

  async function api(method, path, body) {
    const headers = {};
    if (method !== 'GET') headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch('/api/' + path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    if (r.status !== 204) {
      try { data = await r.json(); } catch (e) { data = null; }
    }
    return {status: r.status, ok: r.ok, data};
  }

  async function refreshSession() {
    const t = await api('GET', 'csrf');
    me = t.ok ? t.data.developer : null;
    csrf = t.ok ? t.data.csrf_token : '';
    document.getElementById('nav-apps').hidden = !me;
    document.getElementById('nav-logout').hidden = !me;
    document.getElementById('nav-login').hidden = !!me;
    document.getElementById('nav-signup').hidden = !!me;
  }

  function heading(text) {
    document.title = text + ' - Developer Portal';
    return el('h1', {}, text);
  }

  function badge(state) { return el('span', {class: 'badge ' + state}, state); }

  function docsHref(a) {
    return '/docs/' + encodeURIComponent(a.service.name) + '/' + encodeURIComponent(a.version.version);
  }

  async function showApis() {
    const r = await api('GET', 'apis');
    const list = el('div', {id: 'api-list'});
    if (!r.ok) {
      say('The API list could not be loaded.', true);
    } else if (r.data.data.length === 0) {
      list.append(el('p', {class: 'muted'}, 'No APIs are published yet.'));
    }
    for (const a of (r.ok ? r.data.data : [])) {
      list.append(el('article', {class: 'card api', 'data-version-id': a.version.id},
        el('h2', {}, a.service.display_name || a.service.name, ' ',
           el('span', {class: 'muted'}, a.version.version), badge(a.version.state)),
        a.service.description ? el('p', {class: 'description'}, a.service.description) : null,
        a.has_spec ? el('a', {href: docsHref(a)}, 'API reference') : el('span', {class: 'muted'}, 'No reference yet')));
    }
    view.replaceChildren(heading('APIs'), list);
  }

  function field(label, attrs) {
    return el('label', {}, label, el('input', attrs));
  }

  function showSignup() {
    const form = el('form', {class: 'stack', id: 'signup-form'},
      field('Name', {name: 'name', autocomplete: 'name', maxlength: 255}),
      field('Email', {name: 'email', type: 'email', required: true, autocomplete: 'email'}),
      field('Password (at least 8 characters)',
            {name: 'password', type: 'password', required: true, minlength: 8, autocomplete: 'new-password'}),
      el('button', {type: 'submit', class: 'primary'}, 'Sign up'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const r = await api('POST', 'signup',
        {name: f.get('name'), email: f.get('email'), password: f.get('password')});
      if (r.status === 201) {
        say(r.data.status === 'approved' ? 'Your account is ready: log in.'
                                         : 'Thanks! An administrator will approve your account.');
        location.hash = '#/login';
      } else {
        say((r.data && r.data.message) || 'Sign-up failed.', true);
      }
    });
    view.replaceChildren(heading('Sign up'), form);
  }

  function showLogin() {
    const form = el('form', {class: 'stack', id: 'login-form'},
      field('Email', {name: 'email', type: 'email', required: true, autocomplete: 'username'}),
      field('Password', {name: 'password', type: 'password', required: true, autocomplete: 'current-password'}),
      el('button', {type: 'submit', class: 'primary'}, 'Log in'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const r = await api('POST', 'login', {email: f.get('email'), password: f.get('password')});
      if (r.ok) {
        say('');
        await refreshSession();
        location.hash = '#/apps';
      } else {
        say((r.data && r.data.message) || 'Login failed.', true);
      }
    });
    view.replaceChildren(heading('Log in'), form);
  }

  async function showApps() {
    if (!me) { location.hash = '#/login'; return; }
    const [apps, apis] = await Promise.all([api('GET', 'applications'), api('GET', 'apis')]);
    const published = apis.ok ? apis.data.data.filter((a) => a.version.state === 'published') : [];
    const list = el('div', {id: 'app-list'});
    for (const summary of (apps.ok ? apps.data.data : [])) {
      const detail = await api('GET', 'applications/' + encodeURIComponent(summary.id));
      if (!detail.ok) continue;
      const a = detail.data;
      const regs = el('ul', {class: 'plain registrations'});
      for (const reg of a.registrations) {
        regs.append(el('li', {'data-registration-id': reg.id},
          reg.service.name, ' ', reg.version.version, badge(reg.status), ' ',
          reg.status === 'revoked' || reg.status === 'rejected' ? null :
            el('button', {type: 'button', onclick: async () => {
              await api('DELETE', 'applications/' + a.id + '/registrations/' + reg.id);
              showApps();
            }}, 'Cancel')));
      }
      const selectId = 'register-' + a.id;
      const select = el('select', {id: selectId, name: 'version_id'},
        published.map((p) => el('option', {value: p.version.id},
          (p.service.display_name || p.service.name) + ' ' + p.version.version)));
      const register = el('form', {class: 'register-form'},
        el('label', {for: selectId}, 'Register for '), select, ' ',
        el('button', {type: 'submit'}, 'Register'));
      register.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const r = await api('POST', 'applications/' + a.id + '/registrations', {version_id: select.value});
        say(r.ok ? 'Registration ' + r.data.status + '.' : ((r.data && r.data.message) || 'Registration failed.'), !r.ok);
        showApps();
      });
      list.append(el('article', {class: 'card app', 'data-app-id': a.id},
        el('h2', {class: 'app-name'}, a.name),
        a.description ? el('p', {class: 'description'}, a.description) : null,
        el('p', {}, 'API key: ', el('code', {class: 'key'}, a.key),
           el('span', {class: 'muted'}, ' (send it in the apikey header)')),
        regs, published.length ? register : el('p', {class: 'muted'}, 'No API to register for.'),
        el('button', {type: 'button', onclick: async () => {
          await api('DELETE', 'applications/' + a.id);
          showApps();
        }}, 'Delete application')));
    }
    const create = el('form', {class: 'stack', id: 'app-form'},
      field('Application name', {name: 'name', required: true, maxlength: 255}),
      el('label', {}, 'Description', el('textarea', {name: 'description', rows: 2, maxlength: 2000})),
      el('button', {type: 'submit', class: 'primary'}, 'Create application'));
    create.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = new FormData(create);
      const r = await api('POST', 'applications', {name: f.get('name'), description: f.get('description')});
      say(r.ok ? 'Application created.' : ((r.data && r.data.message) || 'Could not create it.'), !r.ok);
      showApps();
    });
    view.replaceChildren(heading('My applications'), list, el('h2', {}, 'New application'), create);
  }

  async function render() {
    const route = location.hash.replace(/^#/, '') || '/';
    if (route === '/signup') showSignup();
    else if (route === '/login') showLogin();
    else if (route === '/apps') await showApps();
    else await showApis();
  }

  document.getElementById('nav-logout').addEventListener('click', async () => {
    await api('POST', 'logout');
    await refreshSession();
    location.hash = '#/';
  });
  window.addEventListener('hashchange', render);
  refreshSession().then(render);
})();
