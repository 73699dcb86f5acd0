export async function appendPlugin(request: { body: any }) {
  if (!request.body || typeof request.body.title !== 'string') return // unchanged
  return { body: { ...request.body, title: request.body.title + '-plugin' } }
}
