// Node's globals that plugins written for the platform's Node backend use:
// `console` (to the plugin's log, like @ones-op/node-logger), timers, and
// the small web-platform globals Node has: structuredClone, TextEncoder/
// TextDecoder (UTF-8), URLSearchParams, URL, crypto (getRandomValues,
// randomUUID), the common parts of Buffer, and fetch (with Headers and
// Response) to the hosts the gateway allows, as fetchHttp.
// Evaluated once per runtime before the plugin's code; not importable.
//
// Timers sleep on the host (`sleep`): a promise settled when its time comes
// while the call that set it runs; what is pending when the call returns is
// dropped. A handle has Node's `ref`/`unref`/`hasRef` and turns into a
// number; an exception in a callback goes to the plugin's log.
import { sleep, timerError, generation, randomBytes, webGlobals, url, fetch, fromBase64 } from 'interpose:host';
import { Logger } from '@ones-op/node-logger';

globalThis.console = Object.freeze({
  log: Logger.info,
  info: Logger.info,
  debug: Logger.debug,
  trace: Logger.debug,
  warn: Logger.warn,
  error: Logger.error,
  dir: (v) => Logger.info(v),
});

let next = 0;
// Timers of the call in progress; those of earlier calls were dropped by
// the host when their call ended, so a new generation starts afresh.
const live = new Set();
let liveGeneration = -1;
class Timeout {
  constructor(id) { this.id = id; }
  ref() { return this; }
  unref() { return this; }
  hasRef() { return true; }
  refresh() { return this; }
  [Symbol.toPrimitive]() { return this.id; }
}
const run = (cb, args) => {
  try { cb(...args); } catch (e) { timerError(String(e), String((e && e.stack) || '')); }
};
const check = (cb, name) => {
  if (typeof cb !== 'function') throw new TypeError(`${name}: the callback must be a function`);
};
const start = (id) => {
  const g = generation();
  if (g !== liveGeneration) { live.clear(); liveGeneration = g; }
  live.add(id);
  return new Timeout(id);
};
const clear = (t) => { live.delete(t instanceof Timeout ? t.id : Number(t)); };
globalThis.setTimeout = (cb, ms, ...args) => {
  check(cb, 'setTimeout');
  const id = ++next;
  sleep(Number(ms) || 0).then(() => { if (live.delete(id)) run(cb, args); });
  return start(id);
};
globalThis.setInterval = (cb, ms, ...args) => {
  check(cb, 'setInterval');
  const id = ++next;
  const every = Math.max(1, Number(ms) || 0);
  const tick = () => sleep(every).then(() => { if (live.has(id)) { run(cb, args); tick(); } });
  tick();
  return start(id);
};
globalThis.setImmediate = (cb, ...args) => globalThis.setTimeout(cb, 0, ...args);
globalThis.clearTimeout = clear;
globalThis.clearInterval = clear;
globalThis.clearImmediate = clear;

// Node's name for the global object.
globalThis.global = globalThis;

// Node's `process`, as far as a plugin on ONES's Node host reads it:
// `process.env` (the plugin's own: NODE_ENV=production and what it sets;
// nothing of the gateway's environment), version, platform, `nextTick`,
// `hrtime`, `cwd`, `uptime`, `memoryUsage`; listeners are accepted and never
// called; `exit`/`kill`/`abort` throw, as VM2 strips them on ONES.
const started = Date.now();
const refuse = (what) => () => { throw new Error(`process.${what}() is not available to plugins`); };
const hrtime = (prev) => {
  const ms = Date.now();
  const t = [Math.floor(ms / 1000), (ms % 1000) * 1e6];
  if (!Array.isArray(prev)) return t;
  let s = t[0] - prev[0], ns = t[1] - prev[1];
  if (ns < 0) { s -= 1; ns += 1e9; }
  return [s, ns];
};
hrtime.bigint = () => BigInt(Date.now()) * 1000000n;
const processObject = {
  env: { NODE_ENV: 'production' },
  argv: ['node'], execArgv: [], argv0: 'node', execPath: '/usr/local/bin/node', title: 'node',
  version: 'v16.13.1', versions: Object.freeze({ node: '16.13.1' }), release: Object.freeze({ name: 'node' }),
  platform: 'linux', arch: 'x64', pid: 1, ppid: 0,
  cwd: () => '/', uptime: () => (Date.now() - started) / 1000, hrtime,
  memoryUsage: () => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }),
  nextTick: (cb, ...args) => { Promise.resolve().then(() => cb(...args)); },
  emitWarning: (w) => Logger.warn(String(w && w.message ? w.message : w)),
  exit: refuse('exit'), kill: refuse('kill'), abort: refuse('abort'), chdir: refuse('chdir'),
};
for (const m of ['on', 'once', 'off', 'addListener', 'removeListener', 'removeAllListeners', 'prependListener']) {
  processObject[m] = () => processObject;
}
processObject.listeners = () => [];
processObject.emit = () => false;
globalThis.process = Object.freeze(processObject);

// The web-platform globals are built on first use (most plugins use none,
// and every runtime would otherwise compile them): `web.js`, evaluated by
// the host when one of them is first read; assigning one replaces it.
let web;
for (const name of ['structuredClone', 'TextEncoder', 'TextDecoder', 'URLSearchParams', 'URL', 'crypto', 'Buffer', 'fetch', 'Headers', 'Response']) {
  const define = (value) => Object.defineProperty(globalThis, name, { value, writable: true, configurable: true });
  Object.defineProperty(globalThis, name, {
    configurable: true,
    get() {
      web ??= webGlobals()({ randomBytes, url, fetch, fromBase64 });
      define(web[name]);
      return web[name];
    },
    set: define,
  });
}
