import { Check, Copy } from 'lucide-react'
import { useId, useRef, useState } from 'react'
import { Button } from './ui'

/** Copies text to the clipboard; without clipboard access it selects the text for Ctrl+C. */
export function CopyButton({ text, label = 'Copy', onFallback }: { text: string; label?: string; onFallback?: () => void }) {
  const [state, setState] = useState<'idle' | 'copied' | 'manual'>('idle')
  const copy = async () => {
    try {
      if (navigator.clipboard === undefined) throw new Error('no clipboard')
      await navigator.clipboard.writeText(text)
      setState('copied')
    } catch {
      onFallback?.()
      setState('manual')
    }
    window.setTimeout(() => setState('idle'), 2000)
  }
  return (
    <Button
      size="sm"
      onClick={() => void copy()}
      icon={state === 'copied' ? <Check className="size-4" aria-hidden="true" /> : <Copy className="size-4" aria-hidden="true" />}
    >
      <span aria-live="polite">{state === 'copied' ? 'Copied' : state === 'manual' ? 'Press Ctrl+C' : label}</span>
    </Button>
  )
}

/** A read-only, selectable line of text (a token, a command) with a copy button. */
export function CopyField({ label, value }: { label: string; value: string }) {
  const id = useId()
  const ref = useRef<HTMLInputElement>(null)
  return (
    <div className="space-y-1">
      <label htmlFor={id} className="block text-xs font-medium text-zinc-600 dark:text-zinc-400">
        {label}
      </label>
      <div className="flex gap-2">
        <input
          id={id}
          ref={ref}
          readOnly
          value={value}
          onFocus={(e) => e.currentTarget.select()}
          className="h-8 min-w-0 flex-1 rounded-md border border-zinc-300 bg-zinc-50 px-2 font-mono text-xs dark:border-zinc-700 dark:bg-zinc-950"
        />
        <CopyButton
          text={value}
          onFallback={() => {
            ref.current?.focus()
            ref.current?.select()
          }}
        />
      </div>
    </div>
  )
}
