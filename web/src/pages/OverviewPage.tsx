// The fleet at a glance: the server's figures (GET /api/v1/stats/overview),
// the trends of the last 90 days (GET /api/v1/stats/trends) and the latest
// commands. Every figure links to the list it counts.
import { useQuery } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import { lazy, Suspense, type ReactNode } from 'react'
import { agentCountQuery, overviewStatsQuery, trendsQuery } from '../api/endpoints'
import { AGENT_UPDATE_STATUSES, PACKAGE_TYPES as PACKAGE_LINKABLE, SEVERITIES, type AgentStatus, type StatsOverview } from '../api/types'
import { CommandsTable } from '../components/CommandsTable'
import { EmptyState, ErrorState, LoadingState } from '../components/states'
import { Card, PageHeader } from '../components/ui'
import { formatNumber, humanize } from '../lib/format'

// Recharts is large: it loads only with this page.
const FleetChart = lazy(() => import('../components/FleetChart'))
const TrendChart = lazy(() => import('../components/TrendChart'))

export const TREND_DAYS = 90

const tileClass =
  'block rounded-lg border border-zinc-200 bg-white p-4 hover:border-zinc-300 dark:border-zinc-800 dark:bg-zinc-900 dark:hover:border-zinc-700'

function StatTile({ label, value, status }: { label: string; value: number | undefined; status?: AgentStatus }) {
  return (
    <Link to="/agents" search={status !== undefined ? { status } : {}} className={tileClass}>
      <p className="text-xs font-medium text-zinc-500 uppercase dark:text-zinc-400">{label}</p>
      <p className="mt-1 text-2xl font-semibold tabular-nums">{value === undefined ? '…' : formatNumber(value)}</p>
    </Link>
  )
}

/** A label and a count on one line, linking to the list it counts. */
function Row({ label, value, children }: { label: string; value: number; children: (text: ReactNode) => ReactNode }) {
  return (
    <li className="flex items-center justify-between gap-2 py-1 text-sm">
      {children(<span className="text-zinc-700 dark:text-zinc-300">{label}</span>)}
      <span className={`tabular-nums ${value === 0 ? 'text-zinc-400' : 'font-medium'}`}>{formatNumber(value)}</span>
    </li>
  )
}

const linkClass = 'hover:underline focus-visible:underline'

function Figures({ s }: { s: StatsOverview }) {
  const types = Object.entries(s.pending_by_package_type ?? {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
  return (
    <div className="grid gap-4 md:grid-cols-2 xl:grid-cols-4">
      <Card title="Pending by severity">
        <ul>
          {SEVERITIES.map((sev) => (
            <Row key={sev} label={humanize(sev)} value={s.pending_by_severity?.[sev] ?? 0}>
              {(t) => (
                <Link to="/updates" search={{ severity: sev }} className={linkClass}>
                  {t}
                </Link>
              )}
            </Row>
          ))}
        </ul>
      </Card>
      <Card title="Pending by package manager">
        {types.length === 0 ? (
          <p className="py-1 text-sm text-zinc-500">Nothing pending.</p>
        ) : (
          <ul>
            {types.map(([t, n]) => (
              <Row key={t} label={t} value={n}>
                {(text) =>
                  (PACKAGE_LINKABLE as readonly string[]).includes(t) ? (
                    <Link to="/updates" search={{ package_type: t as (typeof PACKAGE_LINKABLE)[number] }} className={`font-mono ${linkClass}`}>
                      {text}
                    </Link>
                  ) : (
                    <span className="font-mono">{text}</span>
                  )
                }
              </Row>
            ))}
          </ul>
        )}
      </Card>
      <Card title="Agents by update state">
        <ul>
          {AGENT_UPDATE_STATUSES.map((u) => (
            <Row key={u} label={humanize(u)} value={s.update_status?.[u] ?? 0}>
              {(t) => (
                <Link to="/agents" search={{ updates: u }} className={linkClass}>
                  {t}
                </Link>
              )}
            </Row>
          ))}
        </ul>
      </Card>
      <Card title="Needs attention">
        <ul>
          <Row label="Agents needing a reboot" value={s.reboot_required}>
            {(t) => t}
          </Row>
          <Row label="Failed installs (24 h)" value={s.failed_installs_24h}>
            {(t) => (
              <Link to="/updates" search={{ status: 'failed' }} className={linkClass}>
                {t}
              </Link>
            )}
          </Row>
          <Row label="Installed (24 h)" value={s.installed_24h}>
            {(t) => (
              <Link to="/updates" search={{ status: 'installed' }} className={linkClass}>
                {t}
              </Link>
            )}
          </Row>
        </ul>
      </Card>
    </div>
  )
}

function Trends() {
  const q = useQuery({ ...trendsQuery(TREND_DAYS), retry: false })
  if (q.isPending) return <LoadingState label="Loading trends…" />
  if (q.isError) return <ErrorState error={q.error} title="The trends are not available" onRetry={() => void q.refetch()} />
  const days = q.data.days ?? []
  const any = days.some((d) => d.installed > 0 || d.failed > 0 || Object.values(d.pending).some((n) => (n ?? 0) > 0))
  if (!any) return <EmptyState title="No history yet">Pending updates, installs and failures are charted here day by day once agents report.</EmptyState>
  return (
    <Suspense fallback={<LoadingState />}>
      <TrendChart days={days} />
    </Suspense>
  )
}

export function OverviewPage() {
  const stats = useQuery({ ...overviewStatsQuery, retry: false })
  // Servers without the overview figures: count the agents from the list.
  const fallback = stats.isError
  const total = useQuery({ ...agentCountQuery(undefined), enabled: fallback })
  const online = useQuery({ ...agentCountQuery('online'), enabled: fallback })
  const offline = useQuery({ ...agentCountQuery('offline'), enabled: fallback })
  const stale = useQuery({ ...agentCountQuery('stale'), enabled: fallback })
  const agents: StatsOverview['agents'] | undefined =
    stats.data?.agents ??
    (total.data !== undefined && online.data !== undefined && offline.data !== undefined && stale.data !== undefined
      ? { total: total.data, online: online.data, offline: offline.data, stale: stale.data }
      : undefined)
  const countsError = fallback ? (total.error ?? online.error ?? offline.error ?? stale.error) : null
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
            <StatTile label="Agents" value={agents?.total} />
            <StatTile label="Online" value={agents?.online} status="online" />
            <StatTile label="Offline" value={agents?.offline} status="offline" />
            <StatTile label="Stale" value={agents?.stale} status="stale" />
          </div>
        )}
        {stats.isPending ? (
          <Card>
            <LoadingState label="Loading figures…" />
          </Card>
        ) : stats.isError ? (
          <Card>
            <ErrorState error={stats.error} title="The overview figures are not available" onRetry={() => void stats.refetch()} />
          </Card>
        ) : (
          <Figures s={stats.data} />
        )}
        <div className="grid gap-4 lg:grid-cols-3">
          <Card title="Agents by status">
            {agents === undefined ? (
              countsError !== null ? <p className="text-sm text-zinc-500">Unavailable.</p> : <LoadingState />
            ) : agents.total === 0 ? (
              <EmptyState title="No agents yet">
                <Link to="/registration-tokens" className="text-red-700 underline dark:text-red-400">
                  Create a registration token
                </Link>{' '}
                to add the first machine.
              </EmptyState>
            ) : (
              <Suspense fallback={<LoadingState />}>
                <FleetChart counts={{ online: agents.online, offline: agents.offline, stale: agents.stale }} />
              </Suspense>
            )}
          </Card>
          <Card title={`The last ${TREND_DAYS} days`} className="lg:col-span-2">
            <Trends />
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
