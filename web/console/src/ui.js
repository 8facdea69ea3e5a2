// Small shared pieces: htm bound to Preact, the hash router's helpers, formatting, and the
// building blocks every page uses (headings that take focus, error and empty states).
import { h } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);

export function navigate(hash) {
  if (location.hash !== hash) location.hash = hash;
}

// The current hash as [segments, query]: "#/cp/eu/services?tags=a" → [['cp','eu','services'], {tags:'a'}].
export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, '');
  const [path, qs = ''] = raw.split('?');
  const segments = path.split('/').filter(Boolean).map(decodeURIComponent);
  return [segments, Object.fromEntries(new URLSearchParams(qs))];
}

export function enc(s) {
  return encodeURIComponent(s);
}

export function formatTime(v) {
  if (v === null || v === undefined || v === '') return '';
  const d = typeof v === 'number' ? new Date(v * (v < 1e12 ? 1000 : 1)) : new Date(v);
  return Number.isNaN(d.getTime()) ? String(v) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// Any JSON value as short text (arrays comma-joined, foreign keys by id).
export function cellText(v) {
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) return v.map(cellText).join(', ');
  if (typeof v === 'object') return v.id ? v.id : JSON.stringify(v);
  return String(v);
}

// The page's <h1>; focused when the page changes, so keyboard and screen-reader users start
// at the new content.
export function Heading({ children }) {
  const ref = useRef(null);
  useEffect(() => {
    ref.current?.focus();
  }, []);
  return html`<h1 tabindex="-1" ref=${ref}>${children}</h1>`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<p class="form-error" role="alert">${error.message || String(error)}</p>`;
}

// Runs `load` when `deps` change; returns {data, error, loading, reload}.
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => live && setState({ data, error: null, loading: false }),
      (error) => live && setState({ data: null, error, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

// A delete button that asks once more in place (no modal: keyboard users stay in the row).
// Focus follows the question and its answer, so a keyboard user never lands on <body>.
export function DeleteButton({ label, onDelete }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const confirmRef = useRef(null);
  const deleteRef = useRef(null);
  const wasAsking = useRef(false);
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
    else if (wasAsking.current) deleteRef.current?.focus();
    wasAsking.current = asking;
  }, [asking]);
  if (!asking) {
    return html`<button type="button" class="danger" ref=${deleteRef} aria-label=${`Delete ${label}`}
      onClick=${() => setAsking(true)}>Delete</button>`;
  }
  return html`<span class="confirm">
    <button type="button" class="danger" ref=${confirmRef} disabled=${busy} aria-label=${`Confirm delete ${label}`}
      onClick=${async () => {
        setBusy(true);
        try {
          await onDelete();
        } finally {
          setBusy(false);
          setAsking(false);
        }
      }}>Confirm delete</button>
    <button type="button" onClick=${() => setAsking(false)}>Cancel</button>
  </span>`;
}
