// @ones-op/node-logger: Logger.debug/info/warning/error(...args), as on the ONES
// platform (`warn` and `log` are kept as aliases). Lines go to the instance's log
// (admin API, `interpose plugin logs`) and to the gateway's own log, tagged with the
// plugin and request id. Arguments are joined by spaces: strings as they are, Errors
// with their stack, anything else as JSON (what JSON cannot show, as text).
import { log } from 'interpose:host';

function show(v) {
  if (typeof v === 'string') return v;
  if (v instanceof Error) {
    const head = `${v.name}: ${v.message}`;
    const extra = ['errcode', 'reason', 'statusCode'].filter((k) => v[k] !== undefined).map((k) => `${k}=${JSON.stringify(v[k])}`);
    const stack = v.stack ? `\n${v.stack}` : '';
    return extra.length ? `${head} (${extra.join(', ')})${stack}` : `${head}${stack}`;
  }
  if (typeof v === 'bigint') return `${v}n`;
  if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return String(v);
  try {
    const seen = new WeakSet();
    const s = JSON.stringify(v, (k, x) => {
      if (typeof x === 'bigint') return `${x}n`;
      if (x instanceof Error) return { name: x.name, message: x.message };
      if (x !== null && typeof x === 'object') {
        if (seen.has(x)) return '[Circular]';
        seen.add(x);
      }
      return x;
    });
    return s === undefined ? String(v) : s;
  } catch (_) {
    return String(v);
  }
}
const line = (args) => args.map(show).join(' ');

export const Logger = Object.freeze({
  debug: (...args) => log('debug', line(args)),
  info: (...args) => log('info', line(args)),
  warning: (...args) => log('warn', line(args)),
  error: (...args) => log('error', line(args)),
  warn: (...args) => log('warn', line(args)),
  log: (...args) => log('info', line(args)),
});
export default Logger;
