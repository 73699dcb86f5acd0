import { Logger } from '@ones-op/node-logger'
import { PluginError, PluginErrorTypeEnum } from '@ones-op/node-error'
import type { PluginRequest, PluginResponse } from '@ones-op/node-types'

// Users whose UUID starts with one of these are archived (a stand-in for a
// real lookup, e.g. through OPFetch).
const ARCHIVED_PREFIXES = ['archived-', 'ex-']

export async function jackFunc(request: PluginRequest<Record<string, any>>): Promise<PluginResponse | void> {
  const userUUID: string = request.headers['Ones-User-Id'] ?? ''
  Logger.info('[Plugin] GET /users/me for', userUUID || '(anonymous)')

  if (ARCHIVED_PREFIXES.some((p) => userUUID.startsWith(p))) {
    Logger.warn('[Plugin] rejected archived user', userUUID)
    throw new PluginError(PluginErrorTypeEnum.Warning, 'UserArchived', `user ${userUUID} is archived`, 403)
  }

  // As on the ONES page: anything that is not a rejection lets the request through.
  return {
    body: {
      res: 'hello world',
      requestBody: {},
    },
  }
}
