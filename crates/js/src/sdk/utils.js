// @ones-op/node-utils: the conversions ONES's examples use (spelt "Unit8" as there).
export const String2Unit8Array = (s) => new TextEncoder().encode(String(s));
export const Object2Unit8Array = (o) => new TextEncoder().encode(JSON.stringify(o));
export const Unit8Array2String = (u) => new TextDecoder().decode(u);
export default { String2Unit8Array, Object2Unit8Array, Unit8Array2String };
