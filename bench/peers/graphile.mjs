// graphile-worker peer harness for the dtp-bench `peers` scenario.
//
// Run with the Node 22 binary installed by this package:
//   bench/peers/node_modules/.bin/node bench/peers/graphile.mjs <command> [flags]
//
// Commands (all take --database-url postgres://...):
//   migrate                                     -> {"ok":true}
//   enqueue --jobs N --batch B                  -> {"jobs":N,"seconds":S}
//   work [--concurrency C] [--tuned]            -> {"ok":true} after SIGTERM/SIGINT
//   pickup --jobs N --gap-ms G --concurrency C [--warmup W]
//                                               -> {"latenciesMs":[...]}
//
// stdout carries exactly one JSON line; every log line (ours and graphile's)
// goes to stderr. Exit 0 on success, 1 on error.

import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { EventEmitter } from "node:events";

// Like graphile's perfTest/run.js: no per-job "Completed task" info line. The
// flag is read when graphile-worker's modules load, hence the dynamic import.
process.env.NO_LOG_SUCCESS ??= "1";
const { Logger, makeWorkerUtils, run, runMigrations } = await import("graphile-worker");

const TASK = "noop";

// ---------------------------------------------------------------- helpers

function log(...args) {
  console.error("[graphile.mjs]", ...args);
}

// Resolves once the line has been handed to the OS, so process.exit can follow.
function emit(obj) {
  return new Promise((resolve, reject) => {
    process.stdout.write(JSON.stringify(obj) + "\n", (err) => (err ? reject(err) : resolve()));
  });
}

// graphile's default logger writes info to stdout; route everything to stderr.
// Debug lines only with GRAPHILE_LOGGER_DEBUG set (graphile's own convention).
const stderrLogger = new Logger((scope) => (level, message) => {
  if (level === "debug" && !process.env.GRAPHILE_LOGGER_DEBUG) return;
  const label = scope.label || "core";
  const worker = scope.workerId ? `(${scope.workerId})` : "";
  process.stderr.write(`[graphile ${label}${worker}] ${level.toUpperCase()}: ${message}\n`);
});

function parseArgs(argv) {
  const [command, ...rest] = argv;
  const flags = {};
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument: ${arg}`);
    const eq = arg.indexOf("=");
    if (eq !== -1) {
      flags[arg.slice(2, eq)] = arg.slice(eq + 1);
    } else if (arg === "--tuned") {
      flags.tuned = true;
    } else {
      const value = rest[++i];
      if (value === undefined) throw new Error(`missing value for ${arg}`);
      flags[arg.slice(2)] = value;
    }
  }
  return { command, flags };
}

function requireString(flags, name) {
  const v = flags[name];
  if (typeof v !== "string" || v === "") throw new Error(`--${name} is required`);
  return v;
}

function intFlag(flags, name, def) {
  const v = flags[name];
  if (v === undefined) {
    if (def === undefined) throw new Error(`--${name} is required`);
    return def;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${v}`);
  return n;
}

// Untuned: graphile defaults except `concurrency` and a pool with headroom
// (graphile's default maxPoolSize is 10; the LISTEN connection holds one).
function untunedOptions(connectionString, concurrency) {
  return {
    connectionString,
    concurrency,
    maxPoolSize: Math.max(10, concurrency + 4),
    logger: stderrLogger,
    noHandleSignals: true,
    parsedCronItems: [], // no cron; stops graphile looking for ./crontab
  };
}

// Tuned: graphile-worker's documented high-throughput configuration, see
// website/docs/performance.md ("With batching") and perfTest/graphile.config.js
// in graphile/worker: concurrentJobs 24, maxPoolSize concurrentJobs + 1,
// localQueue size 500 (refetchDelay 10 ms as in perfTest), completeJobBatchDelay 0,
// failJobBatchDelay 0, gracefulShutdownAbortTimeout 2500.
function tunedOptions(connectionString, concurrency) {
  return {
    connectionString,
    logger: stderrLogger,
    noHandleSignals: true,
    parsedCronItems: [],
    preset: {
      worker: {
        concurrentJobs: concurrency,
        maxPoolSize: concurrency + 1,
        localQueue: { size: 500, refetchDelay: { durationMs: 10 } },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
        gracefulShutdownAbortTimeout: 2500,
      },
    },
  };
}

// Resolves on graphile's "pool:listen:success" event (the LISTEN connection is up).
function listenPromise(events, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`worker did not connect its LISTEN client within ${timeoutMs} ms`)),
      timeoutMs,
    );
    events.once("pool:listen:success", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// ---------------------------------------------------------------- commands

async function cmdMigrate(flags) {
  const connectionString = requireString(flags, "database-url");
  await runMigrations({ connectionString, logger: stderrLogger });
  return { ok: true };
}

async function cmdEnqueue(flags) {
  const connectionString = requireString(flags, "database-url");
  const jobs = intFlag(flags, "jobs");
  const batch = intFlag(flags, "batch");
  if (batch < 1) throw new Error("--batch must be >= 1");

  const batches = [];
  for (let start = 0; start < jobs; start += batch) {
    const specs = [];
    for (let i = start; i < Math.min(start + batch, jobs); i++) {
      specs.push({ identifier: TASK, payload: { n: i } });
    }
    batches.push(specs);
  }

  const utils = await makeWorkerUtils({ connectionString, logger: stderrLogger });
  try {
    const t0 = performance.now();
    for (const specs of batches) {
      await utils.addJobs(specs);
    }
    const seconds = (performance.now() - t0) / 1000;
    return { jobs, seconds };
  } finally {
    await utils.release();
  }
}

async function cmdWork(flags) {
  const connectionString = requireString(flags, "database-url");
  const tuned = flags.tuned === true;
  const concurrency = intFlag(flags, "concurrency", tuned ? 24 : undefined);
  if (concurrency < 1) throw new Error("--concurrency must be >= 1");

  let stopRequested = null;
  const stopSignal = new Promise((resolve) => {
    stopRequested = resolve;
  });
  for (const sig of ["SIGTERM", "SIGINT"]) {
    process.once(sig, () => {
      log(`received ${sig}, stopping`);
      stopRequested();
    });
  }

  const base = tuned ? tunedOptions(connectionString, concurrency) : untunedOptions(connectionString, concurrency);
  const runner = await run({ ...base, taskList: { [TASK]: async () => {} } });
  log(`worker running (concurrency ${concurrency}, ${tuned ? "tuned" : "untuned"})`);
  console.error("ready");

  // Either a signal arrives, or the runner dies on its own (an error).
  const died = runner.promise.then(
    () => {
      throw new Error("worker stopped unexpectedly");
    },
    (e) => {
      throw e;
    },
  );
  await Promise.race([stopSignal, died]);
  // Stopping settles the runner's promise, which `died` turns into an error: expected now.
  died.catch(() => {});
  await runner.stop();
  await runner.promise;
  return { ok: true };
}

async function cmdPickup(flags) {
  const connectionString = requireString(flags, "database-url");
  const jobs = intFlag(flags, "jobs");
  const gapMs = intFlag(flags, "gap-ms");
  const concurrency = intFlag(flags, "concurrency");
  const warmup = intFlag(flags, "warmup", 0);
  const timeoutMs = intFlag(flags, "timeout-ms", 60000);
  if (concurrency < 1) throw new Error("--concurrency must be >= 1");

  const sent = new Array(jobs).fill(undefined);
  const started = new Array(jobs).fill(undefined);
  let startedCount = 0;
  let warmupSeen = 0;
  let onProgress = () => {};

  const taskList = {
    [TASK]: async (payload) => {
      const now = performance.now(); // first thing the handler does
      const n = payload.n;
      if (n < 0) {
        warmupSeen++;
      } else if (started[n] === undefined) {
        started[n] = now;
        startedCount++;
      }
      onProgress();
    },
  };

  const waitFor = (pred, what) =>
    new Promise((resolve, reject) => {
      if (pred()) return resolve();
      const timer = setTimeout(() => {
        onProgress = () => {};
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      onProgress = () => {
        if (pred()) {
          clearTimeout(timer);
          onProgress = () => {};
          resolve();
        }
      };
    });

  const events = new EventEmitter();
  const listening = listenPromise(events, timeoutMs);
  const runner = await run({ ...untunedOptions(connectionString, concurrency), events, taskList });
  const utils = await makeWorkerUtils({ connectionString, logger: stderrLogger });
  try {
    await listening;
    await sleep(500); // LISTEN is issued right after the event; let it settle
    console.error("ready");

    if (warmup > 0) {
      for (let i = 1; i <= warmup; i++) {
        await utils.addJob(TASK, { n: -i });
        await sleep(gapMs);
      }
      await waitFor(() => warmupSeen >= warmup, `${warmup} warm-up jobs`);
      await sleep(500);
    }

    for (let i = 0; i < jobs; i++) {
      sent[i] = performance.now();
      await utils.addJob(TASK, { n: i });
      if (gapMs > 0) await sleep(gapMs);
    }
    await waitFor(() => startedCount >= jobs, `${jobs} handlers (saw ${startedCount})`);
  } finally {
    await utils.release();
    await runner.stop();
    await runner.promise.catch((e) => log("runner error on stop:", e));
  }

  const latenciesMs = sent.map((t0, i) => Math.round((started[i] - t0) * 1000) / 1000);
  return { latenciesMs };
}

// ---------------------------------------------------------------- main

const COMMANDS = { migrate: cmdMigrate, enqueue: cmdEnqueue, work: cmdWork, pickup: cmdPickup };

async function main() {
  const { command, flags } = parseArgs(process.argv.slice(2));
  const fn = COMMANDS[command];
  if (!fn) throw new Error(`unknown command ${JSON.stringify(command)}; expected one of ${Object.keys(COMMANDS).join(", ")}`);
  const result = await fn(flags);
  await emit(result);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
  },
);
