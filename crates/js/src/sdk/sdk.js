// @ones-op/sdk (also /node and /backend): entity storage and `env`.
// `storage.entity(name)` keeps records of an entity the manifest declares
// (`storage.entities`) in the gateway's store, per instance. Every call is a
// promise; a refused one rejects with an SDKError {errcode, statusCode,
// reason} (400 for a value, key, index or entity the declaration does not
// allow; 503 when the store cannot be reached).
import { storage as hostStorage } from 'interpose:host';
import { SDKError } from '@ones-op/node-error';

const onesEnv = () => globalThis.onesEnv ?? {};

async function call(op) {
  const r = await hostStorage(JSON.stringify(op));
  if (!r.ok) throw new SDKError('error', r.error.errcode, r.error.status, r.error.reason);
  return r.value;
}

// Conditions on an index's range attribute (on the key without an index).
export const WhereConditions = Object.freeze({
  equalTo: (value) => ({ condition: 'EQUAL_TO', values: [value] }),
  isGreaterThan: (value) => ({ condition: 'GREATER_THAN', values: [value] }),
  isGreaterThanEqualTo: (value) => ({ condition: 'GREATER_THAN_EQUAL_TO', values: [value] }),
  isLessThan: (value) => ({ condition: 'LESS_THAN', values: [value] }),
  isLessThanEqualTo: (value) => ({ condition: 'LESS_THAN_EQUAL_TO', values: [value] }),
  between: (low, high) => ({ condition: 'BETWEEN', values: [low, high] }),
  beginsWith: (prefix) => ({ condition: 'BEGINS_WITH', values: [prefix] }),
});
export const SortOrder = Object.freeze({ ASC: 'ASC', DESC: 'DESC' });

class Query {
  constructor(entity) {
    this._q = { entity };
  }
  // index(name) or index(name, {partition: [values]}) or index(name, [values]).
  index(name, options) {
    this._q.index = String(name);
    const partition = Array.isArray(options) ? options : options?.partition;
    this._q.partition = partition === undefined ? [] : Array.isArray(partition) ? partition : [partition];
    return this;
  }
  where(condition) {
    if (!condition || typeof condition !== 'object' || !condition.condition) {
      throw new SDKError('error', 'InvalidParameter', 400, 'where() takes a condition from WhereConditions (equalTo, between, beginsWith, …)');
    }
    this._q.where = condition;
    return this;
  }
  sort(order) {
    this._q.sort = String(order ?? 'ASC').toUpperCase();
    return this;
  }
  limit(n) {
    this._q.limit = n;
    return this;
  }
  cursor(c) {
    if (c !== undefined && c !== null && c !== '') this._q.cursor = String(c);
    return this;
  }
  // {data: [{key, value}], page_info: {has_more, end_cursor}}
  getMany() {
    return call({ op: 'query', ...this._q });
  }
  async getOne() {
    const page = await call({ op: 'query', ...this._q, limit: 1 });
    return page.data[0];
  }
  count() {
    return call({ op: 'count', ...this._q });
  }
}

function entity(name) {
  const entity = String(name);
  const keysOf = (items) => (Array.isArray(items) ? items : [items]).map((k) => (k && typeof k === 'object' ? k.key : k));
  return Object.freeze({
    get: async (key) => (await call({ op: 'get', entity, key })) ?? undefined,
    set: async (key, value) => { await call({ op: 'set', entity, items: [{ key, value }] }); },
    delete: async (key) => { await call({ op: 'delete', entity, keys: [key] }); },
    batchSet: async (items) => { await call({ op: 'set', entity, items: Array.isArray(items) ? items : [] }); },
    batchDelete: async (keys) => { await call({ op: 'delete', entity, keys: keysOf(keys) }); },
    batchGet: (keys) => call({ op: 'batchGet', entity, keys: keysOf(keys) }),
    query: () => new Query(entity),
  });
}

export const storage = Object.freeze({ entity });
export const env = Object.freeze({
  getTeamID: async () => onesEnv().teamUUID ?? '',
  getOrganizationID: async () => onesEnv().organizationUUID ?? '',
  getInstanceID: async () => onesEnv().instanceId ?? '',
});
export default { storage, env, WhereConditions, SortOrder };
