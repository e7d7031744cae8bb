// The Overview figures and trends, update details with dry run and
// confirmation of extras, bulk approval of security updates, command
// hostnames, and the live indicator when the server has no event stream.
import { fireEvent, screen, waitFor, within } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import type { Agent, Command, StatsOverview, Update } from '../api/types'
import { renderApp } from './app'

const HOSTILE = '<img src=x onerror=alert(1)>'
const A1 = '11111111-1111-4111-8111-111111111111'
const U1 = 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'
const U2 = 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb'

const overview: StatsOverview = {
  agents: { total: 12, online: 9, offline: 2, stale: 1 },
  update_status: { up_to_date: 3, updates_available: 7, scan_failed: 1, scan_stale: 0, never_scanned: 1 },
  pending_by_severity: { critical: 4, important: 5, moderate: 0, low: 2, unknown: 0 },
  pending_by_package_type: { apt: 8, [HOSTILE]: 3 },
  reboot_required: 2,
  failed_installs_24h: 6,
  installed_24h: 17,
}

function update(id: string, extra: Partial<Update> = {}): Update {
  return {
    id,
    agent_id: A1,
    hostname: 'web-01',
    package_type: 'apt',
    package_name: 'openssl',
    current_version: '3.0.1',
    available_version: '3.0.2',
    severity: 'critical',
    source: 'bookworm-security',
    cve_ids: [],
    size_bytes: 0,
    requires_reboot: false,
    metadata: {},
    status: 'pending',
    status_message: '',
    installed_version: '',
    command_id: null,
    command_status: null,
    first_seen_at: '2026-11-20T10:00:00Z',
    last_seen_at: '2026-11-26T10:00:00Z',
    updated_at: '2026-11-26T10:00:00Z',
    status_changed_at: null,
    ...extra,
  }
}

const list = <T,>(items: T[]) => ({ status: 200, body: { items, next_cursor: null, total: items.length } })

describe('Overview', () => {
  it('shows the server figures with links, and the trends empty state', async () => {
    const { container } = renderApp('/', (_m, url) => {
      if (url.pathname === '/api/v1/stats/overview') return { status: 200, body: overview }
      if (url.pathname === '/api/v1/stats/trends') return { status: 200, body: { days: [] } }
      if (url.pathname === '/api/v1/commands') return list([])
      return undefined
    })
    expect(await screen.findByText('Failed installs (24 h)')).toBeTruthy()
    expect(screen.getByText('17')).toBeTruthy()
    expect(screen.getByText(HOSTILE)).toBeTruthy()
    expect(container.querySelector('img')).toBeNull()
    expect(screen.getByRole('link', { name: 'critical' }).getAttribute('href')).toBe('/updates?severity=critical')
    expect(await screen.findByText('No history yet')).toBeTruthy()
    // The route asks for 90 days.
    expect(screen.getByText('The last 90 days')).toBeTruthy()
  })

  it("shows the server's message when the figures are not available, and counts agents from the list", async () => {
    renderApp('/', (_m, url) => {
      if (url.pathname === '/api/v1/agents') return { status: 200, body: { items: [], next_cursor: null, total: 0 } }
      if (url.pathname === '/api/v1/commands') return list([])
      return undefined
    })
    expect(await screen.findByText('There is no route GET /api/v1/stats/overview.')).toBeTruthy()
    expect(await screen.findByText('No agents yet')).toBeTruthy()
    expect(await screen.findByText('There is no route GET /api/v1/stats/trends.')).toBeTruthy()
    // No event stream: the indicator says the pages poll.
    expect((await screen.findAllByText('Refreshing every 15 s')).length).toBeGreaterThan(0)
  })
})

describe('Updates', () => {
  it('shows the detail with history, and previews as a dry run after a confirmation', async () => {
    const { calls } = renderApp('/updates', (m, url, body) => {
      if (m === 'GET' && url.pathname === '/api/v1/updates') return list([update(U1)])
      if (m === 'GET' && url.pathname === `/api/v1/updates/${U1}`)
        return {
          status: 200,
          body: { ...update(U1), history: [{ id: 1, from_status: '', to_status: 'pending', actor: 'agent', note: HOSTILE, at: '2026-11-20T10:00:00Z' }] },
        }
      if (m === 'POST' && url.pathname === '/api/v1/updates/approve')
        return { status: 200, body: { changed: 1, unchanged: 0, commands: [{ id: 'c1' }], echo: body } }
      return undefined
    })
    fireEvent.click(await screen.findByRole('button', { name: 'Details of openssl' }))
    const detail = await screen.findByRole('dialog', { name: 'Update openssl' })
    expect(await within(detail).findByText(HOSTILE)).toBeTruthy()
    fireEvent.click(within(detail).getByRole('button', { name: 'Preview (dry run)…' }))
    const confirm = await screen.findByRole('dialog', { name: 'Preview (dry run) 1 update(s)?' })
    expect(calls.some((c) => c.method === 'POST')).toBe(false)
    fireEvent.click(within(confirm).getByRole('button', { name: 'Preview (dry run)' }))
    await waitFor(() => expect(calls.find((c) => c.method === 'POST')?.body).toEqual({ update_ids: [U1], dry_run: true }))
    expect(await screen.findByText(/Queued a dry run of 1 update\(s\)/)).toBeTruthy()
  })

  it('lists the extras in the confirmation dialog before confirming', async () => {
    const waiting = update(U2, {
      package_name: 'libc6',
      status: 'needs_confirmation',
      extras: [{ package_type: 'apt', package_name: HOSTILE, action: 'install', to_version: '1.2' }],
    })
    const { calls, container } = renderApp('/updates?status=needs_confirmation', (m, url) => {
      if (m === 'GET' && url.pathname === '/api/v1/updates') return list([waiting])
      if (m === 'POST' && url.pathname === '/api/v1/updates/confirm') return { status: 200, body: { changed: 1, unchanged: 0, commands: [] } }
      return undefined
    })
    fireEvent.click(await screen.findByLabelText(`Select row ${U2}`))
    fireEvent.click(screen.getByRole('button', { name: 'Confirm extras…' }))
    const dialog = await screen.findByRole('dialog', { name: /extra packages of 1 update/ })
    expect(within(dialog).getByText(HOSTILE)).toBeTruthy()
    expect(container.ownerDocument.querySelector('dialog img')).toBeNull()
    fireEvent.click(within(dialog).getByRole('button', { name: 'Confirm' }))
    await waitFor(() => expect(calls.find((c) => c.method === 'POST')?.body).toEqual({ update_ids: [U2] }))
  })
})

describe('Agents', () => {
  it('filters by critical updates and approves the selected agents security updates after a confirmation', async () => {
    const a: Agent = {
      id: A1,
      hostname: 'web-01',
      os_type: 'linux',
      os_version: '12',
      os_arch: 'amd64',
      agent_version: '0.1.0',
      machine_id: 'm',
      status: 'online',
      check_in_interval_seconds: 300,
      registered_at: '2026-11-20T10:00:00Z',
      last_seen_at: '2026-11-26T10:00:00Z',
    }
    const { calls } = renderApp('/agents?critical=yes', (m, url) => {
      if (m === 'GET' && url.pathname === '/api/v1/agents') return list([a])
      if (m === 'GET' && url.pathname === '/api/v1/updates')
        return list(url.searchParams.get('severity') === 'critical' ? [update(U1)] : [update(U2, { severity: 'important' })])
      if (m === 'POST' && url.pathname === '/api/v1/updates/approve') return { status: 200, body: { changed: 2, unchanged: 0, commands: [{ id: 'c' }] } }
      return undefined
    })
    await screen.findByText('web-01')
    expect(calls.find((c) => c.url.pathname === '/api/v1/agents')?.url.searchParams.get('has_critical')).toBe('true')
    fireEvent.click(screen.getByLabelText(`Select row ${A1}`))
    fireEvent.click(screen.getByRole('button', { name: 'Approve security updates…' }))
    const dialog = await screen.findByRole('dialog', { name: 'Approve 2 security update(s) on 1 agent(s)?' })
    const lists = calls.filter((c) => c.url.pathname === '/api/v1/updates')
    expect(lists.map((c) => [c.url.searchParams.get('agent_id'), c.url.searchParams.get('severity'), c.url.searchParams.get('status')])).toEqual([
      [A1, 'critical', 'pending'],
      [A1, 'important', 'pending'],
    ])
    expect(calls.some((c) => c.method === 'POST')).toBe(false)
    fireEvent.click(within(dialog).getByRole('button', { name: 'Approve' }))
    await waitFor(() => expect(calls.find((c) => c.method === 'POST')?.body).toEqual({ update_ids: [U1, U2] }))
    expect(await screen.findByText('Approved 2 security update(s); queued 1 install command(s).')).toBeTruthy()
  })
})

describe('Commands', () => {
  it('names agents by the hostname in the command record, without fetching each agent', async () => {
    const c: Command = {
      id: '44444444-4444-4444-8444-444444444444',
      agent_id: A1,
      hostname: HOSTILE,
      type: 'scan_updates',
      params: '{}',
      status: 'pending',
      key_id: 'k',
      signature: 's',
      issued_at: 0,
      expires_at: 0,
      created_at: '2026-11-26T09:00:00Z',
      created_by: 'admin',
      sent_at: null,
      acked_at: null,
      finished_at: null,
    }
    const { calls } = renderApp('/commands', (_m, url) => (url.pathname === '/api/v1/commands' ? list([c]) : undefined))
    expect(await screen.findByRole('link', { name: HOSTILE })).toBeTruthy()
    expect(calls.some((x) => x.url.pathname.startsWith('/api/v1/agents/'))).toBe(false)
  })
})
