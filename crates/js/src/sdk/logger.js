// @ones-op/node-logger: lines go to the instance's log (admin API, `interpose plugin logs`)
// and to the gateway's own log, tagged with the plugin and request id.
import { log } from 'interpose:host';

function show(v) {
  if (typeof v === 'string') return v;
  if (v instanceof Error) return v.stack ? `${v.name}: ${v.message}\n${v.stack}` : String(v);
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s;
  } catch (_) {
    return String(v);
  }
}
const line = (args) => args.map(show).join(' ');

export const Logger = Object.freeze({
  debug: (...args) => log('debug', line(args)),
  info: (...args) => log('info', line(args)),
  log: (...args) => log('info', line(args)),
  warn: (...args) => log('warn', line(args)),
  error: (...args) => log('error', line(args)),
});
export default Logger;
