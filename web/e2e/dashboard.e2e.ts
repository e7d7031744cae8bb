// Browser tests of the dashboard against the real server binary: first-run
// setup, sign-in, registration tokens, agents (a real agent process and
// simulated ones), hostile agent text, every page at desktop and phone
// width, dark mode, confirmations and the keyboard. Screenshots go to
// web/test-results/.
import { mkdir } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FakeAgent, installedDetails, launchChromium, resultsDir, startAgent, startServer, type RealAgent, type RunningServer } from './harness'

const HOSTILE_IMG = '<img src=x onerror=alert(1)>'
const HOSTILE_SCRIPT = '<script>alert(1)</script>'
const PASSWORD = 'e2e-password-0123'

// API answers that are expected to fail: the wrong password and the
// out-of-range setting this test sends on purpose.
const allowedFailures: Array<{ status: number; path: RegExp }> = [
  { status: 401, path: /^\/api\/v1\/auth\/login$/ },
  { status: 400, path: /^\/api\/v1\/settings$/ },
]

interface Problems {
  csp: string[]
  console: string[]
  pageErrors: string[]
  dialogs: string[]
  failedRequests: string[]
}

let server: RunningServer
let browser: Browser
let context: BrowserContext
let page: Page
let realAgent: RealAgent | undefined
let regToken = ''
const fakes: FakeAgent[] = []
const problems: Problems = { csp: [], console: [], pageErrors: [], dialogs: [], failedRequests: [] }

function watch(p: Page) {
  p.on('console', (m) => {
    // A failed fetch logs "Failed to load resource": which answers may fail
    // is checked on the responses themselves. A CSP violation is recorded
    // by the probe below, with its details.
    const t = m.text()
    if (m.type() === 'error' && !t.startsWith('Failed to load resource') && !t.includes('Content Security Policy')) problems.console.push(t)
  })
  p.on('pageerror', (e) => problems.pageErrors.push(e.message))
  p.on('dialog', (d) => {
    problems.dialogs.push(`${d.type()}: ${d.message()}`)
    void d.dismiss()
  })
  p.on('response', (r) => {
    const u = new URL(r.url())
    if (r.status() < 400 || !u.pathname.startsWith('/api/')) return
    if (allowedFailures.some((a) => a.status === r.status() && a.path.test(u.pathname))) return
    problems.failedRequests.push(`${r.request().method()} ${u.pathname} → ${r.status()}`)
  })
}

// Every Content-Security-Policy violation in any page of a context, reported
// from inside the page to the test (survives navigations).
const CSP_PROBE = `document.addEventListener('securitypolicyviolation', (e) => { window.reportCspViolation(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber) })`

async function probeCsp(c: BrowserContext) {
  await c.exposeFunction('reportCspViolation', (v: string) => problems.csp.push(v))
  await c.addInitScript(CSP_PROBE)
}

async function shot(p: Page, name: string) {
  await p.screenshot({ path: join(resultsDir, `${name}.png`), fullPage: true })
}

async function go(p: Page, link: string, heading: string) {
  // The sidebar on wide screens; the menu on phones.
  const menu = p.getByRole('button', { name: 'Open the menu' })
  if (await menu.isVisible()) await menu.click()
  await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link, exact: true }).first().click()
  await p.getByRole('heading', { level: 1, name: heading }).waitFor()
}

/** Waits until the app's event stream is connected. */
async function live(p: Page) {
  await p.locator('[data-testid="live-state"][data-state="live"]').first().waitFor({ state: 'attached', timeout: 15_000 })
}

/** Marks the document, so a later check can tell that the page was not reloaded. */
async function markDocument(p: Page) {
  await p.evaluate(() => {
    ;(window as unknown as { __sameDocument?: boolean }).__sameDocument = true
  })
}
async function sameDocument(p: Page): Promise<boolean> {
  return p.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument === true)
}

async function noInjectedMarkup(p: Page) {
  const found = await p.evaluate(() => ({
    img: document.querySelectorAll('#root img').length,
    script: document.querySelectorAll('#root script, body > script:not([src])').length,
    onerror: document.querySelectorAll('[onerror]').length,
  }))
  expect(found).toEqual({ img: 0, script: 0, onerror: 0 })
}

beforeAll(async () => {
  await mkdir(resultsDir, { recursive: true })
  server = await startServer()
  browser = await launchChromium()
  context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' })
  await probeCsp(context)
  page = await context.newPage()
  watch(page)
})

afterAll(async () => {
  await realAgent?.stop()
  await browser?.close()
  await server?.stop()
})

describe('dashboard', () => {
  it('serves the SPA with its security and cache headers', async () => {
    const index = await fetch(`${server.url}/agents`)
    expect(index.status).toBe(200)
    expect(index.headers.get('cache-control')).toBe('no-cache')
    const csp = index.headers.get('content-security-policy') ?? ''
    expect(csp).toContain("script-src 'self'")
    expect(csp).toContain("frame-ancestors 'none'")
    expect(csp).not.toContain('unsafe-inline')
    expect(index.headers.get('x-content-type-options')).toBe('nosniff')
    const html = await index.text()
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/)
    expect(html).not.toMatch(/<style|\sstyle=/)
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1]
    expect(asset).toBeDefined()
    const js = await fetch(server.url + (asset ?? ''))
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable')
    const api = await fetch(`${server.url}/api/v1/no-such-route`)
    expect(api.status).toBe(404)
    expect(await api.json()).toMatchObject({ error: { code: 'not_found' } })
  })

  it('runs the first-run setup with the setup token from the log', async () => {
    await page.goto(server.url + '/')
    await page.waitForURL(/\/setup$/)
    await page.getByRole('heading', { name: 'Set up RedFlag' }).waitFor()
    await shot(page, '01-setup')
    // The browser enforces the policy: an injected inline script does not run,
    // and the violation reaches this test.
    const ran = await page.evaluate(async () => {
      const el = document.createElement('script')
      el.textContent = 'window.__injected = true'
      document.head.append(el)
      await new Promise((r) => setTimeout(r, 200))
      return (window as unknown as { __injected?: boolean }).__injected === true
    })
    expect(ran).toBe(false)
    await expect.poll(() => problems.csp.length).toBe(1)
    expect(problems.csp[0]).toMatch(/^script-src/)
    problems.csp.length = 0
    await page.getByLabel('Setup token').fill(server.setupToken)
    await page.getByLabel('Username').fill('admin')
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
    await page.getByLabel('Repeat the password').fill(PASSWORD)
    await page.getByRole('button', { name: 'Create administrator' }).click()
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor()
    expect(new URL(page.url()).pathname).toBe('/')
    await page.getByText('No agents yet').waitFor()
    await shot(page, '02-overview-empty')
  })

  it('creates a registration token and shows the install one-liners', async () => {
    await go(page, 'Registration tokens', 'Registration tokens')
    await page.getByLabel('Seats').fill('10')
    await page.getByLabel('Note').fill('e2e rack')
    await page.getByRole('button', { name: 'Create' }).click()
    await page.getByText('Registration token created').waitFor()
    regToken = await page.getByLabel('Token', { exact: true }).inputValue()
    expect(regToken).not.toBe('')
    const linux = await page.getByLabel('Linux (as root)').inputValue()
    expect(linux).toBe(`curl -fsSL '${server.url}/install/linux?token=${encodeURIComponent(regToken)}' | sudo sh`)
    expect(await page.getByLabel('Windows (PowerShell as Administrator)').inputValue()).toContain(`irm '${server.url}/install/windows?token=`)
    expect(await page.getByLabel('macOS (Terminal)').inputValue()).toContain('/install/darwin?token=')
    await page.getByRole('row').filter({ hasText: 'e2e rack' }).waitFor()
    await shot(page, '03-registration-token')
  })

  it('shows registered agents in the Agents page, with server-side search and sort', async () => {
    realAgent = await startAgent(server.url, regToken)
    for (const [name, os] of [
      ['web-01', 'linux'],
      ['db-01', 'windows'],
      [HOSTILE_IMG, 'linux'],
      [HOSTILE_SCRIPT, 'darwin'],
    ] as const) {
      const f = new FakeAgent(server.url, name)
      await f.register(regToken, os)
      fakes.push(f)
    }
    await go(page, 'Agents', 'Agents')
    await page.getByText('5 agent(s).').waitFor()
    for (const name of [hostname(), 'web-01', 'db-01', HOSTILE_IMG, HOSTILE_SCRIPT]) {
      await page.getByRole('link', { name, exact: true }).waitFor()
    }
    await shot(page, '04-agents')

    await page.getByLabel('Search by hostname').fill('web-0')
    await page.waitForURL(/q=web-0/)
    await page.getByText('1 agent(s) match the filters.').waitFor()
    await page.getByLabel('Search by hostname').fill('')
    await page.getByText('5 agent(s).').waitFor()

    await page.getByRole('button', { name: /^hostname/i }).click()
    await page.waitForURL(/sort=hostname/)
    await page.getByLabel('Filter by operating system').selectOption('windows')
    await page.waitForURL(/os=windows/)
    await page.getByRole('link', { name: 'db-01', exact: true }).waitFor()
    expect(await page.getByTestId('agent-hostname').count()).toBe(1)
    await page.getByLabel('Filter by operating system').selectOption('')
    await page.getByText('5 agent(s).').waitFor()
  })

  it('shows an agent that registers while the page is open, without a reload (live events)', async () => {
    await live(page)
    await markDocument(page)
    const f = new FakeAgent(server.url, 'live-01')
    await f.register(regToken, 'linux')
    fakes.push(f)
    await page.getByRole('link', { name: 'live-01', exact: true }).waitFor({ timeout: 10_000 })
    await page.getByText('6 agent(s).').waitFor()
    expect(await sameDocument(page)).toBe(true)
    await shot(page, '04-agents-live')
  })

  it("shows a real agent's inventory and command history after Refresh inventory", async () => {
    await page.getByRole('link', { name: hostname(), exact: true }).click()
    await page.getByRole('heading', { level: 1, name: hostname() }).waitFor()
    await page.getByRole('button', { name: 'Refresh inventory' }).click()
    await page.getByText(/Queued collect specs/).waitFor()
    // The agent long-polls: the command runs within seconds.
    const deadline = Date.now() + 90_000
    for (;;) {
      await page.reload()
      await page.getByRole('heading', { level: 1, name: hostname() }).waitFor()
      const done = (await page.getByText('No inventory yet').count()) === 0 && (await page.getByText('succeeded').count()) > 0
      if (done) break
      if (Date.now() > deadline) throw new Error(`the agent did not run collect_specs in time:\n${server.log().slice(-3000)}`)
      await page.waitForTimeout(2000)
    }
    await page.getByText('Kernel').waitFor()
    await shot(page, '05-agent-detail')
  })

  it('shows hostile agent text literally and never runs it', async () => {
    const img = fakes.find((f) => f.hostname === HOSTILE_IMG)
    if (img === undefined) throw new Error('no hostile agent')
    await img.systemReport({
      os_type: 'linux',
      os_version: HOSTILE_SCRIPT,
      kernel: HOSTILE_IMG,
      hostname: HOSTILE_IMG,
      cpu_model: '"><svg onload=alert(1)>',
      cpu_cores: 4,
      memory_bytes: 8 * 1024 ** 3,
      disks: [{ mount: '/<iframe src=javascript:alert(1)>', filesystem: 'ext4', total_bytes: 100, used_bytes: 93 }],
      package_managers: ['apt', '<b onmouseover=alert(1)>x</b>'],
    })
    await go(page, 'Agents', 'Agents')
    await page.getByRole('link', { name: HOSTILE_IMG, exact: true }).waitFor()
    await noInjectedMarkup(page)
    // Queue a command for it with the bulk action, and answer it with hostile output.
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: HOSTILE_IMG, exact: true }) })
    await row.getByRole('checkbox').check()
    await page.getByRole('button', { name: 'Refresh inventory' }).click()
    await page.getByText(/Queued a system inventory for 1 agent/).waitFor()
    expect(await img.answerCommands(`ok\n${HOSTILE_SCRIPT}\n${HOSTILE_IMG}`)).toEqual(['collect_specs'])

    await page.getByRole('link', { name: HOSTILE_IMG, exact: true }).click()
    await page.getByRole('heading', { level: 1, name: HOSTILE_IMG }).waitFor()
    await page.getByText('/<iframe src=javascript:alert(1)>').waitFor()
    await page.getByText('"><svg onload=alert(1)> (4 cores)').waitFor()
    await page.getByText('<b onmouseover=alert(1)>x</b>').waitFor()
    await page.getByRole('button', { name: 'Output' }).first().click()
    const dialog = page.getByRole('dialog')
    await dialog.getByText(HOSTILE_SCRIPT, { exact: false }).waitFor()
    const output = await dialog.locator('pre').nth(1).textContent()
    expect(output).toBe(`ok\n${HOSTILE_SCRIPT}\n${HOSTILE_IMG}`)
    await shot(page, '06-hostile-agent-output')
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'hidden' })
    await noInjectedMarkup(page)
    await shot(page, '06-hostile-agent')
    expect(problems.dialogs).toEqual([])
  })

  it('lists reported updates (hostile package names as text) and approves them after a confirmation', async () => {
    const web = fakes.find((f) => f.hostname === 'web-01')
    const img = fakes.find((f) => f.hostname === HOSTILE_IMG)
    if (web === undefined || img === undefined) throw new Error('no fake agents')
    const update = (name: string, severity: string) => ({
      package_type: 'apt',
      package_name: name,
      current_version: '1.0-1',
      available_version: '1.0-2',
      severity,
      source: 'bookworm-security',
      cve_ids: severity === 'critical' ? ['CVE-2026-0001'] : [],
      size_bytes: 123456,
      requires_reboot: false,
      metadata: {},
    })
    await web.updateReport('apt', [update('openssl', 'critical'), update('curl', 'important')])
    await img.updateReport('apt', [update(HOSTILE_SCRIPT, 'low')])
    await go(page, 'Updates', 'Updates')
    await page.getByText(HOSTILE_SCRIPT, { exact: true }).waitFor()
    await noInjectedMarkup(page)
    await page.getByRole('button', { name: /^severity/i }).click()
    await page.waitForURL(/sort=severity/)
    await shot(page, '07-updates')

    // The detail of an update, with its history.
    await page.getByRole('button', { name: 'Details of curl' }).click()
    const detail = page.getByRole('dialog', { name: 'Update curl' })
    await detail.getByText('History').waitFor()
    await detail.getByText('bookworm-security').waitFor()
    await detail.getByRole('button', { name: 'Preview (dry run)…' }).waitFor()
    await shot(page, '07-update-detail')
    await page.keyboard.press('Escape')
    await detail.waitFor({ state: 'hidden' })

    const row = page.getByRole('row').filter({ hasText: 'openssl' })
    await row.getByRole('checkbox').check()
    await page.getByRole('button', { name: 'Approve…' }).click()
    const dialog = page.getByRole('dialog', { name: 'Approve and install 1 update(s)?' })
    await dialog.getByRole('button', { name: 'Approve' }).click()
    await page.getByText(/Approved 1 update\(s\); queued 1 command\(s\)\./).waitFor()
    await row.getByText('approved').waitFor()

    // The agent installs it: the command finishes on the open Commands page
    // without a reload, and the update leaves the open list.
    await go(page, 'Commands', 'Commands')
    await live(page)
    await markDocument(page)
    const cmd = page.getByRole('row').filter({ hasText: 'install_updates' }).first()
    await cmd.getByText('pending').waitFor()
    expect(await web.answerCommands('Setting up openssl (1.0-2) ...', installedDetails)).toEqual(['install_updates'])
    await cmd.getByText('succeeded').waitFor({ timeout: 10_000 })
    await cmd.getByRole('link', { name: 'web-01', exact: true }).waitFor()
    expect(await sameDocument(page)).toBe(true)
    await shot(page, '07-commands-live')
    await page.goto(server.url + '/updates?status=installed')
    await page.getByRole('row').filter({ hasText: 'openssl' }).getByText('installed').first().waitFor()

    await go(page, 'Audit log', 'Audit log')
    await page.getByRole('cell', { name: 'update.approve' }).first().waitFor()
  })

  it('renders every page with its loading, empty, data or error state', async () => {
    await go(page, 'Commands', 'Commands')
    await page.getByRole('cell', { name: 'collect_specs' }).first().waitFor()
    // Commands name agents by id; the page shows their hostnames.
    await page.getByRole('link', { name: hostname(), exact: true }).first().waitFor()
    await shot(page, '07-commands')
    await go(page, 'Settings', 'Settings')
    await page.getByLabel('Check-in interval (seconds)').fill('5')
    await page.getByRole('button', { name: 'Save settings' }).click()
    await page.getByRole('alert').getByText(/check_in_interval_seconds/).waitFor()
    await page.getByLabel('Check-in interval (seconds)').fill('600')
    await page.getByRole('button', { name: 'Save settings' }).click()
    await page.getByText('Settings saved.').waitFor()
    await page.getByRole('button', { name: 'Rotate…' }).click()
    const rotate = page.getByRole('dialog', { name: 'Rotate the signing key?' })
    await rotate.getByRole('button', { name: 'Rotate key' }).click()
    await page.getByText(/is active; .* is retiring/).waitFor()
    await page.getByText('retiring', { exact: true }).waitFor()
    await shot(page, '07-settings')
    await go(page, 'Audit log', 'Audit log')
    await page.getByRole('cell', { name: 'settings.update' }).first().waitFor()
    await shot(page, '07-audit')
    await go(page, 'API tokens', 'API tokens')
    await page.getByLabel('Name').fill('e2e cli')
    await page.getByRole('button', { name: 'Create' }).click()
    await page.getByText('API token created').waitFor()
    await shot(page, '07-api-tokens')
    await go(page, 'Account', 'Account')
    await shot(page, '07-account')
    await go(page, 'Overview', 'Overview')
    await page.getByRole('img', { name: /online/ }).waitFor()
    await page.getByText('Failed installs (24 h)').waitFor()
    await page.getByRole('img', { name: /^Pending updates over/ }).or(page.getByText('No history yet')).first().waitFor()
    expect(await page.getByText('The trends are not available').count()).toBe(0)
    expect(await page.getByText('The overview figures are not available').count()).toBe(0)
    await shot(page, '07-overview')
  })

  it('asks before destructive actions, and Escape cancels', async () => {
    await go(page, 'Registration tokens', 'Registration tokens')
    const row = page.getByRole('row').filter({ hasText: 'e2e rack' })
    await row.getByRole('button', { name: 'Revoke' }).click()
    const dialog = page.getByRole('dialog', { name: 'Revoke this registration token?' })
    await dialog.waitFor()
    // Focus starts on Cancel, not on the destructive button.
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Cancel')
    await page.keyboard.press('Escape')
    await dialog.waitFor({ state: 'hidden' })
    await row.getByText('active').waitFor()
    await row.getByRole('button', { name: 'Revoke' }).click()
    await dialog.getByRole('button', { name: 'Revoke' }).click()
    await dialog.waitFor({ state: 'hidden' })
    await row.getByText('revoked').waitFor()
  })

  it('works at 390 px wide in dark mode', async () => {
    const mobile = await browser.newContext({
      storageState: await context.storageState(),
      viewport: { width: 390, height: 844 },
      colorScheme: 'dark',
      hasTouch: true,
    })
    await probeCsp(mobile)
    const m = await mobile.newPage()
    watch(m)
    await m.goto(server.url + '/agents')
    await m.getByRole('heading', { level: 1, name: 'Agents' }).waitFor()
    await m.getByRole('link', { name: 'web-01', exact: true }).waitFor()
    const layout = await m.evaluate(() => ({
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      background: getComputedStyle(document.body).backgroundColor,
    }))
    expect(layout.overflow).toBeLessThanOrEqual(0)
    expect(layout.background).not.toBe('rgb(250, 250, 250)')
    await shot(m, '08-agents-390-dark')
    await go(m, 'Registration tokens', 'Registration tokens')
    expect(await m.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0)
    await shot(m, '08-registration-tokens-390-dark')
    await go(m, 'Overview', 'Overview')
    await shot(m, '08-overview-390-dark')
    await mobile.close()
  })

  it('signs out, refuses a wrong password with the server message, and signs in with the keyboard', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForURL(/\/login/)
    await page.getByLabel('Username').focus()
    await page.keyboard.type('admin')
    await page.keyboard.press('Tab')
    await page.keyboard.type('not-the-password')
    await page.keyboard.press('Enter')
    await page.getByText('The username or password is wrong.').waitFor()
    await shot(page, '09-login-error')
    await page.getByLabel('Password').fill(PASSWORD)
    await page.keyboard.press('Enter')
    await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor()
    // A client route survives a reload (the server falls back to index.html).
    await page.goto(server.url + '/audit')
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor()
  })

  it('logged no console error, page error, dialog, CSP violation or unexpected failed request', async () => {
    expect(problems).toEqual({ csp: [], console: [], pageErrors: [], dialogs: [], failedRequests: [] })
  })
})
