// Node's `crypto`: hashes and HMACs on RustCrypto (the host's `hash`/`hmac`),
// random bytes, UUIDs and values from the web globals' generator, and a
// constant-time comparison.
import { hash, hmac } from 'interpose:host';

const HASHES = ['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512'];

// Bytes as a string of char codes 0-255, the host's form.
function binary(u8) {
  let s = '';
  for (let i = 0; i < u8.length; i += 8192) s += String.fromCharCode.apply(null, u8.subarray(i, i + 8192));
  return s;
}
function bytesOf(data, encoding) {
  if (typeof data === 'string') return Buffer.from(data, encoding ?? 'utf8');
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError('The "data" argument must be of type string or an instance of Buffer, TypedArray, or DataView');
}
const out = (u8, encoding) => {
  const b = Buffer.from(u8.buffer, u8.byteOffset, u8.length);
  return encoding === undefined || encoding === 'buffer' ? b : b.toString(encoding);
};

class Hash {
  constructor(algorithm, key) {
    const a = String(algorithm).toLowerCase().replace('-', '');
    if (!HASHES.includes(a)) throw new Error(`Digest method not supported: ${algorithm}`);
    this._algorithm = a;
    this._key = key === undefined ? undefined : binary(bytesOf(key));
    this._parts = [];
    this._done = false;
  }
  update(data, encoding) {
    if (this._done) throw new Error('Digest already called');
    this._parts.push(binary(bytesOf(data, encoding)));
    return this;
  }
  digest(encoding) {
    if (this._done) throw new Error('Digest already called');
    this._done = true;
    const data = this._parts.join('');
    return out(this._key === undefined ? hash(this._algorithm, data) : hmac(this._algorithm, this._key, data), encoding);
  }
  copy() {
    const c = new Hash(this._algorithm);
    c._key = this._key;
    c._parts = this._parts.slice();
    return c;
  }
}

export const createHash = (algorithm) => new Hash(algorithm);
export const createHmac = (algorithm, key) => new Hash(algorithm, key);
export const getHashes = () => HASHES.slice();

export function randomBytes(size, callback) {
  const b = Buffer.alloc(size);
  globalThis.crypto.getRandomValues(b);
  if (typeof callback === 'function') {
    setTimeout(() => callback(null, b), 0);
    return undefined;
  }
  return b;
}
export const randomUUID = () => globalThis.crypto.randomUUID();
export const getRandomValues = (array) => globalThis.crypto.getRandomValues(array);
export function randomInt(min, max, callback) {
  if (max === undefined || typeof max === 'function') { callback = max; max = min; min = 0; }
  const range = max - min;
  if (!(range > 0)) throw new RangeError('The value of "max" must be greater than "min"');
  const r = new Uint32Array(2);
  globalThis.crypto.getRandomValues(r);
  const n = min + Math.floor(((r[0] * 2 ** 21 + (r[1] >>> 11)) / 2 ** 53) * range);
  if (typeof callback === 'function') { setTimeout(() => callback(null, n), 0); return undefined; }
  return n;
}
export function timingSafeEqual(a, b) {
  const x = bytesOf(a), y = bytesOf(b);
  if (x.length !== y.length) throw new RangeError('Input buffers must have the same byte length');
  let d = 0;
  for (let i = 0; i < x.length; i++) d |= x[i] ^ y[i];
  return d === 0;
}
export const webcrypto = { getRandomValues, randomUUID };

export default { createHash, createHmac, getHashes, randomBytes, randomUUID, getRandomValues, randomInt, timingSafeEqual, webcrypto };
