// Node's `util`: format, inspect, promisify, callbackify, inherits, deprecate,
// isDeepStrictEqual, types, TextEncoder/TextDecoder.
export function inspect(v, options) {
  const depth = options?.depth ?? 2;
  const seen = new Set();
  const show = (x, d) => {
    if (typeof x === 'string') return d === 0 ? x : `'${x.replace(/'/g, "\\'")}'`;
    if (typeof x === 'bigint') return `${x}n`;
    if (typeof x === 'symbol') return x.toString();
    if (typeof x === 'function') return `[Function: ${x.name || '(anonymous)'}]`;
    if (x === null || typeof x !== 'object') return String(x);
    if (x instanceof Error) return x.stack || `${x.name}: ${x.message}`;
    if (x instanceof Date) return x.toISOString();
    if (x instanceof RegExp) return String(x);
    if (seen.has(x)) return '[Circular *1]';
    if (d > depth) return Array.isArray(x) ? '[Array]' : '[Object]';
    seen.add(x);
    let r;
    if (Array.isArray(x)) r = x.length ? `[ ${x.map((e) => show(e, d + 1)).join(', ')} ]` : '[]';
    else if (x instanceof Map) r = `Map(${x.size}) {${[...x].map(([k, v]) => ` ${show(k, d + 1)} => ${show(v, d + 1)}`).join(',')}${x.size ? ' ' : ''}}`;
    else if (x instanceof Set) r = `Set(${x.size}) {${[...x].map((v) => ` ${show(v, d + 1)}`).join(',')}${x.size ? ' ' : ''}}`;
    else if (ArrayBuffer.isView(x)) r = `${x.constructor.name}(${x.length}) [ ${Array.from(x).slice(0, 50).join(', ')} ]`;
    else {
      const keys = Object.keys(x);
      const name = x.constructor && x.constructor !== Object ? `${x.constructor.name} ` : '';
      r = keys.length ? `${name}{ ${keys.map((k) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : `'${k}'`}: ${show(x[k], d + 1)}`).join(', ')} }` : `${name}{}`;
    }
    seen.delete(x);
    return r;
  };
  return show(v, 0);
}
export function format(f, ...args) {
  if (typeof f !== 'string') return [f, ...args].map((a) => (typeof a === 'string' ? a : inspect(a))).join(' ');
  let i = 0;
  let s = f.replace(/%[sdifjoOc%]/g, (m) => {
    if (m === '%%') return '%';
    if (i >= args.length) return m;
    const a = args[i++];
    switch (m) {
      case '%s': return typeof a === 'string' ? a : typeof a === 'bigint' ? `${a}n` : typeof a === 'object' && a !== null ? inspect(a, { depth: 0 }) : String(a);
      case '%d': return typeof a === 'bigint' ? `${a}n` : String(Number(a));
      case '%i': return typeof a === 'bigint' ? `${a}n` : String(parseInt(a, 10));
      case '%f': return String(parseFloat(a));
      case '%j': try { return JSON.stringify(a); } catch (_) { return '[Circular]'; }
      case '%c': return '';
      default: return inspect(a);
    }
  });
  for (; i < args.length; i++) s += ' ' + (typeof args[i] === 'string' ? args[i] : inspect(args[i]));
  return s;
}
const CUSTOM = Symbol.for('nodejs.util.promisify.custom');
export function promisify(fn) {
  if (typeof fn !== 'function') throw new TypeError('The "original" argument must be of type function');
  if (fn[CUSTOM]) return fn[CUSTOM];
  return function (...args) {
    return new Promise((resolve, reject) => fn.call(this, ...args, (err, ...values) => (err ? reject(err) : resolve(values.length > 1 ? values : values[0]))));
  };
}
promisify.custom = CUSTOM;
export function callbackify(fn) {
  return function (...args) {
    const cb = args.pop();
    fn.apply(this, args).then((v) => cb(null, v), (e) => cb(e));
  };
}
export function inherits(ctor, superCtor) {
  Object.defineProperty(ctor, 'super_', { value: superCtor, writable: true, configurable: true });
  Object.setPrototypeOf(ctor.prototype, superCtor.prototype);
}
export function deprecate(fn, message) {
  let warned = false;
  return function (...args) {
    if (!warned) { warned = true; console.warn(`DeprecationWarning: ${message}`); }
    return fn.apply(this, args);
  };
}
export function isDeepStrictEqual(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Date) return a.getTime() === b.getTime();
  if (a instanceof Map || a instanceof Set) return a.size === b.size && isDeepStrictEqual([...a], [...b]);
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && isDeepStrictEqual(a[k], b[k]));
}
const tag = (v) => Object.prototype.toString.call(v);
export const types = Object.freeze({
  isDate: (v) => v instanceof Date, isRegExp: (v) => v instanceof RegExp, isPromise: (v) => v instanceof Promise,
  isMap: (v) => v instanceof Map, isSet: (v) => v instanceof Set, isArrayBuffer: (v) => v instanceof ArrayBuffer,
  isTypedArray: (v) => ArrayBuffer.isView(v) && !(v instanceof DataView), isUint8Array: (v) => v instanceof Uint8Array,
  isNativeError: (v) => v instanceof Error, isAsyncFunction: (v) => tag(v) === '[object AsyncFunction]',
  isGeneratorFunction: (v) => tag(v) === '[object GeneratorFunction]', isBoxedPrimitive: (v) => ['[object Number]', '[object String]', '[object Boolean]'].includes(tag(v)) && typeof v === 'object',
});
export const isArray = Array.isArray;
export const TextEncoder = globalThis.TextEncoder;
export const TextDecoder = globalThis.TextDecoder;
export default { format, inspect, promisify, callbackify, inherits, deprecate, isDeepStrictEqual, types, isArray, TextEncoder, TextDecoder };
