// Vitals: requests, 5xx errors and p99 latency per minute over the last hour, for a control
// plane, optionally one service, route or consumer (GET /vitals/requests), drawn with uPlot.
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';

import { api, cpPrefix } from './api.js';
import { ErrorBox, Heading, enc, html, navigate, useLoad } from './ui.js';

function Chart({ title, x, y, unit }) {
  const ref = useRef(null);
  useEffect(() => {
    if (!ref.current) return undefined;
    const plot = new uPlot(
      {
        title,
        width: Math.min(900, ref.current.clientWidth || 900),
        height: 220,
        series: [{}, { label: unit, stroke: '#1f5fbf', width: 2, points: { show: true, size: 4 } }],
        axes: [{}, { label: unit }],
      },
      [x, y],
      ref.current,
    );
    return () => plot.destroy();
  }, [title, x, y, unit]);
  // The figures as a table too: a chart alone says nothing to a screen reader.
  return html`<figure class="chart">
    <div ref=${ref} aria-hidden="true"></div>
    <figcaption class="sr-only">${title}: ${y.filter((v) => v).length} minutes with data of ${x.length}</figcaption>
  </figure>`;
}

export function Vitals({ query }) {
  const cp = query.cp || 'default';
  const filters = { service: query.service || '', route: query.route || '', consumer: query.consumer || '' };
  const [form, setForm] = useState(filters);
  const data = useLoad(async () => {
    const params = new URLSearchParams({ granularity: '1m' });
    for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
    const prefix = cpPrefix(cp);
    const [all, byStatus] = await Promise.all([
      api('GET', `${prefix}/vitals/requests?${params}`),
      api('GET', `${prefix}/vitals/requests?${params}&group_by=status_code`),
    ]);
    // Every minute of the range on the x axis: minutes without traffic (absent from the
    // answer) are 0 requests and no latency.
    const byTime = new Map(all.data.map((r) => [r.timestamp, r]));
    const errors = new Map();
    for (const r of byStatus.data) {
      if (r.status_code >= 500) errors.set(r.timestamp, (errors.get(r.timestamp) || 0) + r.requests);
    }
    const x = [];
    for (let t = Math.floor(all.meta.start / 60) * 60; t < all.meta.end; t += 60) x.push(t);
    return {
      x,
      traffic: all.data.length > 0,
      requests: x.map((t) => byTime.get(t)?.requests ?? 0),
      errors: x.map((t) => errors.get(t) || 0),
      p99: x.map((t) => byTime.get(t)?.latency_ms?.total?.p99 ?? null),
    };
  }, [cp, filters.service, filters.route, filters.consumer]);

  const apply = (e) => {
    e.preventDefault();
    const q = new URLSearchParams({ cp });
    for (const [k, v] of Object.entries(form)) if (v.trim()) q.set(k, v.trim());
    navigate(`#/vitals?${q}`);
  };
  const field = (k) => html`<div class="field">
    <label for=${`vitals-${k}`}>${k} (name or id)</label>
    <input id=${`vitals-${k}`} type="text" value=${form[k]} onInput=${(e) => { const v = e.currentTarget.value; setForm((f) => ({ ...f, [k]: v })); }} />
  </div>`;
  return html`<section>
    <${Heading}>Vitals<//>
    <p class="sub">Control plane <strong>${cp}</strong>, the last hour by minute</p>
    <form class="inline-form" onSubmit=${apply}>
      ${field('service')} ${field('route')} ${field('consumer')}
      <div class="actions"><button type="submit">Show</button></div>
    </form>
    <${ErrorBox} error=${data.error} />
    ${data.data && !data.data.traffic ? html`<p class="empty" role="status">No traffic in the last hour.</p>` : null}
    ${data.data && data.data.traffic
      ? html`<div><${Chart} title="Requests per minute" x=${data.data.x} y=${data.data.requests} unit="requests" />
        <${Chart} title="5xx errors per minute" x=${data.data.x} y=${data.data.errors} unit="errors" />
        <${Chart} title="p99 latency" x=${data.data.x} y=${data.data.p99} unit="ms" />
        <p class="sub"><a href=${`#/cp/${enc(cp)}/services`}>Services of ${cp}</a></p></div>`
      : null}
  </section>`;
}
