// Rules for every source file of the dashboard: agent text is never HTML,
// and TypeScript stays strict.
import { describe, expect, it } from 'vitest'

const sources = import.meta.glob(['../**/*.ts', '../**/*.tsx', '!../test/guard.test.ts'], {
  query: '?raw',
  import: 'default',
  eager: true,
}) as Record<string, string>

describe('source rules', () => {
  it('finds the sources', () => {
    expect(Object.keys(sources).length).toBeGreaterThan(20)
  })

  for (const [rule, re] of [
    ['no dangerouslySetInnerHTML', /dangerouslySetInnerHTML/],
    ['no innerHTML / outerHTML / insertAdjacentHTML', /\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write/],
    ['no any', /(:\s*any\b|\bas\s+any\b|<any>|\bany\[\])/],
    ['no @ts-ignore or @ts-expect-error or @ts-nocheck', /@ts-(ignore|expect-error|nocheck)/],
    ['no eval', /\beval\(|new Function\(/],
  ] as const) {
    it(rule, () => {
      const bad = Object.entries(sources)
        .filter(([, text]) => re.test(text))
        .map(([file]) => file)
      expect(bad).toEqual([])
    })
  }
})
