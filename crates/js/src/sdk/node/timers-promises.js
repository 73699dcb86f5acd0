// Node's `timers/promises`.
export const setTimeout = (ms, value) => new Promise((resolve) => globalThis.setTimeout(() => resolve(value), ms));
export const setImmediate = (value) => new Promise((resolve) => globalThis.setTimeout(() => resolve(value), 0));
export default { setTimeout, setImmediate };
