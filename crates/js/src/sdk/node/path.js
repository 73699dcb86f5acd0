// Node's `path`, POSIX flavour (a plugin's paths are relative to its workspace).
function normalizeParts(parts, absolute) {
  const out = [];
  for (const p of parts) {
    if (!p || p === '.') continue;
    if (p === '..') { if (out.length && out[out.length - 1] !== '..') out.pop(); else if (!absolute) out.push('..'); }
    else out.push(p);
  }
  return out;
}
const check = (p, name = 'path') => { if (typeof p !== 'string') throw new TypeError(`The "${name}" argument must be of type string. Received ${typeof p}`); return p; };
export const sep = '/';
export const delimiter = ':';
export function normalize(p) {
  check(p);
  if (p === '') return '.';
  const absolute = p.startsWith('/');
  const trailing = p.endsWith('/');
  let r = normalizeParts(p.split('/'), absolute).join('/');
  if (!r && !absolute) r = '.';
  if (r && trailing) r += '/';
  return (absolute ? '/' : '') + r;
}
export const join = (...parts) => { parts.forEach((p) => check(p)); const j = parts.filter((p) => p !== '').join('/'); return j === '' ? '.' : normalize(j); };
export function resolve(...parts) {
  let r = '';
  for (let i = parts.length - 1; i >= 0 && !r.startsWith('/'); i--) { const p = check(parts[i]); if (p) r = r ? `${p}/${r}` : p; }
  if (!r.startsWith('/')) r = `/${r}`;
  const n = '/' + normalizeParts(r.split('/'), true).join('/');
  return n;
}
export const isAbsolute = (p) => check(p).startsWith('/');
export function dirname(p) {
  check(p);
  if (!p) return '.';
  const t = p.replace(/\/+$/, '') || '/';
  const i = t.lastIndexOf('/');
  if (i < 0) return '.';
  if (i === 0) return '/';
  return t.slice(0, i).replace(/\/+$/, '') || '/';
}
export function basename(p, ext) {
  check(p);
  const t = p.replace(/\/+$/, '');
  let b = t.slice(t.lastIndexOf('/') + 1);
  if (ext && b.endsWith(ext) && b !== ext) b = b.slice(0, -ext.length);
  return b;
}
export function extname(p) {
  const b = basename(p);
  const i = b.lastIndexOf('.');
  return i <= 0 ? '' : b.slice(i);
}
export function relative(from, to) {
  const f = resolve(from).split('/').filter(Boolean), t = resolve(to).split('/').filter(Boolean);
  let i = 0;
  while (i < f.length && i < t.length && f[i] === t[i]) i++;
  return [...Array(f.length - i).fill('..'), ...t.slice(i)].join('/');
}
export function parse(p) {
  const root = check(p).startsWith('/') ? '/' : '';
  const base = basename(p), ext = extname(p);
  let dir = dirname(p);
  if (dir === '.' && !p.includes('/')) dir = '';
  return { root, dir, base, ext, name: ext ? base.slice(0, -ext.length) : base };
}
export function format(o) {
  const dir = o.dir || o.root || '';
  const base = o.base || `${o.name || ''}${o.ext || ''}`;
  return dir ? (dir === o.root ? `${dir}${base}` : `${dir}/${base}`) : base;
}
export const toNamespacedPath = (p) => p;
const path = { sep, delimiter, normalize, join, resolve, isAbsolute, dirname, basename, extname, relative, parse, format, toNamespacedPath };
path.posix = path;
export const posix = path;
export default path;
