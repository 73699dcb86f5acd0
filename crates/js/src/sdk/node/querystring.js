// Node's `querystring`.
export const escape = (s) => encodeURIComponent(s);
export function unescape(s) { try { return decodeURIComponent(s); } catch (_) { return s; } }
const str = (v) => (typeof v === 'string' ? v : typeof v === 'number' && isFinite(v) ? String(v) : typeof v === 'bigint' || typeof v === 'boolean' ? String(v) : '');
export function stringify(obj, sep = '&', eq = '=') {
  if (obj === null || typeof obj !== 'object') return '';
  return Object.keys(obj).map((k) => {
    const v = obj[k];
    const key = escape(str(k));
    return Array.isArray(v) ? v.map((x) => key + eq + escape(str(x))).join(sep) : key + eq + escape(str(v));
  }).filter(Boolean).join(sep);
}
export function parse(qs, sep = '&', eq = '=', options) {
  const out = Object.create(null);
  if (typeof qs !== 'string' || !qs) return out;
  const max = options?.maxKeys ?? 1000;
  let parts = qs.split(sep);
  if (max > 0) parts = parts.slice(0, max);
  for (const part of parts) {
    if (!part) continue;
    const i = part.indexOf(eq);
    const dec = (s) => unescape(s.replace(/\+/g, ' '));
    const k = dec(i >= 0 ? part.slice(0, i) : part), v = i >= 0 ? dec(part.slice(i + eq.length)) : '';
    if (k in out) out[k] = Array.isArray(out[k]) ? [...out[k], v] : [out[k], v];
    else out[k] = v;
  }
  return out;
}
export const decode = parse;
export const encode = stringify;
export default { escape, unescape, stringify, parse, decode, encode };
