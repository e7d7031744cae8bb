// One live connection for the signed-in app: it reads GET /api/v1/events
// and marks the cached queries each event changes as stale (TanStack Query
// refetches the ones on screen). While the stream is down (or the server has
// no such route) the active queries are refetched every 15 s instead, and
// the stream is retried with backoff.
//
// The stream is read with fetch rather than EventSource: EventSource hides
// the status code (a 404 would be retried forever and logged to the console
// as an error), and fetch uses the same cookie session and the same test seam.
import { useQueryClient, type QueryClient, type QueryKey } from '@tanstack/react-query'
import { createContext, useContext, useEffect, useState, type ReactNode } from 'react'
import { currentFetch } from '../api/client'
import { keys } from '../api/endpoints'
import { EVENTS_PATH, isSessionQuery, keysForEvent, SseParser } from './events'

/** connecting: first attempt; live: events flow; reconnecting: lost, retrying; unavailable: the server has no stream. */
export type LiveState = 'connecting' | 'live' | 'reconnecting' | 'unavailable'

export const POLL_MS = 15_000
const FLUSH_MS = 1_000
const WATCHDOG_MS = 75_000
const UNAVAILABLE_RETRY_MS = 5 * 60_000
const MAX_BACKOFF_MS = 30_000

const LiveContext = createContext<LiveState>('connecting')

export function useLiveState(): LiveState {
  return useContext(LiveContext)
}

function invalidateAll(qc: QueryClient) {
  void qc.invalidateQueries({ predicate: (q) => !isSessionQuery(q.queryKey) })
}

/** Collects the keys of a burst of events and invalidates them at most once a second. */
function makeBatcher(qc: QueryClient) {
  let all = false
  const pending = new Map<string, QueryKey>()
  let timer: ReturnType<typeof setTimeout> | null = null
  const flush = () => {
    timer = null
    if (all) invalidateAll(qc)
    else for (const k of pending.values()) void qc.invalidateQueries({ queryKey: k })
    all = false
    pending.clear()
  }
  return {
    add(type: string) {
      const ks = keysForEvent(type)
      if (ks === 'all') all = true
      else for (const k of ks) pending.set(JSON.stringify(k), k)
      if ((all || pending.size > 0) && timer === null) timer = setTimeout(flush, FLUSH_MS)
    },
    stop() {
      if (timer !== null) clearTimeout(timer)
    },
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((ok) => {
    const t = setTimeout(ok, ms)
    signal.addEventListener('abort', () => {
      clearTimeout(t)
      ok()
    })
  })
}

/**
 * Connects until aborted. Returns after the stream ends; the caller decides
 * when to try again from the outcome.
 */
async function connectOnce(
  signal: AbortSignal,
  onOpen: () => void,
  onEvent: (type: string) => void,
): Promise<'unavailable' | 'failed' | 'ended'> {
  const ctl = new AbortController()
  const stop = () => ctl.abort()
  signal.addEventListener('abort', stop)
  let watchdog: ReturnType<typeof setTimeout> | null = null
  const arm = () => {
    if (watchdog !== null) clearTimeout(watchdog)
    watchdog = setTimeout(stop, WATCHDOG_MS)
  }
  try {
    const res = await currentFetch()(EVENTS_PATH, {
      headers: { Accept: 'text/event-stream' },
      credentials: 'same-origin',
      cache: 'no-store',
      signal: ctl.signal,
    })
    if (res.status === 404 || res.status === 405 || res.status === 501) return 'unavailable'
    const type = res.headers.get('Content-Type') ?? ''
    if (!res.ok || !type.startsWith('text/event-stream') || res.body === null) {
      await res.body?.cancel().catch(() => undefined)
      return 'failed'
    }
    onOpen()
    const reader = res.body.getReader()
    const decoder = new TextDecoder()
    const parser = new SseParser()
    arm()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return 'ended'
      arm()
      for (const ev of parser.feed(decoder.decode(value, { stream: true }))) onEvent(ev.type)
    }
  } catch {
    return 'ended'
  } finally {
    if (watchdog !== null) clearTimeout(watchdog)
    signal.removeEventListener('abort', stop)
    ctl.abort()
  }
}

export function LiveProvider({ children }: { children: ReactNode }) {
  const qc = useQueryClient()
  const [state, setState] = useState<LiveState>('connecting')

  useEffect(() => {
    const life = new AbortController()
    const batch = makeBatcher(qc)
    let everOpen = false
    void (async () => {
      let backoff = 1_000
      while (!life.signal.aborted) {
        const opened = Date.now()
        const outcome = await connectOnce(
          life.signal,
          () => {
            setState('live')
            // Events may have been missed while down: refetch once.
            if (everOpen) invalidateAll(qc)
            everOpen = true
            backoff = 1_000
          },
          (type) => {
            // The server ends the stream when the session ends: asking /me
            // again sends the visitor to sign in.
            if (type === 'session_ended') void qc.invalidateQueries({ queryKey: keys.me })
            else batch.add(type)
          },
        )
        if (life.signal.aborted) break
        if (outcome === 'unavailable') {
          setState('unavailable')
          await sleep(UNAVAILABLE_RETRY_MS, life.signal)
          continue
        }
        setState('reconnecting')
        if (Date.now() - opened > 30_000) backoff = 1_000
        // Jitter spreads the reconnects of many dashboards after a restart.
        await sleep(backoff * (0.75 + Math.random() * 0.5), life.signal)
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS)
      }
    })()
    return () => {
      life.abort()
      batch.stop()
    }
  }, [qc])

  // Polling while the stream is down.
  useEffect(() => {
    if (state === 'live') return
    const t = setInterval(() => {
      if (typeof document !== 'undefined' && document.visibilityState === 'hidden') return
      invalidateAll(qc)
    }, POLL_MS)
    return () => clearInterval(t)
  }, [state, qc])

  return <LiveContext.Provider value={state}>{children}</LiveContext.Provider>
}

const LABELS: Record<LiveState, { text: string; title: string; dot: string }> = {
  live: { text: 'Live', title: 'Changes appear as they happen.', dot: 'bg-green-600' },
  connecting: { text: 'Connecting…', title: 'Connecting to the live updates.', dot: 'bg-zinc-400' },
  reconnecting: { text: 'Reconnecting…', title: 'The live updates are interrupted; the pages refresh every 15 seconds meanwhile.', dot: 'bg-amber-500' },
  unavailable: { text: 'Refreshing every 15 s', title: 'This server sends no live updates; the pages refresh every 15 seconds.', dot: 'bg-zinc-400' },
}

/** A small badge saying whether the pages update live. */
export function LiveIndicator({ className, compact = false }: { className?: string; compact?: boolean }) {
  const state = useLiveState()
  const l = LABELS[state]
  return (
    <span className={`inline-flex items-center gap-1.5 text-xs text-zinc-600 dark:text-zinc-400 ${className ?? ''}`} title={l.title} data-testid="live-state" data-state={state}>
      <span className={`size-2 rounded-full ${l.dot}`} aria-hidden="true" />
      <span className={compact ? 'sr-only sm:not-sr-only' : undefined}>{l.text}</span>
    </span>
  )
}
