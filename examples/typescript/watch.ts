/**
 * Follow one run live: its status and its log, through Realtime, losing nothing.
 *
 *   node build/watch.js <run id>
 *
 * Prints one JSON line per change ({"type":"run",...} or {"type":"event",...}) and exits when
 * the run has ended and its last event was printed. Realtime is only a hint: sockets drop,
 * changes sent while a client was away are gone, and a channel is live a little after its join
 * is answered. So every (re)subscribe, every "Subscribed to PostgreSQL" and a slow timer catch
 * up from the database, and each change is checked against what was already seen:
 *
 * - the run: `version` goes up by one on every update, so an older or repeated state is dropped;
 * - events: `seq` is per run, gap-free and in commit order, so `list_run_events(after_seq)`
 *   fills any gap and the log is printed exactly once, in order.
 */
import type { RealtimePostgresChangesPayload, SupabaseClient } from '@supabase/supabase-js';
import { call, connect, isMain, PulserError, TERMINAL, type Run, type RunEvent } from './pulser.js';

export type Change = { type: 'run'; run: Run } | { type: 'event'; event: RunEvent };

export interface Watch {
  /** Resolves with the run's final state once it ended and every event was delivered. */
  done: Promise<Run>;
  stop(): Promise<void>;
}

const PAGE = 1000;

export function watchRun(
  client: SupabaseClient,
  runId: string,
  onChange: (change: Change) => void,
  { pollSeconds = 15 } = {},
): Watch {
  let version = 0;
  let lastSeq = 0;
  let last: Run | undefined;
  let finish!: (run: Run) => void;
  let fail!: (e: unknown) => void;
  const done = new Promise<Run>((ok, bad) => ((finish = ok), (fail = bad)));

  // One thing at a time, in arrival order: a catch-up and a pushed change never interleave.
  let queue = Promise.resolve();
  const serial = (job: () => Promise<void>): void => {
    queue = queue.then(job).catch((e: unknown) => {
      // The database away for a moment: the next trigger (or the timer) catches up.
      if (e instanceof PulserError && e.transient) console.error(`watch: ${e.message} (will retry)`);
      else fail(e);
    });
  };

  const seeRun = (run: Run): void => {
    if (run.version <= version) return; // already seen (a catch-up repeats what was pushed)
    version = run.version;
    last = run;
    onChange({ type: 'run', run });
  };
  const seeEvent = (event: RunEvent): void => {
    lastSeq = event.seq;
    onChange({ type: 'event', event });
  };
  const catchUpEvents = async (): Promise<void> => {
    for (;;) {
      const page = await call<RunEvent[]>(client, 'list_run_events', {
        run_id: runId,
        after_seq: lastSeq,
        max_rows: PAGE,
      });
      page.forEach(seeEvent);
      if (page.length < PAGE) return;
    }
  };
  const catchUp = async (): Promise<void> => {
    seeRun(await call<Run>(client, 'get_run', { run_id: runId }));
    await catchUpEvents();
    // The terminal event commits with the terminal status: both are in by now.
    if (last && TERMINAL.has(last.status)) finish(last);
  };

  const channel = client
    .channel(`pulser-run-${runId}`)
    .on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'runs', filter: `id=eq.${runId}` },
      (msg: RealtimePostgresChangesPayload<Record<string, unknown>>) =>
        serial(async () => {
          // A payload with errors (e.g. "413: Payload Too Large") carries no usable row: reread.
          if (msg.errors?.length) return catchUp();
          seeRun(msg.new as unknown as Run);
          if (last && TERMINAL.has(last.status)) await catchUp();
        }))
    .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'run_events', filter: `run_id=eq.${runId}` },
      (msg: RealtimePostgresChangesPayload<Record<string, unknown>>) =>
        serial(async () => {
          const event = msg.new as unknown as RunEvent;
          if (msg.errors?.length || event.seq > lastSeq + 1) return catchUpEvents(); // a gap
          if (event.seq === lastSeq + 1) seeEvent(event);
        }))
    // The server says when the channel's change feed is live: anything before that is read.
    .on('system', {}, (msg: { status?: string }) => {
      if (msg.status === 'ok') serial(catchUp);
    });

  const ready = client.realtime.setAuth().then(() =>
    channel.subscribe((status, err) => {
      if (status === 'SUBSCRIBED') serial(catchUp); // first join and every rejoin
      else if (err) console.error(`watch: ${status}: ${err.message} (reconnecting)`);
    }),
  );
  const timer = setInterval(() => serial(catchUp), pollSeconds * 1000);
  const stop = async (): Promise<void> => {
    clearInterval(timer);
    await ready;
    await client.removeChannel(channel);
  };
  done.then(stop, stop).catch(() => undefined);
  return { done, stop };
}

async function main(): Promise<void> {
  const runId = process.argv[2];
  if (!runId) throw new Error('usage: watch <run id>');
  const client = connect();
  const pollSeconds = Number(process.env.PULSER_WATCH_POLL_SECONDS ?? 15);
  const watch = watchRun(client, runId, (change) => {
    const line =
      change.type === 'run'
        ? { type: 'run', status: change.run.status, attempt: change.run.attempt, version: change.run.version }
        : { type: 'event', seq: change.event.seq, kind: change.event.kind, message: change.event.message };
    console.log(JSON.stringify(line));
  }, { pollSeconds });
  const stop = (): void => void watch.stop().then(() => process.exit(130));
  process.once('SIGINT', stop).once('SIGTERM', stop);
  const run = await watch.done;
  process.exit(run.status === 'succeeded' ? 0 : 1);
}

if (isMain(import.meta.url)) {
  main().catch((e: unknown) => {
    console.error(`watch: ${e instanceof PulserError ? `${e.code}: ${e.message}` : String(e)}`);
    process.exit(2);
  });
}
