// The API reference of one published version: /docs/{service}/{version} renders
// /api/apis/{service}/{version}/spec with Redoc, treating the document as untrusted (its
// Markdown and HTML are sanitized; the page's CSP allows no other script).
'use strict';
(function () {
  const parts = location.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  const status = document.getElementById('status');
  if (parts.length !== 3 || typeof Redoc === 'undefined') {
    status.textContent = 'This API reference cannot be shown.';
    return;
  }
  const base = '/api/apis/' + encodeURIComponent(parts[1]) + '/' + encodeURIComponent(parts[2]);
  fetch(base, {credentials: 'same-origin'}).then((r) => r.ok ? r.json() : null).then((api) => {
    if (!api) {
      status.textContent = 'No published API named ' + parts[1] + ' ' + parts[2] + '.';
      return;
    }
    document.title = (api.service.display_name || api.service.name) + ' ' + api.version.version +
        ' - API reference';
    if (!api.has_spec) {
      status.textContent = 'This version has no OpenAPI document yet.';
      return;
    }
    // render=docs: the document as JSON with its descriptions' HTML made text.
    Redoc.init(base + '/spec?render=docs', {untrustedSpec: true, hideDownloadButton: false, disableSearch: false},
               document.getElementById('redoc'), (err) => {
                 status.textContent = err ? 'The OpenAPI document could not be rendered.' : '';
               });
  });
})();
