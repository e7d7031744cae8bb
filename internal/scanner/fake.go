package scanner

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// Fake is a Runner that answers from recorded output: the edge where tests
// stand in for a package manager of another OS (SPEC: test doubles only at
// such edges). It records every call.
type Fake struct {
	// Paths are the programs that "exist" (name → path).
	Paths map[string]string
	// Answers maps "name arg1 arg2…" to a result; a missing key is an error.
	Answers map[string]Result
	// Errs maps the same keys to a run error (e.g. a timeout).
	Errs map[string]error

	mu    sync.Mutex
	calls []string
}

// Run implements Runner.
func (f *Fake) Run(ctx context.Context, name string, args ...string) (Result, error) {
	key := strings.Join(append([]string{name}, args...), " ")
	f.mu.Lock()
	f.calls = append(f.calls, key)
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err, ok := f.Errs[key]; ok {
		return Result{}, err
	}
	r, ok := f.Answers[key]
	if !ok {
		return Result{}, fmt.Errorf("fake runner: no answer recorded for %q", key)
	}
	return r, nil
}

// LookPath implements Runner.
func (f *Fake) LookPath(name string) (string, error) {
	if p, ok := f.Paths[name]; ok {
		return p, nil
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// Calls returns the calls made so far, as "name arg…".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}
