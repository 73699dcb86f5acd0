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
