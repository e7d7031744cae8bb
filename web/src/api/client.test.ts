import { afterEach, describe, expect, it, vi } from 'vitest'
import { ApiError, CSRF_HEADER, errorMessage, parseErrorBody, queryString, readCsrfToken, request, setFetch } from './client'

function respond(status: number, body: string, headers: Record<string, string> = {}) {
  return new Response(status === 204 ? null : body, { status, headers: { 'Content-Type': 'application/json', ...headers } })
}

afterEach(() => {
  setFetch((input, init) => fetch(input, init))
  document.cookie = 'redflag_csrf=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/'
})

describe('parseErrorBody', () => {
  it('takes the message from the SPEC error shape', () => {
    const e = parseErrorBody(400, 'Bad Request', '{"error":{"code":"invalid_field","message":"seats must be from 1 to 100000."}}', 'rid-1')
    expect(e).toBeInstanceOf(ApiError)
    expect(e.status).toBe(400)
    expect(e.code).toBe('invalid_field')
    expect(e.message).toBe('seats must be from 1 to 100000.')
    expect(e.requestId).toBe('rid-1')
  })

  it('falls back to the status for a body without the shape', () => {
    expect(parseErrorBody(502, 'Bad Gateway', '<html>proxy</html>', null).message).toBe('The server answered 502 Bad Gateway.')
    expect(parseErrorBody(500, '', '{"error":"flat"}', null).message).toBe('The server answered 500.')
    expect(parseErrorBody(404, 'Not Found', '{"error":{"code":"x","message":""}}', null).code).toBe('http_404')
  })
})

describe('request', () => {
  it('surfaces the server message of an error answer', async () => {
    setFetch(async () =>
      respond(401, '{"error":{"code":"bad_credentials","message":"The username or password is wrong."}}', { 'X-Request-ID': 'abc' }),
    )
    const err = await request('POST', '/api/v1/auth/login', { body: { username: 'a', password: 'b' } }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(errorMessage(err)).toBe('The username or password is wrong.')
    expect((err as ApiError).code).toBe('bad_credentials')
    expect((err as ApiError).requestId).toBe('abc')
  })

  it('sends JSON, the CSRF header on unsafe methods only, and same-origin credentials', async () => {
    document.cookie = 'redflag_csrf=tok%2Fen; path=/'
    const seen: Array<{ url: string; init: RequestInit | undefined }> = []
    setFetch(async (input, init) => {
      seen.push({ url: String(input), init })
      return respond(200, '{"ok":true}')
    })
    await request('GET', '/api/v1/agents', { query: { limit: 50, status: '', os: undefined, hostname: 'web 1' } })
    await request('POST', '/api/v1/commands', { body: { agent_ids: ['x'], type: 'collect_specs' } })
    expect(seen[0]?.url).toBe('/api/v1/agents?limit=50&hostname=web+1')
    const getHeaders = seen[0]?.init?.headers as Record<string, string>
    expect(getHeaders[CSRF_HEADER]).toBeUndefined()
    const postHeaders = seen[1]?.init?.headers as Record<string, string>
    expect(postHeaders[CSRF_HEADER]).toBe('tok/en')
    expect(postHeaders['Content-Type']).toBe('application/json')
    expect(seen[1]?.init?.body).toBe('{"agent_ids":["x"],"type":"collect_specs"}')
    expect(seen[1]?.init?.credentials).toBe('same-origin')
  })

  it('resolves 204 to undefined', async () => {
    setFetch(async () => respond(204, ''))
    await expect(request('DELETE', '/api/v1/agents/x')).resolves.toBeUndefined()
  })

  it('turns a network failure into a readable error', async () => {
    setFetch(vi.fn(async () => Promise.reject(new TypeError('Failed to fetch'))))
    const err = await request('GET', '/api/v1/me').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect((err as ApiError).status).toBe(0)
    expect(errorMessage(err)).toMatch(/cannot be reached/)
  })

  it('refuses a success answer that is not JSON', async () => {
    setFetch(async () => new Response('<!doctype html>', { status: 200 }))
    const err = await request('GET', '/api/v1/me').catch((e: unknown) => e)
    expect((err as ApiError).code).toBe('invalid_response')
  })
})

describe('helpers', () => {
  it('reads the CSRF cookie among others', () => {
    expect(readCsrfToken('a=1; redflag_csrf=xyz; b=2')).toBe('xyz')
    expect(readCsrfToken('a=1')).toBeNull()
    expect(readCsrfToken('redflag_csrf=')).toBeNull()
  })

  it('builds query strings without empty values', () => {
    expect(queryString({ a: 1, b: '', c: null, d: undefined, e: false })).toBe('?a=1&e=false')
    expect(queryString({})).toBe('')
    expect(queryString(undefined)).toBe('')
  })

  it('gives a message for anything thrown', () => {
    expect(errorMessage(new Error('boom'))).toBe('boom')
    expect(errorMessage('x')).toBe('Something went wrong.')
  })
})
