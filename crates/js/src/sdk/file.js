// @ones-op/node-file: files under the instance's workspace/ folder only.
import { file as hostFile } from 'interpose:host';

export class FileError extends Error {
  constructor(errcode, reason) {
    super(reason);
    this.name = 'FileError';
    this.errcode = errcode;
    this.reason = reason;
    this.statusCode = errcode === 'InvalidParameter' ? 400 : 500;
    this.level = 'error';
  }
}

function op(name, ...args) {
  const plain = args.map((a) => (a instanceof Uint8Array || ArrayBuffer.isView(a) ? Array.from(a) : a));
  const r = JSON.parse(hostFile(name, JSON.stringify(plain)));
  if (!r.ok) throw new FileError(r.error.errcode, r.error.reason);
  return r.value;
}

export const createFile = async (path) => op('createFile', path);
export const makeDir = async (path) => op('makeDir', path);
export const writeStrings = async (path, content) => op('writeStrings', path, String(content));
export const appendStrings = async (path, content) => op('appendStrings', path, String(content));
export const writeBytes = async (path, bytes) => op('writeBytes', path, bytes);
export const appendBytes = async (path, bytes) => op('appendBytes', path, bytes);
export const read = async (path) => op('read', path);
export const readLines = async (path) => op('readLines', path);
export const readBytes = async (path) => new Uint8Array(op('readBytes', path));
export const list = async (path = '.') => op('list', path);
export const isExist = async (path) => op('isExist', path);
export const isDir = async (path) => op('isDir', path);
export const isFile = async (path) => op('isFile', path);
export const copy = async (from, to) => op('copy', from, to);
export const rename = async (from, to) => op('rename', from, to);
export const remove = async (path) => op('remove', path);

export default { createFile, makeDir, writeStrings, appendStrings, writeBytes, appendBytes, read, readLines, readBytes, list, isExist, isDir, isFile, copy, rename, remove, FileError };
