// Pending updates (fleet-wide or of one agent), paged on the server, with
// approve / reject / ignore for the selected rows.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import type { RowSelectionState, SortingState } from '@tanstack/react-table'
import { Check, CheckCheck, EyeOff, X } from 'lucide-react'
import { useEffect, useMemo, useState } from 'react'
import { actOnUpdates, keys, updatesQuery, type UpdateQuery } from '../api/endpoints'
import type { Update, UpdateAction, UpdateActionResult } from '../api/types'
import { formatBytes, shortId } from '../lib/format'
import { DataTable, type Columns } from './DataTable'
import { ConfirmDialog } from './Dialog'
import { Pagination } from './Pagination'
import { EmptyState, ErrorState, LoadingState, Notice } from './states'
import { Time } from './Time'
import { Badge, Button, StatusBadge } from './ui'

const actionText: Record<UpdateAction, { verb: string; past: string; title: string; body: string }> = {
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

export function actionNotice(action: UpdateAction, r: UpdateActionResult): string {
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
  const [pending, setPending] = useState<UpdateAction | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  useEffect(() => setSelection({}), [offset, limit, filter.agent_id, filter.severity, filter.package_type, filter.status, filter.q, filter.sort])
  const act = useMutation({
    mutationFn: ({ action, ids: list }: { action: UpdateAction; ids: string[] }) => actOnUpdates(action, list),
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
          <Button size="sm" variant="primary" onClick={() => setPending('approve')} icon={<Check className="size-4" aria-hidden="true" />}>
            Approve…
          </Button>
          <Button size="sm" variant="danger" onClick={() => setPending('reject')} icon={<X className="size-4" aria-hidden="true" />}>
            Reject…
          </Button>
          <Button size="sm" onClick={() => setPending('ignore')} icon={<EyeOff className="size-4" aria-hidden="true" />}>
            Ignore…
          </Button>
          <Button size="sm" onClick={() => setPending('confirm')} icon={<CheckCheck className="size-4" aria-hidden="true" />}>
            Confirm extras…
          </Button>
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
      <ConfirmDialog
        open={pending !== null}
        onClose={() => setPending(null)}
        title={pending !== null ? `${actionText[pending].title} ${ids.length} update(s)?` : ''}
        confirmLabel={pending !== null ? actionText[pending].verb : 'OK'}
        onConfirm={() => (pending !== null ? act.mutateAsync({ action: pending, ids }) : undefined)}
      >
        <p>{pending !== null && actionText[pending].body}</p>
      </ConfirmDialog>
    </>
  )
}
