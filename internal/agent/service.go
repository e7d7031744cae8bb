package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kardianos/service"
)

// The agent as an operating-system service, through kardianos/service on
// every platform: a systemd unit on Linux, a service of the Windows Service
// Control Manager with recovery actions, a launchd daemon on macOS. The
// same `redflag-agent run` serves interactively and under the service
// manager (Interactive tells which).
//
// Restarts: the agent asks for one by exiting with ExitRestart (after a
// self-upgrade or a watchdog restore). Each manager is set up to start the
// agent again after any failure exit: systemd Restart=on-failure, the SCM's
// recovery actions (restart, repeated), launchd KeepAlive.

// Service names.
const (
	// ServiceNameLinux is the systemd unit (redflag-agent.service).
	ServiceNameLinux = "redflag-agent"
	// ServiceNameWindows is the Windows service name.
	ServiceNameWindows = "RedFlagAgent"
	// LaunchdLabel is the launchd label (SPEC §8); the plist is
	// /Library/LaunchDaemons/com.redflag.agent.plist.
	LaunchdLabel = "com.redflag.agent"

	serviceDisplayName = "RedFlag Agent"
	serviceDescription = "RedFlag agent: reports this machine's pending updates and installs the approved ones"
	// DarwinLogFile is where launchd sends the agent's output.
	DarwinLogFile = "/Library/Logs/RedFlag/redflag-agent.log"
	// serviceStopTimeout is how long the service manager waits after asking
	// the agent to stop: the shutdown grace of a running command plus the
	// last delivery of results.
	serviceStopTimeout = DefaultShutdownGrace + stopFlushTimeout + 25*time.Second
)

// ServiceName is the service's name on goos.
func ServiceName(goos string) string {
	switch goos {
	case "windows":
		return ServiceNameWindows
	case "darwin":
		return LaunchdLabel
	}
	return ServiceNameLinux
}

// ServiceOptions describe the service to install.
type ServiceOptions struct {
	// Executable is the agent binary the service runs (absolute).
	Executable string
	// ConfigPath and StateDir are passed to `run` explicitly.
	ConfigPath string
	StateDir   string
	// User and Group (Linux only) are the account the systemd unit runs
	// the agent as (User=, Group=); empty: root. The install script passes
	// the "redflag" service account, which reaches root only through the
	// sudoers drop-in (scanner.SudoPrograms).
	User  string
	Group string
	// SupplementaryGroups (Linux only, with User) are extra groups of the
	// service, e.g. "docker" for the Docker socket.
	SupplementaryGroups []string
}

func (o ServiceOptions) check() error {
	if o.User == "" && (o.Group != "" || len(o.SupplementaryGroups) > 0) {
		return errors.New("a group needs a user (--user)")
	}
	for _, n := range append([]string{o.User, o.Group}, o.SupplementaryGroups...) {
		if n != "" && !validAccountName(n) {
			return fmt.Errorf("%q is not a user or group name the service can use", n)
		}
	}
	for _, p := range []struct{ name, v string }{{"the binary", o.Executable}, {"--config", o.ConfigPath}, {"--state-dir", o.StateDir}} {
		if p.v == "" || !filepath.IsAbs(p.v) {
			return fmt.Errorf("%s must be an absolute path, got %q", p.name, p.v)
		}
		// The service files are rendered here, then handed to kardianos'
		// template engine, which must find nothing to expand; systemd and
		// launchd files are line-based.
		if strings.Contains(p.v, "{{") || strings.Contains(p.v, "}}") || strings.ContainsAny(p.v, "\n\r\x00") {
			return fmt.Errorf("%s %q contains characters a service file cannot carry", p.name, p.v)
		}
	}
	return nil
}

// validAccountName accepts the portable user and group names (what
// useradd accepts by default): no quoting is ever needed in a unit file.
func validAccountName(n string) bool {
	if n == "" || len(n) > 32 || n[0] == '-' || (n[0] >= '0' && n[0] <= '9') {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// serviceArgs are the arguments of the service's command line.
func (o ServiceOptions) serviceArgs() []string {
	return []string{"run", "--config", o.ConfigPath, "--state-dir", o.StateDir}
}

// systemdReadWritePaths are the paths the agent's service may write despite
// ProtectSystem=strict. The agent runs the package managers, and they (and
// the maintainer scripts of the packages they install) write everywhere
// software lives: /usr, /etc, /var (dpkg, apt, rpm, dnf, pacman, snapd,
// flatpak state and caches, logs, and the data directories package
// scripts create), /opt, /boot and /efi (kernels, initramfs, boot loader),
// /run (locks, sockets) and, on systems without the merged /usr, /bin,
// /sbin and /lib*. A "-" prefix: the path may not exist on this machine.
var systemdReadWritePaths = []string{"/etc", "/usr", "/var", "/opt", "-/boot", "-/efi", "/run",
	"-/bin", "-/sbin", "-/lib", "-/lib32", "-/lib64", "-/libx32"}

// SystemdUnit renders the agent's systemd unit.
//
// With User set (the install script's "redflag" account) the agent runs
// unprivileged and reaches root only through `sudo -n`, for the programs
// the sudoers drop-in allows (scanner.SudoPrograms); without it, as root.
// Either way the package managers end up running as root inside this
// unit's sandbox (sudo does not leave the unit's mount namespace), so the
// sandbox is the same for both.
//
// The trade-off, documented in docs/ARCHITECTURE.md: the package managers
// must run as root, since installing updates is what the agent is for.
// ProtectSystem=strict
// then keeps everything read-only except the directories package managers
// and package scripts write (systemdReadWritePaths), plus the agent's own
// config, state and binary directories; ProtectHome=read-only keeps users'
// homes (and /root) out of reach for writing while a scanner may still read
// them; PrivateTmp gives it (and the package managers it runs) a private
// /tmp. What stays writable is large, so this protects data outside the
// software tree (homes, /srv, /mnt, /media) from a misbehaving agent, not
// the system from a compromised one: the agent's real defence is that it
// runs only commands signed by the server's key.
//
// Left off on purpose, because they break package installs:
// NoNewPrivileges (it would stop sudo, which is setuid, and blocks the
// SELinux domain transitions of rpm scriptlets and setuid helpers package
// scripts use), RestrictSUIDSGID
// (packages install setuid files), ProtectKernelModules (kernel updates run
// depmod and write /usr/lib/modules), ProtectKernelTunables (scripts run
// sysctl), PrivateDevices (boot-loader and initramfs tools probe disks),
// SystemCallArchitectures=native (multiarch package scripts), ProtectClock
// (it implies a device allow-list that hides the disks boot-loader tools
// probe), ProtectHostname (the agent would not see a renamed host until
// restarted) and UMask= (files that package scripts create must keep the
// usual 022).
func SystemdUnit(o ServiceOptions) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	rw := slices.Clone(systemdReadWritePaths)
	for _, p := range []string{filepath.Dir(o.ConfigPath), o.StateDir, filepath.Dir(o.Executable)} {
		if !coveredBy(p, rw) {
			rw = append(rw, p)
		}
	}
	for i, p := range rw {
		rw[i] = systemdPath(p)
	}
	account := "# The agent runs as root (install-service without --user).\n"
	if o.User != "" {
		group := o.Group
		if group == "" {
			group = o.User
		}
		account = "# The agent runs as " + o.User + "; it runs the package managers and shutdown -r as root\n" +
			"# through sudo -n, as far as /etc/sudoers.d/redflag-agent allows.\n" +
			"User=" + o.User + "\nGroup=" + group + "\n"
		if len(o.SupplementaryGroups) > 0 {
			account += "# Access to the Docker socket (the group existed when the service was installed).\n" +
				"SupplementaryGroups=" + strings.Join(o.SupplementaryGroups, " ") + "\n"
		}
	}
	var b strings.Builder
	b.WriteString(`# The RedFlag agent. Written by "redflag-agent install-service";
# "redflag-agent uninstall-service" stops the agent and removes this file.
[Unit]
Description=` + serviceDescription + `
Documentation=https://github.com/redflaghq/redflag
Wants=network-online.target
After=network-online.target
# Never give up restarting: an agent that cannot reach its server keeps trying.
StartLimitIntervalSec=0

[Service]
Type=simple
` + account + `ExecStart=` + systemdExec(o.Executable, o.serviceArgs()) + `
# Exit code 75 (and any other failure) asks for a restart: after a
# self-upgrade the new binary starts, after a failed one the restored one.
Restart=on-failure
RestartSec=5s
# SIGTERM to the agent only: a package manager it runs is not killed
# mid-install unless the agent has not stopped after TimeoutStopSec.
KillMode=mixed
TimeoutStopSec=` + fmt.Sprintf("%ds", int(serviceStopTimeout/time.Second)) + `

# Hardening (the package managers run as root, directly or through sudo,
# inside this sandbox; see docs/ARCHITECTURE.md).
ProtectSystem=strict
ReadWritePaths=` + strings.Join(rw, " ") + `
ProtectHome=read-only
PrivateTmp=yes
# Off on purpose: it would stop sudo (setuid) and block the SELinux domain
# transitions and setuid helpers that package managers and package scripts
# rely on.
NoNewPrivileges=no
ProtectKernelLogs=yes
RestrictRealtime=yes

[Install]
WantedBy=multi-user.target
`)
	return b.String(), nil
}

// coveredBy reports whether p lies inside one of the (possibly "-"
// prefixed) paths.
func coveredBy(p string, paths []string) bool {
	for _, q := range paths {
		q = strings.TrimPrefix(q, "-")
		if p == q || strings.HasPrefix(p, q+"/") {
			return true
		}
	}
	return false
}

// systemdPath quotes a path for a space-separated path list (ReadWritePaths).
func systemdPath(p string) string {
	prefix := ""
	if strings.HasPrefix(p, "-") {
		prefix, p = "-", p[1:]
	}
	if strings.ContainsAny(p, " \t\"'\\%") {
		// Specifiers are expanded here, variables are not.
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`)
		return prefix + `"` + r.Replace(p) + `"`
	}
	return prefix + p
}

// systemdExec renders an ExecStart= command line: every word quoted, so
// spaces survive; "\" and `"` escaped, "%" doubled (specifier) and "$"
// doubled (variable expansion).
func systemdExec(exe string, args []string) string {
	words := make([]string, 0, 1+len(args))
	for _, w := range append([]string{exe}, args...) {
		words = append(words, systemdQuote(w))
	}
	return strings.Join(words, " ")
}

func systemdQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`)
	return `"` + r.Replace(s) + `"`
}

// LaunchdPlist renders the agent's launchd daemon (label com.redflag.agent):
// started at boot, kept alive (launchd starts it again whenever it exits),
// its output in DarwinLogFile.
func LaunchdPlist(o ServiceOptions) (string, error) {
	if err := o.check(); err != nil {
		return "", err
	}
	var args strings.Builder
	for _, a := range append([]string{o.Executable}, o.serviceArgs()...) {
		args.WriteString("\t\t<string>" + xmlEscape(a) + "</string>\n")
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- The RedFlag agent. Written by "redflag-agent install-service"; "redflag-agent uninstall-service" removes it. -->
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>` + LaunchdLabel + `</string>
	<key>ProgramArguments</key>
	<array>
` + args.String() + `	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>ThrottleInterval</key>
	<integer>5</integer>
	<key>ExitTimeOut</key>
	<integer>` + fmt.Sprint(int(serviceStopTimeout/time.Second)) + `</integer>
	<key>ProcessType</key>
	<string>Background</string>
	<key>StandardOutPath</key>
	<string>` + DarwinLogFile + `</string>
	<key>StandardErrorPath</key>
	<string>` + DarwinLogFile + `</string>
</dict>
</plist>
`, nil
}

func xmlEscape(s string) string {
	return strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;", `"`, "&quot;", `'`, "&apos;").Replace(s)
}

// serviceConfig is the kardianos configuration for goos.
func serviceConfig(o ServiceOptions, goos string) (*service.Config, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	c := &service.Config{Name: ServiceName(goos), DisplayName: serviceDisplayName, Description: serviceDescription,
		Executable: o.Executable, Arguments: o.serviceArgs(), Option: service.KeyValue{}}
	switch goos {
	case "linux":
		unit, err := SystemdUnit(o)
		if err != nil {
			return nil, err
		}
		c.Option["SystemdScript"] = unit
	case "darwin":
		plist, err := LaunchdPlist(o)
		if err != nil {
			return nil, err
		}
		c.Option["LaunchdConfig"] = plist
		c.Option["KeepAlive"] = true
		c.Option["RunAtLoad"] = true
	case "windows":
		c.Option["StartType"] = "automatic"
		c.Option["DelayedAutoStart"] = true
		// Recovery: restart after every failure (the SCM repeats the last
		// action); setRecoveryActions refines this after installing.
		c.Option["OnFailure"] = "restart"
		c.Option["OnFailureDelayDuration"] = "5s"
		c.Option["OnFailureResetPeriod"] = 24 * 60 * 60
	}
	return c, nil
}

// Interactive reports whether the agent runs from a terminal or a plain
// parent process rather than under the service manager.
func Interactive() bool { return service.Interactive() }

// noopProgram satisfies service.Interface for install and control.
type noopProgram struct{}

func (noopProgram) Start(service.Service) error { return nil }
func (noopProgram) Stop(service.Service) error  { return nil }

// InstallService installs (or, when it exists, reinstalls with the current
// settings) the agent's service and starts it. Every call to the service
// manager runs its program directly (systemctl, launchctl) or through the
// SCM API: no shell.
func InstallService(o ServiceOptions, log *slog.Logger) error {
	c, err := serviceConfig(o, runtime.GOOS)
	if err != nil {
		return err
	}
	if runtime.GOOS == "darwin" {
		if err := os.MkdirAll(filepath.Dir(DarwinLogFile), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(DarwinLogFile), err)
		}
	}
	if err := supportedManager(runtime.GOOS, service.Platform()); err != nil {
		return err
	}
	s, err := service.New(noopProgram{}, c)
	if err != nil {
		return fmt.Errorf("this system's service manager is not supported: %w", err)
	}
	if _, err := s.Status(); !errors.Is(err, service.ErrNotInstalled) {
		log.Info("the service exists; replacing it", "service", c.Name)
		_ = s.Stop() // it may not be running
		if err := s.Uninstall(); err != nil {
			return fmt.Errorf("removing the existing service %s: %w", c.Name, err)
		}
	}
	if err := s.Install(); err != nil {
		return fmt.Errorf("installing the service %s: %w", c.Name, err)
	}
	if err := setRecoveryActions(c.Name); err != nil {
		log.Warn("the service's recovery actions could not be refined; it still restarts after a failure", "error", err)
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("the service %s is installed but did not start: %w", c.Name, err)
	}
	return nil
}

// supportedManager refuses service managers whose restart behaviour the
// agent has not been set up for: a self-upgrade ends with an exit that the
// manager must answer with a start, which the unit, recovery actions and
// plist written here guarantee and kardianos' other init-system templates
// (SysV, OpenRC, upstart) do not.
func supportedManager(goos, platform string) error {
	want := map[string]string{"linux": "linux-systemd", "windows": "windows-service", "darwin": "darwin-launchd"}[goos]
	if want == "" || platform == want {
		return nil
	}
	return fmt.Errorf("this system's service manager is %q; install-service supports %s here. Run `redflag-agent run` under your init system "+
		"and have it restart the agent whenever it exits with a failure (exit code %d asks for a restart after a self-upgrade)", platform, want, ExitRestart)
}

// UninstallService stops the agent's service and removes it. The config
// and state stay (register again is not needed to reinstall).
func UninstallService(log *slog.Logger) error {
	c := &service.Config{Name: ServiceName(runtime.GOOS)}
	s, err := service.New(noopProgram{}, c)
	if err != nil {
		return fmt.Errorf("this system's service manager is not supported: %w", err)
	}
	if _, err := s.Status(); errors.Is(err, service.ErrNotInstalled) {
		return fmt.Errorf("the service %s is not installed", c.Name)
	}
	if err := s.Stop(); err != nil {
		log.Info("stopping the service failed (it may not be running)", "service", c.Name, "error", err)
	}
	if err := s.Uninstall(); err != nil {
		return fmt.Errorf("removing the service %s: %w", c.Name, err)
	}
	return nil
}

// serviceProgram runs the agent under the service manager.
type serviceProgram struct {
	run    func(ctx context.Context) error
	exit   func(code int)
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	stopping bool
	err      error
}

func (p *serviceProgram) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		err := p.run(ctx)
		p.mu.Lock()
		p.err = err
		stopping := p.stopping
		p.mu.Unlock()
		close(p.done)
		if !stopping {
			// The agent ended on its own (a restart after a self-upgrade,
			// or an error): exit with a failure code so that the service
			// manager starts it again.
			code := ExitCode(err)
			if code == 0 {
				code = 1
			}
			p.log.Info("the agent ended; exiting for the service manager to restart it", "exit_code", code, "error", err)
			p.exit(code)
		}
	}()
	return nil
}

func (p *serviceProgram) Stop(service.Service) error {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	p.cancel()
	<-p.done
	return nil
}

// RunService runs the agent under the service manager until the manager
// stops it (run's error is returned) or the agent ends on its own (exit is
// called with ExitCode of its error).
func RunService(run func(ctx context.Context) error, exit func(code int), log *slog.Logger) error {
	p := &serviceProgram{run: run, exit: exit, log: log}
	c := &service.Config{Name: ServiceName(runtime.GOOS)}
	s, err := service.New(p, c)
	if err != nil {
		return err
	}
	if err := s.Run(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// ExitCode maps Run's error to the process exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrRestartRequested):
		return ExitRestart
	}
	return 1
}
