import { appendStrings } from '@ones-op/node-file'

export async function logTask(request: any) {
  const line = JSON.stringify({
    team: request.teamUUID,
    status: request.statusCode,
    sent: request.reqBody,
    created: request.respBody?.task?.uuid ?? null,
  })
  await appendStrings('suffix.txt', line + '\n')
}
