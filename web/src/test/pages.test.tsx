import { fireEvent, screen, waitFor, within } from '@testing-library/react'
import userEvent from '@testing-library/user-event'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Agent, Command } from '../api/types'
import { renderApp } from './app'

const HOSTILE_IMG = '<img src=x onerror=alert(1)>'
const HOSTILE_SCRIPT = '<script>alert(1)</script>'

function agent(id: string, hostname: string, extra: Partial<Agent> = {}): Agent {
  return {
    id,
    hostname,
    os_type: 'linux',
    os_version: 'Debian 12',
    os_arch: 'amd64',
    agent_version: '0.1.0',
    machine_id: 'a'.repeat(64),
    status: 'online',
    check_in_interval_seconds: 300,
    registered_at: '2026-11-20T10:00:00Z',
    last_seen_at: '2026-11-26T10:00:00Z',
    ...extra,
  }
}

const hostileAgents = [
  agent('11111111-1111-4111-8111-111111111111', HOSTILE_IMG),
  agent('22222222-2222-4222-8222-222222222222', HOSTILE_SCRIPT, { status: 'stale', os_type: 'windows' }),
]

let alertSpy: ReturnType<typeof vi.spyOn>
beforeEach(() => {
  alertSpy = vi.spyOn(window, 'alert').mockImplementation(() => undefined)
})
afterEach(() => {
  expect(alertSpy).not.toHaveBeenCalled()
})

function noInjectedElements(root: HTMLElement) {
  expect(root.querySelector('img')).toBeNull()
  expect(root.querySelector('script')).toBeNull()
  expect(root.querySelector('[onerror]')).toBeNull()
}

describe('Agents page', () => {
  it('shows hostile hostnames as text, never as HTML', async () => {
    const { container } = renderApp('/agents', (m, url) =>
      m === 'GET' && url.pathname === '/api/v1/agents' ? { status: 200, body: { items: hostileAgents, next_cursor: null, total: 2 } } : undefined,
    )
    expect(await screen.findByText(HOSTILE_IMG)).toBeTruthy()
    expect(screen.getByText(HOSTILE_SCRIPT)).toBeTruthy()
    noInjectedElements(container)
  })

  it('sends paging, sort, filter and search to the server', async () => {
    const { calls } = renderApp('/agents?status=offline&sort=-hostname&offset=50', (m, url) =>
      m === 'GET' && url.pathname === '/api/v1/agents' ? { status: 200, body: { items: hostileAgents, next_cursor: null, total: 2000 } } : undefined,
    )
    await screen.findByText(HOSTILE_IMG)
    const list = calls.find((c) => c.url.pathname === '/api/v1/agents')
    expect(list?.url.searchParams.get('status')).toBe('offline')
    expect(list?.url.searchParams.get('sort')).toBe('-hostname')
    expect(list?.url.searchParams.get('offset')).toBe('50')
    expect(list?.url.searchParams.get('limit')).toBe('50')
    expect(screen.getByText(/51–100 of 2,000/)).toBeTruthy()

    await userEvent.type(screen.getByLabelText('Search by hostname'), 'web')
    await waitFor(() => expect(calls.some((c) => c.url.searchParams.get('hostname') === 'web')).toBe(true))
  })

  it('sorts on the server when a column header is clicked', async () => {
    const { calls, router } = renderApp('/agents', (m, url) =>
      m === 'GET' && url.pathname === '/api/v1/agents' ? { status: 200, body: { items: hostileAgents, next_cursor: null, total: 2 } } : undefined,
    )
    await screen.findByText(HOSTILE_IMG)
    fireEvent.click(screen.getByRole('button', { name: /last seen/i }))
    await waitFor(() => expect(router.state.location.search).toEqual({ sort: 'last_seen_at' }))
    await waitFor(() => expect(calls.some((c) => c.url.searchParams.get('sort') === 'last_seen_at')).toBe(true))
    fireEvent.click(screen.getByRole('button', { name: /last seen/i }))
    await waitFor(() => expect(router.state.location.search).toEqual({ sort: '-last_seen_at' }))
    expect(screen.getByRole('columnheader', { name: /last seen/i }).getAttribute('aria-sort')).toBe('descending')
  })

  it("shows the server's error message", async () => {
    renderApp('/agents', (m, url) =>
      m === 'GET' && url.pathname === '/api/v1/agents'
        ? { status: 400, body: { error: { code: 'invalid_query', message: 'status must be online, offline or stale.' } } }
        : undefined,
    )
    expect(await screen.findByText('status must be online, offline or stale.')).toBeTruthy()
    expect(screen.getByText('Request id: test-rid')).toBeTruthy()
  })

  it('shows an empty state', async () => {
    renderApp('/agents', (m, url) =>
      m === 'GET' && url.pathname === '/api/v1/agents' ? { status: 200, body: { items: [], next_cursor: null, total: 0 } } : undefined,
    )
    expect(await screen.findByText('No agents yet')).toBeTruthy()
  })

  it('asks before deleting, and deletes only after the confirmation', async () => {
    const { calls } = renderApp('/agents', (m, url) => {
      if (m === 'GET' && url.pathname === '/api/v1/agents') return { status: 200, body: { items: hostileAgents, next_cursor: null, total: 2 } }
      if (m === 'DELETE') return { status: 204 }
      return undefined
    })
    await screen.findByText(HOSTILE_IMG)
    fireEvent.click(screen.getByLabelText(`Select row ${hostileAgents[0]?.id ?? ''}`))
    fireEvent.click(screen.getByRole('button', { name: /Delete…/ }))
    const dialog = await screen.findByRole('dialog', { name: 'Delete 1 agent(s)?' })
    fireEvent.click(within(dialog).getByRole('button', { name: 'Cancel' }))
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false)

    fireEvent.click(screen.getByRole('button', { name: /Delete…/ }))
    const again = await screen.findByRole('dialog', { name: 'Delete 1 agent(s)?' })
    fireEvent.click(within(again).getByRole('button', { name: 'Delete' }))
    await waitFor(() => expect(calls.filter((c) => c.method === 'DELETE').map((c) => c.url.pathname)).toEqual([`/api/v1/agents/${hostileAgents[0]?.id ?? ''}`]))
    const del = calls.find((c) => c.method === 'DELETE')
    expect(del).toBeDefined()
  })
})

describe('Agent detail', () => {
  it('shows hostile inventory and command output as text', async () => {
    const id = '33333333-3333-4333-8333-333333333333'
    const cmd: Command = {
      id: '44444444-4444-4444-8444-444444444444',
      agent_id: id,
      type: 'collect_specs',
      params: '{}',
      status: 'succeeded',
      key_id: 'k',
      signature: 's',
      issued_at: 0,
      expires_at: 0,
      created_at: '2026-11-26T09:00:00Z',
      created_by: 'admin',
      sent_at: '2026-11-26T09:00:01Z',
      acked_at: null,
      finished_at: '2026-11-26T09:00:03Z',
      result: { exit_code: 0, output: `done ${HOSTILE_SCRIPT}`, started_at: '2026-11-26T09:00:01Z', finished_at: '2026-11-26T09:00:03Z' },
    }
    const { container } = renderApp(`/agents/${id}`, (_m, url) => {
      if (url.pathname === `/api/v1/agents/${id}`)
        return {
          status: 200,
          body: agent(id, HOSTILE_IMG, {
            system_info: {
              kernel: HOSTILE_SCRIPT,
              disks: [{ mount: '<b>/</b>', filesystem: 'ext4', total_bytes: 100, used_bytes: 95 }],
              package_managers: ['<i>apt</i>'],
            },
            update_status: 'scan_failed',
            reboot_required: true,
            pending_updates: {
              total: 3,
              by_severity: { critical: 1, important: 0, moderate: 0, low: 2, unknown: 0 },
              by_package_type: { apt: 1, '<u>pm</u>': 2 },
              by_status: { pending: 3 },
              by_package_type_severity: { apt: { critical: 1 }, '<u>pm</u>': { low: 2 } },
            },
            scans: [
              {
                scanner: 'apt',
                status: 'failed',
                error: '<s>scan error</s>',
                scanned_at: null,
                last_report_at: '2026-11-26T09:00:00Z',
                last_success_at: null,
                interval_seconds: 3600,
                stale: true,
              },
            ],
            upgrade: {
              agent_id: id,
              command_id: null,
              from_version: '0.1.0',
              target_version: '0.2.0',
              rollback: false,
              status: 'failed',
              failure_reason: '<em>upgrade broke</em>',
              auto_upgrade_blocked: true,
              attempts: 1,
              trigger: 'admin',
              requested_by: 'admin',
              requested_at: '2026-11-26T09:00:00Z',
              finished_at: '2026-11-26T09:01:00Z',
              updated_at: '2026-11-26T09:01:00Z',
            },
          }),
        }
      if (url.pathname === '/api/v1/commands') return { status: 200, body: { items: [cmd], next_cursor: null, total: 1 } }
      return undefined
    })
    expect(await screen.findByRole('heading', { name: HOSTILE_IMG })).toBeTruthy()
    expect(screen.getByText(HOSTILE_SCRIPT)).toBeTruthy()
    expect(screen.getByText('<b>/</b>')).toBeTruthy()
    expect(screen.getByText('<i>apt</i>')).toBeTruthy()
    // Metrics and the updates grouped by package manager, agent text as text.
    expect(screen.getByText('<s>scan error</s>')).toBeTruthy()
    expect(screen.getByText('<em>upgrade broke</em>')).toBeTruthy()
    expect(screen.getByText('auto-upgrade blocked')).toBeTruthy()
    const groups = screen.getAllByTestId('package-group')
    expect(groups.map((g) => g.querySelector('button')?.textContent)).toEqual(['apt1 open1 critical', '<u>pm</u>2 open2 low'])
    expect(groups[0]?.querySelector('button')?.getAttribute('aria-expanded')).toBe('true')
    // The updates route answers 404 until it exists: its message is shown.
    expect(await screen.findByText('There is no route GET /api/v1/updates.')).toBeTruthy()
    fireEvent.click(await screen.findByRole('button', { name: 'Output' }))
    expect(await screen.findByText(`done ${HOSTILE_SCRIPT}`)).toBeTruthy()
    noInjectedElements(container)
    expect(document.querySelector('b, i[class=""], script, u, s, em')).toBeNull()
  })
})

describe('Registration tokens', () => {
  it('shows the install one-liners once, after creating a token', async () => {
    const { calls } = renderApp('/registration-tokens', (m, url) => {
      if (url.pathname !== '/api/v1/registration-tokens') return undefined
      if (m === 'GET') return { status: 200, body: { items: [], next_cursor: null, total: 0 } }
      return {
        status: 201,
        body: {
          id: '55555555-5555-4555-8555-555555555555',
          token: 'rf_reg_secret',
          seats: 5,
          seats_used: 0,
          note: 'rack',
          created_by: 'admin',
          created_at: '2026-11-26T09:00:00Z',
          expires_at: '2026-11-27T09:00:00Z',
          revoked_at: null,
          status: 'active',
        },
      }
    })
    await screen.findByText('No registration tokens')
    fireEvent.change(screen.getByLabelText('Seats'), { target: { value: '5' } })
    fireEvent.change(screen.getByLabelText('Note'), { target: { value: 'rack' } })
    fireEvent.click(screen.getByRole('button', { name: 'Create' }))
    expect(await screen.findByDisplayValue("curl -fsSL 'http://localhost:3000/install/linux?token=rf_reg_secret' | sudo sh")).toBeTruthy()
    expect(screen.getByDisplayValue("irm 'http://localhost:3000/install/windows?token=rf_reg_secret' | iex")).toBeTruthy()
    const post = calls.find((c) => c.method === 'POST')
    expect(post?.body).toEqual({ seats: 5, expires_in_seconds: 86400, note: 'rack' })
  })
})

describe('Settings', () => {
  it("shows the server's validation message", async () => {
    renderApp('/settings', (m, url) => {
      if (url.pathname === '/api/v1/settings' && m === 'GET')
        return { status: 200, body: { check_in_interval_seconds: 300, command_timeout_seconds: 3600, command_expiry_seconds: 604800, scan_interval_seconds: 21600 } }
      if (url.pathname === '/api/v1/settings' && m === 'PUT')
        return { status: 400, body: { error: { code: 'invalid_field', message: 'check_in_interval_seconds must be from 10 to 86400.' } } }
      if (url.pathname === '/api/v1/security/keys') return { status: 200, body: { items: [], next_cursor: null, total: 0 } }
      return undefined
    })
    const input = await screen.findByLabelText('Check-in interval (seconds)')
    fireEvent.change(input, { target: { value: '5' } })
    fireEvent.click(screen.getByRole('button', { name: 'Save settings' }))
    expect(await screen.findByText('check_in_interval_seconds must be from 10 to 86400.')).toBeTruthy()
  })
})

describe('Sign-in', () => {
  it('sends a visitor without a session to the login page, and back after signing in', async () => {
    const { router, calls } = renderApp(
      '/agents?status=online',
      (m, url) => {
        if (m === 'POST' && url.pathname === '/api/v1/auth/login') {
          document.cookie = 'redflag_csrf=fresh; path=/'
          return {
            status: 200,
            body: {
              token: 't',
              expires_at: '2026-12-01T00:00:00Z',
              csrf_token: 'fresh',
              user: { id: 'u1', username: 'admin', role: 'admin', created_at: '2026-01-01T00:00:00Z' },
            },
          }
        }
        if (m === 'GET' && url.pathname === '/api/v1/agents') return { status: 200, body: { items: [], next_cursor: null, total: 0 } }
        return undefined
      },
      { session: false },
    )
    await waitFor(() => expect(router.state.location.pathname).toBe('/login'))
    expect(calls.some((c) => c.url.pathname === '/api/v1/me')).toBe(false)
    fireEvent.change(await screen.findByLabelText('Username'), { target: { value: 'admin' } })
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'correct horse battery' } })
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }))
    await waitFor(() => expect(router.state.location.href).toBe('/agents?status=online'))
  })

  it("shows the server's message for wrong credentials", async () => {
    renderApp(
      '/login',
      (m, url) =>
        m === 'POST' && url.pathname === '/api/v1/auth/login'
          ? { status: 401, body: { error: { code: 'bad_credentials', message: 'The username or password is wrong.' } } }
          : undefined,
      { session: false },
    )
    fireEvent.change(await screen.findByLabelText('Username'), { target: { value: 'admin' } })
    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 'nope' } })
    fireEvent.click(screen.getByRole('button', { name: 'Sign in' }))
    expect(await screen.findByText('The username or password is wrong.')).toBeTruthy()
  })
})
