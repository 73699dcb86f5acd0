// @ones-op/node-types holds TypeScript types only; these names exist so a
// plain-JS `import { PluginRequest } from '@ones-op/node-types'` still links.
export const PluginRequest = undefined;
export const PluginResponse = undefined;
export default {};
