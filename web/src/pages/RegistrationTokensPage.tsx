// Registration tokens: create (seats, expiry, note), copy the install
// one-liners while the token text is shown (only once), revoke, delete.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Ban, Plus, Trash2 } from 'lucide-react'
import { useMemo, useState, type FormEvent } from 'react'
import { createRegistrationToken, deleteRegistrationToken, keys, registrationTokensQuery, revokeRegistrationToken } from '../api/endpoints'
import type { RegistrationToken } from '../api/types'
import { CopyField } from '../components/Copy'
import { DataTable, type Columns } from '../components/DataTable'
import { ConfirmDialog } from '../components/Dialog'
import { Pagination } from '../components/Pagination'
import { EmptyState, ErrorState, InlineError, LoadingState } from '../components/states'
import { Time } from '../components/Time'
import { Button, Card, Field, Input, PageHeader, Select, StatusBadge } from '../components/ui'
import { formatDateTime } from '../lib/format'
import { installCommands } from '../lib/install'

const EXPIRY = [
  { label: '1 hour', seconds: 3600 },
  { label: '24 hours', seconds: 86400 },
  { label: '7 days', seconds: 7 * 86400 },
  { label: '30 days', seconds: 30 * 86400 },
  { label: '1 year', seconds: 365 * 86400 },
] as const

function Created({ token, onDone }: { token: RegistrationToken; onDone: () => void }) {
  const text = token.token ?? ''
  const cmds = installCommands(window.location.origin, text)
  return (
    <Card
      title="Registration token created"
      className="border-green-300 dark:border-green-900"
      actions={
        <Button size="sm" onClick={onDone}>
          Done
        </Button>
      }
    >
      <div className="space-y-3">
        <p className="text-sm text-zinc-700 dark:text-zinc-300">
          Copy what you need now: the token text is shown only this once. It registers up to {token.seats} agent(s) until{' '}
          {formatDateTime(token.expires_at)}.
        </p>
        <CopyField label="Token" value={text} />
        {cmds.map((c) => (
          <CopyField key={c.platform} label={c.label} value={c.command} />
        ))}
      </div>
    </Card>
  )
}

export function RegistrationTokensPage() {
  const qc = useQueryClient()
  const [page, setPage] = useState({ offset: 0, limit: 50 })
  const q = useQuery(registrationTokensQuery(page))
  const [seats, setSeats] = useState('1')
  const [expiry, setExpiry] = useState(String(86400))
  const [note, setNote] = useState('')
  const [created, setCreated] = useState<RegistrationToken | null>(null)
  const [confirm, setConfirm] = useState<{ kind: 'revoke' | 'delete'; token: RegistrationToken } | null>(null)
  const create = useMutation({
    mutationFn: createRegistrationToken,
    onSuccess: (t) => {
      setCreated(t)
      setNote('')
      void qc.invalidateQueries({ queryKey: keys.registrationTokens })
    },
  })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    create.mutate({ seats: Number(seats), expires_in_seconds: Number(expiry), note: note.trim() })
  }
  const columns = useMemo<Columns<RegistrationToken>>(
    () => [
      {
        id: 'note',
        header: 'Note',
        cell: ({ row }) => (
          <div>
            <p className="break-all">{row.original.note || <span className="text-zinc-500">(no note)</span>}</p>
            <p className="text-xs text-zinc-500">
              by {row.original.created_by} · <Time iso={row.original.created_at} />
            </p>
          </div>
        ),
      },
      { id: 'status', header: 'Status', cell: ({ row }) => <StatusBadge status={row.original.status} /> },
      {
        id: 'seats',
        header: 'Seats used',
        cell: ({ row }) => `${row.original.seats_used} / ${row.original.seats}`,
      },
      {
        id: 'expires',
        header: 'Expires',
        meta: { className: 'hidden sm:table-cell' },
        cell: ({ row }) => <span title={formatDateTime(row.original.expires_at)}>{formatDateTime(row.original.expires_at)}</span>,
      },
      {
        id: 'actions',
        header: () => <span className="sr-only">Actions</span>,
        cell: ({ row }) => (
          <div className="flex justify-end gap-1">
            {row.original.status !== 'revoked' && row.original.status !== 'expired' && (
              <Button
                size="sm"
                variant="danger"
                onClick={() => setConfirm({ kind: 'revoke', token: row.original })}
                icon={<Ban className="size-4" aria-hidden="true" />}
              >
                Revoke
              </Button>
            )}
            <Button
              size="sm"
              variant="ghost"
              aria-label={`Delete token ${row.original.note || row.original.id}`}
              onClick={() => setConfirm({ kind: 'delete', token: row.original })}
              icon={<Trash2 className="size-4" aria-hidden="true" />}
            />
          </div>
        ),
      },
    ],
    [],
  )
  return (
    <>
      <PageHeader
        title="Registration tokens"
        description="An agent registers with one of these; each registration uses a seat. Agents already registered are not affected by revoking or deleting a token."
      />
      <div className="space-y-4">
        {created !== null && <Created token={created} onDone={() => setCreated(null)} />}
        <Card title="New token">
          <form onSubmit={submit} className="grid gap-4 sm:grid-cols-[8rem_12rem_1fr_auto] sm:items-end" noValidate>
            <Field label="Seats">
              {(p) => <Input {...p} name="seats" type="number" inputMode="numeric" min={1} max={100000} value={seats} onChange={(e) => setSeats(e.target.value)} />}
            </Field>
            <Field label="Valid for">
              {(p) => (
                <Select {...p} name="expiry" value={expiry} onChange={(e) => setExpiry(e.target.value)}>
                  {EXPIRY.map((x) => (
                    <option key={x.seconds} value={x.seconds}>
                      {x.label}
                    </option>
                  ))}
                </Select>
              )}
            </Field>
            <Field label="Note">
              {(p) => <Input {...p} name="note" maxLength={500} placeholder="e.g. rack 1" value={note} onChange={(e) => setNote(e.target.value)} />}
            </Field>
            <Button type="submit" variant="primary" busy={create.isPending} icon={<Plus className="size-4" aria-hidden="true" />}>
              Create
            </Button>
            <div className="sm:col-span-4">
              <InlineError error={create.error} />
            </div>
          </form>
        </Card>
        <Card>
          <div className="-m-4">
            {q.isPending ? (
              <LoadingState label="Loading tokens…" />
            ) : q.isError ? (
              <ErrorState error={q.error} onRetry={() => void q.refetch()} />
            ) : (
              <>
                <DataTable
                  caption="Registration tokens"
                  columns={columns}
                  data={q.data.items}
                  getRowId={(t) => t.id}
                  stale={q.isPlaceholderData}
                  empty={<EmptyState title="No registration tokens">Create one above to add agents.</EmptyState>}
                />
                <Pagination
                  offset={page.offset}
                  limit={page.limit}
                  total={q.data.total}
                  onOffsetChange={(offset) => setPage((p) => ({ ...p, offset }))}
                  onLimitChange={(limit) => setPage({ offset: 0, limit })}
                />
              </>
            )}
          </div>
        </Card>
      </div>
      <ConfirmDialog
        open={confirm !== null}
        onClose={() => setConfirm(null)}
        title={confirm?.kind === 'delete' ? 'Delete this registration token?' : 'Revoke this registration token?'}
        confirmLabel={confirm?.kind === 'delete' ? 'Delete' : 'Revoke'}
        onConfirm={async () => {
          if (confirm === null) return
          if (confirm.kind === 'delete') await deleteRegistrationToken(confirm.token.id)
          else await revokeRegistrationToken(confirm.token.id)
          await qc.invalidateQueries({ queryKey: keys.registrationTokens })
        }}
      >
        <p>
          {confirm?.kind === 'delete'
            ? 'The token is removed from the list and can no longer register agents.'
            : 'The token can no longer register agents; it stays in the list as revoked.'}{' '}
          Agents that already registered with it keep working.
        </p>
        {confirm !== null && confirm.token.note !== '' && <p className="break-all text-zinc-600 dark:text-zinc-400">Note: {confirm.token.note}</p>}
      </ConfirmDialog>
    </>
  )
}
