// @ones-op/node-ability: the plugin's operator-set configuration (`service.config` in
// config/plugin.yaml; values set with `interpose plugin config set ID KEY=VALUE`).
import { config } from 'interpose:host';

export const Plugin = Object.freeze({
  // One entry per declared item, in manifest order:
  // { key, type, label, required, value } (value: the operator's, else the manifest's
  // default, else null). `teamUUID` is accepted as on the ONES platform; an instance
  // always reads its own values (a team-level plugin has one instance per team).
  getPluginConfig: async (teamUUID) => config(),
});
export default { Plugin };
