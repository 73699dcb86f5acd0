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

// OPFetch({ path, method, headers, body, root, teamUUID, scope })
export async function OPFetch(options) {
  return call(options);
}

export default { OPFetch };
