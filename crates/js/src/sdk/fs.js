// @ones-op/node-fs: `promises`, Node's fs.promises confined to the instance's
// workspace/, as ONES has it. Paths must be strings ("Argument of the file or
// directory is not assignable to parameter of type 'string'.") inside the
// workspace ("Invalid Param: <path> Out of the accessible path range.").
import { file as hostFile } from 'interpose:host';

// One workspace operation; a missing file is Node's ENOENT, other failures the SDK's text.
function op(name, ...args) {
  const plain = args.map((a) => (a instanceof Uint8Array || ArrayBuffer.isView(a) ? Array.from(a) : a));
  const r = JSON.parse(hostFile(name, JSON.stringify(plain)));
  if (r.ok) return r.value;
  const e = new Error(r.error.errcode === 'NotFound' ? `ENOENT: no such file or directory, ${r.error.reason}` : r.error.reason);
  if (r.error.errcode === 'NotFound') { e.code = 'ENOENT'; e.errno = -2; }
  throw e;
}

function check(path) {
  if (typeof path !== 'string') throw new Error("Argument of the file or directory is not assignable to parameter of type 'string'.");
  const parts = [];
  for (const p of path.replace(/^\/+/, '').split('/')) {
    if (p === '..') { if (!parts.length) throw new Error(`Invalid Param: ${path} Out of the accessible path range.`); parts.pop(); }
    else if (p && p !== '.') parts.push(p);
  }
  return parts.join('/') || '.';
}
const encodingOf = (options) => (typeof options === 'string' ? options : options?.encoding);
const dataBytes = (data, options) => {
  if (typeof data === 'string') return Buffer.from(data, encodingOf(options) ?? 'utf8');
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(String(data));
};

class Stats {
  constructor(s) {
    this.size = s.size; this.mtimeMs = s.mtimeMs; this.birthtimeMs = s.birthtimeMs;
    this.mtime = new Date(s.mtimeMs); this.birthtime = new Date(s.birthtimeMs); this._file = s.isFile; this._dir = s.isDir;
  }
  isFile() { return this._file; }
  isDirectory() { return this._dir; }
  isSymbolicLink() { return false; }
}
const unavailable = (name) => async () => { throw new Error(`@ones-op/node-fs: promises.${name} is not available on interpose`); };

export const promises = Object.freeze({
  async readFile(path, options) {
    const p = check(path);
    const b = Buffer.from(Uint8Array.from(op('readBytes', p)));
    const enc = encodingOf(options);
    return enc ? b.toString(enc) : b;
  },
  async writeFile(path, data, options) { const p = check(path); op('writeBytes', p, dataBytes(data, options)); },
  async appendFile(path, data, options) { const p = check(path); op('appendBytes', p, dataBytes(data, options)); },
  async mkdir(path, options) {
    const p = check(path);
    if (!options?.recursive && op('isExist', p)) { const e = new Error(`EEXIST: file already exists, mkdir '${path}'`); e.code = 'EEXIST'; throw e; }
    op('makeDir', p);
    return options?.recursive ? path : undefined;
  },
  async readdir(path, options) {
    const p = check(path);
    const names = op('list', p);
    if (!options?.withFileTypes) return names;
    return names.map((name) => { const s = new Stats(op('stat', `${p}/${name}`)); s.name = name; return s; });
  },
  async stat(path) { const p = check(path); return new Stats(op('stat', p)); },
  async lstat(path) { const p = check(path); return new Stats(op('stat', p)); },
  async access(path) { const p = check(path); if (!op('isExist', p)) op('stat', p); },
  async unlink(path) { const p = check(path); if (op('isDir', p)) { const e = new Error(`EISDIR: illegal operation on a directory, unlink '${path}'`); e.code = 'EISDIR'; throw e; } op('remove', p); },
  async rm(path, options) { const p = check(path); if (options?.force && !op('isExist', p)) return; op('remove', p); },
  async rmdir(path) { const p = check(path); op('remove', p); },
  async rename(from, to) { const [a, b] = [check(from), check(to)]; op('rename', a, b); },
  async copyFile(from, to) { const [a, b] = [check(from), check(to)]; op('copy', a, b); },
  async cp(from, to) { const [a, b] = [check(from), check(to)]; op('copy', a, b); },
  async realpath(path) { return check(path); },
  async truncate(path, len = 0) { const p = check(path); const b = Uint8Array.from(op('readBytes', p)).subarray(0, len); op('writeBytes', p, b); },
  chmod: async () => {}, chown: async () => {}, lchmod: async () => {}, lchown: async () => {}, utimes: async () => {}, lutimes: async () => {},
  link: unavailable('link'), symlink: unavailable('symlink'), readlink: unavailable('readlink'),
  open: unavailable('open'), opendir: unavailable('opendir'), mkdtemp: unavailable('mkdtemp'), watch: unavailable('watch'),
});
export default { promises };
