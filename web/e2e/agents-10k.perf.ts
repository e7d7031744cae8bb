// Browser benchmark (make bench-browser): the real server with a fresh
// SQLite store and 10,000 registered agents, and Chromium timing the Agents
// page from the user's action to the expected rows on screen: the first
// page after clicking "Agents" in the menu (and after a cold load), a sort
// by hostname, and a search by hostname (which includes the 300 ms typing
// debounce). Each figure is the median of RUNS runs; the target is ≤ 1 s
// (a cold page load, bundle included, is reported without a target).
// The figures are printed and written to web/test-results/bench-browser.md.
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium, resultsDir, startServer, type RunningServer } from './harness'

const AGENTS = Number(process.env['BENCH_AGENTS'] ?? 10_000)
const RUNS = Number(process.env['BENCH_RUNS'] ?? 5)
const CONCURRENCY = 32
const PASSWORD = 'bench-password-0123'
const TARGET_MS = 1000

const name = (i: number) => `bench-${String(i).padStart(5, '0')}`

let server: RunningServer
let browser: Browser
let page: Page
let token = ''
const figures: Array<{ what: string; median: number; max: number; runs: number[]; target: boolean }> = []
let registerSeconds = 0

async function call<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  const res = await fetch(server.url + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token !== '' && { Authorization: `Bearer ${token}` }), ...headers },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  })
  const text = await res.text()
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return (text === '' ? undefined : JSON.parse(text)) as T
}

async function registerAll(regToken: string) {
  let next = 1
  const worker = async () => {
    for (;;) {
      const i = next++
      if (i > AGENTS) return
      const machine = i.toString(16).padStart(64, '0')
      await call('POST', '/api/v1/agents/register', {
        registration_token: regToken,
        hostname: name(i),
        os_type: i % 10 === 0 ? 'windows' : 'linux',
        os_version: 'bench 1.0',
        os_arch: 'amd64',
        agent_version: '0.0.0-bench',
        machine_id: machine,
      }, { 'X-Machine-ID': machine })
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor((s.length - 1) / 2)] ?? 0
}

/** The hostname of the first agent row, or null. */
async function firstHostname(p: Page): Promise<string | null> {
  return p.getByTestId('agent-hostname').first().textContent()
}

async function timed(what: string, setup: () => Promise<void>, act: () => Promise<void>, done: () => Promise<void>, target = true) {
  const runs: number[] = []
  for (let r = 0; r < RUNS; r++) {
    await setup()
    const t0 = performance.now()
    await act()
    await done()
    runs.push(performance.now() - t0)
  }
  figures.push({ what, median: median(runs), max: Math.max(...runs), runs, target })
}

beforeAll(async () => {
  server = await startServer()
  await call('POST', '/api/v1/setup', { setup_token: server.setupToken, username: 'admin', password: PASSWORD })
  token = (await call<{ token: string }>('POST', '/api/v1/auth/login', { username: 'admin', password: PASSWORD })).token
  const reg = await call<{ token: string }>('POST', '/api/v1/registration-tokens', { seats: AGENTS, expires_in_seconds: 3600, note: 'bench' })
  const t0 = performance.now()
  await registerAll(reg.token)
  registerSeconds = (performance.now() - t0) / 1000
  browser = await launchChromium()
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  page = await context.newPage()
  page.on('pageerror', (e) => {
    throw e
  })
  await page.goto(server.url + '/login')
  await page.getByLabel('Username').fill('admin')
  await page.getByLabel('Password').fill(PASSWORD)
  await page.keyboard.press('Enter')
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor()
}, 600_000)

afterAll(async () => {
  await browser?.close()
  await server?.stop()
})

describe(`Agents page with ${AGENTS} agents`, () => {
  it('shows the first page, sorts and filters within the target', async () => {
    const total = `${AGENTS.toLocaleString('en-US')} agent(s).`
    const rows = page.getByTestId('agent-hostname')

    // Warm-up: load the page once (the bundle, the first query).
    await page.goto(server.url + '/agents')
    await page.getByText(total).waitFor()

    await timed(
      'First page (click "Agents" in the menu → 50 rows)',
      async () => {
        await page.goto(server.url + '/registration-tokens')
        await page.getByRole('heading', { level: 1, name: 'Registration tokens' }).waitFor()
      },
      () => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Agents', exact: true }).click(),
      async () => {
        await rows.nth(49).waitFor()
        await page.getByText(total).waitFor()
      },
    )

    await timed(
      'First page, cold (page load of /agents → 50 rows; for information, no target)',
      async () => {
        await page.goto('about:blank')
      },
      () => page.goto(server.url + '/agents', { waitUntil: 'commit' }).then(() => undefined),
      async () => {
        await rows.nth(49).waitFor()
      },
      false,
    )

    await timed(
      'Sort by hostname (click the header → bench-00001 first, then bench-10000 first)',
      async () => {
        await page.goto(server.url + '/agents')
        await rows.nth(49).waitFor()
      },
      async () => {
        await page.getByRole('button', { name: /^hostname/i }).click()
        await page.waitForFunction((n) => document.querySelector('[data-testid="agent-hostname"]')?.textContent === n, name(1))
        await page.getByRole('button', { name: /^hostname/i }).click()
      },
      async () => {
        await page.waitForFunction((n) => document.querySelector('[data-testid="agent-hostname"]')?.textContent === n, name(AGENTS))
      },
    )
    // The sort figure covers two sorts; report one.
    const sort = figures[figures.length - 1]
    if (sort !== undefined) {
      sort.runs = sort.runs.map((r) => r / 2)
      sort.median /= 2
      sort.max /= 2
      sort.what = 'Sort by hostname (click the header → the expected first row; mean of ascending and descending)'
    }

    const target = name(Math.ceil(AGENTS * 0.7777))
    await timed(
      `Search by hostname (type "${target}" → its row alone; includes the 300 ms debounce)`,
      async () => {
        await page.goto(server.url + '/agents')
        await rows.nth(49).waitFor()
      },
      () => page.getByLabel('Search by hostname').fill(target),
      async () => {
        await page.waitForFunction(
          (n) => {
            const r = document.querySelectorAll('[data-testid="agent-hostname"]')
            return r.length === 1 && r[0]?.textContent === n
          },
          target,
        )
      },
    )
    expect(await firstHostname(page)).toBe(target)

    const cpu = cpus()[0]?.model ?? 'unknown CPU'
    const lines = [
      `Agents: ${AGENTS.toLocaleString('en-US')} (registered through the API in ${registerSeconds.toFixed(1)} s, ${CONCURRENCY} in flight); ${RUNS} runs each.`,
      `Machine: ${cpus().length} cores (${cpu}), ${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM; server, Chromium and the test on the same machine.`,
      '',
      '| action | median | max | runs (ms) |',
      '|---|---:|---:|---|',
      ...figures.map((f) => `| ${f.what} | ${Math.round(f.median)} ms | ${Math.round(f.max)} ms | ${f.runs.map((r) => Math.round(r)).join(', ')} |`),
    ]
    const text = lines.join('\n')
    console.log('\n' + text + '\n')
    await mkdir(resultsDir, { recursive: true })
    await writeFile(join(resultsDir, 'bench-browser.md'), text + '\n')
    for (const f of figures) if (f.target) expect.soft(f.median, f.what).toBeLessThanOrEqual(TARGET_MS)
  })
})
