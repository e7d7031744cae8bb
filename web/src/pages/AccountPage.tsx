// Change password. The server ends the user's other sessions.
import { useMutation, useQuery } from '@tanstack/react-query'
import { useState, type FormEvent } from 'react'
import { changePassword, meQuery } from '../api/endpoints'
import { InlineError, Notice } from '../components/states'
import { Button, Card, DescriptionList, Field, Input, PageHeader } from '../components/ui'
import { formatDateTime } from '../lib/format'
import { MIN_PASSWORD } from './SetupPage'

export function AccountPage() {
  const me = useQuery(meQuery)
  const [current, setCurrent] = useState('')
  const [next, setNext] = useState('')
  const [repeat, setRepeat] = useState('')
  const [touched, setTouched] = useState(false)
  const m = useMutation({
    mutationFn: changePassword,
    onSuccess: () => {
      setCurrent('')
      setNext('')
      setRepeat('')
      setTouched(false)
    },
  })
  const mismatch = touched && repeat !== next ? 'The passwords differ.' : null
  const short = touched && next.length > 0 && next.length < MIN_PASSWORD ? `Use at least ${MIN_PASSWORD} characters.` : null
  const submit = (e: FormEvent) => {
    e.preventDefault()
    setTouched(true)
    if (repeat !== next || next.length < MIN_PASSWORD) return
    m.mutate({ current_password: current, new_password: next })
  }
  return (
    <>
      <PageHeader title="Account" />
      <div className="grid gap-4 lg:grid-cols-2">
        <Card title="You">
          {me.data !== undefined && (
            <DescriptionList
              items={[
                ['Username', me.data.username],
                ['Role', me.data.role],
                ['Since', formatDateTime(me.data.created_at)],
              ]}
            />
          )}
        </Card>
        <Card title="Change password">
          <form onSubmit={submit} className="space-y-4" noValidate>
            <Field label="Current password">
              {(p) => (
                <Input {...p} type="password" name="current-password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} />
              )}
            </Field>
            <Field label="New password" help={`At least ${MIN_PASSWORD} characters. Your other sessions end.`} error={short}>
              {(p) => <Input {...p} type="password" name="new-password" autoComplete="new-password" value={next} onChange={(e) => setNext(e.target.value)} />}
            </Field>
            <Field label="Repeat the new password" error={mismatch}>
              {(p) => <Input {...p} type="password" name="repeat-password" autoComplete="new-password" value={repeat} onChange={(e) => setRepeat(e.target.value)} />}
            </Field>
            <InlineError error={m.error} />
            {m.isSuccess && <Notice>Password changed. Other sessions were signed out.</Notice>}
            <Button type="submit" variant="primary" busy={m.isPending} disabled={current === '' || next === ''}>
              Change password
            </Button>
          </form>
        </Card>
      </div>
    </>
  )
}
