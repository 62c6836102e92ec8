/**
 * The few pieces every example shares: a supabase-js client from the environment, one typed
 * way to call the control plane's SQL functions over PostgREST RPC, and the row types.
 *
 * There is no pulser-ops SDK for TypeScript on purpose: the control plane *is* the SQL
 * functions (docs/SQL_API.md), and `supabase.rpc(fn, args)` calls them with the same named
 * arguments, the same rows and the same error codes as the Python SDK sees (docs/HTTP_API.md).
 */
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { createClient, type SupabaseClient } from '@supabase/supabase-js';
import WebSocket from 'ws';

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** A row of `public.runs` (the columns the examples read; the row has more). */
export interface Run {
  id: string;
  template: string;
  lane: string;
  status: RunStatus;
  params: Record<string, unknown>;
  attempt: number;
  max_attempts: number;
  lease_seconds: number;
  worker_id: string | null;
  cancel_requested_at: string | null;
  cancel_reason: string | null;
  result: unknown;
  error: string | null;
  error_class: string | null;
  version: number;
  updated_at: string;
  finished_at: string | null;
}

/** A row of `public.run_events`: `seq` is per run, 1, 2, 3... without gaps, in commit order. */
export interface RunEvent {
  run_id: string;
  seq: number;
  at: string;
  kind: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  data: Record<string, unknown>;
  attempt: number | null;
  worker_id: string | null;
}

export const TERMINAL: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'cancelled']);

/**
 * An error the control plane (or the way to it) returned. `code` is the SQLSTATE or PostgREST
 * code (`PO410` lease lost, `PO404` not found, `42501` permission denied, ...), `status` the
 * HTTP status (0 when no response arrived). Match on `code`, never on the message.
 */
export class PulserError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    readonly details: string | null = null,
    readonly hint: string | null = null,
  ) {
    super(message);
    this.name = 'PulserError';
  }

  /**
   * The call may not have reached the database, or its answer was lost: no response, a gateway
   * error without a code, the database unreachable or restarting (08*, 53*, 57P*), a timeout
   * (57014, PGRST003), or a transaction rolled back by a conflict (40001, 40P01). Send it again
   * only if the call is retry-safe (docs/HTTP_API.md says which are).
   */
  get transient(): boolean {
    return (
      this.status === 0 ||
      (this.code === '' && this.status >= 500) ||
      /^(08|53|57|40001$|40P01$|PGRST003$)/.test(this.code)
    );
  }
}

/** `SUPABASE_URL` plus either a secret key (workers) or a publishable key and a user's JWT. */
export function connect(env: NodeJS.ProcessEnv = process.env): SupabaseClient {
  const url = required(env, 'SUPABASE_URL');
  const token = env.PULSER_OPS_ACCESS_TOKEN;
  const key = token
    ? (env.SUPABASE_PUBLISHABLE_KEY ?? env.SUPABASE_ANON_KEY)
    : (env.SUPABASE_SECRET_KEY ?? env.SUPABASE_SERVICE_ROLE_KEY);
  if (!key) {
    throw new Error(
      token
        ? 'set SUPABASE_PUBLISHABLE_KEY (or SUPABASE_ANON_KEY) to go with PULSER_OPS_ACCESS_TOKEN'
        : 'set SUPABASE_SECRET_KEY (or SUPABASE_SERVICE_ROLE_KEY), or PULSER_OPS_ACCESS_TOKEN',
    );
  }
  return createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false },
    // A user's JWT goes with every request and every Realtime join: RLS sees the user.
    ...(token ? { accessToken: async () => token } : {}),
    // Node 22 and browsers have a WebSocket; Node 20 gets the `ws` package's.
    realtime: 'WebSocket' in globalThis ? {} : { transport: WebSocket as never },
  });
}

function required(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

/** `POST /rest/v1/rpc/<fn>` with named arguments; throws a PulserError. */
export async function call<T>(
  client: SupabaseClient,
  fn: string,
  args: Record<string, unknown> = {},
): Promise<T> {
  const { data, error, status } = await client.rpc(fn, args);
  if (error) throw new PulserError(error.code ?? '', error.message, status, error.details, error.hint);
  return data as T;
}

/** `call`, sent again while the failure is transient (only for retry-safe calls). */
export async function retrying<T>(
  what: () => Promise<T>,
  { attempts = 5, pauseMs = 200, giveUp = (): boolean => false } = {},
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await what();
    } catch (e) {
      if (!(e instanceof PulserError && e.transient) || n >= attempts || giveUp()) throw e;
      await sleep(Math.min(pauseMs * 2 ** (n - 1), 5000));
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((ok) => setTimeout(ok, ms));

/** A wake-up that is not lost when it comes before the wait. */
export class Bell {
  private rung = false;
  private early = (): void => undefined;
  ring(): void { this.rung = true; this.early(); }
  wait(ms: number): Promise<void> {
    if (this.rung) { this.rung = false; return Promise.resolve(); }
    return new Promise((ok) => {
      const timer = setTimeout(ok, ms);
      this.early = () => { clearTimeout(timer); this.rung = false; ok(); };
    });
  }
}


/** Artifacts are stored in this private bucket under `<run id>/<name>`... */
export const BUCKET = 'run-artifacts';
/** ...unless they are text of at most this many bytes, stored in the artifacts row itself. */
export const INLINE_LIMIT = 65_536;

/**
 * A file artifact (`artifacts.put` for files): upload through a signed upload URL, then record
 * it with `put_artifact`. Needs the service role, like every worker call.
 */
export async function putFileArtifact(
  client: SupabaseClient,
  runId: string,
  name: string,
  bytes: Uint8Array,
  contentType: string,
  attempt?: number,
): Promise<void> {
  const path = `${runId}/${name}`;
  const bucket = client.storage.from(BUCKET);
  const signed = await bucket.createSignedUploadUrl(path, { upsert: true });
  if (signed.error) throw new PulserError('storage', signed.error.message, 400);
  const up = await bucket.uploadToSignedUrl(path, signed.data.token, bytes, { contentType, upsert: true });
  if (up.error) throw new PulserError('storage', up.error.message, 400);
  await call(client, 'put_artifact', {
    run_id: runId,
    name,
    kind: 'file',
    content_type: contentType,
    storage_path: path,
    size_bytes: bytes.byteLength,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    attempt,
  });
}

/** True when the module at `url` is the program node was started with. */
export const isMain = (url: string): boolean =>
  process.argv[1] !== undefined && url === pathToFileURL(process.argv[1]).href;
