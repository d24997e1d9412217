/** Small shared pieces: fields with their error, async loading, times, copy, status. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError } from './api';

/** Loads `load()` whenever `deps` change; `reload()` loads again. */
export function useAsync<T>(
  load: () => Promise<T>,
  deps: unknown[],
): {
  data: T | undefined;
  error: Error | undefined;
  reload: () => void;
  /** A value, or a change of the current one (live events may come faster than renders). */
  setData: (t: T | ((current: T | undefined) => T)) => void;
} {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (d) => {
        if (live) {
          setData(d);
          setError(undefined);
        }
      },
      (e: Error) => {
        if (live) setError(e);
      },
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, reload, setData };
}

/** A labelled form field with the API's message about it underneath. */
export function Field(props: { label: string; id: string; error?: string | undefined; children: ComponentChildren }) {
  return (
    <div class={`field${props.error ? ' has-error' : ''}`}>
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.error ? (
        <p class="field-error" id={`${props.id}-error`} role="alert">
          {props.error}
        </p>
      ) : null}
    </div>
  );
}

/** An error not about one field (or any error, where the form has none). */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const msg = error instanceof Error ? error.message : String(error);
  return (
    <p class="error" role="alert">
      {error instanceof ApiError ? `${error.type}: ` : ''}
      {msg}
    </p>
  );
}

/** Splits an API error between a field (by its `body/NAME` path) and the form. */
export function fieldErrors(error: unknown): { field: Record<string, string>; form: unknown } {
  if (error instanceof ApiError && error.field) return { field: { [error.field]: error.message }, form: undefined };
  return { field: {}, form: error };
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function formatValue(v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(2);
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function ConnectionBadge({ connected }: { connected: 1 | 0 | null | undefined }) {
  const [cls, text] =
    connected === 1 ? ['on', 'connected'] : connected === 0 ? ['off', 'disconnected'] : ['never', 'never connected'];
  return <span class={`badge badge-${cls}`}>{text}</span>;
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="secondary"
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          // Without clipboard rights (plain HTTP): select the text for a manual copy.
          const el = document.querySelector<HTMLInputElement>(`input[value="${CSS.escape(text)}"]`);
          el?.select();
        }
        setDone(true);
        setTimeout(() => setDone(false), 1500);
      }}
    >
      {done ? 'Copied' : label}
    </button>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}
