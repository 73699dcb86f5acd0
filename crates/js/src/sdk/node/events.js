// Node's `events`: EventEmitter and `once`.
export class EventEmitter {
  constructor() { this._events = new Map(); this._max = EventEmitter.defaultMaxListeners; }
  _list(name) { let l = this._events.get(name); if (!l) { l = []; this._events.set(name, l); } return l; }
  on(name, listener) { this.emit('newListener', name, listener); this._list(name).push({ listener, once: false }); return this; }
  addListener(name, listener) { return this.on(name, listener); }
  prependListener(name, listener) { this._list(name).unshift({ listener, once: false }); return this; }
  once(name, listener) { this._list(name).push({ listener, once: true }); return this; }
  prependOnceListener(name, listener) { this._list(name).unshift({ listener, once: true }); return this; }
  off(name, listener) {
    const l = this._events.get(name);
    if (l) { const i = l.findIndex((e) => e.listener === listener); if (i >= 0) l.splice(i, 1); if (!l.length) this._events.delete(name); }
    return this;
  }
  removeListener(name, listener) { return this.off(name, listener); }
  removeAllListeners(name) { if (name === undefined) this._events.clear(); else this._events.delete(name); return this; }
  emit(name, ...args) {
    const l = this._events.get(name);
    if (!l || !l.length) {
      if (name === 'error') throw args[0] instanceof Error ? args[0] : new Error(`Unhandled error. (${String(args[0])})`);
      return false;
    }
    for (const e of l.slice()) {
      if (e.once) this.off(name, e.listener);
      e.listener.apply(this, args);
    }
    return true;
  }
  listeners(name) { return (this._events.get(name) ?? []).map((e) => e.listener); }
  rawListeners(name) { return this.listeners(name); }
  listenerCount(name) { return (this._events.get(name) ?? []).length; }
  eventNames() { return [...this._events.keys()]; }
  setMaxListeners(n) { this._max = n; return this; }
  getMaxListeners() { return this._max; }
}
EventEmitter.defaultMaxListeners = 10;
EventEmitter.EventEmitter = EventEmitter;
export function once(emitter, name) {
  return new Promise((resolve, reject) => {
    const onError = (e) => { emitter.off(name, onValue); reject(e); };
    const onValue = (...args) => { if (name !== 'error') emitter.off('error', onError); resolve(args); };
    emitter.once(name, onValue);
    if (name !== 'error') emitter.once('error', onError);
  });
}
EventEmitter.once = once;
export default EventEmitter;
