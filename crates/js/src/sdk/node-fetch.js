// @ones-op/node-fetch: the legacy twin of @ones-op/fetch.
import { call, callSystem, FetchError } from '@ones-op/fetch';

// fetchONES({ path, method, headers, body, root })
export async function fetchONES(options) {
  return callSystem('fetchONES', options);
}

// fetchHttp(url, { method, headers, body }) or fetchHttp({ url, method, headers, body });
// only hosts listed in the gateway's [sandbox] http_allow are reachable.
export async function fetchHttp(url, options) {
  const o = typeof url === 'string' ? { ...(options ?? {}), url } : { ...(url ?? {}) };
  if (typeof o.url !== 'string') throw new FetchError('InvalidParameter', 'fetchHttp needs a url');
  return call(o);
}

export { FetchError };
export default { fetchONES, fetchHttp };
