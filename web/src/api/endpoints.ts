// One function per route the dashboard uses (SPEC §9), and the TanStack
// Query options that cache them.
import { keepPreviousData, queryOptions } from '@tanstack/react-query'
import { api } from './client'
import type {
  Agent,
  AgentStatus,
  ApiToken,
  ApiTokenCreated,
  AuditEntry,
  Command,
  CursorList,
  Info,
  List,
  LoginResponse,
  RegistrationToken,
  Settings,
  SetupStatus,
  SigningKey,
  StatsOverview,
  StatsTrends,
  Update,
  UpdateAction,
  UpdateDetail,
  UpdateActionResult,
  User,
} from './types'

const V1 = '/api/v1'
const enc = encodeURIComponent

// Session and setup.
export const getInfo = () => api.get<Info>(`${V1}/info`)
export const getSetupStatus = () => api.get<SetupStatus>(`${V1}/setup`)
export const postSetup = (body: { setup_token: string; username: string; password: string }) =>
  api.post<User>(`${V1}/setup`, body)
export const login = (body: { username: string; password: string }) => api.post<LoginResponse>(`${V1}/auth/login`, body)
export const logout = () => api.post<undefined>(`${V1}/auth/logout`)
export const getMe = () => api.get<User>(`${V1}/me`)
export const changePassword = (body: { current_password: string; new_password: string }) =>
  api.post<undefined>(`${V1}/me/password`, body)

// API tokens.
export const listApiTokens = () => api.get<List<ApiToken>>(`${V1}/api-tokens`)
export const createApiToken = (body: { name: string; expires_in_seconds: number }) =>
  api.post<ApiTokenCreated>(`${V1}/api-tokens`, body)
export const deleteApiToken = (id: string) => api.del(`${V1}/api-tokens/${enc(id)}`)

// Registration tokens.
export interface PageQuery {
  limit: number
  offset: number
}
export const listRegistrationTokens = (q: PageQuery) =>
  api.get<List<RegistrationToken>>(`${V1}/registration-tokens`, { limit: q.limit, offset: q.offset })
export const createRegistrationToken = (body: { seats: number; expires_in_seconds: number; note: string }) =>
  api.post<RegistrationToken>(`${V1}/registration-tokens`, body)
export const revokeRegistrationToken = (id: string) =>
  api.post<RegistrationToken>(`${V1}/registration-tokens/${enc(id)}/revoke`)
export const deleteRegistrationToken = (id: string) => api.del(`${V1}/registration-tokens/${enc(id)}`)

// Agents.
export interface AgentQuery extends PageQuery {
  status?: AgentStatus | undefined
  os?: string | undefined
  hostname?: string | undefined
  sort?: string | undefined
  update_status?: string | undefined
  has_critical?: boolean | undefined
  /** Agents with an open update of this package type. */
  package_type?: string | undefined
}
export const listAgents = (q: AgentQuery, signal?: AbortSignal) =>
  api.get<List<Agent>>(
    `${V1}/agents`,
    {
      limit: q.limit,
      offset: q.offset,
      status: q.status,
      os: q.os,
      hostname: q.hostname,
      sort: q.sort,
      update_status: q.update_status,
      has_critical: q.has_critical,
      package_type: q.package_type,
    },
    signal,
  )
export const getAgent = (id: string) => api.get<Agent>(`${V1}/agents/${enc(id)}`)
export const deleteAgent = (id: string) => api.del(`${V1}/agents/${enc(id)}`)
export const rebindAgent = (id: string, machineId: string) =>
  api.post<Agent>(`${V1}/agents/${enc(id)}/rebind`, { machine_id: machineId })

// Commands.
export interface CommandQuery extends PageQuery {
  agent_id?: string | undefined
  status?: string | undefined
  type?: string | undefined
}
export const listCommands = (q: CommandQuery) =>
  api.get<List<Command>>(`${V1}/commands`, {
    limit: q.limit,
    offset: q.offset,
    agent_id: q.agent_id,
    status: q.status,
    type: q.type,
  })
export const createCommands = (body: { agent_ids: string[]; type: string; params?: Record<string, unknown> }) =>
  api.post<{ commands: Command[] }>(`${V1}/commands`, body)
export const cancelCommand = (id: string) => api.post<Command>(`${V1}/commands/${enc(id)}/cancel`)

// Updates.
export interface UpdateQuery extends PageQuery {
  agent_id?: string | undefined
  severity?: string | undefined
  package_type?: string | undefined
  status?: string | undefined
  q?: string | undefined
  sort?: string | undefined
}
export const listUpdates = (q: UpdateQuery) =>
  api.get<List<Update>>(`${V1}/updates`, {
    limit: q.limit,
    offset: q.offset,
    agent_id: q.agent_id,
    severity: q.severity,
    package_type: q.package_type,
    status: q.status,
    q: q.q,
    sort: q.sort,
  })
export const actOnUpdates = (action: UpdateAction, ids: string[], dryRun = false) =>
  api.post<UpdateActionResult>(`${V1}/updates/${action}`, dryRun ? { update_ids: ids, dry_run: true } : { update_ids: ids })
export const getUpdate = (id: string) => api.get<UpdateDetail>(`${V1}/updates/${enc(id)}`)

// Settings, keys, audit, stats.
export const getSettings = () => api.get<Settings>(`${V1}/settings`)
export const putSettings = (s: Settings) => api.put<Settings>(`${V1}/settings`, s)
export const listSigningKeys = () => api.get<List<SigningKey>>(`${V1}/security/keys`)
export interface RotateKeyResult {
  keys: SigningKey[]
  key_id: string
  retiring_key_id: string
  not_after: string
  agents: number
}
export const rotateSigningKey = () => api.post<RotateKeyResult>(`${V1}/security/keys/rotate`)
export interface AuditQuery {
  action?: string | undefined
  actor_id?: string | undefined
  target_id?: string | undefined
  cursor?: string | undefined
  limit: number
}
export const listAudit = (q: AuditQuery) =>
  api.get<CursorList<AuditEntry>>(`${V1}/audit`, {
    limit: q.limit,
    action: q.action,
    actor_id: q.actor_id,
    target_id: q.target_id,
    cursor: q.cursor,
  })
export const getOverviewStats = () => api.get<StatsOverview>(`${V1}/stats/overview`)
export const getTrends = (days: number) => api.get<StatsTrends>(`${V1}/stats/trends`, { days })

// Query options: the cache keys live here so mutations can invalidate them.
export const keys = {
  me: ['me'] as const,
  setup: ['setup'] as const,
  info: ['info'] as const,
  apiTokens: ['api-tokens'] as const,
  registrationTokens: ['registration-tokens'] as const,
  agents: ['agents'] as const,
  agent: (id: string) => ['agents', 'one', id] as const,
  commands: ['commands'] as const,
  updates: ['updates'] as const,
  settings: ['settings'] as const,
  signingKeys: ['signing-keys'] as const,
  audit: ['audit'] as const,
  stats: ['stats'] as const,
}

export const meQuery = queryOptions({ queryKey: keys.me, queryFn: getMe, staleTime: 60_000 })
export const setupQuery = queryOptions({ queryKey: keys.setup, queryFn: getSetupStatus, staleTime: 0 })
export const infoQuery = queryOptions({ queryKey: keys.info, queryFn: getInfo, staleTime: 5 * 60_000 })
export const apiTokensQuery = queryOptions({ queryKey: keys.apiTokens, queryFn: listApiTokens })
export const registrationTokensQuery = (q: PageQuery) =>
  queryOptions({
    queryKey: [...keys.registrationTokens, q],
    queryFn: () => listRegistrationTokens(q),
    placeholderData: keepPreviousData,
  })
export const agentsQuery = (q: AgentQuery) =>
  queryOptions({
    queryKey: [...keys.agents, 'list', q],
    queryFn: ({ signal }) => listAgents(q, signal),
    placeholderData: keepPreviousData,
  })
export const agentQuery = (id: string) => queryOptions({ queryKey: keys.agent(id), queryFn: () => getAgent(id) })
export const commandsQuery = (q: CommandQuery) =>
  queryOptions({
    queryKey: [...keys.commands, q],
    queryFn: () => listCommands(q),
    placeholderData: keepPreviousData,
  })
export const updatesQuery = (q: UpdateQuery) =>
  queryOptions({
    queryKey: [...keys.updates, q],
    queryFn: () => listUpdates(q),
    placeholderData: keepPreviousData,
  })
export const settingsQuery = queryOptions({ queryKey: keys.settings, queryFn: getSettings })
export const signingKeysQuery = queryOptions({ queryKey: keys.signingKeys, queryFn: listSigningKeys })
export const overviewStatsQuery = queryOptions({ queryKey: [...keys.stats, 'overview'], queryFn: getOverviewStats })
export const trendsQuery = (days: number) =>
  queryOptions({ queryKey: [...keys.stats, 'trends', days], queryFn: () => getTrends(days), staleTime: 60_000 })
export const updateQuery = (id: string) => queryOptions({ queryKey: [...keys.updates, 'one', id], queryFn: () => getUpdate(id) })
export const agentCountQuery = (status: AgentStatus | undefined) =>
  queryOptions({
    queryKey: [...keys.agents, 'count', status ?? 'all'],
    queryFn: () => listAgents({ limit: 1, offset: 0, status }).then((l) => l.total),
  })
