// @ones-op/node-error: a thrown PluginError rejects the request with
// {"type","reason","errcode","statusCode"} as the JSON body.
export const PluginErrorTypeEnum = Object.freeze({ Error: 'error', Warning: 'warning', ERROR: 'error', WARNING: 'warning' });

export const CommonReason = Object.freeze({
  RequestTimeOut: 'RequestTimeOut',
  ServiceUnresponsive: 'ServiceUnresponsive',
  ServiceIsNotAvailable: 'ServiceIsNotAvailable',
  InvalidParameter: 'InvalidParameter',
  NetworkError: 'NetworkError',
});

export class PluginError extends Error {
  // new PluginError(type, errcode, reason[, statusCode])
  constructor(type, errcode, reason, statusCode) {
    const why = reason === undefined ? String(errcode) : String(reason);
    super(why);
    this.name = 'PluginError';
    this.type = type === 'warning' ? 'warning' : 'error';
    this.errcode = errcode === undefined ? 'PluginError' : String(errcode);
    this.reason = why;
    this.statusCode = Number.isInteger(statusCode) ? statusCode : this.type === 'warning' ? 400 : 500;
    this.level = this.type;
  }
}

const known = (reason) => Object.values(CommonReason).includes(reason);

// 400, type "warning"; errcode defaults to the reason when it is a CommonReason.
export function clientError(reason, errcode) {
  return new PluginError('warning', errcode ?? (known(reason) ? reason : 'ClientError'), reason, 400);
}

// 500, type "error".
export function serverError(reason, errcode) {
  return new PluginError('error', errcode ?? (known(reason) ? reason : 'ServerError'), reason, 500);
}

export default { PluginError, PluginErrorTypeEnum, CommonReason, clientError, serverError };
