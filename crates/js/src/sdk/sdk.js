// @ones-op/sdk (also /node and /backend): `env` answers from the instance's place;
// entity storage (`storage.entity(name)`) is not provided by interpose yet: a
// plugin importing it loads, and each storage call rejects with an SDKError
// (501) that says so.
import { SDKError } from '@ones-op/node-error';

const notYet = (what) => async () => {
  throw new SDKError('error', 'StorageNotAvailable', 501, `${what}: entity storage (storage.entities) is not provided by interpose yet`);
};
const onesEnv = () => globalThis.onesEnv ?? {};

class Query {
  constructor(name) { this._name = name; }
  index() { return this; }
  where() { return this; }
  limit() { return this; }
  cursor() { return this; }
  sort() { return this; }
}
for (const m of ['getMany', 'getOne', 'count']) Query.prototype[m] = function () { return notYet(`storage.entity(${JSON.stringify(this._name)}).query().${m}`)(); };

function entity(name) {
  const e = { query: () => new Query(name) };
  for (const m of ['get', 'set', 'delete', 'batchSet', 'batchDelete', 'batchGet']) e[m] = notYet(`storage.entity(${JSON.stringify(name)}).${m}`);
  return e;
}

export const storage = Object.freeze({ entity });
export const env = Object.freeze({
  getTeamID: async () => onesEnv().teamUUID ?? '',
  getOrganizationID: async () => onesEnv().organizationUUID ?? '',
  getInstanceID: async () => onesEnv().instanceId ?? '',
});
export default { storage, env };
