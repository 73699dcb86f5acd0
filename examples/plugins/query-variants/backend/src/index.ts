import { Logger } from '@ones-op/node-logger'

function variant(name: string) {
  return (request: any) => {
    Logger.info(`[query-variants] ${name} ran for ${request.url}`)
    if (request.headers['X-Show-Variant'] === '1') {
      return { statusCode: 418, body: { variant: name } }
    }
  }
}

export const onK1 = variant('onK1')
export const onK2 = variant('onK2')
export const onK3 = variant('onK3')
