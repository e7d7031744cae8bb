import { MutationCache, QueryCache, QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { RouterProvider } from '@tanstack/react-router'
import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { isApiError } from './api/client'
import { keys } from './api/endpoints'
import './index.css'
import { applyTheme } from './lib/theme'
import { safeRedirect } from './lib/search'
import { makeRouter } from './router'

applyTheme()

// A session that ends (expired, signed out elsewhere, password changed)
// makes the next request answer 401: go to sign-in and come back after.
function onUnauthorized(e: unknown) {
  if (!isApiError(e) || e.status !== 401) return
  const path = window.location.pathname
  if (path === '/login' || path === '/setup') return
  queryClient.removeQueries({ queryKey: keys.me })
  const back = safeRedirect(path + window.location.search)
  void router.navigate({ to: '/login', search: back !== undefined ? { redirect: back } : {}, replace: true })
}

const queryClient = new QueryClient({
  queryCache: new QueryCache({ onError: onUnauthorized }),
  mutationCache: new MutationCache({ onError: onUnauthorized }),
  defaultOptions: {
    queries: {
      staleTime: 10_000,
      refetchOnWindowFocus: true,
      // A 4xx will not change by asking again; a network error or 5xx may.
      retry: (count, e) => count < 2 && !(isApiError(e) && e.status >= 400 && e.status < 500),
    },
  },
})

const router = makeRouter(queryClient)

const root = document.getElementById('root')
if (root === null) throw new Error('index.html has no #root element')
createRoot(root).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <RouterProvider router={router} />
    </QueryClientProvider>
  </StrictMode>,
)
