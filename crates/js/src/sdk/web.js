// The web-platform globals Node has, for globals.js, which defines them
// lazily: a function of the host's primitives (random bytes, URL parsing
// on the `url` crate) returning them.
({ randomBytes, url, fetch: hostFetch, fromBase64 }) => {
  // structuredClone: plain data, Date, RegExp, Map, Set, ArrayBuffer, typed
  // arrays and errors, with shared references and cycles kept; a function or
  // a symbol throws, as in Node.
  const structuredClone = (value) => {
    const seen = new Map();
    const clone = (v) => {
      if (typeof v === 'function' || typeof v === 'symbol') {
        const e = new Error(`${String(v)} could not be cloned.`);
        e.name = 'DataCloneError';
        throw e;
      }
      if (v === null || typeof v !== 'object') return v;
      if (seen.has(v)) return seen.get(v);
      let out;
      if (v instanceof Date) out = new Date(v.getTime());
      else if (v instanceof RegExp) out = new RegExp(v.source, v.flags);
      else if (v instanceof ArrayBuffer) out = v.slice(0);
      else if (ArrayBuffer.isView(v)) out = new v.constructor(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
      if (out !== undefined) { seen.set(v, out); return out; }
      if (v instanceof Map) {
        out = new Map(); seen.set(v, out);
        for (const [k, x] of v) out.set(clone(k), clone(x));
        return out;
      }
      if (v instanceof Set) {
        out = new Set(); seen.set(v, out);
        for (const x of v) out.add(clone(x));
        return out;
      }
      if (v instanceof Error) {
        out = new (globalThis[v.name] || Error)(v.message); seen.set(v, out);
        if (v.stack !== undefined) out.stack = v.stack;
        return out;
      }
      out = Array.isArray(v) ? new Array(v.length) : {};
      seen.set(v, out);
      for (const k of Object.keys(v)) out[k] = clone(v[k]);
      return out;
    };
    return clone(value);
  };

  // UTF-8, as TextEncoder/TextDecoder do it: lone surrogates and malformed
  // sequences become U+FFFD.
  const utf8Encode = (s) => {
    const out = [];
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) { c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++; }
      }
      if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return new Uint8Array(out);
  };
  const utf8Decode = (b, fatal) => {
    let s = '';
    const bad = () => { if (fatal) throw new TypeError('The encoded data was not valid for encoding utf-8'); s += '\ufffd'; };
    for (let i = 0; i < b.length;) {
      const c = b[i];
      const n = c < 0x80 ? 0 : c >= 0xc2 && c < 0xe0 ? 1 : c >= 0xe0 && c < 0xf0 ? 2 : c >= 0xf0 && c < 0xf5 ? 3 : -1;
      if (n < 0) { bad(); i++; continue; }
      let cp = n === 0 ? c : c & (0x3f >> n);
      let j = 1;
      for (; j <= n; j++) {
        const d = b[i + j];
        if (d === undefined || (d & 0xc0) !== 0x80) break;
        cp = (cp << 6) | (d & 63);
      }
      const overlong = (n === 2 && cp < 0x800) || (n === 3 && cp < 0x10000);
      if (j <= n || overlong || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) { bad(); i += Math.max(1, j); continue; }
      s += String.fromCodePoint(cp);
      i += n + 1;
    }
    return s;
  };
  const bytesOf = (input) => {
    if (input === undefined) return new Uint8Array(0);
    if (input instanceof ArrayBuffer) return new Uint8Array(input);
    if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
    throw new TypeError('TextDecoder.decode: the input must be an ArrayBuffer or a view of one');
  };
  const TextEncoder = class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(s = '') { return utf8Encode(String(s)); }
    encodeInto(s, dest) {
      const b = utf8Encode(String(s));
      const n = Math.min(b.length, dest.length);
      dest.set(b.subarray(0, n));
      return { read: n === b.length ? String(s).length : undefined, written: n };
    }
  };
  const TextDecoder = class TextDecoder {
    constructor(label = 'utf-8', options = {}) {
      if (!['utf-8', 'utf8', 'unicode-1-1-utf-8'].includes(String(label).trim().toLowerCase())) {
        throw new RangeError(`TextDecoder: only utf-8 is supported, not ${JSON.stringify(label)}`);
      }
      this.fatal = Boolean(options.fatal);
      this.ignoreBOM = Boolean(options.ignoreBOM);
    }
    get encoding() { return 'utf-8'; }
    decode(input) {
      let b = bytesOf(input);
      if (!this.ignoreBOM && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) b = b.subarray(3);
      return utf8Decode(b, this.fatal);
    }
  };

  // application/x-www-form-urlencoded, as URLSearchParams reads and writes it.
  const formEncode = (s) => encodeURIComponent(s).replace(/[!'()~]|%20/g, (c) =>
    c === '%20' ? '+' : '%' + c.charCodeAt(0).toString(16).toUpperCase());
  const formDecode = (s) => {
    const plus = s.replace(/\+/g, ' ');
    try { return decodeURIComponent(plus); } catch {
      const bytes = [];
      for (let i = 0; i < plus.length; i++) {
        const h = plus.slice(i + 1, i + 3);
        if (plus[i] === '%' && /^[0-9a-fA-F]{2}$/.test(h)) { bytes.push(parseInt(h, 16)); i += 2; }
        else bytes.push(...utf8Encode(plus[i]));
      }
      return utf8Decode(bytes, false);
    }
  };
  // A URL's `searchParams` tells its URL when it changes.
  const owners = new WeakMap();
  const changed = (params) => { const f = owners.get(params); if (f) f(params.toString()); };
  let resetParams;
  const URLSearchParams = class URLSearchParams {
    #list = [];
    constructor(init = '') {
      if (init instanceof URLSearchParams) this.#list = [...init];
      else if (typeof init === 'object' && init !== null && typeof init[Symbol.iterator] === 'function') {
        for (const pair of init) {
          const p = [...pair];
          if (p.length !== 2) throw new TypeError('URLSearchParams: each pair must have exactly two items');
          this.#list.push([String(p[0]), String(p[1])]);
        }
      } else if (typeof init === 'object' && init !== null) {
        for (const k of Object.keys(init)) this.#list.push([k, String(init[k])]);
      } else {
        const s = String(init);
        for (const part of (s.startsWith('?') ? s.slice(1) : s).split('&')) {
          if (part === '') continue;
          const eq = part.indexOf('=');
          this.#list.push(eq < 0 ? [formDecode(part), ''] : [formDecode(part.slice(0, eq)), formDecode(part.slice(eq + 1))]);
        }
      }
    }
    get size() { return this.#list.length; }
    append(k, v) { this.#list.push([String(k), String(v)]); changed(this); }
    delete(k, v) {
      k = String(k);
      this.#list = this.#list.filter(([a, b]) => a !== k || (v !== undefined && b !== String(v)));
      changed(this);
    }
    get(k) { const e = this.#list.find(([a]) => a === String(k)); return e ? e[1] : null; }
    getAll(k) { return this.#list.filter(([a]) => a === String(k)).map(([, b]) => b); }
    has(k, v) { return this.#list.some(([a, b]) => a === String(k) && (v === undefined || b === String(v))); }
    set(k, v) {
      k = String(k);
      const i = this.#list.findIndex(([a]) => a === k);
      if (i < 0) this.#list.push([k, String(v)]);
      else {
        this.#list[i][1] = String(v);
        this.#list = this.#list.filter(([a], j) => a !== k || j <= i);
      }
      changed(this);
    }
    sort() { this.#list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)); changed(this); }
    static {
      // The URL's search changed: read it again (no notice back).
      resetParams = (params, search) => { params.#list = [...new URLSearchParams(search)]; };
    }
    forEach(cb, self) { for (const [k, v] of this.#list) cb.call(self, v, k, this); }
    *keys() { for (const [k] of this.#list) yield k; }
    *values() { for (const [, v] of this.#list) yield v; }
    *entries() { for (const [k, v] of this.#list) yield [k, v]; }
    [Symbol.iterator]() { return this.entries(); }
    toString() { return this.#list.map(([k, v]) => `${formEncode(k)}=${formEncode(v)}`).join('&'); }
  };

  // URL: parsed and serialized by the host (the WHATWG URL standard);
  // `searchParams` and `search` follow each other.
  const parse = (input, base) => url(String(input), base === undefined ? undefined : String(base));
  const URL = class URL {
    #parts; // [href, origin, protocol, username, password, host, hostname, port, pathname, search, hash]
    #params;
    constructor(input, base) {
      const parts = parse(input, base);
      if (parts == null) {
        const against = base === undefined ? '' : ` against ${JSON.stringify(String(base))}`;
        throw new TypeError(`Invalid URL: ${JSON.stringify(String(input))}${against}`);
      }
      this.#parts = parts;
      this.#params = new URLSearchParams(parts[9]);
      owners.set(this.#params, (query) => { this.#parts = url(this.#parts[0], undefined, 'search', query); });
    }
    static canParse(input, base) { return parse(input, base) != null; }
    static parse(input, base) { return parse(input, base) == null ? null : new URL(input, base); }
    #set(name, value) {
      if (name === 'href' && parse(value) == null) throw new TypeError(`Invalid URL: ${JSON.stringify(String(value))}`);
      const search = this.#parts[9];
      this.#parts = url(this.#parts[0], undefined, name, String(value));
      if (this.#parts[9] !== search) resetParams(this.#params, this.#parts[9]);
    }
    get href() { return this.#parts[0]; }
    set href(v) { this.#set('href', v); }
    get origin() { return this.#parts[1]; }
    get protocol() { return this.#parts[2]; }
    set protocol(v) { this.#set('protocol', v); }
    get username() { return this.#parts[3]; }
    set username(v) { this.#set('username', v); }
    get password() { return this.#parts[4]; }
    set password(v) { this.#set('password', v); }
    get host() { return this.#parts[5]; }
    set host(v) { this.#set('host', v); }
    get hostname() { return this.#parts[6]; }
    set hostname(v) { this.#set('hostname', v); }
    get port() { return this.#parts[7]; }
    set port(v) { this.#set('port', v); }
    get pathname() { return this.#parts[8]; }
    set pathname(v) { this.#set('pathname', v); }
    get search() { return this.#parts[9]; }
    set search(v) { this.#set('search', v); }
    get hash() { return this.#parts[10]; }
    set hash(v) { this.#set('hash', v); }
    get searchParams() { return this.#params; }
    toString() { return this.#parts[0]; }
    toJSON() { return this.#parts[0]; }
  };

  // crypto: random values from the operating system's generator.
  const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  const crypto = Object.freeze({
    getRandomValues(view) {
      if (!ArrayBuffer.isView(view) || view instanceof Float32Array || view instanceof Float64Array) {
        throw new TypeError('crypto.getRandomValues: the argument must be an integer typed array');
      }
      if (view.byteLength > 65536) {
        const e = new RangeError(`crypto.getRandomValues: ${view.byteLength} bytes asked, at most 65536`);
        e.name = 'QuotaExceededError';
        throw e;
      }
      new Uint8Array(view.buffer, view.byteOffset, view.byteLength).set(randomBytes(view.byteLength));
      return view;
    },
    randomUUID() {
      const b = randomBytes(16);
      b[6] = (b[6] & 0x0f) | 0x40;
      b[8] = (b[8] & 0x3f) | 0x80;
      const h = hex(b);
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
  });

  // Buffer: Node's byte array for the common cases (utf8, base64,
  // base64url, hex and latin1 text; from/alloc/concat/compare; toString,
  // toJSON, equals, copy; slice shares memory as in Node).
  const ENCODINGS = ['utf8', 'utf-8', 'base64', 'base64url', 'hex', 'latin1', 'binary', 'ascii'];
  const encodingOf = (e) => {
    const enc = e === undefined ? 'utf8' : String(e).toLowerCase();
    if (!ENCODINGS.includes(enc)) throw new TypeError(`Unknown encoding: ${e}`);
    return enc;
  };
  const latin1 = (b) => { let s = ''; for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192)); return s; };
  const decodeText = (s, enc) => {
    switch (enc) {
      case 'utf8': case 'utf-8': return utf8Encode(s);
      case 'hex': {
        const n = s.length >> 1; const out = new Uint8Array(n);
        let i = 0;
        for (; i < n; i++) { const b = parseInt(s.slice(2 * i, 2 * i + 2), 16); if (Number.isNaN(b)) break; out[i] = b; }
        return out.subarray(0, i);
      }
      case 'base64': case 'base64url': return fromBase64(s);
      default: return Uint8Array.from(s, (c) => c.charCodeAt(0) & 255);
    }
  };
  const Buffer = class Buffer extends Uint8Array {
    static from(value, encOrOffset, length) {
      if (typeof value === 'string') { const b = decodeText(value, encodingOf(encOrOffset)); return new Buffer(b.buffer, b.byteOffset, b.length); }
      if (value instanceof ArrayBuffer) return new Buffer(value, encOrOffset || 0, length ?? value.byteLength - (encOrOffset || 0));
      if (value && typeof value === 'object' && value.type === 'Buffer' && Array.isArray(value.data)) return Buffer.from(value.data);
      if (value && typeof value === 'object' && typeof value.length === 'number') { const b = new Buffer(value.length); b.set(Array.from(value, (x) => Number(x) & 255)); return b; }
      throw new TypeError('Buffer.from: the first argument must be a string, an array, an ArrayBuffer or a Buffer');
    }
    static alloc(size, fill = 0, enc) {
      const b = new Buffer(size);
      if (typeof fill === 'string') { const f = decodeText(fill, encodingOf(enc)); for (let i = 0; i < size && f.length; i++) b[i] = f[i % f.length]; }
      else b.fill(Number(fill) & 255);
      return b;
    }
    static allocUnsafe(size) { return new Buffer(size); }
    static isBuffer(x) { return x instanceof Buffer; }
    static isEncoding(e) { return typeof e === 'string' && ENCODINGS.includes(e.toLowerCase()); }
    static byteLength(s, enc) { return typeof s === 'string' ? decodeText(s, encodingOf(enc)).length : s.byteLength; }
    static concat(list, total) {
      const n = total ?? list.reduce((a, b) => a + b.length, 0);
      const out = Buffer.alloc(n);
      let at = 0;
      for (const b of list) { if (at >= n) break; out.set(b.subarray(0, n - at), at); at += Math.min(b.length, n - at); }
      return out;
    }
    static compare(a, b) { return a.compare(b); }
    toString(enc, start = 0, end = this.length) {
      const b = this.subarray(start, end);
      switch (encodingOf(enc)) {
        case 'utf8': case 'utf-8': return utf8Decode(b, false);
        case 'hex': return hex(b);
        case 'base64': return btoa(latin1(b));
        case 'base64url': return btoa(latin1(b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
        case 'ascii': return latin1(b.map((x) => x & 127));
        default: return latin1(b);
      }
    }
    toJSON() { return { type: 'Buffer', data: Array.from(this) }; }
    equals(o) { return this.compare(o) === 0; }
    compare(o) {
      const n = Math.min(this.length, o.length);
      for (let i = 0; i < n; i++) if (this[i] !== o[i]) return this[i] < o[i] ? -1 : 1;
      return this.length === o.length ? 0 : this.length < o.length ? -1 : 1;
    }
    copy(target, targetStart = 0, start = 0, end = this.length) {
      const part = this.subarray(start, Math.min(end, start + target.length - targetStart));
      target.set(part, targetStart);
      return part.length;
    }
    slice(start, end) { return this.subarray(start, end); }
    indexOf(value, from = 0, enc) {
      if (typeof from === 'string') { enc = from; from = 0; }
      const needle = typeof value === 'number' ? [value & 255] : typeof value === 'string' ? decodeText(value, encodingOf(enc)) : value;
      const start = from < 0 ? Math.max(0, this.length + from) : from;
      outer: for (let i = start; i <= this.length - needle.length; i++) {
        for (let j = 0; j < needle.length; j++) if (this[i + j] !== needle[j]) continue outer;
        return i;
      }
      return -1;
    }
    includes(value, from, enc) { return this.indexOf(value, from, enc) !== -1; }
    write(string, offset = 0, length, enc) {
      if (typeof offset === 'string') { enc = offset; offset = 0; length = undefined; }
      else if (typeof length === 'string') { enc = length; length = undefined; }
      const bytes = decodeText(String(string), encodingOf(enc));
      const n = Math.min(bytes.length, length ?? Infinity, this.length - offset);
      this.set(bytes.subarray(0, n), offset);
      return n;
    }
  };
  // readUInt16LE, writeInt32BE, readDoubleLE, readBigUInt64BE, … (and the
  // readUint* spellings): fixed-size numbers at a byte offset, as in Node.
  const NUMBERS = [['UInt8', 'Uint8', 1], ['Int8', 'Int8', 1], ['UInt16', 'Uint16', 2], ['Int16', 'Int16', 2],
    ['UInt32', 'Uint32', 4], ['Int32', 'Int32', 4], ['Float', 'Float32', 4], ['Double', 'Float64', 8],
    ['BigUInt64', 'BigUint64', 8], ['BigInt64', 'BigInt64', 8]];
  for (const [name, type, size] of NUMBERS) {
    for (const end of size === 1 ? [''] : ['LE', 'BE']) {
      const little = end === 'LE';
      const at = (b, offset) => {
        if (!Number.isInteger(offset) || offset < 0 || offset + size > b.length) {
          throw new RangeError(`The value of "offset" is out of range. It must be >= 0 and <= ${b.length - size}. Received ${offset}`);
        }
        return new DataView(b.buffer, b.byteOffset, b.byteLength);
      };
      const read = { [`read${name}${end}`](offset = 0) { return at(this, offset)[`get${type}`](offset, little); } }[`read${name}${end}`];
      const write = { [`write${name}${end}`](value, offset = 0) { at(this, offset)[`set${type}`](offset, value, little); return offset + size; } }[`write${name}${end}`];
      for (const spelled of new Set([name, name.replace('UInt', 'Uint')])) {
        Object.defineProperty(Buffer.prototype, `read${spelled}${end}`, { value: read, writable: true, configurable: true });
        Object.defineProperty(Buffer.prototype, `write${spelled}${end}`, { value: write, writable: true, configurable: true });
      }
    }
  }

  // Headers: names case-insensitive (kept lower-case), values joined with
  // ", " when appended twice, iterated in name order.
  class Headers {
    #map = new Map();
    constructor(init) {
      if (init == null) return;
      const pairs = init instanceof Headers || Array.isArray(init) || typeof init[Symbol.iterator] === 'function'
        ? Array.from(init) : Object.entries(init);
      for (const [k, v] of pairs) {
        if (Array.isArray(v)) v.forEach((x) => this.append(k, x)); else this.append(k, v);
      }
    }
    append(k, v) { const n = String(k).toLowerCase(); const old = this.#map.get(n); this.#map.set(n, old === undefined ? String(v) : `${old}, ${v}`); }
    set(k, v) { this.#map.set(String(k).toLowerCase(), String(v)); }
    get(k) { return this.#map.get(String(k).toLowerCase()) ?? null; }
    has(k) { return this.#map.has(String(k).toLowerCase()); }
    delete(k) { this.#map.delete(String(k).toLowerCase()); }
    forEach(cb, self) { for (const [k, v] of this) cb.call(self, v, k, this); }
    *entries() { yield* [...this.#map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)); }
    *keys() { for (const [k] of this.entries()) yield k; }
    *values() { for (const [, v] of this.entries()) yield v; }
    [Symbol.iterator]() { return this.entries(); }
  }
  const asBytes = (body) => {
    if (body == null) return new Uint8Array(0);
    if (typeof body === 'string') return new TextEncoder().encode(body);
    if (body instanceof ArrayBuffer) return new Uint8Array(body.slice(0));
    if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
    if (body instanceof URLSearchParams) return new TextEncoder().encode(body.toString());
    return new TextEncoder().encode(String(body));
  };
  class Response {
    #bytes;
    constructor(body = null, init = {}) {
      this.#bytes = asBytes(body);
      this.status = init.status ?? 200;
      this.statusText = init.statusText ?? '';
      this.headers = new Headers(init.headers);
      this.ok = this.status >= 200 && this.status < 300;
      this.url = init.url ?? '';
      this.redirected = false;
      this.type = 'basic';
      this.bodyUsed = false;
    }
    #take() {
      if (this.bodyUsed) throw new TypeError('Body is unusable: Body has already been read');
      this.bodyUsed = true;
      return this.#bytes;
    }
    async text() { return new TextDecoder().decode(this.#take()); }
    async json() { return JSON.parse(await this.text()); }
    async arrayBuffer() { return this.#take().buffer; }
    async bytes() { return this.#take(); }
    clone() {
      if (this.bodyUsed) throw new TypeError('Response.clone: Body has already been read');
      return new Response(this.#bytes, this);
    }
    static json(data, init = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
      return new Response(JSON.stringify(data), { ...init, headers });
    }
  }
  // fetch, as in Node, to the hosts in the gateway's [sandbox] http_allow
  // (plain http://), within the hook's deadline; a refusal or a network
  // failure rejects with a TypeError whose `cause` has the errcode. The
  // standard system is called with OPFetch.
  const fetch = async (input, init = {}) => {
    const target = typeof input === 'string' ? input : input instanceof URL ? input.href : input && input.url;
    if (typeof target !== 'string') throw new TypeError('fetch: the first argument must be a URL');
    const headers = new Headers(init.headers ?? (typeof input === 'object' ? input.headers : undefined));
    const method = String(init.method ?? (typeof input === 'object' ? input.method : undefined) ?? 'GET').toUpperCase();
    const body = init.body;
    if (body != null && (method === 'GET' || method === 'HEAD')) throw new TypeError('fetch: a GET or HEAD request cannot have a body');
    let text;
    let bodyBase64;
    if (body == null) { /* no body */ }
    else if (typeof body === 'string') text = body;
    else if (body instanceof URLSearchParams) {
      text = body.toString();
      if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    } else if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) bodyBase64 = Buffer.from(asBytes(body)).toString('base64');
    else text = String(body);
    if (text !== undefined && !headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
    const r = await hostFetch(JSON.stringify({ url: target, method, headers: Object.fromEntries(headers), body: text, bodyBase64, raw: true }));
    if (!r.ok) throw new TypeError(`fetch failed: ${r.error.reason}`, { cause: r.error });
    const res = r.response;
    return new Response(Buffer.from(res.bodyBase64, 'base64'), { status: res.statusCode, headers: res.headers, url: target });
  };

  return { structuredClone, TextEncoder, TextDecoder, URLSearchParams, URL, crypto, Buffer, fetch, Headers, Response };
}
