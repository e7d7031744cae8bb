import { describe, expect, it } from 'vitest'
import { keys } from '../api/endpoints'
import { isSessionQuery, keysForEvent, SseParser } from './events'

describe('SseParser', () => {
  it('parses events split across chunks, skips comments and joins data lines', () => {
    const p = new SseParser()
    expect(p.feed(': connected\n\nevent: agent_reg')).toEqual([])
    expect(p.feed('istered\ndata: {"a":1}\n\n: keepalive\n\n')).toEqual([{ type: 'agent_registered', data: '{"a":1}' }])
    expect(p.feed('event: resync\r\ndata: {}\r\n\r\ndata: x\ndata: y\n\n')).toEqual([
      { type: 'resync', data: '{}' },
      { type: 'message', data: 'x\ny' },
    ])
  })
})

describe('keysForEvent', () => {
  it('maps each event type to the queries it changes', () => {
    expect(keysForEvent('agent_checked_in')).toContain(keys.agents)
    expect(keysForEvent('agent_registered')).toContain(keys.agents)
    expect(keysForEvent('scan_reported')).toContain(keys.updates)
    expect(keysForEvent('updates_changed')).toContain(keys.updates)
    expect(keysForEvent('command_queued')).toContain(keys.commands)
    expect(keysForEvent('command_finished')).toEqual(expect.arrayContaining([keys.commands, keys.updates]))
    expect(keysForEvent('resync')).toBe('all')
    expect(keysForEvent('something_new')).toEqual([])
    expect(isSessionQuery(keys.me)).toBe(true)
    expect(isSessionQuery(keys.agents)).toBe(false)
  })
})
