// @ones-op/node-file (legacy, as ONES documents it): files under the instance's
// workspace/ folder only. Failures throw a FileError {level, reason, statusCode,
// errcode}: `InvalidParameter` "Invalid parameter." (a path that leaves the
// workspace, say) or `File.CannotFindTargetFile` "No such file or directory.",
// both level error, status 400; the detail is in the message.
import { file as hostFile } from 'interpose:host';

export class FileError extends Error {
  constructor(errcode, reason, detail) {
    super(detail ? `${reason} (${detail})` : reason);
    this.name = 'FileError';
    this.errcode = errcode;
    this.reason = reason;
    this.statusCode = 400;
    this.level = 'error';
  }
}

const ERRORS = {
  InvalidParameter: ['InvalidParameter', 'Invalid parameter.'],
  NotFound: ['File.CannotFindTargetFile', 'No such file or directory.'],
};

function op(name, ...args) {
  const plain = args.map((a) => (a instanceof Uint8Array || ArrayBuffer.isView(a) ? Array.from(a) : a));
  const r = JSON.parse(hostFile(name, JSON.stringify(plain)));
  if (!r.ok) {
    const [errcode, reason] = ERRORS[r.error.errcode] ?? [r.error.errcode, r.error.reason];
    throw new FileError(errcode, reason, r.error.reason);
  }
  return r.value;
}

// `content`: strings written one after another (a string is taken as one).
const strings = (content) => (Array.isArray(content) ? content.map(String).join('') : String(content ?? ''));
const bytes = (u8) => Buffer.from(Uint8Array.from(u8));

export const createFile = async (name) => op('createFile', name);
export const makeDir = async (name) => op('makeDir', name);
export const rename = async (from, to) => op('rename', from, to);
export const remove = async (name) => op('remove', name);
export const copy = async (from, to) => op('copy', from, to);
export const isExist = async (name) => op('isExist', name);
export const isFile = async (name) => op('isFile', name);
export const isDir = async (name) => op('isDir', name);
export const list = async (name = '.') => op('list', name);
// The file's bytes.
export const read = async (name) => bytes(op('readBytes', name));
// Lines lineBegin..lineEnd (from 1, both included; without them, all), joined by "\n".
export async function readLines(name, lineBegin, lineEnd) {
  const lines = op('readLines', name);
  const from = Number.isInteger(lineBegin) && lineBegin > 0 ? lineBegin - 1 : 0;
  const to = Number.isInteger(lineEnd) && lineEnd > 0 ? lineEnd : lines.length;
  return lines.slice(from, to).join('\n');
}
export const writeStrings = async (name, content) => op('writeStrings', name, strings(content));
export const appendStrings = async (name, content) => op('appendStrings', name, strings(content));
export const writeBytes = async (name, byteSlice) => op('writeBytes', name, byteSlice);
export const appendBytes = async (name, byteSlice) => op('appendBytes', name, byteSlice);
// interpose's own: the bytes as a Uint8Array.
export const readBytes = async (name) => new Uint8Array(op('readBytes', name));

export default { createFile, makeDir, rename, remove, copy, isExist, isFile, isDir, list, read, readLines, writeStrings, appendStrings, writeBytes, appendBytes, readBytes, FileError };
