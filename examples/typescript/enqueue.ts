/**
 * Enqueue a run from an app (runs.create), safely retried with an idempotency key.
 *
 *   node build/enqueue.js <template> ['{"param": 1}'] [--key <idempotency key>] [--lane A]
 *
 * Prints the run as JSON. With the same key (and the same template and params) the call
 * returns the run it created the first time: an app can send it again after a timeout or a
 * crash without ever creating a second run. The same key with other params is PO409.
 */
import type { SupabaseClient } from '@supabase/supabase-js';
import { call, connect, isMain, PulserError, retrying, type Run } from './pulser.js';

export interface RunRequest {
  template: string;
  params?: Record<string, unknown>;
  lane?: string;
  priority?: number;
  idempotencyKey?: string;
  sessionId?: string;
  runAfter?: string;
}

export async function enqueue(client: SupabaseClient, req: RunRequest): Promise<Run> {
  const send = () =>
    call<Run>(client, 'enqueue_run', {
      template: req.template,
      params: req.params ?? {},
      lane: req.lane ?? null,
      priority: req.priority ?? 0,
      idempotency_key: req.idempotencyKey ?? null,
      session_id: req.sessionId ?? null,
      run_after: req.runAfter ?? null,
    });
  // Without a key a retry after a lost response could create a second run: send it once.
  return req.idempotencyKey ? retrying(send) : send();
}

function parseArgs(argv: string[]): RunRequest {
  const [template, ...rest] = argv;
  if (!template) throw new Error("usage: enqueue <template> ['{params}'] [--key K] [--lane L]");
  const req: RunRequest = { template };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] ?? '';
    if (arg === '--key') req.idempotencyKey = rest[++i];
    else if (arg === '--lane') req.lane = rest[++i];
    else if (arg === '--priority') req.priority = Number(rest[++i]);
    else if (arg === '--session') req.sessionId = rest[++i];
    else req.params = JSON.parse(arg) as Record<string, unknown>;
  }
  return req;
}

async function main(): Promise<void> {
  const run = await enqueue(connect(), parseArgs(process.argv.slice(2)));
  console.log(JSON.stringify(run));
}

if (isMain(import.meta.url)) {
  main().catch((e: unknown) => {
    const why = e instanceof PulserError ? `${e.code}: ${e.message}` : String(e);
    console.error(`enqueue: ${why}`);
    process.exit(1);
  });
}
