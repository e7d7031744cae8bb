// The routes. Pages get their validated search parameters as props, so they
// do not import the route objects (no import cycles).
import type { QueryClient } from '@tanstack/react-query'
import {
  createRootRouteWithContext,
  createRoute,
  createRouter,
  Outlet,
  redirect,
  useNavigate,
  type ErrorComponentProps,
  type RouterHistory,
} from '@tanstack/react-router'
import type { JSX } from 'react'
import { ApiError, isApiError, readCsrfToken } from './api/client'
import { meQuery, setupQuery } from './api/endpoints'
import { AppShell } from './components/AppShell'
import { ErrorState } from './components/states'
import { AccountPage } from './pages/AccountPage'
import { AgentDetailPage } from './pages/AgentDetailPage'
import { AgentsPage, parseAgentsSearch } from './pages/AgentsPage'
import { ApiTokensPage } from './pages/ApiTokensPage'
import { AuditPage, parseAuditSearch } from './pages/AuditPage'
import { CommandsPage, parseCommandsSearch } from './pages/CommandsPage'
import { LoginPage } from './pages/LoginPage'
import { NotFoundPage } from './pages/NotFoundPage'
import { OverviewPage } from './pages/OverviewPage'
import { RegistrationTokensPage } from './pages/RegistrationTokensPage'
import { SettingsPage } from './pages/SettingsPage'
import { SetupPage } from './pages/SetupPage'
import { parseUpdatesSearch, UpdatesPage } from './pages/UpdatesPage'
import { safeRedirect, str } from './lib/search'

export interface RouterContext {
  queryClient: QueryClient
}

function RouteError({ error, reset }: ErrorComponentProps): JSX.Element {
  return <ErrorState error={error} onRetry={reset} />
}

const rootRoute = createRootRouteWithContext<RouterContext>()({
  component: Outlet,
  notFoundComponent: NotFoundPage,
  errorComponent: RouteError,
})

const setupRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/setup',
  validateSearch: (s: Record<string, unknown>): { token?: string } => {
    const token = str(s['token'], 256)
    return token !== undefined ? { token } : {}
  },
  component: SetupView,
})
function SetupView(): JSX.Element {
  const { token } = setupRoute.useSearch()
  return <SetupPage token={token} />
}

const loginRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: '/login',
  validateSearch: (s: Record<string, unknown>): { redirect?: string } => {
    const r = safeRedirect(s['redirect'])
    return r !== undefined ? { redirect: r } : {}
  },
  component: LoginView,
})
function LoginView(): JSX.Element {
  const { redirect: to } = loginRoute.useSearch()
  return <LoginPage redirect={to} />
}

// Everything below needs a signed-in user: without a session the visitor is
// sent to the setup wizard (no admin yet) or to sign in.
const appRoute = createRoute({
  getParentRoute: () => rootRoute,
  id: 'app',
  beforeLoad: async ({ context, location }) => {
    try {
      // The CSRF cookie comes with every session: without it there is none,
      // and asking /me would only log a 401 in the console.
      if (readCsrfToken() === null) throw new ApiError(401, 'unauthorized', 'Sign in.')
      await context.queryClient.ensureQueryData(meQuery)
    } catch (e) {
      if (!isApiError(e) || e.status !== 401) throw e
      const setup = await context.queryClient.fetchQuery(setupQuery).catch(() => null)
      if (setup?.setup_required === true) throw redirect({ to: '/setup' })
      const back = safeRedirect(location.href)
      throw redirect({ to: '/login', search: back !== undefined ? { redirect: back } : {} })
    }
  },
  component: AppShell,
  errorComponent: RouteError,
})

const overviewRoute = createRoute({ getParentRoute: () => appRoute, path: '/', component: OverviewPage })

const agentsRoute = createRoute({
  getParentRoute: () => appRoute,
  path: '/agents',
  validateSearch: parseAgentsSearch,
  component: AgentsView,
})
function AgentsView(): JSX.Element {
  const search = agentsRoute.useSearch()
  const navigate = useNavigate()
  return <AgentsPage search={search} onSearch={(s) => void navigate({ to: '/agents', search: s })} />
}

const agentRoute = createRoute({
  getParentRoute: () => appRoute,
  path: '/agents/$agentId',
  component: AgentView,
})
function AgentView(): JSX.Element {
  const { agentId } = agentRoute.useParams()
  return <AgentDetailPage key={agentId} agentId={agentId} />
}

const updatesRoute = createRoute({
  getParentRoute: () => appRoute,
  path: '/updates',
  validateSearch: parseUpdatesSearch,
  component: UpdatesView,
})
function UpdatesView(): JSX.Element {
  const search = updatesRoute.useSearch()
  const navigate = useNavigate()
  return <UpdatesPage search={search} onSearch={(s) => void navigate({ to: '/updates', search: s })} />
}

const commandsRoute = createRoute({
  getParentRoute: () => appRoute,
  path: '/commands',
  validateSearch: parseCommandsSearch,
  component: CommandsView,
})
function CommandsView(): JSX.Element {
  const search = commandsRoute.useSearch()
  const navigate = useNavigate()
  return <CommandsPage search={search} onSearch={(s) => void navigate({ to: '/commands', search: s })} />
}

const registrationTokensRoute = createRoute({
  getParentRoute: () => appRoute,
  path: '/registration-tokens',
  component: RegistrationTokensPage,
})

const settingsRoute = createRoute({ getParentRoute: () => appRoute, path: '/settings', component: SettingsPage })

const auditRoute = createRoute({
  getParentRoute: () => appRoute,
  path: '/audit',
  validateSearch: parseAuditSearch,
  component: AuditView,
})
function AuditView(): JSX.Element {
  const search = auditRoute.useSearch()
  const navigate = useNavigate()
  return <AuditPage search={search} onSearch={(s) => void navigate({ to: '/audit', search: s })} />
}

const apiTokensRoute = createRoute({ getParentRoute: () => appRoute, path: '/api-tokens', component: ApiTokensPage })
const accountRoute = createRoute({ getParentRoute: () => appRoute, path: '/account', component: AccountPage })

const routeTree = rootRoute.addChildren([
  setupRoute,
  loginRoute,
  appRoute.addChildren([
    overviewRoute,
    agentsRoute,
    agentRoute,
    updatesRoute,
    commandsRoute,
    registrationTokensRoute,
    settingsRoute,
    auditRoute,
    apiTokensRoute,
    accountRoute,
  ]),
])

export function makeRouter(queryClient: QueryClient, history?: RouterHistory) {
  return createRouter({
    routeTree,
    context: { queryClient },
    ...(history !== undefined && { history }),
    defaultPreload: 'intent',
    defaultPreloadStaleTime: 0,
    scrollRestoration: true,
  })
}

declare module '@tanstack/react-router' {
  interface Register {
    router: ReturnType<typeof makeRouter>
  }
}
