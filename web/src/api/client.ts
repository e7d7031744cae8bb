// A small typed client over fetch for the RedFlag API (SPEC §3).
//
// The dashboard signs in with the session cookie (HttpOnly, SameSite=Strict)
// that POST /api/v1/auth/login sets. Unsafe methods (POST, PUT, DELETE) must
// also send the X-CSRF-Token header with the value of the redflag_csrf
// cookie, which the login sets readable for this purpose. Every error the
// server sends has the shape {"error":{"code","message"}}; ApiError carries
// that message so pages can show it as it is.

export const CSRF_COOKIE = 'redflag_csrf'
export const CSRF_HEADER = 'X-CSRF-Token'

/** An error answered by the server (or the network), with a message a person can act on. */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly requestId: string | null

  constructor(status: number, code: string, message: string, requestId: string | null = null) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.requestId = requestId
  }
}

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError
}

/** The message to show for any thrown value. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiError) return e.message
  if (e instanceof Error && e.message !== '') return e.message
  return 'Something went wrong.'
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Reads the SPEC error shape from a response body. A body without it (a
 * proxy's HTML page, an empty 502) still gives a useful message.
 */
export function parseErrorBody(status: number, statusText: string, body: string, requestId: string | null): ApiError {
  let parsed: unknown = null
  try {
    parsed = JSON.parse(body)
  } catch {
    // not JSON: fall through
  }
  if (isRecord(parsed) && isRecord(parsed['error'])) {
    const code = parsed['error']['code']
    const message = parsed['error']['message']
    if (typeof message === 'string' && message !== '') {
      return new ApiError(status, typeof code === 'string' ? code : 'error', message, requestId)
    }
  }
  const text = statusText !== '' ? `${status} ${statusText}` : String(status)
  return new ApiError(status, 'http_' + String(status), `The server answered ${text}.`, requestId)
}

/** The CSRF token from its cookie, or null when not signed in. */
export function readCsrfToken(cookie: string = typeof document === 'undefined' ? '' : document.cookie): string | null {
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === CSRF_COOKIE) {
      const v = part.slice(eq + 1).trim()
      return v === '' ? null : decodeURIComponent(v)
    }
  }
  return null
}

export type Query = Record<string, string | number | boolean | null | undefined>

/** Builds "?a=1&b=x" from the defined, non-empty values. */
export function queryString(q: Query | undefined): string {
  if (q === undefined) return ''
  const p = new URLSearchParams()
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === '') continue
    p.set(k, String(v))
  }
  const s = p.toString()
  return s === '' ? '' : '?' + s
}

export interface RequestOptions {
  query?: Query
  body?: unknown
  signal?: AbortSignal
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'

let fetchImpl: typeof fetch = (input, init) => fetch(input, init)

/** The fetch in use (the live event stream shares it, so tests can replace both). */
export function currentFetch(): typeof fetch {
  return fetchImpl
}

/** Replaces fetch (tests). */
export function setFetch(f: typeof fetch): void {
  fetchImpl = f
}

/** Sends one request; resolves with the decoded JSON body (undefined for 204). */
export async function request<T>(method: Method, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  const init: RequestInit = { method, headers, credentials: 'same-origin' }
  if (opts.signal !== undefined) init.signal = opts.signal
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    init.body = JSON.stringify(opts.body)
  }
  if (method !== 'GET') {
    const csrf = readCsrfToken()
    if (csrf !== null) headers[CSRF_HEADER] = csrf
  }
  let res: Response
  try {
    res = await fetchImpl(path + queryString(opts.query), init)
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e
    throw new ApiError(0, 'network', 'The server cannot be reached. Check that it is running and try again.')
  }
  const requestId = res.headers.get('X-Request-ID')
  if (!res.ok) {
    const text = await res.text().catch(() => '')
    throw parseErrorBody(res.status, res.statusText, text, requestId)
  }
  if (res.status === 204) return undefined as T
  const text = await res.text()
  if (text === '') return undefined as T
  try {
    return JSON.parse(text) as T
  } catch {
    throw new ApiError(res.status, 'invalid_response', 'The server sent an answer that is not JSON.', requestId)
  }
}

export const api = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) =>
    request<T>('GET', path, { ...(query !== undefined && { query }), ...(signal !== undefined && { signal }) }),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body === undefined ? {} : { body }),
  put: <T>(path: string, body: unknown) => request<T>('PUT', path, { body }),
  del: (path: string) => request<undefined>('DELETE', path),
}
