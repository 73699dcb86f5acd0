// @ones-op/node-fetch: the legacy twin of @ones-op/fetch. Answers are
// {statusCode, headers, body}, header values as arrays (as ONES gives them).
import { call, FetchError } from '@ones-op/fetch';

const withArrays = (r) => {
  const headers = {};
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k] = String(v).split(/,\s*/);
  return { ...r, headers };
};

// fetchONES({ path, method, headers, body, root, teamUUID }): the standard system.
export async function fetchONES(options) {
  const o = { ...(options ?? {}) };
  if (o.path === undefined && typeof o.url === 'string') o.path = o.url;
  delete o.url;
  if (typeof o.path !== 'string' || !o.path.startsWith('/')) {
    throw new FetchError(`fetchONES needs a path relative to a scope's API root (such as /team/T1/tasks), got ${JSON.stringify(o.path)}; fetchHttp calls other hosts`, 'InvalidParameter', options);
  }
  return withArrays(await call(o));
}

// fetchHttp({ url, method, headers, body }) or fetchHttp(url, { … }): only hosts listed
// in the gateway's [sandbox] http_allow are reachable.
export async function fetchHttp(url, options) {
  const o = typeof url === 'string' ? { ...(options ?? {}), url } : { ...(url ?? {}) };
  if (typeof o.url !== 'string') throw new FetchError('fetchHttp needs a url', 'InvalidParameter', options);
  return withArrays(await call(o));
}

export { FetchError };
export default { fetchONES, fetchHttp };
