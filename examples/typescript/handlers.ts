/**
 * Example handlers for worker.ts, by template name. A handler gets the run (params, attempt),
 * an AbortSignal that fires on cancel, lost lease, shutdown or timeout, and `log`.
 */
import type { Handler } from './context.js';
import { sleep } from './pulser.js';

export const handlers: Record<string, Handler> = {
  noop: async () => null,

  hello: async ({ run, log }) => {
    const name = String(run.params.name ?? 'world');
    await log(`hello, ${name}`);
    return { greeting: `hello, ${name}` };
  },

  /** Waits `seconds` in small steps, stopping as soon as the run must stop. */
  wait: async ({ run, signal }) => {
    const until = Date.now() + Number(run.params.seconds ?? 1) * 1000;
    while (Date.now() < until) {
      signal.throwIfAborted();
      await sleep(Math.min(100, until - Date.now()));
    }
    return { waited: run.params.seconds ?? 1 };
  },
};
