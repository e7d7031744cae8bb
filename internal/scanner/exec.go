package scanner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// MaxOutput bounds what a Runner keeps of one stream of a tool's output; the
// rest is dropped and marked, so a runaway tool cannot exhaust memory.
const MaxOutput = 8 << 20

// Result is one finished process.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// Runner runs a program without a shell. Tests substitute recorded output.
type Runner interface {
	// Run runs name with args and returns its output; a non-zero exit is
	// not an error (many tools use exit codes as answers, like dnf
	// check-update's 100): err is for "could not run" and timeouts.
	Run(ctx context.Context, name string, args ...string) (Result, error)
	// LookPath finds a program like exec.LookPath.
	LookPath(name string) (string, error)
}

// Exec is the real Runner: no shell, a fixed C locale so output is the
// one the parsers know, non-interactive front ends, bounded output.
type Exec struct {
	// Env is added to the fixed environment (KEY=VALUE).
	Env []string
	// Sudo runs the programs of SudoPrograms through `sudo -n --` when the
	// process is not root (the Linux agent's service account; see
	// sudo.go). Root, and every other program, run directly.
	Sudo bool
	// Geteuid reports the effective user id (os.Geteuid when nil); tests
	// set it.
	Geteuid func() int
}

// Run implements Runner.
func (e Exec) Run(ctx context.Context, name string, args ...string) (Result, error) {
	viaSudo := e.needsSudo(name, args)
	path, argv := name, args
	if viaSudo {
		var err error
		if path, argv, err = e.sudoArgv(name, args); err != nil {
			return Result{}, err
		}
	}
	cmd := exec.CommandContext(ctx, path, argv...)
	if viaSudo {
		// sudo relays SIGTERM to the command it runs but cannot relay
		// SIGKILL: ask it to stop first, kill after WaitDelay.
		cmd.Cancel = func() error { return terminate(cmd.Process) }
	}
	cmd.Env = append(baseEnv(), e.Env...)
	stdout, stderr := &capBuffer{max: MaxOutput}, &capBuffer{max: MaxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Stdin = nil
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("%s: %w", name, ctx.Err())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return res, fmt.Errorf("running %s: %w", name, err)
	}
	if viaSudo {
		if err := sudoRefusal(filepath.Base(name), res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// LookPath implements Runner.
func (Exec) LookPath(name string) (string, error) { return exec.LookPath(name) }

// baseEnv is PATH and HOME from the agent's environment plus a fixed
// locale and non-interactive settings; nothing else leaks into the tools.
func baseEnv() []string {
	env := []string{"LC_ALL=C", "LANG=C", "LANGUAGE=C", "DEBIAN_FRONTEND=noninteractive",
		"HOMEBREW_NO_AUTO_UPDATE=1", "HOMEBREW_NO_ANALYTICS=1", "HOMEBREW_NO_ENV_HINTS=1", "NO_COLOR=1"}
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// capBuffer keeps the first max bytes written to it and counts the rest.
type capBuffer struct {
	buf     bytes.Buffer
	max     int
	dropped int
}

func (c *capBuffer) Write(p []byte) (int, error) {
	room := c.max - c.buf.Len()
	if room >= len(p) {
		c.buf.Write(p)
		return len(p), nil
	}
	if room > 0 {
		c.buf.Write(p[:room])
	}
	c.dropped += len(p) - max(room, 0)
	return len(p), nil
}

func (c *capBuffer) Bytes() []byte {
	if c.dropped == 0 {
		return c.buf.Bytes()
	}
	return append(c.buf.Bytes(), fmt.Sprintf("\n[%d bytes of output dropped]\n", c.dropped)...)
}

// Tail returns at most n bytes of s, from its end, on a line boundary
// where possible: the end of an install log is where the error is.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return "[…]\n" + s
}
