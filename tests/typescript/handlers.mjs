// Handlers the TypeScript worker loads in the tests (PULSER_HANDLERS), by template name.
// `rec` writes the same line per execution as the Python `record` handler
// (tests/worker/handlers.py), so a fleet of both can be counted from one directory.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

const sleep = (ms, signal) =>
  new Promise((ok, bad) => {
    const timer = setTimeout(ok, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); bad(signal.reason); }, { once: true });
  });

export const handlers = {
  rec: async ({ run, workerId, signal }) => {
    const started = Date.now() / 1000;
    const hold = Number(run.params.hold ?? 0);
    if (hold) await sleep(hold * 1000, signal);
    const ended = Date.now() / 1000;
    const line = `${run.attempt} ${workerId} ${started} ${ended}\n`;
    appendFileSync(join(process.env.PULSER_TEST_EXEC_DIR, run.id), line);
    if (run.params.fail_first && run.attempt === 1) throw new Error('the first attempt of this run fails on purpose');
    return { n: run.params.n ?? null };
  },

  echo: async ({ run, log, saveArtifact }) => {
    await log('echoing', { keys: Object.keys(run.params).sort() });
    await saveArtifact('echo.json', JSON.stringify({ ok: true }), 'application/json');
    await saveArtifact('blob.bin', new Uint8Array([0, 1, 2, 255]), 'application/octet-stream');
    return { params: run.params, by: 'typescript' };
  },

  wait: async ({ run, signal, log }) => {
    await log('waiting', { seconds: run.params.seconds });
    await sleep(Number(run.params.seconds ?? 60) * 1000, signal);
    return 'rested';
  },

  // Blocks the event loop (a handler that breaks the rules): no heartbeat can go out meanwhile.
  hog: async ({ run }) => {
    const until = Date.now() + Number(run.params.seconds) * 1000;
    while (Date.now() < until) { /* spin */ }
    return 'hogged';
  },

  refuse: async () => {
    const e = new Error('bad input, retrying cannot help');
    e.errorClass = 'bad_input';
    e.retryable = false; // what worker.ts's NonRetryable sets
    throw e;
  },
};
