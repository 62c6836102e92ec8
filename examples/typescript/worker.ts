/**
 * A small but correct pulser-ops worker on supabase-js, the reference for other languages. It keeps
 * the Python worker's protocol (docs/ARCHITECTURE.md, "Fencing"): claims with a lease, heartbeats
 * every lease/3, stops a run on a cancel request and ends it `cancelled`, fences every call with
 * (run_id, worker_id, attempt), repeats only what is safe to repeat, never completes a run whose
 * lease it lost, asks which runs it holds after a claim whose reply was lost, and on SIGTERM
 * claims nothing more, lets runs finish for a grace period and releases the rest.
 *   PULSER_HANDLERS=./my-handlers.js node build/worker.js    (handlers by template name)
 * Handlers share Node's thread with the heartbeat: one that blocks the event loop starves it (its
 * lease runs out, the run goes to another worker). Put CPU work in a worker thread.
 */
import { hostname } from 'node:os';
import { pathToFileURL } from 'node:url';
import type { SupabaseClient } from '@supabase/supabase-js';
import { runContext, type Handler } from './context.js';
import { Bell, call, connect, isMain, PulserError, retrying, type Run } from './pulser.js';

export interface WorkerOptions {
  workerId: string; lanes: string[]; concurrency: number; leaseSeconds?: number;
  pollSeconds: number; graceSeconds: number; burst: boolean; handlers: Record<string, Handler>;
}
type Stop = 'cancel' | 'lease_lost' | 'shutdown' | 'timeout';
interface Held { run: Run; abort: AbortController; stop?: Stop; settledBy?: 'run' | 'shutdown' }
interface Beat { run_id: string; attempt: number; ok: boolean; cancel_requested: boolean }
type Outcome = { status: string; result?: unknown; error?: string; error_class?: string; retryable?: boolean };
type Failure = Error & { errorClass?: string; retryable?: boolean };

export class Worker {
  private held = new Map<string, Held>();
  private stopping = false; // then `forced`: a second stop
  private forced = false;
  private claimUnheard = false; // a claim failed in transit: it may have committed unheard
  private abandoned = new Set<string>(); // `id/attempt` run here but not settled: never adopt
  private loop = new Bell();
  private beat = new Bell();
  private timeouts = new Map<string, number | null>();
  private readonly w: string;

  constructor(private client: SupabaseClient, private o: WorkerOptions) { this.w = o.workerId; }

  private rpc = <T>(fn: string, args: Record<string, unknown>): Promise<T> => call<T>(this.client, fn, args);
  private say = (text: string): void => console.error(`worker ${this.w}: ${text}`);

  /** Claim nothing more and drain; a second call (a second signal) releases at once. */
  stop(): void {
    if (this.stopping) (this.forced = true), this.held.forEach((h) => this.halt(h, 'shutdown'));
    this.stopping = true;
    this.loop.ring();
  }

  private halt(h: Held, why: Stop): void {
    if (!h.stop || (why === 'lease_lost' && h.stop !== 'lease_lost')) h.stop = why; // lost wins
    h.abort.abort(why);
  }

  async run(): Promise<number> {
    const { o, w } = this;
    await retrying(() => this.rpc('register_worker', { worker_id: w, host: hostname(), pid: process.pid,
      lanes: o.lanes, version: 'examples/typescript', concurrency: o.concurrency, metadata: { handlers: Object.keys(o.handlers) } }));
    let beating = true;
    const heart = this.heartbeats(() => beating);
    for (let backoff = 500; !this.stopping;) {
      if (this.claimUnheard && !(await this.adoptUnheard())) { await this.loop.wait(backoff); continue; }
      const free = o.concurrency - this.held.size;
      let got: Run[] = [];
      if (free > 0) {
        try {
          got = await this.rpc<Run[]>('claim_runs',
            { worker_id: w, lanes: o.lanes, max_runs: free, lease_seconds: o.leaseSeconds ?? null });
          backoff = 500;
        } catch (e) {
          this.claimUnheard ||= e instanceof PulserError && e.transient;
          this.say(`claim failed (${String(e)}); trying again in ${backoff} ms`);
          await this.loop.wait(backoff);
          backoff = Math.min(backoff * 2, 5000);
          continue;
        }
        got.forEach((run) => this.start(run));
        if (o.burst && got.length === 0 && this.held.size === 0) break;
      }
      if (got.length < free || free === 0) await this.loop.wait(o.pollSeconds * 1000);
    }
    if (this.claimUnheard) await this.adoptUnheard(); // stopping: releases what it took
    await this.drain();
    beating = false;
    this.beat.ring();
    await heart;
    await this.rpc('deregister_worker', { worker_id: w, status: 'stopped' }).catch(() => undefined);
    return this.forced ? 130 : 0;
  }

  /** After a claim that failed in transit: adopt (or, when stopping or full, release) its runs. */
  private async adoptUnheard(): Promise<boolean> {
    const known = new Set(this.held.keys()); // read before asking: a run ending meanwhile is no longer running
    let runs: Run[];
    try { runs = await this.rpc<Run[]>('list_held_runs', { worker_id: this.w }); } catch { return false; }
    this.claimUnheard = false;
    for (const run of runs.filter((r) => !known.has(r.id) && !this.abandoned.has(`${r.id}/${r.attempt}`))) {
      if (!this.stopping && this.held.size < this.o.concurrency) this.start(run);
      else await this.release({ run, abort: new AbortController() }, 'claimed by a call whose reply was lost');
    }
    return true;
  }

  private start(run: Run): void {
    const h: Held = { run, abort: new AbortController() };
    if (run.cancel_requested_at) this.halt(h, 'cancel');
    this.held.set(run.id, h);
    this.beat.ring(); // re-plan the next beat for this lease
    void this.execute(h).catch((e) => this.say(`run ${run.id}: ${String(e)}`))
      .finally(() => { this.held.delete(run.id); this.loop.ring(); });
  }

  private async execute(h: Held): Promise<void> {
    const { run } = h;
    const timeout = await this.timeoutOf(run.template);
    const timer = timeout ? setTimeout(() => this.halt(h, 'timeout'), timeout * 1000) : undefined;
    const started = Date.now();
    let out: Outcome;
    try {
      const handler = this.o.handlers[run.template];
      if (!handler) throw Object.assign(new Error(`no handler for ${run.template}`), { errorClass: 'unknown_handler' });
      out = { status: 'succeeded', result: await handler(runContext(this.client, run, this.w, h.abort.signal)) };
    } catch (e) {
      const err: Failure = e instanceof Error ? e : new Error(String(e));
      out = h.stop === 'cancel' ? { status: 'cancelled', error: `cancelled: ${await this.cancelReason(run)}`, error_class: 'cancelled' }
        : h.stop === 'timeout' ? { status: 'failed', error: `run timed out after ${timeout}s`, error_class: 'timeout' }
        : { status: 'failed', error: err.message, error_class: err.errorClass ?? 'handler_error', retryable: err.retryable ?? true };
    } finally { clearTimeout(timer); }
    // The run's result has the Python worker's shape: a summary of its steps, and the value.
    const step = { name: run.template, kind: 'typescript', status: out.status, exit_code: null,
      error_class: out.error_class ?? null, duration_seconds: (Date.now() - started) / 1000 };
    out.result = { steps: [step], result: out.result ?? null };
    if (h.stop === 'lease_lost') return this.lost(h);
    if (h.settledBy === 'shutdown') return; // the forced shutdown released it already
    h.settledBy = 'run';
    if (h.stop === 'shutdown' && out.status !== 'succeeded') return this.release(h, 'worker shutting down');
    await this.complete(h, out);
  }

  private async complete(h: Held, out: Outcome): Promise<void> {
    const send = (o: Outcome): Promise<unknown> => retrying( // a repeated completion is accepted
      () => this.rpc('complete_run', { run_id: h.run.id, worker_id: this.w, attempt: h.run.attempt, ...o }),
      { attempts: Infinity, giveUp: () => this.forced });
    try {
      await send(out);
    } catch (e) {
      if (e instanceof PulserError && e.code === 'PO410') return this.lost(h);
      if (!(e instanceof PulserError && /^(22|PO400)/.test(e.code) && out.status === 'succeeded')) return this.abandon(h, e);
      await send({ status: 'failed', error: `could not store the result: ${e.message}`, // refused
        error_class: 'invalid_result', retryable: false }).catch((e2: unknown) => this.abandon(h, e2));
    }
  }

  private async release(h: Held, reason: string): Promise<void> {
    try {
      await this.rpc('release_run', { run_id: h.run.id, worker_id: this.w, attempt: h.run.attempt, reason });
    } catch (e) {
      if (e instanceof PulserError && e.code === 'PO410') return this.lost(h);
      this.abandon(h, e);
    }
  }

  private abandon(h: Held, e: unknown): void {
    this.abandoned.add(`${h.run.id}/${h.run.attempt}`);
    this.say(`run ${h.run.id} not settled (${String(e)}); the sweeper will requeue it`);
  }

  /** Someone else owns the run now: say so in its log and leave it alone. */
  private async lost(h: Held): Promise<void> {
    const { id: run_id, attempt } = h.run;
    this.say(`run ${run_id} attempt ${attempt}: lease lost, not completing it`);
    await this.rpc('append_run_events', { events: [{ run_id, attempt, worker_id: this.w, kind: 'lease_lost',
      level: 'warn', message: `worker ${this.w} lost its lease on attempt ${attempt} and left the run` }] })
      .catch(() => undefined);
  }

  private async cancelReason(run: Run): Promise<string> {
    const now = await this.rpc<Run>('get_run', { run_id: run.id }).catch(() => run);
    return now.cancel_reason ?? 'cancel requested';
  }

  private async timeoutOf(template: string): Promise<number | null> {
    if (!this.timeouts.has(template)) {
      const t = await this.rpc<{ timeout_seconds: number | null }>('get_template', { name: template })
        .catch(() => null);
      if (t) this.timeouts.set(template, t.timeout_seconds);
    }
    return this.timeouts.get(template) ?? null;
  }

  /** One heartbeat_runs for all held runs every lease/3 (0.5 s after a failed one). */
  private async heartbeats(going: () => boolean): Promise<void> {
    for (let last = 0, ok = true; going();) {
      const leases = [...this.held.values()].map((h) => h.run.lease_seconds).concat(this.o.leaseSeconds ?? []);
      const every = leases.length ? (Math.min(...leases) * 1000) / 3 : 10_000;
      const due = last + (ok ? every : Math.min(500, every));
      if (Date.now() < due) { await this.beat.wait(due - Date.now()); continue; }
      // Runs that are stopping keep their lease until they are completed or released.
      const live = [...this.held.values()].filter((h) => h.stop !== 'lease_lost');
      try {
        const beats = await this.rpc<Beat[]>('heartbeat_runs',
          { worker_id: this.w, runs: live.map((h) => ({ run_id: h.run.id, attempt: h.run.attempt })) });
        for (const b of beats) {
          const h = this.held.get(b.run_id);
          if (h?.run.attempt === b.attempt && !b.ok) this.halt(h, 'lease_lost');
          else if (h?.run.attempt === b.attempt && b.cancel_requested) this.halt(h, 'cancel');
        }
        ok = true;
      } catch (e) { (ok = false), this.say(`heartbeat failed (${String(e)})`); }
      last = Date.now();
    }
  }

  private async drain(): Promise<void> {
    if (!this.held.size) return;
    await this.rpc('deregister_worker', { worker_id: this.w, status: 'draining' }).catch(() => undefined);
    const until = (ms: number): (() => boolean) => { const end = Date.now() + ms; return () => Date.now() < end; };
    for (const grace = until(this.o.graceSeconds * 1000); this.held.size && !this.forced && grace();) await this.loop.wait(100);
    this.held.forEach((h) => this.halt(h, 'shutdown'));
    for (const wait = until(3000); this.held.size && wait();) await this.loop.wait(50);
    for (const h of this.held.values()) { // a handler that ignores its signal: release from here
      if (!h.settledBy) (h.settledBy = 'shutdown'), await this.release(h, 'worker stopping; the handler did not stop');
    }
  }
}

async function main(env = process.env): Promise<void> {
  const handlers = env.PULSER_HANDLERS ? pathToFileURL(env.PULSER_HANDLERS).href : './handlers.js';
  const worker = new Worker(connect(), {
    workerId: env.PULSER_OPS_WORKER_ID ?? `${hostname()}-${process.pid}-ts`,
    lanes: (env.PULSER_OPS_LANES ?? 'A,B,C,D').split(',').map((l) => l.trim().toUpperCase()),
    concurrency: Number(env.PULSER_OPS_CONCURRENCY ?? 1),
    leaseSeconds: env.PULSER_OPS_LEASE_SECONDS ? Number(env.PULSER_OPS_LEASE_SECONDS) : undefined,
    pollSeconds: Number(env.PULSER_OPS_POLL_SECONDS ?? 2),
    graceSeconds: Number(env.PULSER_OPS_SHUTDOWN_GRACE_SECONDS ?? 30),
    burst: env.PULSER_OPS_BURST === '1',
    handlers: ((await import(handlers)) as { handlers: Record<string, Handler> }).handlers,
  });
  process.on('SIGTERM', () => worker.stop()).on('SIGINT', () => worker.stop());
  process.exit(await worker.run());
}

if (isMain(import.meta.url)) main().catch((e: unknown) => (console.error(`worker: ${String(e)}`), process.exit(1)));
