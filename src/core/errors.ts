/**
 * The error catalogue: every failure krypton answers with has a stable code here, one HTTP status
 * and a message template. Errors become Xenon's ServiceErrorResponse in exactly one place
 * (`toServiceErrorResponse`) and are rebuilt from one in exactly one place (`fromServiceErrorResponse`),
 * so an error relayed from a remote node looks like a local one.
 */

/** Xenon's internal error codes: top bit set, serialized as negative 32-bit integers. */
export const XenonErrorCode = Object.freeze({
  NONE: 0,
  SERVICE_NOT_FOUND: -2147483648,
  STATE_MARKED_DELETED: -2147483646,
  SERVICE_ALREADY_EXISTS: -2147483645,
  OWNER_MISMATCH: -2147483643,
  QUEUE_LIMIT_EXCEEDED: -2147483641,
});

export const SERVICE_ERROR_KIND = 'com:vmware:xenon:common:ServiceErrorResponse';

interface ErrorTemplate {
  readonly code: string;
  readonly status: number;
  readonly xenonCode: number;
}

/** Stable krypton error codes (`KRY_ERR_*`) and their HTTP mapping. docs/errors.md lists them. */
export const Errors = Object.freeze({
  BAD_REQUEST: { code: 'KRY_ERR_BAD_REQUEST', status: 400, xenonCode: 0 },
  INVALID_JSON: { code: 'KRY_ERR_INVALID_JSON', status: 400, xenonCode: 0 },
  INVALID_QUERY: { code: 'KRY_ERR_INVALID_QUERY', status: 400, xenonCode: 0 },
  VALIDATION: { code: 'KRY_ERR_VALIDATION', status: 400, xenonCode: 0 },
  UNAUTHORIZED: { code: 'KRY_ERR_UNAUTHORIZED', status: 401, xenonCode: 0 },
  FORBIDDEN: { code: 'KRY_ERR_FORBIDDEN', status: 403, xenonCode: 0 },
  NOT_FOUND: { code: 'KRY_ERR_NOT_FOUND', status: 404, xenonCode: XenonErrorCode.SERVICE_NOT_FOUND },
  DELETED: { code: 'KRY_ERR_DELETED', status: 404, xenonCode: XenonErrorCode.STATE_MARKED_DELETED },
  METHOD_NOT_ALLOWED: { code: 'KRY_ERR_METHOD_NOT_ALLOWED', status: 405, xenonCode: 0 },
  TIMEOUT: { code: 'KRY_ERR_TIMEOUT', status: 408, xenonCode: 0 },
  ALREADY_EXISTS: { code: 'KRY_ERR_ALREADY_EXISTS', status: 409, xenonCode: XenonErrorCode.SERVICE_ALREADY_EXISTS },
  MARKED_DELETED: { code: 'KRY_ERR_MARKED_DELETED', status: 409, xenonCode: XenonErrorCode.STATE_MARKED_DELETED },
  CONFLICT: { code: 'KRY_ERR_CONFLICT', status: 409, xenonCode: 0 },
  PAYLOAD_TOO_LARGE: { code: 'KRY_ERR_PAYLOAD_TOO_LARGE', status: 413, xenonCode: 0 },
  TOO_MANY_REQUESTS: { code: 'KRY_ERR_TOO_MANY_REQUESTS', status: 429, xenonCode: 0 },
  INTERNAL: { code: 'KRY_ERR_INTERNAL', status: 500, xenonCode: 0 },
  STORAGE: { code: 'KRY_ERR_STORAGE', status: 500, xenonCode: 0 },
  UNAVAILABLE: { code: 'KRY_ERR_UNAVAILABLE', status: 503, xenonCode: 0 },
  QUORUM: { code: 'KRY_ERR_QUORUM', status: 503, xenonCode: 0 },
  WRITES_FROZEN: { code: 'KRY_ERR_WRITES_FROZEN', status: 503, xenonCode: 0 },
  REMOTE: { code: 'KRY_ERR_REMOTE', status: 502, xenonCode: 0 },
} satisfies Record<string, ErrorTemplate>);

export type ErrorName = keyof typeof Errors;

/** The one error type krypton throws for anything a client should see. */
export class KryptonError extends Error {
  readonly code: string;
  readonly statusCode: number;
  readonly xenonCode: number;
  readonly details: string[] | undefined;

  constructor(template: ErrorTemplate, message: string, options: { cause?: unknown; details?: string[]; statusCode?: number; xenonCode?: number } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KryptonError';
    this.code = template.code;
    this.statusCode = options.statusCode ?? template.status;
    this.xenonCode = options.xenonCode ?? template.xenonCode;
    this.details = options.details;
  }
}

/** Shorthand: `fail('VALIDATION', 'name is required')`. */
export function fail(name: ErrorName, message: string, options?: ConstructorParameters<typeof KryptonError>[2]): never {
  throw new KryptonError(Errors[name], message, options);
}

export function kryptonError(name: ErrorName, message: string, options?: ConstructorParameters<typeof KryptonError>[2]): KryptonError {
  return new KryptonError(Errors[name], message, options);
}

export interface ServiceErrorResponse {
  message?: string;
  statusCode: number;
  details?: string[];
  documentKind: string;
  errorCode: number;
  /** krypton extension: the stable catalogue code. Xenon clients ignore unknown fields. */
  kryptonCode?: string;
}

/** The single place an error becomes Xenon's wire shape. Unknown errors are 500s. */
export function toServiceErrorResponse(err: unknown): ServiceErrorResponse {
  if (err instanceof KryptonError) {
    const body: ServiceErrorResponse = {
      message: err.message,
      statusCode: err.statusCode,
      documentKind: SERVICE_ERROR_KIND,
      errorCode: err.xenonCode,
      kryptonCode: err.code,
    };
    if (err.details) body.details = err.details;
    return body;
  }
  const message = err instanceof Error ? err.message : String(err);
  return { message, statusCode: 500, documentKind: SERVICE_ERROR_KIND, errorCode: 0, kryptonCode: Errors.INTERNAL.code };
}

/** The single place a ServiceErrorResponse (e.g. from a remote node) becomes an error again. */
export function fromServiceErrorResponse(body: unknown, fallbackStatus: number): KryptonError {
  const b = (body && typeof body === 'object' ? body : {}) as Partial<ServiceErrorResponse>;
  const status = typeof b.statusCode === 'number' ? b.statusCode : fallbackStatus;
  const template = Object.values(Errors).find((t) => t.code === b.kryptonCode) ?? statusTemplate(status);
  const opts: { statusCode: number; xenonCode: number; details?: string[] } = { statusCode: status, xenonCode: typeof b.errorCode === 'number' ? b.errorCode : 0 };
  if (Array.isArray(b.details)) opts.details = b.details;
  return new KryptonError(template, typeof b.message === 'string' ? b.message : `request failed with ${status}`, opts);
}

function statusTemplate(status: number): ErrorTemplate {
  return Object.values(Errors).find((t) => t.status === status) ?? { code: 'KRY_ERR_REMOTE', status, xenonCode: 0 };
}
