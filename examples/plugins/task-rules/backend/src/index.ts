import { Logger } from '@ones-op/node-logger'
import { clientError } from '@ones-op/node-error'
import { checkSummary } from './rules'

interface NewTask {
  summary?: string
  assign?: string
}

export async function checkNewTask(request: PluginRequest) {
  const task = (request.body ?? {}) as NewTask
  const problem = checkSummary(task.summary)
  if (problem) {
    Logger.info(`[task-rules] team ${request.params.teamUUID}: ${problem}`)
    // 400 {"type":"warning","reason":...,"errcode":"InvalidParameter","statusCode":400}
    throw clientError(problem, 'InvalidParameter')
  }
  if (task.assign === 'nobody') {
    // A rejection can also be a plain response with its own status and headers.
    return { statusCode: 422, headers: { 'X-Rule': 'assignee' }, body: { reason: 'tasks must be assigned to someone' } }
  }
}

type PluginRequest = { body: unknown; params: Record<string, string> }
