// Renders the whole app (router, query client, pages) at a path, against a
// fake API answered by a handler, for component tests.
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { createMemoryHistory, RouterProvider } from '@tanstack/react-router'
import { render } from '@testing-library/react'
import { setFetch } from '../api/client'
import { makeRouter } from '../router'

export type Handler = (method: string, url: URL, body: unknown) => { status: number; body?: unknown } | undefined

export interface Call {
  method: string
  url: URL
  body: unknown
}

export function renderApp(path: string, handler: Handler, opts: { session?: boolean } = {}) {
  if (opts.session === false) document.cookie = 'redflag_csrf=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/'
  else document.cookie = 'redflag_csrf=test-csrf; path=/'
  const calls: Call[] = []
  setFetch(async (input, init) => {
    const url = new URL(String(input), 'http://localhost')
    const method = init?.method ?? 'GET'
    const body: unknown = typeof init?.body === 'string' ? JSON.parse(init.body) : undefined
    calls.push({ method, url, body })
    const fallback = defaultAnswer(method, url)
    const res = handler(method, url, body) ?? fallback ?? {
      status: 404,
      body: { error: { code: 'not_found', message: `There is no route ${method} ${url.pathname}.` } },
    }
    return new Response(res.status === 204 ? null : JSON.stringify(res.body ?? {}), {
      status: res.status,
      headers: { 'Content-Type': 'application/json', 'X-Request-ID': 'test-rid' },
    })
  })
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false, staleTime: Infinity } } })
  const router = makeRouter(queryClient, createMemoryHistory({ initialEntries: [path] }))
  const utils = render(
    <QueryClientProvider client={queryClient}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  )
  return { ...utils, calls, router }
}

function defaultAnswer(method: string, url: URL): { status: number; body?: unknown } | undefined {
  if (method !== 'GET') return undefined
  switch (url.pathname) {
    case '/api/v1/me':
      return { status: 200, body: { id: 'u1', username: 'admin', role: 'admin', created_at: '2026-01-01T00:00:00Z' } }
    case '/api/v1/info':
      return { status: 200, body: { version: '1.0.0', commit: 'abc', build_date: '', schema_version: 3, min_agent_version: '0.1.0' } }
    case '/api/v1/setup':
      return { status: 200, body: { setup_required: false } }
  }
  return undefined
}
