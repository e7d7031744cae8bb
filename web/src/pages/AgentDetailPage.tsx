// One agent: its system inventory and disks, its metrics (open updates by
// severity and package manager, scanners, reboot, agent version and
// upgrade), its updates grouped by package manager and its command history
// with outputs; scan, refresh inventory, reboot, rebind, delete.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Link, useNavigate } from '@tanstack/react-router'
import { ArrowLeft, ChevronDown, ChevronRight, Link2, Power, Radar, ServerCog, Trash2 } from 'lucide-react'
import { useState, type FormEvent } from 'react'
import { isApiError } from '../api/client'
import { agentQuery, createCommands, deleteAgent, keys, rebindAgent } from '../api/endpoints'
import { OPEN_UPDATES, type Agent, type AgentScan, type AgentUpgrade, type Disk, type SystemInfo } from '../api/types'
import { CommandsTable } from '../components/CommandsTable'
import { ConfirmDialog, Dialog } from '../components/Dialog'
import { EmptyState, ErrorState, InlineError, LoadingState, Notice } from '../components/states'
import { Time } from '../components/Time'
import { UpdatesTable } from '../components/UpdatesTable'
import { Badge, Button, Card, DescriptionList, Field, Input, PageHeader, StatusBadge } from '../components/ui'
import { formatBytes, formatDateTime, formatDuration, formatNumber, humanize, osLabel } from '../lib/format'
import { groupByPackageType, severityCounts, type PackageGroup, type SeverityCount } from '../lib/updateGroups'

function DiskRow({ d }: { d: Disk }) {
  const pct = d.total_bytes > 0 ? Math.min(100, Math.round((d.used_bytes / d.total_bytes) * 100)) : 0
  const tone = pct >= 90 ? 'fill-red-600' : pct >= 75 ? 'fill-amber-500' : 'fill-green-600'
  return (
    <li className="py-2">
      <div className="flex flex-wrap items-baseline justify-between gap-2 text-sm">
        <span className="font-mono break-all">{d.mount}</span>
        <span className="text-xs text-zinc-500">
          {formatBytes(d.used_bytes)} of {formatBytes(d.total_bytes)} · {d.filesystem || 'unknown fs'}
        </span>
      </div>
      <div
        className="mt-1 h-2 overflow-hidden rounded-full bg-zinc-200 dark:bg-zinc-800"
        role="meter"
        aria-label={`${d.mount} used`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
      >
        <svg className="block h-2 w-full" viewBox="0 0 100 2" preserveAspectRatio="none" aria-hidden="true">
          <rect width={pct} height="2" className={tone} />
        </svg>
      </div>
    </li>
  )
}

function Inventory({ agent }: { agent: Agent }) {
  const s: SystemInfo | null | undefined = agent.system_info
  if (s === null || s === undefined) {
    return (
      <EmptyState title="No inventory yet">
        The agent sends its system inventory after registering and when asked to refresh it.
      </EmptyState>
    )
  }
  const disks = s.disks ?? []
  return (
    <div className="space-y-5">
      <DescriptionList
        items={[
          ['Operating system', `${osLabel(s.os_type ?? agent.os_type)} ${s.os_version ?? agent.os_version}`.trim()],
          ['Kernel', s.kernel || '—'],
          ['Architecture', s.os_arch || agent.os_arch || '—'],
          ['CPU', s.cpu_model ? `${s.cpu_model}${s.cpu_cores ? ` (${s.cpu_cores} cores)` : ''}` : s.cpu_cores ? `${s.cpu_cores} cores` : '—'],
          ['Memory', formatBytes(s.memory_bytes)],
          ['Uptime', s.uptime_seconds ? formatDuration(s.uptime_seconds) : '—'],
          ['Reboot required', s.reboot_required === true || agent.reboot_required === true ? <Badge key="r" tone="amber">yes</Badge> : 'no'],
          [
            'Package managers',
            (s.package_managers ?? []).length > 0 ? (
              <span key="pm" className="flex flex-wrap gap-1">
                {(s.package_managers ?? []).map((pm) => (
                  <Badge key={pm}>{pm}</Badge>
                ))}
              </span>
            ) : (
              '—'
            ),
          ],
          ['Reported', <Time key="t" iso={agent.system_info_at} />],
        ]}
      />
      <div>
        <h3 className="text-xs font-medium text-zinc-500 dark:text-zinc-400">Disks</h3>
        {disks.length === 0 ? (
          <p className="mt-1 text-sm text-zinc-500">No disks reported.</p>
        ) : (
          <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
            {disks.map((d, i) => (
              <DiskRow key={`${d.mount}-${i}`} d={d} />
            ))}
          </ul>
        )}
      </div>
    </div>
  )
}

const severityTone: Record<string, 'red' | 'amber' | 'blue' | 'zinc'> = { critical: 'red', important: 'amber', moderate: 'blue' }

function SeverityBadges({ counts }: { counts: SeverityCount[] }) {
  if (counts.length === 0) return <span className="text-zinc-500">none</span>
  return (
    <span className="flex flex-wrap gap-1">
      {counts.map((c) => (
        <Badge key={c.severity} tone={severityTone[c.severity] ?? 'zinc'}>
          {formatNumber(c.count)} {c.severity}
        </Badge>
      ))}
    </span>
  )
}

function UpgradeState({ agent, upgrade }: { agent: Agent; upgrade: AgentUpgrade | null | undefined }) {
  if (upgrade === null || upgrade === undefined) return <span>{agent.agent_version || '—'}</span>
  return (
    <span className="flex flex-col gap-0.5">
      <span className="flex flex-wrap items-center gap-1">
        <span className="font-mono text-xs">{agent.agent_version || '—'}</span>
        <StatusBadge status={upgrade.status} />
        {upgrade.auto_upgrade_blocked && <Badge tone="amber">auto-upgrade blocked</Badge>}
      </span>
      <span className="text-xs text-zinc-500">
        {upgrade.rollback ? 'rollback' : 'upgrade'} {upgrade.from_version || '?'} → {upgrade.target_version}, {humanize(upgrade.trigger)},{' '}
        <Time iso={upgrade.finished_at ?? upgrade.requested_at} />
      </span>
      {upgrade.failure_reason !== undefined && upgrade.failure_reason !== '' && (
        <span className="text-xs break-words text-red-700 dark:text-red-400">{upgrade.failure_reason}</span>
      )}
    </span>
  )
}

/** The agent's metrics: open updates by severity and package manager, reboot, version and upgrade, scanners. */
export function AgentMetrics({ agent }: { agent: Agent }) {
  const c = agent.pending_updates
  const groups = groupByPackageType(c)
  const scans = agent.scans ?? []
  return (
    <div className="space-y-4" data-testid="agent-metrics">
      <DescriptionList
        items={[
          ['Open updates', <span key="t" className="tabular-nums">{formatNumber(c?.total ?? 0)}</span>],
          ['By severity', <SeverityBadges key="s" counts={severityCounts(c?.by_severity)} />],
          [
            'By package manager',
            groups.length === 0 ? (
              <span key="p" className="text-zinc-500">none</span>
            ) : (
              <span key="p" className="flex flex-wrap gap-1">
                {groups.map((g) => (
                  <Badge key={g.packageType}>
                    {g.packageType} {formatNumber(g.total)}
                  </Badge>
                ))}
              </span>
            ),
          ],
          ['Update state', agent.update_status !== undefined ? <StatusBadge key="u" status={agent.update_status} /> : '—'],
          ['Reboot required', agent.reboot_required === true ? <Badge key="r" tone="amber">yes</Badge> : 'no'],
          ['Agent version', <UpgradeState key="v" agent={agent} upgrade={agent.upgrade} />],
          [
            'Scanners',
            <span key="sc" className="tabular-nums">
              {scans.length} ({scans.filter((x) => x.status === 'failed').length} failed, {scans.filter((x) => x.stale).length} stale)
            </span>,
          ],
        ]}
      />
      <div>
        <h3 className="mb-1 text-xs font-medium text-zinc-500 dark:text-zinc-400">Scanners</h3>
        <Scanners scans={scans} />
      </div>
    </div>
  )
}

function PackageSection({ agentId, group, defaultOpen }: { agentId: string; group: PackageGroup; defaultOpen: boolean }) {
  const [open, setOpen] = useState(defaultOpen)
  const [page, setPage] = useState({ offset: 0, limit: 25 })
  const id = `updates-${group.packageType}`
  return (
    <section className="border-b border-zinc-200 last:border-b-0 dark:border-zinc-800" data-testid="package-group">
      <h3>
        <button
          type="button"
          className="flex w-full flex-wrap items-center gap-2 px-4 py-3 text-left text-sm hover:bg-zinc-50 dark:hover:bg-zinc-800/50"
          aria-expanded={open}
          aria-controls={id}
          onClick={() => setOpen((o) => !o)}
        >
          {open ? <ChevronDown className="size-4" aria-hidden="true" /> : <ChevronRight className="size-4" aria-hidden="true" />}
          <span className="font-mono font-medium">{group.packageType}</span>
          <span className="text-zinc-500 tabular-nums">{formatNumber(group.total)} open</span>
          <SeverityBadges counts={group.bySeverity} />
        </button>
      </h3>
      {open && (
        <div id={id}>
          <UpdatesTable
            filter={{ agent_id: agentId, status: OPEN_UPDATES, package_type: group.packageType }}
            showAgent={false}
            offset={page.offset}
            limit={page.limit}
            onPage={(offset, limit) => setPage({ offset, limit })}
          />
        </div>
      )}
    </section>
  )
}

/** The agent's open updates, one collapsible section per package manager. */
function UpdatesByManager({ agent }: { agent: Agent }) {
  const groups = groupByPackageType(agent.pending_updates)
  if (groups.length === 0) {
    return (
      <div className="p-4">
        <EmptyState title="No open updates">
          {agent.update_status === 'never_scanned' ? 'The agent has not reported a scan yet.' : 'Every scanner reports this machine up to date.'}
        </EmptyState>
      </div>
    )
  }
  return (
    <div>
      {groups.map((g, i) => (
        <PackageSection key={g.packageType} agentId={agent.id} group={g} defaultOpen={i === 0} />
      ))}
    </div>
  )
}

function Scanners({ scans }: { scans: AgentScan[] }) {
  if (scans.length === 0) {
    return <p className="text-sm text-zinc-500">No scan reported yet. Use Scan for updates, or wait for the agent&apos;s next scan.</p>
  }
  return (
    <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
      {scans.map((sc) => (
        <li key={sc.scanner} className="py-2 text-sm">
          <div className="flex flex-wrap items-center justify-between gap-2">
            <span className="font-mono">{sc.scanner}</span>
            <span className="flex items-center gap-1">
              {sc.stale && <Badge tone="amber">stale</Badge>}
              <StatusBadge status={sc.status} />
            </span>
          </div>
          <p className="text-xs text-zinc-500">
            last success <Time iso={sc.last_success_at} />, last report <Time iso={sc.last_report_at} />
          </p>
          {sc.error !== '' && <p className="mt-1 text-xs break-words text-red-700 dark:text-red-400">{sc.error}</p>}
        </li>
      ))}
    </ul>
  )
}

export function AgentDetailPage({ agentId }: { agentId: string }) {
  const qc = useQueryClient()
  const navigate = useNavigate()
  const q = useQuery(agentQuery(agentId))
  const [notice, setNotice] = useState<string | null>(null)
  const [confirm, setConfirm] = useState<'delete' | 'reboot' | null>(null)
  const [rebindOpen, setRebindOpen] = useState(false)
  const [machineId, setMachineId] = useState('')
  const [cmdPage, setCmdPage] = useState({ offset: 0, limit: 25 })

  const queue = useMutation({
    mutationFn: ({ type, params }: { type: string; params?: Record<string, unknown> }) =>
      createCommands({ agent_ids: [agentId], type, ...(params !== undefined && { params }) }),
    onSuccess: (_r, v) => {
      setNotice(`Queued ${v.type.replaceAll('_', ' ')}; the agent picks it up at its next check-in.`)
      void qc.invalidateQueries({ queryKey: keys.commands })
    },
  })
  const rebind = useMutation({
    mutationFn: (mid: string) => rebindAgent(agentId, mid),
    onSuccess: (a) => {
      qc.setQueryData(keys.agent(agentId), a)
      setRebindOpen(false)
      setNotice('The agent is bound to the new machine id.')
    },
  })

  if (q.isPending) return <LoadingState label="Loading agent…" />
  if (q.isError) {
    return (
      <>
        <BackLink />
        <ErrorState
          error={q.error}
          title={isApiError(q.error) && q.error.status === 404 ? 'No such agent' : 'The agent could not be loaded'}
          onRetry={() => void q.refetch()}
        />
      </>
    )
  }
  const a = q.data
  const submitRebind = (e: FormEvent) => {
    e.preventDefault()
    rebind.mutate(machineId.trim().toLowerCase())
  }
  return (
    <>
      <BackLink />
      <PageHeader
        title={a.hostname}
        description={
          <span className="flex flex-wrap items-center gap-2">
            <StatusBadge status={a.status} />
            <span>
              {osLabel(a.os_type)} {a.os_version}
            </span>
            <span>· last seen <Time iso={a.last_seen_at} /></span>
          </span>
        }
        actions={
          <>
            <Button
              size="sm"
              busy={queue.isPending && queue.variables.type === 'scan_updates'}
              onClick={() => queue.mutate({ type: 'scan_updates' })}
              icon={<Radar className="size-4" aria-hidden="true" />}
            >
              Scan for updates
            </Button>
            <Button
              size="sm"
              busy={queue.isPending && queue.variables.type === 'collect_specs'}
              onClick={() => queue.mutate({ type: 'collect_specs' })}
              icon={<ServerCog className="size-4" aria-hidden="true" />}
            >
              Refresh inventory
            </Button>
            <Button size="sm" variant="danger" onClick={() => setConfirm('reboot')} icon={<Power className="size-4" aria-hidden="true" />}>
              Reboot…
            </Button>
            <Button size="sm" onClick={() => setRebindOpen(true)} icon={<Link2 className="size-4" aria-hidden="true" />}>
              Rebind…
            </Button>
            <Button size="sm" variant="danger" onClick={() => setConfirm('delete')} icon={<Trash2 className="size-4" aria-hidden="true" />}>
              Delete…
            </Button>
          </>
        }
      />
      <div className="space-y-2">
        {notice !== null && <Notice>{notice}</Notice>}
        <InlineError error={queue.error} />
      </div>
      <div className="mt-4 grid gap-4 lg:grid-cols-3">
        <Card title="System" className="lg:col-span-2">
          <Inventory agent={a} />
        </Card>
        <Card title="Agent">
          <DescriptionList
            items={[
              ['Agent id', <span key="id" className="font-mono text-xs break-all">{a.id}</span>],
              ['Agent version', a.agent_version || '—'],
              ['Machine id', <span key="m" className="font-mono text-xs break-all">{a.machine_id}</span>],
              ['Check-in interval', formatDuration(a.check_in_interval_seconds)],
              ['Registered', formatDateTime(a.registered_at)],
            ]}
          />
        </Card>
      </div>
      <div className="mt-4">
        <Card title="Metrics">
          <AgentMetrics agent={a} />
        </Card>
      </div>
      <div className="mt-4">
        <Card
          title="Open updates by package manager"
          actions={
            <Link to="/updates" search={{ agent_id: agentId, status: 'all' }} className="text-sm text-red-700 hover:underline dark:text-red-400">
              All of its updates
            </Link>
          }
        >
          <div className="-m-4">
            <UpdatesByManager agent={a} />
          </div>
        </Card>
      </div>
      <div className="mt-4">
        <Card
          title="Command history"
          actions={
            <Link to="/commands" search={{ agent_id: agentId }} className="text-sm text-red-700 hover:underline dark:text-red-400">
              Open in Commands
            </Link>
          }
        >
          <div className="-m-4">
            <CommandsTable
              filter={{ agent_id: agentId }}
              showAgent={false}
              offset={cmdPage.offset}
              limit={cmdPage.limit}
              onPage={(offset, limit) => setCmdPage({ offset, limit })}
            />
          </div>
        </Card>
      </div>
      <ConfirmDialog
        open={confirm === 'delete'}
        onClose={() => setConfirm(null)}
        title={`Delete ${a.hostname}?`}
        confirmLabel="Delete agent"
        onConfirm={async () => {
          await deleteAgent(agentId)
          qc.removeQueries({ queryKey: keys.agent(agentId) })
          await qc.invalidateQueries({ queryKey: keys.agents })
          await navigate({ to: '/agents' })
        }}
      >
        <p>
          The agent, its inventory, updates and command history are removed. If the machine still runs the agent, it can no
          longer check in until it is registered again.
        </p>
      </ConfirmDialog>
      <ConfirmDialog
        open={confirm === 'reboot'}
        onClose={() => setConfirm(null)}
        title={`Reboot ${a.hostname}?`}
        confirmLabel="Queue reboot"
        onConfirm={() => queue.mutateAsync({ type: 'reboot', params: { delay_seconds: 60 } })}
      >
        <p>The machine restarts a minute after the agent receives the command. Unsaved work on it is lost.</p>
      </ConfirmDialog>
      <Dialog
        open={rebindOpen}
        onClose={() => setRebindOpen(false)}
        title="Bind to another machine"
        footer={
          <>
            <Button onClick={() => setRebindOpen(false)}>Cancel</Button>
            <Button variant="primary" type="submit" form="rebind-form" busy={rebind.isPending} disabled={machineId.trim() === ''}>
              Rebind
            </Button>
          </>
        }
      >
        <form id="rebind-form" onSubmit={submitRebind} className="space-y-3">
          <p>
            After hardware changes the agent reports a new machine id and is refused. Enter the new id (64 hexadecimal
            characters, from the refused agent's log) to accept it; the old machine can no longer use this agent&apos;s
            tokens.
          </p>
          <Field label="New machine id">
            {(p) => (
              <Input {...p} value={machineId} onChange={(e) => setMachineId(e.target.value)} className="font-mono" spellCheck={false} autoComplete="off" />
            )}
          </Field>
          <InlineError error={rebind.error} />
        </form>
      </Dialog>
    </>
  )
}

function BackLink() {
  return (
    <Link to="/agents" className="mb-3 inline-flex items-center gap-1 text-sm text-zinc-600 hover:underline dark:text-zinc-400">
      <ArrowLeft className="size-4" aria-hidden="true" /> Agents
    </Link>
  )
}
