// Server settings (intervals and timeouts; the server validates and its
// message is shown) and the command-signing keys with rotation.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import { RotateCw } from 'lucide-react'
import { useEffect, useState, type FormEvent } from 'react'
import { keys, putSettings, rotateSigningKey, settingsQuery, signingKeysQuery } from '../api/endpoints'
import type { Settings } from '../api/types'
import { ConfirmDialog } from '../components/Dialog'
import { EmptyState, ErrorState, InlineError, LoadingState, Notice } from '../components/states'
import { Button, Card, Field, Input, PageHeader, StatusBadge } from '../components/ui'
import { formatDateTime, formatDuration } from '../lib/format'

const KNOWN: Record<string, { label: string; help: string }> = {
  check_in_interval_seconds: {
    label: 'Check-in interval (seconds)',
    help: 'How often agents ask for work. Applies to agents that register from now on; 10 to 86,400.',
  },
  command_timeout_seconds: {
    label: 'Command timeout (seconds)',
    help: 'A delivered command without a result after this long becomes timed out; 30 to 604,800.',
  },
  command_expiry_seconds: {
    label: 'Command expiry (seconds)',
    help: 'A command not delivered within this long expires and is never run; 60 to 7,776,000.',
  },
  scan_interval_seconds: {
    label: 'Scan interval (seconds)',
    help: 'How often agents are expected to scan; a scanner without success for twice this long is stale.',
  },
}

function describe(key: string): { label: string; help: string } {
  const k = KNOWN[key]
  if (k !== undefined) return k
  const words = key.replace(/_seconds$/, '').replaceAll('_', ' ')
  return { label: `${words[0]?.toUpperCase() ?? ''}${words.slice(1)}${key.endsWith('_seconds') ? ' (seconds)' : ''}`, help: '' }
}

function SettingsForm({ initial }: { initial: Settings }) {
  const qc = useQueryClient()
  const names = Object.keys(initial).filter((k) => typeof initial[k] === 'number')
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(names.map((k) => [k, String(initial[k] ?? '')])),
  )
  const [saved, setSaved] = useState(false)
  const save = useMutation({
    mutationFn: putSettings,
    onSuccess: (s) => {
      qc.setQueryData(keys.settings, s)
      setSaved(true)
    },
  })
  useEffect(() => setSaved(false), [values])
  const local = (k: string): string | null => (/^\d+$/.test((values[k] ?? '').trim()) ? null : 'Enter a whole number of seconds.')
  const invalid = names.some((k) => local(k) !== null)
  const submit = (e: FormEvent) => {
    e.preventDefault()
    if (invalid) return
    save.mutate(Object.fromEntries(names.map((k) => [k, Number(values[k])])))
  }
  if (names.length === 0) return <EmptyState title="This server has no settings to change" />
  return (
    <form onSubmit={submit} className="space-y-4" noValidate>
      <div className="grid gap-4 md:grid-cols-2 xl:grid-cols-4">
        {names.map((k) => {
          const d = describe(k)
          const v = values[k] ?? ''
          const now = /^\d+$/.test(v.trim()) ? ` Now: ${formatDuration(Number(v))}.` : ''
          return (
            <Field key={k} label={d.label} help={`${d.help}${now}`.trim()} error={local(k)}>
              {(p) => (
                <Input {...p} name={k} inputMode="numeric" value={v} onChange={(e) => setValues((old) => ({ ...old, [k]: e.target.value }))} />
              )}
            </Field>
          )
        })}
      </div>
      <InlineError error={save.error} />
      {saved && <Notice>Settings saved.</Notice>}
      <Button type="submit" variant="primary" busy={save.isPending} disabled={invalid}>
        Save settings
      </Button>
    </form>
  )
}

function SigningKeys() {
  const qc = useQueryClient()
  const q = useQuery(signingKeysQuery)
  const [confirm, setConfirm] = useState(false)
  const [notice, setNotice] = useState<string | null>(null)
  return (
    <Card
      title="Command-signing keys"
      actions={
        <Button size="sm" variant="danger" onClick={() => setConfirm(true)} icon={<RotateCw className="size-4" aria-hidden="true" />}>
          Rotate…
        </Button>
      }
    >
      <p className="mb-3 text-sm text-zinc-600 dark:text-zinc-400">
        Every command is signed with the active Ed25519 key; agents pinned the keys at registration and learn a new one
        through a command signed by the old one.
      </p>
      {notice !== null && <Notice>{notice}</Notice>}
      {q.isPending ? (
        <LoadingState label="Loading keys…" />
      ) : q.isError ? (
        <ErrorState error={q.error} onRetry={() => void q.refetch()} />
      ) : q.data.items.length === 0 ? (
        <EmptyState title="No signing keys" />
      ) : (
        <ul className="divide-y divide-zinc-100 dark:divide-zinc-800">
          {q.data.items.map((k) => (
            <li key={k.key_id} className="flex flex-wrap items-center justify-between gap-2 py-2 text-sm">
              <div className="min-w-0">
                <p className="font-mono break-all">{k.key_id}</p>
                <p className="text-xs text-zinc-500">
                  {k.algorithm}, created {formatDateTime(k.created_at)}
                  {k.not_after !== null && `, trusted until ${formatDateTime(k.not_after)}`}
                </p>
              </div>
              <StatusBadge status={k.status} />
            </li>
          ))}
        </ul>
      )}
      <ConfirmDialog
        open={confirm}
        onClose={() => setConfirm(false)}
        title="Rotate the signing key?"
        confirmLabel="Rotate key"
        onConfirm={async () => {
          const r = await rotateSigningKey()
          await Promise.all([qc.invalidateQueries({ queryKey: keys.signingKeys }), qc.invalidateQueries({ queryKey: keys.commands })])
          setNotice(
            `Key ${r.key_id} is active; ${r.retiring_key_id} is retiring and stays trusted until ${formatDateTime(r.not_after)}. ` +
              `${r.agents} agent(s) receive the new key in a rotate_key command.`,
          )
        }}
      >
        <p>
          A new key becomes active and signs every new command; the current key keeps being trusted while it retires, and
          each agent receives the new key in a command signed by the old one. Agents offline for longer than the grace
          period must be registered again.
        </p>
      </ConfirmDialog>
    </Card>
  )
}

// Machine binding is always on (SPEC §4): there is nothing to switch, so
// this card says what it does and where an admin rebinds an agent.
function MachineBinding() {
  return (
    <Card title="Machine binding">
      <p className="text-sm text-zinc-600 dark:text-zinc-400">
        Every agent is bound to the machine it registered on (a SHA-256 of the machine&apos;s stable hardware
        identifiers). A request whose machine id differs is refused with <code>machine_mismatch</code>, so a copied
        agent config does not work on another machine. Binding is always enforced. After a hardware change or a
        reinstall, open the agent in{' '}
        <Link to="/agents" className="font-medium text-red-700 underline dark:text-red-400">
          Agents
        </Link>{' '}
        and choose Rebind, or register the machine again (it keeps its agent id and history).
      </p>
    </Card>
  )
}

export function SettingsPage() {
  const q = useQuery(settingsQuery)
  return (
    <>
      <PageHeader title="Settings" description="Intervals and timeouts for the whole fleet, the keys that sign commands, and machine binding." />
      <div className="space-y-4">
        <Card title="Intervals and timeouts">
          {q.isPending ? (
            <LoadingState label="Loading settings…" />
          ) : q.isError ? (
            <ErrorState error={q.error} onRetry={() => void q.refetch()} />
          ) : (
            <SettingsForm initial={q.data} />
          )}
        </Card>
        <SigningKeys />
        <MachineBinding />
      </div>
    </>
  )
}
