// @ones-op/fetch: OPFetch calls the standard system directly (never back
// through the hooks). `root: true` (the default) adds the gateway's own
// credentials for the scope; `root: false` sends only the headers given.
import { fetch as hostFetch } from 'interpose:host';
import { PluginError } from '@ones-op/node-error';

export class FetchError extends PluginError {
  constructor(errcode, reason) {
    super('error', errcode, reason, 502);
    this.name = 'FetchError';
  }
}

export async function call(options) {
  const r = await hostFetch(JSON.stringify(options ?? {}));
  if (!r.ok) throw new FetchError(r.error.errcode, r.error.reason);
  return r.response;
}

// A call to the standard system (OPFetch, fetchONES): it goes by `path`; a
// `url` that is a path (axios style) is taken as one, a full URL is refused.
export async function callSystem(name, options) {
  const o = { ...(options ?? {}) };
  if (o.path === undefined && typeof o.url === 'string') {
    if (!o.url.startsWith('/')) {
      throw new FetchError('InvalidParameter',
        `${name} calls the standard system and needs a path relative to a scope's API root (such as /team/T1/tasks), ` +
        `got url ${JSON.stringify(o.url)}; fetchHttp from @ones-op/node-fetch calls other hosts`);
    }
    o.path = o.url;
  }
  delete o.url;
  return call(o);
}

// OPFetch({ path, method, headers, body, root, teamUUID, scope })
export async function OPFetch(options) {
  return callSystem('OPFetch', options);
}

export default { OPFetch };
