// The fleet at a glance: agent counts by status (from the agents list),
// the server's overview figures (GET /api/v1/stats/overview) and the latest
// commands.
import { useQuery } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import { lazy, Suspense } from 'react'
import { agentCountQuery, overviewStatsQuery } from '../api/endpoints'
import type { AgentStatus, StatsObject, StatsValue } from '../api/types'
import { CommandsTable } from '../components/CommandsTable'
import { EmptyState, ErrorState, LoadingState } from '../components/states'
import { Card, PageHeader } from '../components/ui'
import { formatNumber, humanize } from '../lib/format'

// Recharts is large: it loads only with this page.
const FleetChart = lazy(() => import('../components/FleetChart'))

function StatTile({ label, value, to, status }: { label: string; value: number | undefined; to: '/agents'; status?: AgentStatus }) {
  return (
    <Link
      to={to}
      search={status !== undefined ? { status } : {}}
      className="block rounded-lg border border-zinc-200 bg-white p-4 hover:border-zinc-300 dark:border-zinc-800 dark:bg-zinc-900 dark:hover:border-zinc-700"
    >
      <p className="text-xs font-medium text-zinc-500 uppercase dark:text-zinc-400">{label}</p>
      <p className="mt-1 text-2xl font-semibold tabular-nums">{value === undefined ? '…' : formatNumber(value)}</p>
    </Link>
  )
}

function isObject(v: StatsValue): v is StatsObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function scalar(v: StatsValue): string {
  if (typeof v === 'number') return formatNumber(v)
  if (typeof v === 'boolean') return v ? 'yes' : 'no'
  if (v === null) return '—'
  if (Array.isArray(v)) return `${v.length} item(s)`
  return typeof v === 'string' ? v : ''
}

/** Whatever figures the server sends, grouped by their top-level keys. */
export function StatsView({ stats }: { stats: StatsObject }) {
  const groups = Object.entries(stats).filter(([, v]) => isObject(v)) as Array<[string, StatsObject]>
  const loose = Object.entries(stats).filter(([, v]) => !isObject(v))
  if (groups.length === 0 && loose.length === 0) return <EmptyState title="No figures yet" />
  const all: Array<[string, StatsObject]> = loose.length > 0 ? [['summary', Object.fromEntries(loose)], ...groups] : groups
  return (
    <div className="grid gap-4 sm:grid-cols-2 xl:grid-cols-3">
      {all.map(([name, obj]) => (
        <div key={name} className="rounded-md border border-zinc-200 p-3 dark:border-zinc-800">
          <h3 className="mb-2 text-xs font-medium text-zinc-500 uppercase">{humanize(name)}</h3>
          <dl className="space-y-1 text-sm">
            {Object.entries(obj).map(([k, v]) =>
              isObject(v) ? (
                <div key={k}>
                  <dt className="text-zinc-600 dark:text-zinc-400">{humanize(k)}</dt>
                  <dd className="ml-3">
                    {Object.entries(v).map(([k2, v2]) => (
                      <div key={k2} className="flex justify-between gap-2">
                        <span className="text-zinc-600 dark:text-zinc-400">{humanize(k2)}</span>
                        <span className="tabular-nums">{scalar(v2)}</span>
                      </div>
                    ))}
                  </dd>
                </div>
              ) : (
                <div key={k} className="flex justify-between gap-2">
                  <dt className="text-zinc-600 dark:text-zinc-400">{humanize(k)}</dt>
                  <dd className="tabular-nums">{scalar(v)}</dd>
                </div>
              ),
            )}
          </dl>
        </div>
      ))}
    </div>
  )
}

export function OverviewPage() {
  const total = useQuery(agentCountQuery(undefined))
  const online = useQuery(agentCountQuery('online'))
  const offline = useQuery(agentCountQuery('offline'))
  const stale = useQuery(agentCountQuery('stale'))
  const stats = useQuery({ ...overviewStatsQuery, retry: false })
  const countsError = total.error ?? online.error ?? offline.error ?? stale.error
  const counts =
    online.data !== undefined && offline.data !== undefined && stale.data !== undefined
      ? { online: online.data, offline: offline.data, stale: stale.data }
      : undefined
  return (
    <>
      <PageHeader title="Overview" description="The fleet at a glance." />
      <div className="space-y-4">
        {countsError !== null ? (
          <Card>
            <ErrorState error={countsError} onRetry={() => void Promise.all([total.refetch(), online.refetch(), offline.refetch(), stale.refetch()])} />
          </Card>
        ) : (
          <div className="grid grid-cols-2 gap-3 lg:grid-cols-4">
            <StatTile label="Agents" value={total.data} to="/agents" />
            <StatTile label="Online" value={online.data} to="/agents" status="online" />
            <StatTile label="Offline" value={offline.data} to="/agents" status="offline" />
            <StatTile label="Stale" value={stale.data} to="/agents" status="stale" />
          </div>
        )}
        <div className="grid gap-4 lg:grid-cols-3">
          <Card title="Agents by status">
            {counts === undefined ? (
              countsError !== null ? (
                <p className="text-sm text-zinc-500">Unavailable.</p>
              ) : (
                <LoadingState />
              )
            ) : total.data === 0 ? (
              <EmptyState title="No agents yet">
                <Link to="/registration-tokens" className="text-red-700 underline dark:text-red-400">
                  Create a registration token
                </Link>{' '}
                to add the first machine.
              </EmptyState>
            ) : (
              <Suspense fallback={<LoadingState />}>
                <FleetChart counts={counts} />
              </Suspense>
            )}
          </Card>
          <Card title="Updates and activity" className="lg:col-span-2">
            {stats.isPending ? (
              <LoadingState />
            ) : stats.isError ? (
              <ErrorState error={stats.error} title="The overview figures are not available" onRetry={() => void stats.refetch()} />
            ) : (
              <StatsView stats={stats.data} />
            )}
          </Card>
        </div>
        <Card
          title="Latest commands"
          actions={
            <Link to="/commands" className="text-sm text-red-700 hover:underline dark:text-red-400">
              All commands
            </Link>
          }
        >
          <div className="-m-4">
            <CommandsTable filter={{}} offset={0} limit={5} />
          </div>
        </Card>
      </div>
    </>
  )
}
