// Node's `url`: URL, URLSearchParams (the web globals), and the legacy parse/format/resolve.
import { parse as parseQuery, stringify as stringifyQuery } from 'querystring';

export const URL = globalThis.URL;
export const URLSearchParams = globalThis.URLSearchParams;
export function parse(s, parseQueryString) {
  const m = /^(?:([a-z][a-z0-9+.-]*:))?(?:\/\/(?:([^@/?#]*)@)?([^/?#:]*)(?::(\d*))?)?([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(String(s)) ?? [];
  const [, protocol = null, auth = null, hostname = null, port = null, pathname = '', search = null, hash = null] = m;
  const host = hostname === null ? null : port ? `${hostname}:${port}` : hostname;
  const query = search === null ? (parseQueryString ? {} : null) : parseQueryString ? parseQuery(search.slice(1)) : search.slice(1);
  return {
    protocol: protocol && protocol.toLowerCase(), slashes: /^[a-z][a-z0-9+.-]*:\/\//i.test(s) || null, auth, host: host && host.toLowerCase(), port,
    hostname: hostname && hostname.toLowerCase(), hash, search, query, pathname: pathname || (host ? '/' : null),
    path: (pathname || (host ? '/' : '')) + (search ?? '') || null, href: String(s),
  };
}
export function format(o) {
  if (typeof o === 'string') return o;
  if (o instanceof URL) return o.href;
  const protocol = o.protocol ? (o.protocol.endsWith(':') ? o.protocol : `${o.protocol}:`) : '';
  const host = o.host ?? (o.hostname ? `${o.hostname}${o.port ? `:${o.port}` : ''}` : '');
  const search = o.search ?? (o.query && typeof o.query === 'object' ? `?${stringifyQuery(o.query)}` : o.query ? `?${o.query}` : '');
  return `${protocol}${host || o.slashes ? '//' : ''}${o.auth ? `${o.auth}@` : ''}${host}${o.pathname ?? ''}${search === '?' ? '' : search}${o.hash ?? ''}`;
}
export const resolve = (from, to) => new URL(to, new URL(from, 'resolve://')).href.replace(/^resolve:\/\/\/?/, from.startsWith('/') ? '/' : '');
export function fileURLToPath() { throw new Error("url.fileURLToPath: plugins have no file system paths on interpose (use @ones-op/node-fs)"); }
export function pathToFileURL() { throw new Error("url.pathToFileURL: plugins have no file system paths on interpose (use @ones-op/node-fs)"); }
export default { URL, URLSearchParams, parse, format, resolve, fileURLToPath, pathToFileURL };
