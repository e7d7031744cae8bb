// The live event stream (GET /api/v1/events, Server-Sent Events): parsing,
// and which cached queries each event makes stale. The connection itself
// lives in LiveProvider.tsx.
import type { QueryKey } from '@tanstack/react-query'
import { keys } from '../api/endpoints'

export const EVENTS_PATH = '/api/v1/events'

/** One dispatched event: its type ("message" when the server named none) and data text. */
export interface SseEvent {
  type: string
  data: string
}

/**
 * An incremental parser of the text/event-stream format: feed it chunks as
 * they arrive; it returns the events completed by each chunk. Comment lines
 * (": keepalive") and fields it does not use (id, retry) are skipped.
 */
export class SseParser {
  private buf = ''
  private type = ''
  private data: string[] = []

  feed(chunk: string): SseEvent[] {
    this.buf += chunk
    const out: SseEvent[] = []
    for (;;) {
      const nl = this.buf.search(/\r\n|\r|\n/)
      if (nl < 0) break
      const line = this.buf.slice(0, nl)
      this.buf = this.buf.slice(nl + (this.buf.startsWith('\r\n', nl) ? 2 : 1))
      if (line === '') {
        if (this.data.length > 0 || this.type !== '') out.push({ type: this.type === '' ? 'message' : this.type, data: this.data.join('\n') })
        this.type = ''
        this.data = []
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon < 0 ? line : line.slice(0, colon)
      let value = colon < 0 ? '' : line.slice(colon + 1)
      if (value.startsWith(' ')) value = value.slice(1)
      if (field === 'event') this.type = value
      else if (field === 'data') this.data.push(value)
    }
    return out
  }
}

/** The query keys an event type makes stale; "all" for resync. Unknown types change nothing. */
export function keysForEvent(type: string): readonly QueryKey[] | 'all' {
  switch (type) {
    case 'resync':
      return 'all'
    case 'agent_checked_in':
    case 'agent_registered':
      return [keys.agents, keys.stats]
    case 'scan_reported':
    case 'updates_changed':
      return [keys.updates, keys.agents, keys.stats]
    case 'command_queued':
      return [keys.commands, keys.audit]
    case 'command_finished':
      return [keys.commands, keys.updates, keys.agents, keys.stats, keys.audit]
    default:
      return []
  }
}

/** Queries that no event changes and polling should leave alone. */
export function isSessionQuery(key: QueryKey): boolean {
  const k = key[0]
  return k === keys.me[0] || k === keys.info[0] || k === keys.setup[0]
}
