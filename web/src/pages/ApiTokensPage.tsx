// The signed-in user's API tokens for the CLI and scripts.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Plus, Trash2 } from 'lucide-react'
import { useMemo, useState, type FormEvent } from 'react'
import { apiTokensQuery, createApiToken, deleteApiToken, keys } from '../api/endpoints'
import type { ApiToken, ApiTokenCreated } from '../api/types'
import { CopyField } from '../components/Copy'
import { DataTable, type Columns } from '../components/DataTable'
import { ConfirmDialog } from '../components/Dialog'
import { EmptyState, ErrorState, InlineError, LoadingState } from '../components/states'
import { Time } from '../components/Time'
import { Button, Card, Field, Input, PageHeader, Select } from '../components/ui'
import { formatDateTime } from '../lib/format'

const EXPIRY = [
  { label: 'Never', seconds: 0 },
  { label: '30 days', seconds: 30 * 86400 },
  { label: '90 days', seconds: 90 * 86400 },
  { label: '1 year', seconds: 365 * 86400 },
] as const

export function ApiTokensPage() {
  const qc = useQueryClient()
  const q = useQuery(apiTokensQuery)
  const [name, setName] = useState('')
  const [expiry, setExpiry] = useState('0')
  const [created, setCreated] = useState<ApiTokenCreated | null>(null)
  const [revoking, setRevoking] = useState<ApiToken | null>(null)
  const create = useMutation({
    mutationFn: createApiToken,
    onSuccess: (t) => {
      setCreated(t)
      setName('')
      void qc.invalidateQueries({ queryKey: keys.apiTokens })
    },
  })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    create.mutate({ name: name.trim(), expires_in_seconds: Number(expiry) })
  }
  const columns = useMemo<Columns<ApiToken>>(
    () => [
      { id: 'name', header: 'Name', cell: ({ row }) => <span className="font-medium break-all">{row.original.name}</span> },
      { id: 'created', header: 'Created', meta: { className: 'hidden sm:table-cell' }, cell: ({ row }) => <Time iso={row.original.created_at} /> },
      { id: 'used', header: 'Last used', cell: ({ row }) => <Time iso={row.original.last_used_at} /> },
      {
        id: 'expires',
        header: 'Expires',
        meta: { className: 'hidden md:table-cell' },
        cell: ({ row }) => (row.original.expires_at === null ? 'never' : formatDateTime(row.original.expires_at)),
      },
      {
        id: 'actions',
        header: () => <span className="sr-only">Actions</span>,
        cell: ({ row }) => (
          <div className="flex justify-end">
            <Button size="sm" variant="danger" onClick={() => setRevoking(row.original)} icon={<Trash2 className="size-4" aria-hidden="true" />}>
              Revoke
            </Button>
          </div>
        ),
      },
    ],
    [],
  )
  return (
    <>
      <PageHeader title="API tokens" description="Long-lived tokens for the redflag CLI and scripts (Authorization: Bearer). They act as you." />
      <div className="space-y-4">
        {created !== null && (
          <Card
            title="API token created"
            className="border-green-300 dark:border-green-900"
            actions={
              <Button size="sm" onClick={() => setCreated(null)}>
                Done
              </Button>
            }
          >
            <p className="mb-3 text-sm">Copy it now: the token text is shown only this once.</p>
            <CopyField label={created.name} value={created.token} />
          </Card>
        )}
        <Card title="New token">
          <form onSubmit={submit} className="grid gap-4 sm:grid-cols-[1fr_10rem_auto] sm:items-end" noValidate>
            <Field label="Name">
              {(p) => <Input {...p} name="name" maxLength={100} placeholder="e.g. laptop CLI" value={name} onChange={(e) => setName(e.target.value)} />}
            </Field>
            <Field label="Expires">
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
            <Button type="submit" variant="primary" busy={create.isPending} icon={<Plus className="size-4" aria-hidden="true" />}>
              Create
            </Button>
            <div className="sm:col-span-3">
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
              <DataTable
                caption="API tokens"
                columns={columns}
                data={q.data.items}
                getRowId={(t) => t.id}
                empty={<EmptyState title="No API tokens">Create one above for the CLI or a script.</EmptyState>}
              />
            )}
          </div>
        </Card>
      </div>
      <ConfirmDialog
        open={revoking !== null}
        onClose={() => setRevoking(null)}
        title="Revoke this API token?"
        confirmLabel="Revoke"
        onConfirm={async () => {
          if (revoking === null) return
          await deleteApiToken(revoking.id)
          await qc.invalidateQueries({ queryKey: keys.apiTokens })
        }}
      >
        <p>
          Scripts and CLIs using <span className="font-medium break-all">{revoking?.name}</span> stop working at once.
        </p>
      </ConfirmDialog>
    </>
  )
}
