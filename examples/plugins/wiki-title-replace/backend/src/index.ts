import { Logger } from '@ones-op/node-logger'
import { fetchONES } from '@ones-op/node-fetch'

export async function updateTitle(request: PluginRequest) {
  // '/wiki' + request.url: a path starting with a scope name goes to that scope.
  const res = await fetchONES({
    path: '/wiki' + request.url,
    method: 'POST',
    headers: { 'Ones-User-Id': [request.headers['Ones-User-Id'] ?? ''], 'Content-Type': 'application/json' },
    body: request.body,
    root: false,
  })
  Logger.info(`[wiki-title-replace] original API answered ${res.statusCode}`)
  return {
    statusCode: res.statusCode,
    headers: { 'X-Replaced-By': 'wiki-title-replace' },
    body: { ...res.body, replacedBy: 'wiki-title-replace' },
  }
}

type PluginRequest = { url: string; body: unknown; headers: Record<string, string> }
