// @ones-op/node-ability, every export ONES lists. What interpose can answer itself
// it answers: the instance's config (ONES's rows), its identity, the plugin's
// language files. What needs services only the ONES platform has (notifications,
// processes, audit logs, fields, jobs, code repositories, file links, user lookups)
// loads and rejects *the call* with an AbilityError (statusCode 501) that says so, so a
// plugin importing it still loads and its other routes work.
import { config, abilityConfig, file } from 'interpose:host';
import { AbilityError } from '@ones-op/node-error';

const unavailable = (what) => async () => {
  throw new AbilityError('error', 'AbilityNotAvailable', 501,
    `${what} is not available on this host: it needs the ONES platform's own services, which interpose does not have`);
};
const env = () => globalThis.onesEnv ?? {};

export const Plugin = Object.freeze({
  // One row per `service.config` item, in manifest order, as ONES stores them:
  // {id, create_time, update_time, deleted, org_uuid, team_uuid, app_uuid,
  //  instance_uuid, arg_key, arg_value, required, type (101/102/103)}, plus
  // {key, value, label}. An instance reads its own values (teamUUID is accepted).
  getPluginConfig: async (teamUUID) => config(),
  // interpose runs no plugin user: the instance's ids, with empty user fields.
  getPluginUser: async (teamUUID) => {
    const e = env();
    return {
      user_uuid: '', org_uuid: e.organizationUUID ?? '', team_uuid: teamUUID ?? e.teamUUID ?? '',
      app_uuid: '', instance_uuid: e.instanceId ?? '', name: '', email: '',
    };
  },
});

// `workspace/language/<language>.yaml`: a flat map of `Key: text` lines.
function languageFile(language) {
  const r = JSON.parse(file('read', JSON.stringify([`language/${language}.yaml`])));
  if (!r.ok) throw new AbilityError('error', 'Language.FileNotFound', 400, `no language file language/${language}.yaml in the workspace: ${r.error.reason}`);
  const out = Object.create(null);
  for (const raw of String(r.value).split(/\r?\n/)) {
    const line = raw.replace(/\s+#.*$/, '');
    const m = /^\s*("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^:#][^:]*?)\s*:\s*(.*)$/.exec(line);
    if (!m) continue;
    const unquote = (s) => {
      const t = s.trim();
      if (t.startsWith('"') && t.endsWith('"') && t.length > 1) return JSON.parse(t);
      if (t.startsWith("'") && t.endsWith("'") && t.length > 1) return t.slice(1, -1).replace(/''/g, "'");
      return t;
    };
    out[unquote(m[1])] = unquote(m[2]);
  }
  return out;
}

export const Language = Object.freeze({
  // A user's chosen language lives in ONES: this host answers the plugin's
  // own first language (en, else zh, else ja: the first language file it ships).
  getLanguage: async () => {
    for (const lang of ['en', 'zh', 'ja']) {
      try { languageFile(lang); return lang; } catch { /* next */ }
    }
    return 'en';
  },
  getLanguageString: async (language, key) => languageFile(language)[key],
});

export const NotifyWay = Object.freeze({ Email: 'email', Lark: 'lark', YouDu: 'youdu', WeChat: 'wechat', DingDing: 'dingding' });
export const ProcessType = Object.freeze({ DownloadFile: 'download_file', DataSync: 'data_sync' });
export const FieldTypeEnum = Object.freeze({ SingleLabel: 'single_label', MultiLabel: 'multi_label' });
export const PoolEnum = Object.freeze({ Project: 'project', Task: 'task' });

// The manifest's `abilities[].config` values ({key: value}) of ability `abilityID`
// ({} when it has none); without an id, every ability's, by id.
export const getAbilityConfig = async (abilityID, teamUUID) => {
  const all = abilityConfig();
  return abilityID === undefined ? all : (all[abilityID] ?? {});
};
export const downloadFile = unavailable('downloadFile');
export const uploadFile = unavailable('uploadFile');
export const Notify = unavailable('Notify');
export const AuditLog = Object.freeze({ createLog: unavailable('AuditLog.createLog') });
export const Process = Object.freeze({
  create: unavailable('Process.create'), update: unavailable('Process.update'), done: unavailable('Process.done'),
});
export const PluginFile = Object.freeze({ uploadFile: unavailable('PluginFile.uploadFile') });
export const Job = Object.freeze({ CheckJobStatus: unavailable('Job.CheckJobStatus') });
export const Field = Object.freeze({
  FieldsAdd: unavailable('Field.FieldsAdd'), ItemsAdd: unavailable('Field.ItemsAdd'),
  AddGroupField: unavailable('Field.AddGroupField'), UpdateFieldGroup: unavailable('Field.UpdateFieldGroup'),
  UpdateScriptField: unavailable('Field.UpdateScriptField'), CheckJobStatus: unavailable('Field.CheckJobStatus'),
});
export const addRepos = unavailable('addRepos');
export const queryRepo = unavailable('queryRepo');
export const queryRepos = unavailable('queryRepos');
export const addRepoCommits = unavailable('addRepoCommits');
export const addRepoPullRequest = unavailable('addRepoPullRequest');
export const getUserTeamUUIDsByEmail = unavailable('getUserTeamUUIDsByEmail');
export const getUserTeamUUIDsByIdNumber = unavailable('getUserTeamUUIDsByIdNumber');
export const getUserTeamUUIDsByThirdPartyIDAndThirdPartyType = unavailable('getUserTeamUUIDsByThirdPartyIDAndThirdPartyType');
export { AbilityError };

export default {
  Plugin, Language, NotifyWay, ProcessType, FieldTypeEnum, PoolEnum, getAbilityConfig, downloadFile, uploadFile,
  Notify, AuditLog, Process, PluginFile, Job, Field, addRepos, queryRepo, queryRepos, addRepoCommits,
  addRepoPullRequest, getUserTeamUUIDsByEmail, getUserTeamUUIDsByIdNumber,
  getUserTeamUUIDsByThirdPartyIDAndThirdPartyType, AbilityError,
};
