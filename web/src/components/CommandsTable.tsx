// Command history (fleet-wide or of one agent): status, duration, who
// queued it, the output, and cancel for pending ones.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import { Ban, FileText } from 'lucide-react'
import { useMemo, useState } from 'react'
import { cancelCommand, commandsQuery, keys, type CommandQuery } from '../api/endpoints'
import type { Command } from '../api/types'
import { formatDateTime, formatDuration, humanize, secondsBetween, shortId } from '../lib/format'
import { DataTable, type Columns } from './DataTable'
import { ConfirmDialog, Dialog } from './Dialog'
import { Pagination } from './Pagination'
import { EmptyState, ErrorState, LoadingState } from './states'
import { Time } from './Time'
import { Button, DescriptionList, Pre, StatusBadge } from './ui'

export function commandDuration(c: Command): number | null {
  return secondsBetween(c.result?.started_at, c.result?.finished_at) ?? secondsBetween(c.sent_at, c.finished_at)
}

function prettyJSON(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2)
  } catch {
    return text
  }
}

export function CommandDetails({ command }: { command: Command }) {
  const r = command.result
  const d = commandDuration(command)
  return (
    <div className="space-y-4">
      <DescriptionList
        items={[
          ['Type', humanize(command.type)],
          ['Status', <StatusBadge key="s" status={command.status} />],
          ['Queued', `${formatDateTime(command.created_at)} by ${command.created_by || 'system'}`],
          ['Delivered', formatDateTime(command.sent_at)],
          ['Finished', formatDateTime(command.finished_at)],
          ['Duration', formatDuration(d)],
          ['Exit code', r?.exit_code !== undefined ? String(r.exit_code) : '—'],
          ['Command id', <span key="id" className="font-mono text-xs break-all">{command.id}</span>],
        ]}
      />
      <div>
        <h3 className="mb-1 text-xs font-medium text-zinc-500">Parameters</h3>
        <Pre>{prettyJSON(command.params)}</Pre>
      </div>
      <div>
        <h3 className="mb-1 text-xs font-medium text-zinc-500">Output</h3>
        {r?.output !== undefined && r.output !== '' ? <Pre>{r.output}</Pre> : <p className="text-sm text-zinc-500">No output.</p>}
      </div>
      {r?.details !== undefined && r.details !== null && Object.keys(r.details).length > 0 && (
        <div>
          <h3 className="mb-1 text-xs font-medium text-zinc-500">Details</h3>
          <Pre>{JSON.stringify(r.details, null, 2)}</Pre>
        </div>
      )}
    </div>
  )
}

export function CommandsTable({
  filter,
  offset,
  limit,
  onPage,
  showAgent = true,
}: {
  filter: Omit<CommandQuery, 'limit' | 'offset'>
  offset: number
  limit: number
  /** Without it the table shows one page and no page controls. */
  onPage?: (offset: number, limit: number) => void
  showAgent?: boolean
}) {
  const qc = useQueryClient()
  const q = useQuery(commandsQuery({ ...filter, limit, offset }))
  const [open, setOpen] = useState<Command | null>(null)
  const [cancelling, setCancelling] = useState<Command | null>(null)
  const cancel = useMutation({
    mutationFn: (id: string) => cancelCommand(id),
    onSettled: () => qc.invalidateQueries({ queryKey: keys.commands }),
  })
  const columns = useMemo<Columns<Command>>(() => {
    const cols: Columns<Command> = [
      {
        id: 'created_at',
        header: 'Queued',
        cell: ({ row }) => <Time iso={row.original.created_at} />,
      },
      {
        id: 'type',
        header: 'Type',
        cell: ({ row }) => <span className="font-mono text-xs">{row.original.type}</span>,
      },
      { id: 'status', header: 'Status', cell: ({ row }) => <StatusBadge status={row.original.status} /> },
      {
        id: 'duration',
        header: 'Duration',
        meta: { className: 'hidden sm:table-cell' },
        cell: ({ row }) => formatDuration(commandDuration(row.original)),
      },
      {
        id: 'created_by',
        header: 'By',
        meta: { className: 'hidden lg:table-cell' },
        cell: ({ row }) => row.original.created_by || 'system',
      },
      {
        id: 'actions',
        header: () => <span className="sr-only">Actions</span>,
        cell: ({ row }) => (
          <div className="flex justify-end gap-1">
            <Button size="sm" variant="ghost" onClick={() => setOpen(row.original)} icon={<FileText className="size-4" aria-hidden="true" />}>
              Output
            </Button>
            {row.original.status === 'pending' && (
              <Button size="sm" variant="danger" onClick={() => setCancelling(row.original)} icon={<Ban className="size-4" aria-hidden="true" />}>
                Cancel
              </Button>
            )}
          </div>
        ),
      },
    ]
    if (showAgent) {
      cols.splice(1, 0, {
        id: 'agent',
        header: 'Agent',
        meta: { className: 'hidden md:table-cell' },
        cell: ({ row }) => (
          <Link
            to="/agents/$agentId"
            params={{ agentId: row.original.agent_id }}
            className="break-all text-red-700 hover:underline dark:text-red-400"
            title={row.original.agent_id}
          >
            {row.original.hostname !== undefined && row.original.hostname !== '' ? (
              row.original.hostname
            ) : (
              <span className="font-mono text-xs">{shortId(row.original.agent_id)}</span>
            )}
          </Link>
        ),
      })
    }
    return cols
  }, [showAgent])

  if (q.isPending) return <LoadingState label="Loading commands…" />
  if (q.isError) return <ErrorState error={q.error} onRetry={() => void q.refetch()} />
  const filtered = filter.status !== undefined || filter.type !== undefined
  return (
    <>
      <DataTable
        caption="Commands"
        columns={columns}
        data={q.data.items}
        getRowId={(c) => c.id}
        stale={q.isPlaceholderData}
        empty={
          <EmptyState title={filtered ? 'No command matches' : 'No commands yet'}>
            {filtered ? 'Change the filters.' : 'Commands queued for agents (scans, inventory, installs) appear here.'}
          </EmptyState>
        }
      />
      {onPage !== undefined && (
        <Pagination
          offset={offset}
          limit={limit}
          total={q.data.total}
          busy={q.isFetching}
          onOffsetChange={(o) => onPage(o, limit)}
          onLimitChange={(l) => onPage(0, l)}
        />
      )}
      <Dialog open={open !== null} onClose={() => setOpen(null)} title={open !== null ? `Command ${humanize(open.type)}` : 'Command'}>
        {open !== null && <CommandDetails command={open} />}
      </Dialog>
      <ConfirmDialog
        open={cancelling !== null}
        onClose={() => setCancelling(null)}
        title="Cancel this command?"
        confirmLabel="Cancel command"
        onConfirm={() => (cancelling !== null ? cancel.mutateAsync(cancelling.id) : undefined)}
      >
        <p>
          The pending <span className="font-mono">{cancelling?.type}</span> command will not be delivered. A command an
          agent has already received cannot be cancelled.
        </p>
      </ConfirmDialog>
    </>
  )
}
