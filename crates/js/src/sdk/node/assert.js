// Node's `assert` (and `assert/strict`).
import { inspect, isDeepStrictEqual } from 'util';

export class AssertionError extends Error {
  constructor(options) {
    super(options.message ?? `${inspect(options.actual)} ${options.operator} ${inspect(options.expected)}`);
    this.name = 'AssertionError';
    this.code = 'ERR_ASSERTION';
    this.actual = options.actual;
    this.expected = options.expected;
    this.operator = options.operator;
    this.generatedMessage = options.message === undefined;
  }
}
const fail_ = (actual, expected, message, operator) => {
  if (message instanceof Error) throw message;
  throw new AssertionError({ actual, expected, message, operator });
};
const looseDeep = (a, b) => {
  // eslint-disable-next-line eqeqeq
  if (a == b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => looseDeep(a[k], b[k]));
};
export function ok(value, message) { if (!value) fail_(value, true, message ?? 'The expression evaluated to a falsy value', '=='); }
export function equal(a, b, message) { if (!(a == b || (a !== a && b !== b))) fail_(a, b, message, '=='); } // eslint-disable-line eqeqeq
export function notEqual(a, b, message) { if (a == b) fail_(a, b, message, '!='); } // eslint-disable-line eqeqeq
export function strictEqual(a, b, message) { if (!Object.is(a, b)) fail_(a, b, message, 'strictEqual'); }
export function notStrictEqual(a, b, message) { if (Object.is(a, b)) fail_(a, b, message, 'notStrictEqual'); }
export function deepEqual(a, b, message) { if (!looseDeep(a, b)) fail_(a, b, message, 'deepEqual'); }
export function notDeepEqual(a, b, message) { if (looseDeep(a, b)) fail_(a, b, message, 'notDeepEqual'); }
export function deepStrictEqual(a, b, message) { if (!isDeepStrictEqual(a, b)) fail_(a, b, message, 'deepStrictEqual'); }
export function notDeepStrictEqual(a, b, message) { if (isDeepStrictEqual(a, b)) fail_(a, b, message, 'notDeepStrictEqual'); }
const matches = (e, expected) => expected === undefined || (typeof expected === 'function' ? (expected.prototype !== undefined && e instanceof expected) || (expected.prototype === undefined && expected(e) === true) : expected instanceof RegExp ? expected.test(String(e?.message ?? e)) : Object.keys(expected).every((k) => isDeepStrictEqual(e?.[k], expected[k])));
export function throws(fn, expected, message) {
  try { fn(); } catch (e) { if (!matches(e, expected)) throw e; return; }
  fail_(undefined, expected, typeof expected === 'string' ? expected : message ?? 'Missing expected exception.', 'throws');
}
export function doesNotThrow(fn, message) { try { fn(); } catch (e) { fail_(e, undefined, message ?? `Got unwanted exception: ${e?.message}`, 'doesNotThrow'); } }
export async function rejects(p, expected, message) {
  try { await (typeof p === 'function' ? p() : p); } catch (e) { if (!matches(e, expected)) throw e; return; }
  fail_(undefined, expected, message ?? 'Missing expected rejection.', 'rejects');
}
export async function doesNotReject(p, message) { try { await (typeof p === 'function' ? p() : p); } catch (e) { fail_(e, undefined, message ?? `Got unwanted rejection: ${e?.message}`, 'doesNotReject'); } }
export function match(s, re, message) { if (!re.test(s)) fail_(s, re, message, 'match'); }
export function fail(message = 'Failed') { fail_(undefined, undefined, message, 'fail'); }
export function ifError(v) { if (v !== null && v !== undefined) throw v; }

const assert = (value, message) => ok(value, message);
Object.assign(assert, { AssertionError, ok, equal, notEqual, strictEqual, notStrictEqual, deepEqual, notDeepEqual, deepStrictEqual, notDeepStrictEqual, throws, doesNotThrow, rejects, doesNotReject, match, fail, ifError });
const strict = (value, message) => ok(value, message);
Object.assign(strict, assert, { equal: strictEqual, notEqual: notStrictEqual, deepEqual: deepStrictEqual, notDeepEqual: notDeepStrictEqual });
assert.strict = strict;
strict.strict = strict;
export { strict };
export default assert;
