// Node's `http` client over the host's fetch: request/get with a
// ClientRequest (write, end, setHeader, …) and an IncomingMessage that emits
// 'data' and 'end'. The same hosts as fetchHttp ([sandbox] http_allow) are
// reachable; the response arrives whole. No servers: createServer throws.
import { EventEmitter } from 'events';
import { call } from '@ones-op/fetch';

export const METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT'];
export const STATUS_CODES = {
  200: 'OK', 201: 'Created', 204: 'No Content', 301: 'Moved Permanently', 302: 'Found', 304: 'Not Modified',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 429: 'Too Many Requests',
  500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};
export class Agent { constructor(options) { this.options = options ?? {}; } destroy() {} }
export const globalAgent = new Agent();

export class IncomingMessage extends EventEmitter {
  constructor(statusCode, headers, body) {
    super();
    this.statusCode = statusCode;
    this.statusMessage = STATUS_CODES[statusCode] ?? '';
    this.headers = {};
    this.rawHeaders = [];
    for (const [k, v] of Object.entries(headers ?? {})) { this.headers[k.toLowerCase()] = v; this.rawHeaders.push(k, v); }
    this._body = body;
    this._encoding = undefined;
    this.complete = false;
  }
  setEncoding(encoding) { this._encoding = encoding; return this; }
  resume() { return this; }
  pause() { return this; }
  // Sent on the next turn, once the caller had the chance to listen.
  _deliver() {
    Promise.resolve().then(() => {
      if (this._body.length) this.emit('data', this._encoding ? this._body.toString(this._encoding) : this._body);
      this.complete = true;
      this.emit('end');
      this.emit('close');
    });
  }
  async *[Symbol.asyncIterator]() { yield this._encoding ? this._body.toString(this._encoding) : this._body; }
}

export class ClientRequest extends EventEmitter {
  constructor(url, options, callback, protocol) {
    super();
    this.method = String(options.method ?? 'GET').toUpperCase();
    this.path = options.path ?? '/';
    this._url = url;
    this._headers = {};
    for (const [k, v] of Object.entries(options.headers ?? {})) this._headers[k.toLowerCase()] = v;
    this._chunks = [];
    this._timeout = options.timeout;
    this.protocol = protocol;
    if (callback) this.once('response', callback);
  }
  setHeader(name, value) { this._headers[String(name).toLowerCase()] = value; return this; }
  getHeader(name) { return this._headers[String(name).toLowerCase()]; }
  removeHeader(name) { delete this._headers[String(name).toLowerCase()]; }
  setTimeout(ms, cb) { this._timeout = ms; if (cb) this.once('timeout', cb); return this; }
  write(chunk, encoding, cb) {
    if (typeof encoding === 'function') { cb = encoding; encoding = undefined; }
    this._chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, encoding ?? 'utf8') : Buffer.from(chunk));
    if (cb) Promise.resolve().then(cb);
    return true;
  }
  end(chunk, encoding, cb) {
    if (typeof chunk === 'function') { cb = chunk; chunk = undefined; }
    if (typeof encoding === 'function') { cb = encoding; encoding = undefined; }
    if (chunk !== undefined && chunk !== null) this.write(chunk, encoding);
    if (this._ended) return this;
    this._ended = true;
    const body = this._chunks.length ? Buffer.concat(this._chunks) : undefined;
    const options = { url: this._url, method: this.method, headers: this._headers, raw: true };
    if (body) options.bodyBase64 = body.toString('base64');
    let sent = call(options);
    if (this._timeout > 0) sent = Promise.race([sent, new Promise((_, reject) => setTimeout(() => { this.emit('timeout'); reject(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })); }, this._timeout))]);
    sent.then((r) => {
      const res = new IncomingMessage(r.statusCode, r.headers, Buffer.from(r.bodyBase64 ?? '', 'base64'));
      this.emit('response', res);
      res._deliver();
      if (cb) cb();
    }, (e) => {
      const err = new Error(e.reason ?? e.message);
      err.code = e.code === 'Forbidden' ? 'EACCES' : e.code === 'RequestTimeOut' ? 'ETIMEDOUT' : 'ECONNREFUSED';
      err.cause = e;
      this.emit('error', err);
    });
    return this;
  }
  abort() { this.destroyed = true; }
  destroy(err) { this.destroyed = true; if (err) this.emit('error', err); return this; }
}

// request(url[, options][, callback]) or request(options[, callback]).
export function requestWith(protocol, input, options, callback) {
  if (typeof options === 'function') { callback = options; options = undefined; }
  let o;
  if (typeof input === 'string' || input instanceof URL) {
    const u = new URL(String(input));
    o = { protocol: u.protocol, hostname: u.hostname, port: u.port, path: u.pathname + u.search, ...(options ?? {}) };
  } else {
    o = { ...(input ?? {}) };
  }
  const proto = o.protocol ?? protocol;
  const host = o.hostname ?? String(o.host ?? 'localhost').replace(/:\d+$/, '');
  const port = o.port ?? (o.host && /:(\d+)$/.exec(o.host)?.[1]);
  const url = `${proto}//${host}${port ? `:${port}` : ''}${o.path ?? '/'}`;
  return new ClientRequest(url, o, callback, proto);
}
export const request = (input, options, callback) => requestWith('http:', input, options, callback);
export function get(input, options, callback) {
  const req = request(input, options, callback);
  req.end();
  return req;
}
export function createServer() { throw new Error("Node's http.createServer is not available to plugins on interpose: a plugin answers routes its manifest declares"); }
export default { request, get, createServer, Agent, globalAgent, ClientRequest, IncomingMessage, METHODS, STATUS_CODES };
