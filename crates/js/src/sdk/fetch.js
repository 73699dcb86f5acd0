// @ones-op/fetch (≥ 0.6), axios-style, as on the ONES platform:
//   OPFetch: a relative URL calls the standard system directly (never back through
//   the hooks; `/wiki/…` goes to the wiki scope), as the plugin (`root: true`, the
//   default: the gateway's credentials for the scope) or as the user (`root: false`:
//   only the headers given); an absolute URL is plain HTTP(S) to the hosts the
//   gateway's `[sandbox] http_allow` lists.
//   Fetch: plain HTTP(S) only.
// inst(config) / inst(url, config), get/delete/head/options(url, config),
// post/put/patch(url, data, config), request(config), create(config, interceptors),
// interceptors, defaults. A response is {data, status, statusText, headers, config,
// request} and also {statusCode, body}, so `return OPFetch(…)` answers a route.
// A status `validateStatus` refuses rejects with a FetchError (`isFetchError`).
import { fetch as hostFetch, fromBase64 } from 'interpose:host';

const STATUS_TEXT = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 301: 'Moved Permanently', 302: 'Found', 304: 'Not Modified',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 409: 'Conflict',
  413: 'Payload Too Large', 422: 'Unprocessable Entity', 429: 'Too Many Requests', 500: 'Internal Server Error',
  502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

export class FetchError extends Error {
  // axios's AxiosError, renamed as ONES did: new FetchError(message, code, config, request, response).
  constructor(message, code, config, request, response) {
    super(message);
    this.name = 'FetchError';
    this.isFetchError = true;
    this.code = code;
    this.config = config;
    this.request = request;
    this.response = response;
    this.status = response?.status;
    // The SDK error fields ({level, reason, statusCode, errcode}) as ONES's SDK errors have them.
    this.level = 'error';
    this.errcode = code ?? 'FetchError';
    this.reason = message;
    this.statusCode = response?.status ?? 502;
  }
  toJSON() { return { message: this.message, name: this.name, code: this.code, status: this.status }; }
}
export const isFetchError = (e) => e !== null && typeof e === 'object' && e.isFetchError === true;

export class FetchHeaders {
  constructor(init) { Object.assign(this, init ?? {}); }
}

const absolute = (url) => /^[a-z][a-z0-9+.-]*:\/\//i.test(url);

function serializeParams(params) {
  if (!params) return '';
  if (typeof params === 'string') return params.replace(/^\?/, '');
  if (params instanceof URLSearchParams) return params.toString();
  const parts = [];
  const enc = encodeURIComponent;
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null) continue;
    const one = (x) => (x instanceof Date ? x.toISOString() : typeof x === 'object' ? JSON.stringify(x) : String(x));
    if (Array.isArray(v)) for (const x of v) parts.push(`${enc(k)}[]=${enc(one(x))}`);
    else parts.push(`${enc(k)}=${enc(one(v))}`);
  }
  return parts.join('&');
}

function mergeConfig(a, b) {
  const out = { ...(a ?? {}), ...(b ?? {}) };
  out.headers = { ...(a?.headers ?? {}), ...(b?.headers ?? {}) };
  return out;
}

function fullUrl(config) {
  let url = config.url ?? config.path ?? '';
  if (config.baseURL && !absolute(url)) url = config.baseURL.replace(/\/+$/, '') + (url ? '/' + url.replace(/^\/+/, '') : '');
  const method = String(config.method ?? 'get').toLowerCase();
  // ONES's adapter: a GET with data and no params sends the data as params.
  const params = config.params ?? (method === 'get' && config.data && typeof config.data === 'object' ? config.data : undefined);
  const q = serializeParams(params);
  return q ? url + (url.includes('?') ? '&' : '?') + q : url;
}

function bodyOf(data, headers) {
  if (data === undefined || data === null) return {};
  if (typeof data === 'string') return { body: data };
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    const u8 = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return { bodyBase64: Buffer.from(u8.buffer, u8.byteOffset, u8.length).toString('base64') };
  }
  if (data instanceof URLSearchParams) {
    headers['content-type'] ??= 'application/x-www-form-urlencoded';
    return { body: data.toString() };
  }
  return { body: data };
}

// One request through the host: the standard system, or plain HTTP(S).
async function send(config, system) {
  const url = fullUrl(config);
  const method = String(config.method ?? 'get').toUpperCase();
  const headers = { ...(config.headers ?? {}) };
  for (const k of Object.keys(headers)) if (headers[k] === undefined || headers[k] === null) delete headers[k];
  const responseType = config.responseType ?? 'json';
  const raw = responseType === 'arraybuffer' || responseType === 'text' || responseType === 'blob' || responseType === 'stream';
  const options = { method, headers, raw, ...bodyOf(config.data ?? config.body, headers) };
  if (absolute(url)) options.url = url;
  else if (!system) throw new FetchError(`Fetch needs an absolute URL (http:// or https://), got ${JSON.stringify(url)}: OPFetch calls the standard system`, 'ERR_INVALID_URL', config);
  else {
    if (!url.startsWith('/')) throw new FetchError(`a path relative to a scope's API root must start with '/', got ${JSON.stringify(url)}`, 'ERR_INVALID_URL', config);
    options.path = url;
    if (config.root !== undefined) options.root = config.root;
    if (config.teamUUID !== undefined) options.teamUUID = config.teamUUID;
    if (config.scope !== undefined) options.scope = config.scope;
  }
  let call = hostFetch(JSON.stringify(options));
  if (config.timeout > 0) {
    call = Promise.race([call, new Promise((resolve) => setTimeout(() => resolve({ ok: false, timedOut: true }), config.timeout))]);
  }
  const r = await call;
  const request = { method, url };
  if (r.timedOut) throw new FetchError(`timeout of ${config.timeout}ms exceeded`, 'ECONNABORTED', config, request);
  if (!r.ok) throw new FetchError(r.error.reason, r.error.errcode, config, request);
  const res = r.response;
  let data = res.body;
  if (raw) {
    const bytes = fromBase64(res.bodyBase64 ?? '');
    if (responseType === 'text') data = new TextDecoder().decode(bytes);
    else if (responseType === 'arraybuffer') data = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
    else data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  }
  const response = {
    data, status: res.statusCode, statusText: STATUS_TEXT[res.statusCode] ?? '', headers: new FetchHeaders(res.headers),
    config, request,
  };
  // As a PluginResponse too: `return OPFetch(…)` answers a route with it.
  response.statusCode = res.statusCode;
  response.body = data;
  const valid = config.validateStatus === undefined ? (s) => s >= 200 && s < 300 : config.validateStatus;
  if (valid && !valid(response.status)) {
    const code = response.status >= 500 ? 'ERR_BAD_RESPONSE' : 'ERR_BAD_REQUEST';
    throw new FetchError(`Request failed with status code ${response.status}`, code, config, request, response);
  }
  return response;
}

class InterceptorManager {
  constructor() { this.handlers = []; }
  use(fulfilled, rejected) { this.handlers.push({ fulfilled, rejected }); return this.handlers.length - 1; }
  eject(id) { if (this.handlers[id]) this.handlers[id] = null; }
  clear() { this.handlers = []; }
  forEach(fn) { this.handlers.forEach((h) => h && fn(h)); }
}

function createInstance(defaults, system, inheritable) {
  const inherited = { request: [...(inheritable?.request ?? [])], response: [...(inheritable?.response ?? [])] };
  const inst = (urlOrConfig, config) => inst.request(typeof urlOrConfig === 'string' ? { ...(config ?? {}), url: urlOrConfig } : urlOrConfig);
  inst.defaults = { headers: {}, ...defaults };
  inst.interceptors = { request: new InterceptorManager(), response: new InterceptorManager() };
  inst.request = async (config) => {
    let c = mergeConfig(inst.defaults, config ?? {});
    c.method = String(c.method ?? 'get').toLowerCase();
    // Request interceptors run last-added first, response ones in order (as axios).
    const requestChain = [];
    for (const [f, r] of inherited.request) requestChain.unshift({ fulfilled: f && ((v) => f(v, inst)), rejected: r && ((e) => r(e, inst)) });
    inst.interceptors.request.forEach((h) => requestChain.unshift(h));
    let p = Promise.resolve(c);
    for (const h of requestChain) p = p.then(h.fulfilled, h.rejected);
    p = p.then((cfg) => send(cfg ?? c, system));
    const responseChain = [];
    inst.interceptors.response.forEach((h) => responseChain.push(h));
    for (const [f, r] of inherited.response) responseChain.push({ fulfilled: f && ((v) => f(v, inst)), rejected: r && ((e) => r(e, inst)) });
    for (const h of responseChain) p = p.then(h.fulfilled, h.rejected);
    return p;
  };
  for (const m of ['get', 'delete', 'head', 'options']) inst[m] = (url, config) => inst.request({ ...(config ?? {}), method: m, url });
  for (const m of ['post', 'put', 'patch']) inst[m] = (url, data, config) => inst.request({ ...(config ?? {}), method: m, url, data });
  inst.create = (config, inheritableInterceptors) => createInstance(mergeConfig(inst.defaults, config), system, {
    request: [...inherited.request, ...(inheritableInterceptors?.request ?? [])],
    response: [...inherited.response, ...(inheritableInterceptors?.response ?? [])],
  });
  inst.isFetchError = isFetchError;
  return inst;
}

export const OPFetch = createInstance({}, true);
export const Fetch = createInstance({}, false);

// The OpenAPI (`oauth` in the manifest): as the organization's admin — the
// gateway's own credentials for the scope ([[upstreams]] root_headers) — or as the
// user whose Ones-User-Id / Ones-Auth-Token headers the call passes.
export const FetchAsAdmin = OPFetch.create({ root: true });
export const FetchAsUser = OPFetch.create({ root: false });
export async function getOpenApiToken() {
  throw new FetchError('getOpenApiToken: interpose holds no OpenAPI token to hand out; FetchAsAdmin calls the OpenAPI with the credentials the operator set for the scope ([[upstreams]] root_headers)', 'ERR_NOT_SUPPORTED');
}

// For @ones-op/node-fetch (the legacy twin): one call as it was, {statusCode, headers, body}.
export async function call(options) {
  const r = await hostFetch(JSON.stringify(options ?? {}));
  if (!r.ok) throw new FetchError(r.error.reason, r.error.errcode, options);
  return r.response;
}

export default { OPFetch, Fetch, FetchError, isFetchError, FetchHeaders, FetchAsAdmin, FetchAsUser, getOpenApiToken };
