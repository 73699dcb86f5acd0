// @ones-op/node-error, as on the ONES platform: a thrown PluginError rejects
// the request with its status and a JSON body the ONES web app recognises:
// {"type","reason","errcode","statusCode","model":"plugin.<errcode>"}.
export const PluginErrorTypeEnum = Object.freeze({
  error: 'error', warning: 'warning',
  Error: 'error', Warning: 'warning', ERROR: 'error', WARNING: 'warning',
});

export const CommonReason = Object.freeze({
  RequestTimeOut: 'Request time out.',
  ServiceUnresponsive: 'Service unresponsive.',
  ServiceIsNotAvailable: 'Service is not available.',
  InvalidParameter: 'Invalid parameter.',
  NetworkError: 'Network error.',
});

// A CommonReason text's name (the errcode it gets).
const reasonName = (reason) => Object.keys(CommonReason).find((k) => CommonReason[k] === reason || k === reason);

const levelOf = (type) => (type === 'warning' ? 'warning' : 'error');

export class PluginError extends Error {
  // ONES: new PluginError(type, statusCode, reason).
  // interpose's first form, still read: new PluginError(type, errcode, reason[, statusCode])
  // (a second argument that is not a number is an errcode).
  constructor(type, second, third, fourth) {
    const ones = typeof second === 'number' || (typeof second === 'string' && /^\d{3}$/.test(second));
    const reason = String(third ?? (ones ? '' : second ?? ''));
    super(reason);
    this.name = 'PluginError';
    this.type = levelOf(type);
    this.level = this.type;
    this.reason = reason;
    if (ones) {
      this.statusCode = Number(second);
      this.errcode = reasonName(reason) ?? (this.statusCode < 500 ? 'ClientError' : 'ServerError');
    } else {
      this.errcode = second === undefined ? 'PluginError' : String(second);
      this.statusCode = Number.isInteger(fourth) ? fourth : this.type === 'warning' ? 400 : 500;
    }
  }
}

// 400, type "warning"; the errcode is the CommonReason's name when the reason is one.
export function clientError(reason, errcode) {
  return new PluginError('warning', errcode ?? reasonName(reason) ?? 'ClientError', reason, 400);
}

// 500, type "error".
export function serverError(reason, errcode) {
  return new PluginError('error', errcode ?? reasonName(reason) ?? 'ServerError', reason, 500);
}

// An SDK error (FileError, DBError, AbilityError, FetchError, …) as a PluginError:
// level → type, statusCode, reason; anything else a 500. The result may be changed, then thrown.
export function sdkErrorToPluginError(e) {
  if (e instanceof PluginError) return e;
  const status = Number.isInteger(e?.statusCode) ? e.statusCode : Number.isInteger(e?.status) ? e.status : 500;
  const reason = e?.reason ?? e?.message ?? String(e);
  const err = new PluginError(levelOf(e?.level ?? e?.type), e?.errcode ?? (status < 500 ? 'ClientError' : 'ServerError'), reason, status);
  return err;
}

// The SDK's own error classes: {level, reason, statusCode, errcode}, constructed as
// ONES's examples do: new AbilityError(level, errcode, statusCode, reason).
function sdkError(name) {
  return class extends Error {
    constructor(level, errcode, statusCode, reason) {
      super(String(reason ?? ''));
      this.name = name;
      this.level = levelOf(level);
      this.errcode = String(errcode ?? name);
      this.statusCode = Number.isInteger(statusCode) ? statusCode : 500;
      this.reason = String(reason ?? '');
    }
  };
}
export const AbilityError = sdkError('AbilityError');
export const DBError = sdkError('DBError');
export const SDKError = sdkError('SDKError');

export default {
  PluginError, PluginErrorTypeEnum, CommonReason, clientError, serverError, sdkErrorToPluginError,
  AbilityError, DBError, SDKError,
};
