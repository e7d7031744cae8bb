// Wire types of the user API (SPEC §9; bodies as GET /api/v1/openapi.json
// documents them). Times are RFC 3339 strings.

/** Every paged list (SPEC §3). */
export interface List<T> {
  items: T[]
  next_cursor: string | null
  total: number
}

/** A list paged by cursor only (the audit log). */
export interface CursorList<T> {
  items: T[]
  next_cursor: string | null
}

export interface Info {
  version: string
  commit: string
  build_date: string
  schema_version: number
  min_agent_version: string
}

export interface SetupStatus {
  setup_required: boolean
}

export interface User {
  id: string
  username: string
  role: string
  created_at: string
}

export interface LoginResponse {
  token: string
  expires_at: string
  csrf_token: string
  user: User
}

export interface ApiToken {
  id: string
  kind: string
  name: string
  created_at: string
  expires_at: string | null
  last_used_at: string | null
  created_ip: string
}

export interface ApiTokenCreated extends ApiToken {
  token: string
}

export type RegistrationTokenStatus = 'active' | 'expired' | 'revoked' | 'exhausted'

export interface RegistrationToken {
  id: string
  note: string
  seats: number
  seats_used: number
  created_by: string
  created_at: string
  expires_at: string
  revoked_at: string | null
  status: RegistrationTokenStatus
  /** Only in the answer to the create request. */
  token?: string
}

export type AgentStatus = 'online' | 'offline' | 'stale'
export type OSType = 'linux' | 'windows' | 'darwin'

export interface Disk {
  mount: string
  filesystem: string
  total_bytes: number
  used_bytes: number
}

/** The system inventory an agent reports (POST …/reports/system). */
export interface SystemInfo {
  os_type?: string
  os_version?: string
  os_arch?: string
  kernel?: string
  hostname?: string
  cpu_model?: string
  cpu_cores?: number
  memory_bytes?: number
  uptime_seconds?: number
  disks?: Disk[] | null
  reboot_required?: boolean
  package_managers?: string[] | null
}

export interface Agent {
  id: string
  hostname: string
  os_type: string
  os_version: string
  os_arch: string
  agent_version: string
  machine_id: string
  status: AgentStatus
  check_in_interval_seconds: number
  registered_at: string
  last_seen_at: string | null
  system_info?: SystemInfo | null
  system_info_at?: string | null
  /** never_scanned, scan_failed, scan_stale, up_to_date or updates_available. */
  update_status?: AgentUpdateStatus
  reboot_required?: boolean
  /** The open updates, counted. */
  pending_updates?: UpdateCounts | null
  /** Each scanner's latest scan (detail only). */
  scans?: AgentScan[] | null
  /** The latest self-upgrade, null when none (detail only). */
  upgrade?: AgentUpgrade | null
}

export const AGENT_UPDATE_STATUSES = ['updates_available', 'up_to_date', 'scan_failed', 'scan_stale', 'never_scanned'] as const
export type AgentUpdateStatus = (typeof AGENT_UPDATE_STATUSES)[number]

export interface UpdateCounts {
  total: number
  by_severity: Record<string, number>
  by_package_type: Record<string, number>
  by_status: Record<string, number>
  /** By package type, then severity (only the pairs that occur). */
  by_package_type_severity?: Record<string, Record<string, number>> | null
}

/** An agent's latest self-upgrade (agent detail only). */
export interface AgentUpgrade {
  agent_id: string
  command_id: string | null
  from_version: string
  target_version: string
  rollback: boolean
  /** in_progress, succeeded, failed or cancelled. */
  status: string
  failure_reason?: string
  auto_upgrade_blocked: boolean
  attempts: number
  trigger: string
  requested_by: string
  requested_at: string
  finished_at: string | null
  updated_at: string
}

export interface AgentScan {
  scanner: string
  status: string
  error: string
  scanned_at: string | null
  last_report_at: string
  last_success_at: string | null
  interval_seconds: number
  stale: boolean
}

export const AGENT_SORTS = [
  'hostname',
  'status',
  'os_type',
  'update_status',
  'pending_updates',
  'critical_updates',
  'agent_version',
  'last_seen_at',
  'registered_at',
] as const
export type AgentSort = (typeof AGENT_SORTS)[number]

export type CommandState = 'pending' | 'sent' | 'succeeded' | 'failed' | 'timed_out' | 'expired' | 'cancelled'

export const COMMAND_STATES: readonly CommandState[] = [
  'pending',
  'sent',
  'succeeded',
  'failed',
  'timed_out',
  'expired',
  'cancelled',
]

export const COMMAND_TYPES = [
  'scan_updates',
  'collect_specs',
  'install_updates',
  'confirm_dependencies',
  'rollback_update',
  'update_agent',
  'enable_heartbeat',
  'disable_heartbeat',
  'reboot',
  'rotate_key',
] as const
export type CommandType = (typeof COMMAND_TYPES)[number]

/** A command's stored result. */
export interface CommandResult {
  exit_code?: number
  output?: string
  started_at?: string
  finished_at?: string
  details?: Record<string, unknown> | null
}

export interface Command {
  id: string
  agent_id: string
  type: string
  /** The signed parameters, as the compact JSON text that was signed. */
  params: string
  status: CommandState
  key_id: string
  signature: string
  issued_at: number
  expires_at: number
  created_at: string
  created_by: string
  sent_at: string | null
  acked_at: string | null
  finished_at: string | null
  result?: CommandResult | null
  /** The agent's hostname (servers that send it; older ones name the agent by id only). */
  hostname?: string
}

/**
 * Server settings: whole numbers of seconds by name. The page shows every
 * one the server sends (known ones with a description), so a setting added
 * on the server appears without a dashboard change.
 */
export type Settings = Record<string, number>

export interface SigningKey {
  key_id: string
  algorithm: string
  public_key: string
  status: 'active' | 'retiring' | string
  created_at: string
  not_after: string | null
}

export interface AuditEntry {
  id: number
  at: string
  actor_type: string
  actor_id: string
  actor_name: string
  action: string
  target_type: string
  target_id: string
  ip: string
  details: Record<string, unknown> | null
}

export const SEVERITIES = ['critical', 'important', 'moderate', 'low', 'unknown'] as const
export type Severity = (typeof SEVERITIES)[number]

export const PACKAGE_TYPES = [
  'apt',
  'dnf',
  'pacman',
  'aur',
  'snap',
  'flatpak',
  'homebrew',
  'winget',
  'windows_update',
  'docker',
] as const

export const UPDATE_STATES = [
  'pending',
  'approved',
  'needs_confirmation',
  'installing',
  'installed',
  'failed',
  'rejected',
  'ignored',
  'resolved',
] as const
export type UpdateState = (typeof UPDATE_STATES)[number]
/** The list filter for every status still waiting to be installed. */
export const OPEN_UPDATES = 'open'

/** An update on one agent (SPEC §7), as GET /api/v1/updates lists it. */
export interface Update {
  id: string
  agent_id: string
  hostname: string
  package_type: string
  package_name: string
  current_version: string
  available_version: string
  severity: string
  source: string
  cve_ids: string[] | null
  size_bytes: number
  requires_reboot: boolean
  metadata: Record<string, string> | null
  status: string
  /** The agent's word on the last install or dry run. */
  status_message: string
  installed_version: string
  command_id: string | null
  command_status: string | null
  first_seen_at: string
  last_seen_at: string
  updated_at: string
  status_changed_at: string | null
  /** For needs_confirmation: the other packages the dry run found would change. */
  extras?: PackageChange[] | null
}

/** A package beyond the update itself that an install would change (a dry run's finding). */
export interface PackageChange {
  package_type: string
  package_name: string
  /** upgrade, install (a new dependency) or remove. */
  action: string
  from_version?: string
  to_version?: string
}

/** One status change of an update. */
export interface UpdateHistoryEntry {
  id: number
  from_status: string
  to_status: string
  actor: string
  note: string
  at: string
}

/** GET /api/v1/updates/{id}: the update with its history, oldest first. */
export interface UpdateDetail extends Update {
  history: UpdateHistoryEntry[] | null
}

export type UpdateAction = 'approve' | 'reject' | 'ignore' | 'confirm'

export interface UpdateActionResult {
  changed: number
  unchanged: number
  commands: Command[] | null
}

/** GET /api/v1/stats/overview: the figures of the Overview page. */
export interface StatsOverview {
  agents: { total: number; online: number; offline: number; stale: number }
  update_status: Record<AgentUpdateStatus, number>
  pending_by_severity: Record<Severity, number>
  pending_by_package_type: Record<string, number>
  reboot_required: number
  failed_installs_24h: number
  installed_24h: number
}

/** One day of GET /api/v1/stats/trends. */
export interface TrendDay {
  date: string
  pending: Partial<Record<Severity, number>>
  pending_by_package_type: Record<string, number>
  installed: number
  failed: number
}

export interface StatsTrends {
  days: TrendDay[]
}
