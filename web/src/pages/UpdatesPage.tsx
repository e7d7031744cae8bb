import { useQuery } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import { useEffect, useState } from 'react'
import { OPEN_UPDATES, PACKAGE_TYPES, SEVERITIES, UPDATE_STATES, type Severity, type UpdateState } from '../api/types'
import { agentQuery } from '../api/endpoints'
import { AgentPicker } from '../components/AgentPicker'
import { UpdatesTable } from '../components/UpdatesTable'
import { sortToState, stateToSort } from '../lib/sort'
import { Card, FilterSelect, PageHeader, SearchInput, Select } from '../components/ui'
import { humanize, shortId } from '../lib/format'
import { compact, int, oneOf, str, type Search } from '../lib/search'
import { useDebounced } from '../lib/useDebounced'

type PackageType = (typeof PACKAGE_TYPES)[number]

export interface UpdatesSearch {
  offset?: number
  limit?: number
  severity?: Severity
  package_type?: PackageType
  status?: UpdateState | 'all'
  q?: string
  agent_id?: string
  sort?: string
}

const SORT_KEYS = ['severity', 'package_name', 'package_type', 'status', 'first_seen_at', 'updated_at', 'hostname'] as const
const STATUS_FILTERS = [...UPDATE_STATES, 'all'] as const

export function parseUpdatesSearch(s: Search): UpdatesSearch {
  return compact({
    offset: int(s['offset'], 0, 1 << 30),
    limit: int(s['limit'], 1, 500),
    severity: oneOf(s['severity'], SEVERITIES),
    package_type: oneOf(s['package_type'], PACKAGE_TYPES),
    status: oneOf(s['status'], STATUS_FILTERS),
    q: str(s['q'], 255),
    agent_id: str(s['agent_id'], 36),
    sort: (() => {
      const v = str(s['sort'])
      return v !== undefined && (SORT_KEYS as readonly string[]).includes(v.replace(/^-/, '')) ? v : undefined
    })(),
  })
}

/** Every pending update in the fleet, to approve, reject or ignore. */
export function UpdatesPage({ search, onSearch }: { search: UpdatesSearch; onSearch: (s: UpdatesSearch) => void }) {
  const [text, setText] = useState(search.q ?? '')
  const debounced = useDebounced(text.trim(), 300)
  useEffect(() => {
    if ((search.q ?? '') !== debounced) onSearch(compact({ ...search, q: debounced === '' ? undefined : debounced, offset: undefined }))
    // Only the typed text drives this; the selects navigate directly.
  }, [debounced])
  // Open updates (waiting to be installed) unless another status is chosen.
  const status = search.status ?? OPEN_UPDATES
  const agent = useQuery({ ...agentQuery(search.agent_id ?? ''), enabled: search.agent_id !== undefined, retry: false })
  const filtered =
    search.severity !== undefined ||
    search.package_type !== undefined ||
    (search.q ?? '') !== '' ||
    search.status !== undefined ||
    search.agent_id !== undefined
  return (
    <>
      <PageHeader title="Updates" description="What the agents' package managers offer. Approved updates are installed at the next check-in." />
      <Card>
        <div className="-m-4">
          <div className="flex flex-wrap items-center gap-2 border-b border-zinc-200 p-3 dark:border-zinc-800">
            <SearchInput label="Search packages" placeholder="Search package" value={text} onChange={setText} />
            <Select
              aria-label="Filter by status"
              className="w-auto"
              value={status}
              onChange={(e) => onSearch(compact({ ...search, status: oneOf(e.target.value, STATUS_FILTERS), offset: undefined }))}
            >
              <option value={OPEN_UPDATES}>Open (not installed yet)</option>
              <option value="all">Any status</option>
              {UPDATE_STATES.map((s) => (
                <option key={s} value={s}>
                  {humanize(s)}
                </option>
              ))}
            </Select>
            <FilterSelect
              label="Filter by severity"
              value={search.severity}
              options={SEVERITIES}
              allLabel="All severities"
              onChange={(v) => onSearch(compact({ ...search, severity: v, offset: undefined }))}
            />
            <FilterSelect
              label="Filter by package manager"
              value={search.package_type}
              options={PACKAGE_TYPES}
              allLabel="All package managers"
              onChange={(v) => onSearch(compact({ ...search, package_type: v, offset: undefined }))}
            />
            {search.agent_id === undefined ? (
              <AgentPicker onPick={(id) => onSearch(compact({ ...search, agent_id: id, offset: undefined }))} />
            ) : (
              <span className="flex items-center gap-2 text-sm">
                Agent{' '}
                <Link
                  to="/agents/$agentId"
                  params={{ agentId: search.agent_id }}
                  className={`break-all text-red-700 hover:underline dark:text-red-400 ${agent.data === undefined ? 'font-mono' : ''}`}
                >
                  {agent.data?.hostname ?? shortId(search.agent_id)}
                </Link>
                <button
                  type="button"
                  className="text-xs text-zinc-500 underline"
                  onClick={() => onSearch(compact({ ...search, agent_id: undefined, offset: undefined }))}
                >
                  show all agents
                </button>
              </span>
            )}
          </div>
          <UpdatesTable
            filter={{
              status: status === 'all' ? undefined : status,
              severity: search.severity,
              package_type: search.package_type,
              q: search.q,
              agent_id: search.agent_id,
              sort: search.sort,
            }}
            sorting={sortToState(search.sort)}
            onSortingChange={(st) => onSearch(compact({ ...search, sort: stateToSort(st), offset: undefined }))}
            filtered={filtered}
            offset={search.offset ?? 0}
            limit={search.limit ?? 50}
            onPage={(offset, limit) =>
              onSearch(compact({ ...search, offset: offset === 0 ? undefined : offset, limit: limit === 50 ? undefined : limit }))
            }
          />
        </div>
      </Card>
    </>
  )
}
