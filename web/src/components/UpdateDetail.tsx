// One update with its history (GET /api/v1/updates/{id}) and the extra
// packages a dry run found, in a dialog; and the extras table that the
// confirmation dialog also shows.
import { useQuery } from '@tanstack/react-query'
import { Link } from '@tanstack/react-router'
import { Check, CheckCheck, FlaskConical } from 'lucide-react'
import { updateQuery } from '../api/endpoints'
import type { PackageChange, Update } from '../api/types'
import { formatBytes, formatDateTime, humanize } from '../lib/format'
import { Dialog } from './Dialog'
import { ErrorState, LoadingState } from './states'
import { Button, DescriptionList, StatusBadge } from './ui'

/** What the detail dialog can start (the caller asks for confirmation). */
export type DetailAction = 'preview' | 'approve' | 'confirm'

const APPROVABLE = ['pending', 'failed', 'rejected', 'ignored']

export function ExtrasTable({ extras, caption }: { extras: PackageChange[]; caption: string }) {
  if (extras.length === 0) return <p className="text-sm text-zinc-500">No other package changes.</p>
  return (
    <div className="max-h-64 overflow-auto rounded-md border border-zinc-200 dark:border-zinc-800">
      <table className="w-full text-left text-xs">
        <caption className="sr-only">{caption}</caption>
        <thead className="bg-zinc-50 text-zinc-500 dark:bg-zinc-950">
          <tr>
            <th scope="col" className="px-2 py-1.5 font-medium">Package</th>
            <th scope="col" className="px-2 py-1.5 font-medium">Change</th>
            <th scope="col" className="px-2 py-1.5 font-medium">Versions</th>
          </tr>
        </thead>
        <tbody className="divide-y divide-zinc-100 dark:divide-zinc-800">
          {extras.map((x, i) => (
            <tr key={`${x.package_type}/${x.package_name}/${i}`}>
              <td className="px-2 py-1.5 break-all">
                {x.package_name} <span className="font-mono text-zinc-500">{x.package_type}</span>
              </td>
              <td className="px-2 py-1.5">
                <StatusBadge status={x.action} />
              </td>
              <td className="px-2 py-1.5 font-mono [overflow-wrap:anywhere]">
                {x.from_version !== undefined && x.from_version !== '' ? x.from_version : '—'} → {x.to_version !== undefined && x.to_version !== '' ? x.to_version : '—'}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

function Body({ id, onAction }: { id: string; onAction: (a: DetailAction, u: Update) => void }) {
  const q = useQuery(updateQuery(id))
  if (q.isPending) return <LoadingState label="Loading the update…" />
  if (q.isError) return <ErrorState error={q.error} onRetry={() => void q.refetch()} />
  const u = q.data
  const history = u.history ?? []
  const extras = u.extras ?? []
  return (
    <div className="space-y-4">
      <DescriptionList
        items={[
          ['Package', <span key="p" className="break-all">{u.package_name}</span>],
          ['Package manager', <span key="t" className="font-mono">{u.package_type}</span>],
          [
            'Agent',
            <Link key="a" to="/agents/$agentId" params={{ agentId: u.agent_id }} className="break-all text-red-700 hover:underline dark:text-red-400">
              {u.hostname || u.agent_id}
            </Link>,
          ],
          ['Version', <span key="v" className="font-mono text-xs [overflow-wrap:anywhere]">{`${u.current_version || '—'} → ${u.available_version}`}</span>],
          ['Severity', <StatusBadge key="s" status={u.severity || 'unknown'} />],
          ['Status', <StatusBadge key="st" status={u.status} />],
          ['Agent said', u.status_message !== '' ? <span key="m" className="break-words">{u.status_message}</span> : '—'],
          ['Installed version', u.installed_version !== '' ? <span key="iv" className="font-mono text-xs">{u.installed_version}</span> : '—'],
          ['CVEs', (u.cve_ids ?? []).length > 0 ? <span key="c" className="break-words">{(u.cve_ids ?? []).join(', ')}</span> : '—'],
          ['Source', u.source !== '' ? <span key="src" className="break-all">{u.source}</span> : '—'],
          ['Size', u.size_bytes > 0 ? formatBytes(u.size_bytes) : '—'],
          ['Needs reboot', u.requires_reboot ? 'yes' : 'no'],
          ['Install command', u.command_status !== null ? <StatusBadge key="cs" status={u.command_status} /> : '—'],
          ['First seen', formatDateTime(u.first_seen_at)],
          ['Last seen', formatDateTime(u.last_seen_at)],
        ]}
      />
      {(u.status === 'needs_confirmation' || extras.length > 0) && (
        <section>
          <h3 className="mb-1 text-xs font-medium text-zinc-500">Other packages the dry run would change</h3>
          <ExtrasTable extras={extras} caption={`Packages changed along with ${u.package_name}`} />
        </section>
      )}
      <section>
        <h3 className="mb-1 text-xs font-medium text-zinc-500">History</h3>
        {history.length === 0 ? (
          <p className="text-sm text-zinc-500">No status changes yet.</p>
        ) : (
          <ol className="space-y-1 text-xs">
            {history.map((h) => (
              <li key={h.id} className="flex flex-wrap gap-x-2">
                <span className="text-zinc-500">{formatDateTime(h.at)}</span>
                <span>
                  {h.from_status !== '' ? `${humanize(h.from_status)} → ` : ''}
                  <span className="font-medium">{humanize(h.to_status)}</span>
                </span>
                {h.actor !== '' && <span className="text-zinc-500">by {h.actor}</span>}
                {h.note !== '' && <span className="break-words text-zinc-600 dark:text-zinc-400">{h.note}</span>}
              </li>
            ))}
          </ol>
        )}
      </section>
      <div className="flex flex-wrap justify-end gap-2 border-t border-zinc-200 pt-3 dark:border-zinc-800">
        {APPROVABLE.includes(u.status) && (
          <>
            <Button size="sm" onClick={() => onAction('preview', u)} icon={<FlaskConical className="size-4" aria-hidden="true" />}>
              Preview (dry run)…
            </Button>
            <Button size="sm" variant="primary" onClick={() => onAction('approve', u)} icon={<Check className="size-4" aria-hidden="true" />}>
              Approve…
            </Button>
          </>
        )}
        {u.status === 'needs_confirmation' && (
          <Button size="sm" variant="primary" onClick={() => onAction('confirm', u)} icon={<CheckCheck className="size-4" aria-hidden="true" />}>
            Confirm…
          </Button>
        )}
      </div>
    </div>
  )
}

export function UpdateDetailDialog({
  update,
  onClose,
  onAction,
}: {
  update: Update | null
  onClose: () => void
  onAction: (a: DetailAction, u: Update) => void
}) {
  return (
    <Dialog open={update !== null} onClose={onClose} title={update !== null ? `Update ${update.package_name}` : 'Update'}>
      {update !== null && <Body id={update.id} onAction={onAction} />}
    </Dialog>
  )
}
