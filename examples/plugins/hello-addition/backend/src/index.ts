export async function hello(request: any) {
  return {
    body: {
      hello: request.headers['Ones-User-Id'] ?? 'world',
      checkPoint: request.headers['Ones-Check-Point'] ?? null,
      checkId: request.headers['Ones-Check-Id'] ?? null,
      method: request.method,
    },
  }
}
