import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query'
import { Link, useNavigate } from '@tanstack/react-router'
import { useState, type FormEvent } from 'react'
import { keys, login, setupQuery } from '../api/endpoints'
import { InlineError } from '../components/states'
import { Button, Field, Input } from '../components/ui'
import { AuthLayout } from './AuthLayout'

export function LoginPage({ redirect }: { redirect?: string | undefined }) {
  const qc = useQueryClient()
  const navigate = useNavigate()
  const setup = useQuery(setupQuery)
  const [username, setUsername] = useState('')
  const [password, setPassword] = useState('')
  const m = useMutation({
    mutationFn: login,
    onSuccess: async (res) => {
      qc.clear()
      qc.setQueryData(keys.me, res.user)
      await navigate({ to: redirect ?? '/', replace: true })
    },
  })
  const submit = (e: FormEvent) => {
    e.preventDefault()
    m.mutate({ username: username.trim(), password })
  }
  return (
    <AuthLayout title="Sign in">
      {setup.data?.setup_required === true && (
        <p className="mb-4 rounded-md border border-amber-200 bg-amber-50 px-3 py-2 text-sm text-amber-900 dark:border-amber-900 dark:bg-amber-950 dark:text-amber-200">
          No administrator exists yet.{' '}
          <Link to="/setup" className="font-medium underline">
            Run the first-time setup
          </Link>
          .
        </p>
      )}
      <form onSubmit={submit} className="space-y-4" noValidate>
        <Field label="Username">
          {(p) => (
            <Input {...p} name="username" autoComplete="username" required value={username} onChange={(e) => setUsername(e.target.value)} />
          )}
        </Field>
        <Field label="Password">
          {(p) => (
            <Input
              {...p}
              name="password"
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          )}
        </Field>
        <InlineError error={m.error} />
        <Button type="submit" variant="primary" className="w-full" busy={m.isPending} disabled={username.trim() === '' || password === ''}>
          Sign in
        </Button>
      </form>
    </AuthLayout>
  )
}
