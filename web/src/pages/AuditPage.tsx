// The audit log, newest first, paged by cursor ("Older entries").
import { keepPreviousData, useQuery } from '@tanstack/react-query'
import { ChevronLeft, ChevronRight } from 'lucide-react'
import { useEffect, useMemo, useState } from 'react'
import { keys, listAudit } from '../api/endpoints'
import type { AuditEntry } from '../api/types'
import { DataTable, type Columns } from '../components/DataTable'
import { EmptyState, ErrorState, LoadingState } from '../components/states'
import { Time } from '../components/Time'
import { Button, Card, Input, PageHeader } from '../components/ui'
import { compact, str, type Search } from '../lib/search'
import { useDebounced } from '../lib/useDebounced'

export interface AuditSearch {
  action?: string
  actor_id?: string
  target_id?: string
}

export function parseAuditSearch(s: Search): AuditSearch {
  return compact({ action: str(s['action'], 128), actor_id: str(s['actor_id'], 128), target_id: str(s['target_id'], 128) })
}

function details(d: AuditEntry['details']): string {
  if (d === null || Object.keys(d).length === 0) return ''
  return Object.entries(d)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ')
}

const columns: Columns<AuditEntry> = [
  { id: 'at', header: 'When', cell: ({ row }) => <Time iso={row.original.at} /> },
  {
    id: 'actor',
    header: 'Who',
    cell: ({ row }) => (
      <span className="break-all">
        {row.original.actor_name || row.original.actor_id || '—'} <span className="text-xs text-zinc-500">({row.original.actor_type})</span>
      </span>
    ),
  },
  { id: 'action', header: 'Action', cell: ({ row }) => <span className="font-mono text-xs">{row.original.action}</span> },
  {
    id: 'target',
    header: 'Target',
    meta: { className: 'hidden md:table-cell' },
    cell: ({ row }) =>
      row.original.target_type !== '' ? (
        <span className="text-xs break-all">
          {row.original.target_type} <span className="font-mono">{row.original.target_id}</span>
        </span>
      ) : (
        '—'
      ),
  },
  {
    id: 'details',
    header: 'Details',
    meta: { className: 'hidden lg:table-cell' },
    cell: ({ row }) => <span className="font-mono text-xs break-all">{details(row.original.details)}</span>,
  },
  { id: 'ip', header: 'IP', meta: { className: 'hidden xl:table-cell' }, cell: ({ row }) => <span className="font-mono text-xs">{row.original.ip}</span> },
]

const LIMIT = 50

export function AuditPage({ search, onSearch }: { search: AuditSearch; onSearch: (s: AuditSearch) => void }) {
  const [action, setAction] = useState(search.action ?? '')
  const debounced = useDebounced(action.trim(), 300)
  useEffect(() => {
    if ((search.action ?? '') !== debounced) onSearch(compact({ ...search, action: debounced === '' ? undefined : debounced }))
    // Only the typed text drives this.
  }, [debounced])
  // The cursors of the pages before the current one, to go back.
  const [cursors, setCursors] = useState<Array<string | undefined>>([undefined])
  useEffect(() => setCursors([undefined]), [search.action, search.actor_id, search.target_id])
  const cursor = cursors[cursors.length - 1]
  const filter = useMemo(() => ({ ...search, cursor, limit: LIMIT }), [search, cursor])
  const q = useQuery({ queryKey: [...keys.audit, filter], queryFn: () => listAudit(filter), placeholderData: keepPreviousData })
  return (
    <>
      <PageHeader title="Audit log" description="Who did what, newest first: sign-ins, tokens, agents, commands, settings." />
      <Card>
        <div className="-m-4">
          <div className="flex flex-wrap items-center gap-2 border-b border-zinc-200 p-3 dark:border-zinc-800">
            <Input
              type="search"
              aria-label="Filter by action"
              placeholder="Action, e.g. agent.delete"
              className="max-w-xs"
              value={action}
              onChange={(e) => setAction(e.target.value)}
            />
            {(search.actor_id !== undefined || search.target_id !== undefined) && (
              <Button size="sm" variant="ghost" onClick={() => onSearch(compact({ action: search.action }))}>
                Clear who/target filter
              </Button>
            )}
          </div>
          {q.isPending ? (
            <LoadingState label="Loading the audit log…" />
          ) : q.isError ? (
            <ErrorState error={q.error} onRetry={() => void q.refetch()} />
          ) : (
            <>
              <DataTable
                caption="Audit log"
                columns={columns}
                data={q.data.items}
                getRowId={(e) => String(e.id)}
                stale={q.isPlaceholderData}
                empty={<EmptyState title="No entries">{search.action !== undefined ? 'No entry has this action.' : 'Nothing was recorded yet.'}</EmptyState>}
              />
              <nav aria-label="Pages" className="flex items-center justify-end gap-2 border-t border-zinc-200 px-3 py-2 dark:border-zinc-800">
                <Button
                  size="sm"
                  disabled={cursors.length <= 1}
                  onClick={() => setCursors((c) => c.slice(0, -1))}
                  icon={<ChevronLeft className="size-4" aria-hidden="true" />}
                >
                  Newer
                </Button>
                <Button
                  size="sm"
                  disabled={q.data.next_cursor === null}
                  onClick={() => {
                    const next = q.data.next_cursor
                    if (next !== null) setCursors((c) => [...c, next])
                  }}
                >
                  Older
                  <ChevronRight className="size-4" aria-hidden="true" />
                </Button>
              </nav>
            </>
          )}
        </div>
      </Card>
    </>
  )
}
