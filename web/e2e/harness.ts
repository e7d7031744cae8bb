// The browser tests' fixtures: the real redflag-server binary on a free
// loopback port with a fresh SQLite data directory, the real agent binary in
// a scratch directory, and Debian's Chromium driven by playwright-core
// (no browser download).
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser } from 'playwright-core'

export const webDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
export const repoDir = resolve(webDir, '..')
export const resultsDir = join(webDir, 'test-results')

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium'
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']

export function bin(name: string): string {
  const p = join(process.env['REDFLAG_BIN_DIR'] ?? join(repoDir, 'bin'), name)
  if (!existsSync(p)) throw new Error(`${p} is missing: run "make build" first (make test-browser does).`)
  return p
}

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer()
    s.once('error', fail)
    s.listen(0, '127.0.0.1', () => {
      const a = s.address()
      const port = typeof a === 'object' && a !== null ? a.port : 0
      s.close(() => ok(port))
    })
  })
}

/** The environment of a child without any REDFLAG_ setting of the caller (no admin from the environment). */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REDFLAG_')) env[k] = v
  return { ...env, ...extra }
}

export interface RunningServer {
  url: string
  setupToken: string
  dataDir: string
  log: () => string
  stop: () => Promise<void>
}

function stopProcess(p: ChildProcess, ms = 10_000): Promise<void> {
  return new Promise((ok) => {
    if (p.exitCode !== null || p.signalCode !== null) return ok()
    const t = setTimeout(() => p.kill('SIGKILL'), ms)
    p.once('exit', () => {
      clearTimeout(t)
      ok()
    })
    p.kill('SIGTERM')
  })
}

/** Starts bin/redflag-server and waits for the setup URL it logs on a first start. */
export async function startServer(): Promise<RunningServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'redflag-e2e-server-'))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const proc = spawn(bin('redflag-server'), [], {
    env: cleanEnv({
      REDFLAG_LISTEN: `127.0.0.1:${port}`,
      REDFLAG_DATA_DIR: dataDir,
      REDFLAG_PUBLIC_URL: url,
      REDFLAG_LOG_FORMAT: 'json',
      REDFLAG_AGENT_RATE_LIMIT: '0',
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  const setupToken = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`the server logged no setup URL within 60 s:\n${out}`)), 60_000)
    const onData = (b: Buffer) => {
      out += b.toString()
      for (const line of out.split('\n')) {
        if (!line.includes('setup_url')) continue
        try {
          const rec = JSON.parse(line) as { setup_url?: unknown }
          const m = typeof rec.setup_url === 'string' ? /[?&]token=([^&]+)/.exec(rec.setup_url) : null
          if (m?.[1] !== undefined) {
            clearTimeout(timer)
            ok(decodeURIComponent(m[1]))
          }
        } catch {
          // a partial line: wait for more
        }
      }
    }
    proc.stdout?.on('data', onData)
    proc.stderr?.on('data', onData)
    proc.once('exit', (code) => {
      clearTimeout(timer)
      fail(new Error(`the server exited with ${String(code)}:\n${out}`))
    })
  })
  return {
    url,
    setupToken,
    dataDir,
    log: () => out,
    stop: async () => {
      await stopProcess(proc)
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

export interface RealAgent {
  agentId: string
  stop: () => Promise<void>
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((ok, fail) => {
    const p = spawn(cmd, args, { env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    p.stdout.on('data', (b: Buffer) => (out += b.toString()))
    p.stderr.on('data', (b: Buffer) => (out += b.toString()))
    p.once('exit', (code) => (code === 0 ? ok(out) : fail(new Error(`${cmd} ${args[0] ?? ''} exited with ${String(code)}:\n${out}`))))
  })
}

/** Registers bin/redflag-agent in a scratch directory and starts its service loop. */
export async function startAgent(server: string, token: string): Promise<RealAgent> {
  const dir = await mkdtemp(join(tmpdir(), 'redflag-e2e-agent-'))
  const config = join(dir, 'config.json')
  const stateDir = join(dir, 'state')
  await mkdir(stateDir, { recursive: true })
  const common = ['--config', config, '--state-dir', stateDir]
  const out = await run(bin('redflag-agent'), ['register', '--server', server, '--token', token, ...common])
  const m = /as agent ([0-9a-f-]{36})/.exec(out)
  if (m?.[1] === undefined) throw new Error(`cannot read the agent id from:\n${out}`)
  const proc = spawn(bin('redflag-agent'), ['run', ...common], { env: cleanEnv({}), stdio: ['ignore', 'ignore', 'ignore'] })
  return {
    agentId: m[1],
    stop: async () => {
      await stopProcess(proc)
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** A machine simulated over the agent API: registers with any hostname and answers commands as told. */
export class FakeAgent {
  readonly machineId = randomBytes(32).toString('hex')
  agentId = ''
  private token = ''

  constructor(
    private readonly server: string,
    readonly hostname: string,
  ) {}

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await fetch(this.server + path, {
      method,
      headers: {
        'Content-Type': 'application/json',
        'X-Machine-ID': this.machineId,
        ...(this.token !== '' && { Authorization: `Bearer ${this.token}` }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    })
    const text = await res.text()
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
    return text === '' ? undefined : (JSON.parse(text) as unknown)
  }

  async register(registrationToken: string, osType: 'linux' | 'windows' | 'darwin' = 'linux'): Promise<void> {
    const r = (await this.call('POST', '/api/v1/agents/register', {
      registration_token: registrationToken,
      hostname: this.hostname,
      os_type: osType,
      os_version: 'e2e 1.0',
      os_arch: 'amd64',
      agent_version: '0.0.0-e2e',
      machine_id: this.machineId,
    })) as { agent_id: string; token: string }
    this.agentId = r.agent_id
    this.token = r.token
  }

  async systemReport(report: Record<string, unknown>): Promise<void> {
    await this.call('POST', `/api/v1/agents/${this.agentId}/reports/system`, report)
  }

  async updateReport(scanner: string, updates: Array<Record<string, unknown>>): Promise<void> {
    await this.call('POST', `/api/v1/agents/${this.agentId}/reports/updates`, {
      scanner,
      scanned_at: new Date().toISOString(),
      updates,
    })
  }

  /** Checks in; returns the types of the commands handed out (left unanswered). */
  async claimCommands(): Promise<string[]> {
    const r = (await this.call('GET', `/api/v1/agents/${this.agentId}/commands`)) as { commands: Array<{ type: string }> }
    return r.commands.map((c) => c.type)
  }

  /**
   * Checks in and answers every command handed out with output (and the
   * result details details() gives for it, e.g. install outcomes).
   */
  async answerCommands(output: string, details?: (c: HandedCommand) => unknown): Promise<string[]> {
    const r = (await this.call('GET', `/api/v1/agents/${this.agentId}/commands`)) as { commands: HandedCommand[] }
    const now = new Date().toISOString()
    for (const c of r.commands) {
      const d = details?.(c)
      await this.call('POST', `/api/v1/agents/${this.agentId}/commands/${c.id}/result`, {
        status: 'succeeded',
        exit_code: 0,
        output,
        started_at: now,
        finished_at: now,
        ...(d !== undefined && { details: d }),
      })
    }
    return r.commands.map((c) => c.type)
  }
}

/** A command as the agent API hands it out. */
export interface HandedCommand {
  id: string
  type: string
  params: Record<string, unknown>
}

/** The result details of an install_updates command that installed every update it carried. */
export function installedDetails(c: HandedCommand): unknown {
  const items = Array.isArray(c.params['updates']) ? (c.params['updates'] as Array<{ update_id: string; version: string }>) : []
  return {
    dry_run: false,
    reboot_required: false,
    results: items.map((u) => ({ update_id: u.update_id, status: 'installed', installed_version: u.version })),
  }
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (make test-browser does in CI).`)
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
}
