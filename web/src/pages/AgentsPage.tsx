// The fleet: one server-side page of agents at a time (10,000 agents are
// never fetched at once), sorted by any column, filtered by status, OS,
// update state, critical updates and package manager and searched by
// hostname on the server; rows can be selected for bulk actions.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import type { RowSelectionState } from '@tanstack/react-table'
import { Radar, ServerCog, ShieldCheck, Trash2 } from 'lucide-react'
import { useEffect, useMemo, useState } from 'react'
import { actOnUpdates, agentsQuery, createCommands, deleteAgent, keys, listUpdates } from '../api/endpoints'
import { AGENT_SORTS, AGENT_UPDATE_STATUSES, PACKAGE_TYPES, type Agent, type AgentStatus, type AgentUpdateStatus, type OSType } from '../api/types'
import { DataTable, type Columns } from '../components/DataTable'
import { ConfirmDialog } from '../components/Dialog'
import { Pagination } from '../components/Pagination'
import { EmptyState, ErrorState, InlineError, LoadingState, Notice } from '../components/states'
import { Time } from '../components/Time'
import { Badge, Button, Card, FilterSelect, PageHeader, SearchInput, Select, StatusBadge } from '../components/ui'
import { formatNumber, osLabel } from '../lib/format'
import { compact, int, oneOf, str, type Search } from '../lib/search'
import { sortToState, stateToSort } from '../lib/sort'
import { useDebounced } from '../lib/useDebounced'

const SORT_KEYS: readonly string[] = AGENT_SORTS
const STATUSES: readonly AgentStatus[] = ['online', 'offline', 'stale']
const OSES: readonly OSType[] = ['linux', 'windows', 'darwin']

export interface AgentsSearch {
  offset?: number
  limit?: number
  sort?: string
  status?: AgentStatus
  os?: OSType
  q?: string
  updates?: AgentUpdateStatus
  critical?: 'yes' | 'no'
  /** Agents with an open update of this package manager. */
  pkg?: (typeof PACKAGE_TYPES)[number]
}

const CRITICAL = ['yes', 'no'] as const
const SECURITY_SEVERITIES = ['critical', 'important'] as const
const PAGE = 500
const MAX_IDS = 10_000

/** The ids of the selected agents' pending critical and important updates, fetched page by page. */
export async function securityUpdateIds(agentIds: string[]): Promise<string[]> {
  const ids: string[] = []
  for (const agent_id of agentIds) {
    for (const severity of SECURITY_SEVERITIES) {
      for (let offset = 0; ; offset += PAGE) {
        const page = await listUpdates({ agent_id, severity, status: 'pending', limit: PAGE, offset })
        for (const u of page.items) ids.push(u.id)
        if (page.items.length < PAGE || offset + PAGE >= page.total) break
      }
    }
  }
  return ids
}

export function parseAgentsSearch(s: Search): AgentsSearch {
  const sort = str(s['sort'])
  return compact({
    offset: int(s['offset'], 0, 1 << 30),
    limit: int(s['limit'], 1, 500),
    sort: sort !== undefined && SORT_KEYS.includes(sort.replace(/^-/, '')) ? sort : undefined,
    status: oneOf(s['status'], STATUSES),
    os: oneOf(s['os'], OSES),
    q: str(s['q'], 255),
    updates: oneOf(s['updates'], AGENT_UPDATE_STATUSES),
    critical: oneOf(s['critical'], CRITICAL),
    pkg: oneOf(s['pkg'], PACKAGE_TYPES),
  })
}

const columns: Columns<Agent> = [
  {
    id: 'hostname',
    accessorFn: (a) => a.hostname,
    header: 'Hostname',
    cell: ({ row }) => (
      <div className="min-w-0">
        <Link
          to="/agents/$agentId"
          params={{ agentId: row.original.id }}
          className="font-medium break-all text-red-700 hover:underline dark:text-red-400"
          data-testid="agent-hostname"
        >
          {row.original.hostname}
        </Link>
        <p className="text-xs text-zinc-500 sm:hidden">
          {osLabel(row.original.os_type)} · <Time iso={row.original.last_seen_at} />
        </p>
      </div>
    ),
  },
  { id: 'status', accessorFn: (a) => a.status, header: 'Status', cell: ({ row }) => <StatusBadge status={row.original.status} /> },
  {
    id: 'os_type',
    accessorFn: (a) => a.os_type,
    header: 'OS',
    meta: { className: 'hidden sm:table-cell' },
    cell: ({ row }) => (
      <span>
        {osLabel(row.original.os_type)} <span className="text-zinc-500">{row.original.os_version}</span>
        {row.original.os_arch !== '' && <span className="text-zinc-500"> · {row.original.os_arch}</span>}
      </span>
    ),
  },
  {
    id: 'update_status',
    accessorFn: (a) => a.update_status ?? '',
    header: 'Update state',
    meta: { className: 'hidden lg:table-cell' },
    cell: ({ row }) =>
      row.original.update_status !== undefined ? <StatusBadge status={row.original.update_status} /> : <span className="text-zinc-500">—</span>,
  },
  {
    id: 'pending_updates',
    accessorFn: (a) => a.pending_updates?.total ?? 0,
    header: 'Updates',
    sortDescFirst: true,
    meta: { className: 'hidden md:table-cell' },
    cell: ({ row }) => <UpdatesCell agent={row.original} />,
  },
  {
    id: 'critical_updates',
    accessorFn: (a) => a.pending_updates?.by_severity['critical'] ?? 0,
    header: 'Critical',
    sortDescFirst: true,
    meta: { className: 'hidden md:table-cell' },
    cell: ({ row }) => {
      const n = row.original.pending_updates?.by_severity['critical'] ?? 0
      return n > 0 ? <Badge tone="red">{formatNumber(n)}</Badge> : <span className="text-zinc-500">0</span>
    },
  },
  {
    id: 'agent_version',
    accessorFn: (a) => a.agent_version,
    header: 'Agent',
    meta: { className: 'hidden md:table-cell' },
    cell: ({ row }) => <span className="font-mono text-xs">{row.original.agent_version || '—'}</span>,
  },
  {
    id: 'last_seen_at',
    accessorFn: (a) => a.last_seen_at ?? '',
    header: 'Last seen',
    meta: { className: 'hidden sm:table-cell' },
    cell: ({ row }) => <Time iso={row.original.last_seen_at} />,
  },
  {
    id: 'registered_at',
    accessorFn: (a) => a.registered_at,
    header: 'Registered',
    meta: { className: 'hidden lg:table-cell' },
    cell: ({ row }) => <Time iso={row.original.registered_at} />,
  },
]

function UpdatesCell({ agent }: { agent: Agent }) {
  const c = agent.pending_updates
  const critical = c?.by_severity['critical'] ?? 0
  if (c !== undefined && c !== null && c.total > 0) {
    return (
      <Link
        to="/updates"
        search={{ agent_id: agent.id }}
        className="inline-flex items-center gap-1.5 hover:underline"
        aria-label={`${c.total} open update(s)${critical > 0 ? `, ${critical} critical` : ''}`}
      >
        <span className="tabular-nums">{formatNumber(c.total)}</span>
        {agent.reboot_required === true && <Badge tone="amber">reboot</Badge>}
      </Link>
    )
  }
  return (
    <span className="inline-flex items-center gap-1.5">
      <span className="text-zinc-500 tabular-nums">0</span>
      {agent.reboot_required === true && <Badge tone="amber">reboot</Badge>}
    </span>
  )
}

export function AgentsPage({ search, onSearch }: { search: AgentsSearch; onSearch: (s: AgentsSearch) => void }) {
  const qc = useQueryClient()
  const limit = search.limit ?? 50
  const offset = search.offset ?? 0
  const [text, setText] = useState(search.q ?? '')
  const debounced = useDebounced(text.trim(), 300)
  useEffect(() => {
    if ((search.q ?? '') !== debounced) onSearch(compact({ ...search, q: debounced === '' ? undefined : debounced, offset: undefined }))
    // Only the typed text drives this; the other filters navigate directly.
  }, [debounced])
  const q = useQuery(
    agentsQuery({ limit, offset, status: search.status, os: search.os, hostname: search.q, sort: search.sort, update_status: search.updates,
      has_critical: search.critical === undefined ? undefined : search.critical === 'yes', package_type: search.pkg }),
  )
  const [selection, setSelection] = useState<RowSelectionState>({})
  const selectedIds = useMemo(() => Object.keys(selection).filter((k) => selection[k] === true), [selection])
  useEffect(() => setSelection({}), [offset, limit, search.status, search.os, search.q, search.sort, search.updates, search.critical, search.pkg])
  const [notice, setNotice] = useState<string | null>(null)
  const [confirmDelete, setConfirmDelete] = useState(false)
  // The security updates of the selected agents, listed before asking.
  const [security, setSecurity] = useState<{ agents: number; ids: string[] } | null>(null)
  const gather = useMutation({
    mutationFn: () => securityUpdateIds(selectedIds),
    onSuccess: (ids) => {
      if (ids.length === 0) setNotice(`The ${selectedIds.length} selected agent(s) have no pending critical or important update.`)
      else setSecurity({ agents: selectedIds.length, ids })
    },
  })
  const approveSecurity = async (ids: string[]) => {
    let changed = 0
    let commands = 0
    for (let i = 0; i < ids.length; i += MAX_IDS) {
      const r = await actOnUpdates('approve', ids.slice(i, i + MAX_IDS))
      changed += r.changed
      commands += r.commands?.length ?? 0
    }
    setNotice(`Approved ${changed} security update(s); queued ${commands} install command(s).`)
    setSelection({})
    await Promise.all([
      qc.invalidateQueries({ queryKey: keys.updates }),
      qc.invalidateQueries({ queryKey: keys.commands }),
      qc.invalidateQueries({ queryKey: keys.agents }),
    ])
  }

  const queue = useMutation({
    mutationFn: (type: 'scan_updates' | 'collect_specs') => createCommands({ agent_ids: selectedIds, type }),
    onSuccess: (res, type) => {
      setNotice(`Queued ${type === 'scan_updates' ? 'an update scan' : 'a system inventory'} for ${res.commands.length} agent(s).`)
      void qc.invalidateQueries({ queryKey: keys.commands })
    },
  })
  const removeSelected = async () => {
    const failures: string[] = []
    for (const id of selectedIds) {
      try {
        await deleteAgent(id)
      } catch (e) {
        failures.push(e instanceof Error ? e.message : String(e))
      }
    }
    await qc.invalidateQueries({ queryKey: keys.agents })
    setSelection({})
    if (failures.length > 0) throw new Error(`${failures.length} of ${selectedIds.length} could not be deleted: ${failures[0] ?? ''}`)
    setNotice(`Deleted ${selectedIds.length} agent(s).`)
  }

  const filtered =
    search.status !== undefined ||
    search.os !== undefined ||
    search.updates !== undefined ||
    search.critical !== undefined ||
    search.pkg !== undefined ||
    (search.q ?? '') !== ''
  const data = q.data?.items
  return (
    <>
      <PageHeader
        title="Agents"
        description={q.data !== undefined ? `${formatNumber(q.data.total)} agent(s)${filtered ? ' match the filters' : ''}.` : 'The machines that report to this server.'}
        actions={
          <Link to="/registration-tokens" className="text-sm font-medium text-red-700 hover:underline dark:text-red-400">
            Add agents…
          </Link>
        }
      />
      <Card>
        <div className="-m-4">
          <div className="flex flex-wrap items-center gap-2 border-b border-zinc-200 p-3 dark:border-zinc-800">
            <SearchInput label="Search by hostname" placeholder="Search hostname" value={text} onChange={setText} />
            <FilterSelect
              label="Filter by status"
              value={search.status}
              options={STATUSES}
              allLabel="All statuses"
              format={(v) => v[0]?.toUpperCase() + v.slice(1)}
              onChange={(v) => onSearch(compact({ ...search, status: v, offset: undefined }))}
            />
            <FilterSelect
              label="Filter by operating system"
              value={search.os}
              options={OSES}
              allLabel="All systems" format={osLabel}
              onChange={(v) => onSearch(compact({ ...search, os: v, offset: undefined }))}
            />
            <FilterSelect
              label="Filter by update state"
              value={search.updates}
              options={AGENT_UPDATE_STATUSES}
              allLabel="Any update state"
              onChange={(v) => onSearch(compact({ ...search, updates: v, offset: undefined }))}
            />
            <Select
              aria-label="Filter by critical updates"
              className="w-auto"
              value={search.critical ?? ''}
              onChange={(e) => onSearch(compact({ ...search, critical: oneOf(e.target.value, CRITICAL), offset: undefined }))}
            >
              <option value="">With or without critical</option>
              <option value="yes">With critical updates</option>
              <option value="no">Without critical updates</option>
            </Select>
            <FilterSelect
              label="Filter by package manager"
              value={search.pkg}
              options={PACKAGE_TYPES}
              allLabel="Any package manager"
              format={(t) => `Updates from ${t}`}
              onChange={(v) => onSearch(compact({ ...search, pkg: v, offset: undefined }))}
            />
          </div>
          {selectedIds.length > 0 && (
            <div className="flex flex-wrap items-center gap-2 border-b border-zinc-200 bg-zinc-50 px-3 py-2 text-sm dark:border-zinc-800 dark:bg-zinc-950">
              <span className="font-medium">{selectedIds.length} selected</span>
              <Button size="sm" busy={queue.isPending && queue.variables === 'scan_updates'} onClick={() => queue.mutate('scan_updates')} icon={<Radar className="size-4" aria-hidden="true" />}>
                Scan for updates
              </Button>
              <Button size="sm" busy={queue.isPending && queue.variables === 'collect_specs'} onClick={() => queue.mutate('collect_specs')} icon={<ServerCog className="size-4" aria-hidden="true" />}>
                Refresh inventory
              </Button>
              <Button
                size="sm"
                variant="primary"
                busy={gather.isPending}
                onClick={() => gather.mutate()}
                icon={<ShieldCheck className="size-4" aria-hidden="true" />}
              >
                Approve security updates…
              </Button>
              <Button size="sm" variant="danger" onClick={() => setConfirmDelete(true)} icon={<Trash2 className="size-4" aria-hidden="true" />}>
                Delete…
              </Button>
              <Button size="sm" variant="ghost" onClick={() => setSelection({})}>
                Clear selection
              </Button>
            </div>
          )}
          {(notice !== null || queue.error !== null || gather.error !== null) && (
            <div className="space-y-2 border-b border-zinc-200 p-3 dark:border-zinc-800">
              {notice !== null && <Notice>{notice}</Notice>}
              <InlineError error={queue.error} />
              <InlineError error={gather.error} />
            </div>
          )}
          {q.isPending ? (
            <LoadingState label="Loading agents…" />
          ) : q.isError ? (
            <ErrorState error={q.error} onRetry={() => void q.refetch()} />
          ) : (
            <>
              <DataTable
                caption="Agents"
                columns={columns}
                data={data ?? []}
                getRowId={(a) => a.id}
                sorting={sortToState(search.sort)}
                onSortingChange={(s) => onSearch(compact({ ...search, sort: stateToSort(s), offset: undefined }))}
                selection={selection}
                onSelectionChange={setSelection}
                stale={q.isPlaceholderData}
                empty={
                  filtered ? (
                    <EmptyState title="No agent matches">Change the search or the filters.</EmptyState>
                  ) : (
                    <EmptyState title="No agents yet">
                      Create a registration token and run its install command on a machine; it appears here within a
                      minute.
                    </EmptyState>
                  )
                }
              />
              <Pagination
                offset={offset}
                limit={limit}
                total={q.data.total}
                busy={q.isFetching}
                onOffsetChange={(o) => onSearch(compact({ ...search, offset: o === 0 ? undefined : o }))}
                onLimitChange={(l) => onSearch(compact({ ...search, limit: l === 50 ? undefined : l, offset: undefined }))}
              />
            </>
          )}
        </div>
      </Card>
      <ConfirmDialog
        open={security !== null}
        onClose={() => setSecurity(null)}
        title={security !== null ? `Approve ${formatNumber(security.ids.length)} security update(s) on ${security.agents} agent(s)?` : ''}
        confirmLabel="Approve"
        onConfirm={() => (security !== null ? approveSecurity(security.ids) : undefined)}
      >
        <p>
          Every pending update of severity critical or important on the selected agents is approved; each agent installs
          them at its next check-in (one signed install command per agent).
        </p>
      </ConfirmDialog>
      <ConfirmDialog
        open={confirmDelete}
        onClose={() => setConfirmDelete(false)}
        title={`Delete ${selectedIds.length} agent(s)?`}
        confirmLabel="Delete"
        onConfirm={removeSelected}
      >
        <p>
          The agents, their inventory, updates and command history are removed from the server. An agent that is still
          running can no longer check in; to bring it back, register it again.
        </p>
      </ConfirmDialog>
    </>
  )
}
