import { OPFetch } from '@ones-op/fetch'

export async function report(request: any) {
  const team = request.params.teamUUID
  const res = await OPFetch({ path: `/team/${team}/tasks`, method: 'GET', teamUUID: team })
  const tasks = res.body?.tasks ?? []
  return { body: { team, tasks: tasks.length, summaries: tasks.map((t: any) => t.summary) } }
}
