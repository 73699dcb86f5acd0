import { Logger } from '@ones-op/node-logger'

export async function onProfileRead(request: any) {
  Logger.info(`[subscriber] ${request.method} ${request.url} -> ${request.statusCode}`, {
    user: request.reqHeaders['Ones-User-Id'] ?? null,
    contentType: request.respHeaders['content-type'] ?? null,
    email: request.respBody?.email ?? null,
  })
}
