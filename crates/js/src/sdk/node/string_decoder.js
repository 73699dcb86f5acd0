// Node's `string_decoder`: bytes to text across chunk boundaries (a UTF-8
// character split between two chunks is held back until it is whole).
export class StringDecoder {
  constructor(encoding = 'utf8') {
    this.encoding = String(encoding).toLowerCase().replace('-', '');
    this._utf8 = this.encoding === 'utf8';
    this._held = new Uint8Array(0);
  }
  write(buf) {
    if (typeof buf === 'string') return buf;
    const bytes = new Uint8Array(buf.buffer ?? buf, buf.byteOffset ?? 0, buf.byteLength ?? buf.length);
    if (!this._utf8) return Buffer.from(bytes).toString(this.encoding);
    const all = new Uint8Array(this._held.length + bytes.length);
    all.set(this._held); all.set(bytes, this._held.length);
    // Where the last character starts, and whether all of it is here.
    let cut = all.length;
    for (let i = all.length - 1, seen = 1; i >= 0 && seen <= 4; i--, seen++) {
      const b = all[i];
      if ((b & 0xc0) === 0x80) continue;
      const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
      if (need > seen) cut = i;
      break;
    }
    this._held = all.slice(cut);
    return new TextDecoder('utf-8').decode(all.subarray(0, cut));
  }
  end(buf) {
    const s = buf === undefined ? '' : this.write(buf);
    const rest = this._held.length ? new TextDecoder('utf-8').decode(this._held) : '';
    this._held = new Uint8Array(0);
    return s + rest;
  }
}
export default { StringDecoder };
