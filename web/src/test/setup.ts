import { cleanup, configure } from '@testing-library/react'
import { afterEach } from 'vitest'

// The whole app renders in these tests; give slow CI machines time.
configure({ asyncUtilTimeout: 8000 })

afterEach(() => cleanup())

// jsdom has no scrolling; the router's scroll restoration calls it.
window.scrollTo = (() => undefined) as typeof window.scrollTo
