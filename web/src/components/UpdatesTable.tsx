// Pending updates (fleet-wide or of one agent), paged on the server, with
// approve / reject / ignore for the selected rows.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import type { RowSelectionState, SortingState } from '@tanstack/react-table'
import { Check, CheckCheck, EyeOff, FlaskConical, Info, X } from 'lucide-react'
import { useEffect, useMemo, useState } from 'react'
import { actOnUpdates, keys, updatesQuery, type UpdateQuery } from '../api/endpoints'
import type { Update, UpdateAction, UpdateActionResult } from '../api/types'
import { ExtrasTable, UpdateDetailDialog } from './UpdateDetail'
import { formatBytes, shortId } from '../lib/format'
import { DataTable, type Columns } from './DataTable'
import { ConfirmDialog } from './Dialog'
import { Pagination } from './Pagination'
import { EmptyState, ErrorState, LoadingState, Notice } from './states'
import { Time } from './Time'
import { Badge, Button, StatusBadge } from './ui'

/** The table's actions: the API's, and approve as a dry run. */
export type TableAction = UpdateAction | 'preview'

const actionText: Record<TableAction, { verb: string; past: string; title: string; body: string }> = {
  preview: {
    verb: 'Preview (dry run)',
    past: 'Queued a dry run of',
    title: 'Preview (dry run)',
    body: 'The agents simulate installing these updates and report every package that would change; nothing is installed. Updates that would change other packages then wait for your confirmation.',
  },
  approve: {
    verb: 'Approve',
    past: 'Approved',
    title: 'Approve and install',
    body: 'The agents install these updates at their next check-in (one signed install command per agent).',
  },
  confirm: {
    verb: 'Confirm',
    past: 'Confirmed',
    title: 'Accept the extra packages of',
    body: 'A dry run found that installing these also changes other packages; confirming installs them together.',
  },
  reject: { verb: 'Reject', past: 'Rejected', title: 'Reject', body: 'Rejected updates are not installed and leave the open list.' },
  ignore: { verb: 'Ignore', past: 'Ignored', title: 'Ignore', body: 'Ignored updates are hidden until a newer version appears.' },
}

export function actionNotice(action: TableAction, r: UpdateActionResult): string {
  const cmds = r.commands?.length ?? 0
  const parts = [`${actionText[action].past} ${r.changed} update(s)`]
  if (r.unchanged > 0) parts.push(`${r.unchanged} already were`)
  if (cmds > 0) parts.push(`queued ${cmds} command(s)`)
  return parts.join('; ') + '.'
}

export function UpdatesTable({
  filter,
  offset,
  limit,
  onPage,
  showAgent = true,
  filtered = false,
  sorting,
  onSortingChange,
}: {
  filter: Omit<UpdateQuery, 'limit' | 'offset'>
  offset: number
  limit: number
  onPage: (offset: number, limit: number) => void
  showAgent?: boolean
  filtered?: boolean
  sorting?: SortingState
  onSortingChange?: (s: SortingState) => void
}) {
  const qc = useQueryClient()
  const q = useQuery(updatesQuery({ ...filter, limit, offset }))
  const [selection, setSelection] = useState<RowSelectionState>({})
  const ids = useMemo(() => Object.keys(selection).filter((k) => selection[k] === true), [selection])
  const [target, setTarget] = useState<{ action: TableAction; rows: Update[] } | null>(null)
  const [detail, setDetail] = useState<Update | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const ask = (action: TableAction, rows?: Update[]) => {
    const chosen = rows ?? (q.data?.items ?? []).filter((u) => selection[u.id] === true)
    setTarget({ action, rows: chosen })
  }
  useEffect(() => setSelection({}), [offset, limit, filter.agent_id, filter.severity, filter.package_type, filter.status, filter.q, filter.sort])
  const act = useMutation({
    mutationFn: ({ action, ids: list }: { action: TableAction; ids: string[] }) =>
      action === 'preview' ? actOnUpdates('approve', list, true) : actOnUpdates(action, list),
    onSuccess: (res, v) => {
      setNotice(actionNotice(v.action, res))
      setSelection({})
    },
    onSettled: () => {
      void qc.invalidateQueries({ queryKey: keys.updates })
      void qc.invalidateQueries({ queryKey: keys.commands })
    },
  })

  const columns = useMemo<Columns<Update>>(() => {
    const cols: Columns<Update> = [
      {
        id: 'package_name',
        accessorFn: (u) => u.package_name,
        header: 'Package',
        cell: ({ row }) => (
          <div className="min-w-0">
            <p className="font-medium break-all">{row.original.package_name}</p>
            <p className="text-xs break-words text-zinc-500">
              <span className="font-mono">{row.original.package_type}</span>
              {row.original.requires_reboot && ' · needs reboot'}
              {row.original.source !== '' && <span> · {row.original.source}</span>}
            </p>
          </div>
        ),
      },
      {
        id: 'version',
        header: 'Version',
        enableSorting: false,
        cell: ({ row }) => (
          <span className="font-mono text-xs [overflow-wrap:anywhere]">
            <span>{row.original.current_version || '—'}</span> → <span>{row.original.available_version}</span>
          </span>
        ),
      },
      {
        id: 'severity',
        accessorFn: (u) => u.severity,
        header: 'Severity',
        cell: ({ row }) => <StatusBadge status={row.original.severity || 'unknown'} />,
      },
      {
        id: 'status',
        accessorFn: (u) => u.status,
        header: 'Status',
        meta: { className: 'hidden sm:table-cell' },
        cell: ({ row }) => (
          <div className="min-w-0">
            <StatusBadge status={row.original.status} />
            {row.original.status_message !== '' && (
              <p className="mt-0.5 max-w-xs text-xs break-words text-zinc-500">{row.original.status_message}</p>
            )}
          </div>
        ),
      },
      {
        id: 'cves',
        header: 'CVEs',
        enableSorting: false,
        meta: { className: 'hidden lg:table-cell' },
        cell: ({ row }) => {
          const c = row.original.cve_ids ?? []
          return c.length === 0 ? '—' : <Badge tone="red">{c.length === 1 ? c[0] : `${c.length} CVEs`}</Badge>
        },
      },
      {
        id: 'size',
        header: 'Size',
        enableSorting: false,
        meta: { className: 'hidden lg:table-cell' },
        cell: ({ row }) => (row.original.size_bytes > 0 ? formatBytes(row.original.size_bytes) : '—'),
      },
      {
        id: 'first_seen_at',
        accessorFn: (u) => u.first_seen_at,
        header: 'Found',
        meta: { className: 'hidden xl:table-cell' },
        cell: ({ row }) => <Time iso={row.original.first_seen_at} />,
      },
      {
        id: 'details',
        header: () => <span className="sr-only">Details</span>,
        enableSorting: false,
        cell: ({ row }) => (
          <Button
            size="sm"
            variant="ghost"
            onClick={() => setDetail(row.original)}
            aria-label={`Details of ${row.original.package_name}`}
            icon={<Info className="size-4" aria-hidden="true" />}
          >
            <span className="hidden sm:inline">Details</span>
          </Button>
        ),
      },
    ]
    if (showAgent) {
      cols.splice(1, 0, {
        id: 'hostname',
        accessorFn: (u) => u.hostname,
        header: 'Agent',
        meta: { className: 'hidden md:table-cell' },
        cell: ({ row }) => (
          <Link
            to="/agents/$agentId"
            params={{ agentId: row.original.agent_id }}
            className="break-all text-red-700 hover:underline dark:text-red-400"
          >
            {row.original.hostname || shortId(row.original.agent_id)}
          </Link>
        ),
      })
    }
    return cols
  }, [showAgent])

  if (q.isPending) return <LoadingState label="Loading updates…" />
  if (q.isError) return <ErrorState error={q.error} onRetry={() => void q.refetch()} />
  return (
    <>
      {ids.length > 0 && (
        <div className="flex flex-wrap items-center gap-2 border-b border-zinc-200 bg-zinc-50 px-3 py-2 text-sm dark:border-zinc-800 dark:bg-zinc-950">
          <span className="font-medium">{ids.length} selected</span>
          <Button size="sm" variant="primary" onClick={() => ask('approve')} icon={<Check className="size-4" aria-hidden="true" />}>
            Approve…
          </Button>
          <Button size="sm" onClick={() => ask('preview')} icon={<FlaskConical className="size-4" aria-hidden="true" />}>
            Preview (dry run)…
          </Button>
          <Button size="sm" variant="danger" onClick={() => ask('reject')} icon={<X className="size-4" aria-hidden="true" />}>
            Reject…
          </Button>
          <Button size="sm" onClick={() => ask('ignore')} icon={<EyeOff className="size-4" aria-hidden="true" />}>
            Ignore…
          </Button>
          {(q.data?.items ?? []).some((u) => selection[u.id] === true && u.status === 'needs_confirmation') && (
            <Button size="sm" onClick={() => ask('confirm')} icon={<CheckCheck className="size-4" aria-hidden="true" />}>
              Confirm extras…
            </Button>
          )}
        </div>
      )}
      {notice !== null && (
        <div className="border-b border-zinc-200 p-3 dark:border-zinc-800">
          <Notice>{notice}</Notice>
        </div>
      )}
      <DataTable
        caption="Updates"
        columns={columns}
        data={q.data.items}
        getRowId={(u) => u.id}
        selection={selection}
        onSelectionChange={setSelection}
        {...(sorting !== undefined && { sorting })}
        {...(onSortingChange !== undefined && { onSortingChange })}
        stale={q.isPlaceholderData}
        empty={
          <EmptyState title={filtered ? 'No update matches' : 'No pending updates'}>
            {filtered ? 'Change the search or the filters.' : 'Agents report what their package managers offer after each scan.'}
          </EmptyState>
        }
      />
      <Pagination offset={offset} limit={limit} total={q.data.total} busy={q.isFetching} onOffsetChange={(o) => onPage(o, limit)} onLimitChange={(l) => onPage(0, l)} />
      <UpdateDetailDialog
        update={detail}
        onClose={() => setDetail(null)}
        onAction={(a, u) => {
          setDetail(null)
          ask(a, [u])
        }}
      />
      <ConfirmDialog
        open={target !== null}
        onClose={() => setTarget(null)}
        title={target !== null ? `${actionText[target.action].title} ${target.rows.length} update(s)?` : ''}
        confirmLabel={target !== null ? actionText[target.action].verb : 'OK'}
        onConfirm={() => {
          if (target === null) return undefined
          const rows = target.action === 'confirm' ? target.rows.filter((u) => u.status === 'needs_confirmation') : target.rows
          return act.mutateAsync({ action: target.action, ids: rows.map((u) => u.id) })
        }}
      >
        <p>{target !== null && actionText[target.action].body}</p>
        {target?.action === 'confirm' && <ConfirmExtras rows={target.rows} />}
      </ConfirmDialog>
    </>
  )
}

/** The extras of each update about to be confirmed, so the admin sees what else changes. */
function ConfirmExtras({ rows }: { rows: Update[] }) {
  const waiting = rows.filter((u) => u.status === 'needs_confirmation')
  const skipped = rows.length - waiting.length
  return (
    <div className="space-y-3">
      {skipped > 0 && <p className="text-zinc-600 dark:text-zinc-400">{skipped} selected update(s) are not waiting for a confirmation and are left as they are.</p>}
      {waiting.map((u) => (
        <section key={u.id}>
          <h3 className="mb-1 text-xs font-medium break-all">
            {u.package_name} <span className="font-normal text-zinc-500">on {u.hostname || shortId(u.agent_id)}</span>
          </h3>
          <ExtrasTable extras={u.extras ?? []} caption={`Packages changed along with ${u.package_name}`} />
        </section>
      ))}
    </div>
  )
}
