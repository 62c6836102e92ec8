/**
 * What a handler of worker.ts gets for a run: the run, a signal, its log and its artifacts.
 * Handlers are async functions registered by template name (see handlers.ts).
 */
import { Buffer } from 'node:buffer';
import type { SupabaseClient } from '@supabase/supabase-js';
import { call, INLINE_LIMIT, putFileArtifact, type Run } from './pulser.js';

export interface RunContext {
  run: Run;
  workerId: string;
  /** Aborted when the run must stop: a cancel request, a lost lease, a shutdown, a timeout. */
  signal: AbortSignal;
  /** events.append: one `log` event of this attempt. */
  log(message: string, data?: Record<string, unknown>, level?: 'info' | 'warn' | 'error'): Promise<void>;
  /** artifacts.put: text up to 64 KiB inline in its row, anything else as a file in Storage. */
  saveArtifact(name: string, data: string | Uint8Array, contentType?: string): Promise<void>;
  client: SupabaseClient;
}

export type Handler = (ctx: RunContext) => Promise<unknown>;

/** Throw it to fail the run without retries; `errorClass` is recorded on the run. */
export class NonRetryable extends Error {
  readonly retryable = false;
  constructor(message: string, readonly errorClass = 'non_retryable') {
    super(message);
  }
}

export function runContext(client: SupabaseClient, run: Run, workerId: string, signal: AbortSignal): RunContext {
  const { id: run_id, attempt } = run;
  return {
    run, workerId, signal, client,
    log: async (message, data = {}, level = 'info') => {
      await call(client, 'append_run_events', {
        events: [{ run_id, kind: 'log', level, message, data, attempt, worker_id: workerId }],
      });
    },
    saveArtifact: async (name, data, contentType) => {
      if (typeof data !== 'string' || Buffer.byteLength(data) > INLINE_LIMIT) {
        const type = contentType ?? (typeof data === 'string' ? 'text/plain; charset=utf-8' : 'application/octet-stream');
        return putFileArtifact(client, run_id, name, Buffer.from(data), type, attempt);
      }
      await call(client, 'put_artifact', {
        run_id, name, inline_text: data, content_type: contentType ?? 'text/plain; charset=utf-8', attempt,
      });
    },
  };
}
