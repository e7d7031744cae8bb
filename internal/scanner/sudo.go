package scanner

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Privilege escalation for an agent that runs as an unprivileged service
// account (the Linux install script's "redflag" user). Such an agent runs
// the programs below, and only these, through `sudo -n --`, each at the
// absolute path the sudoers drop-in /etc/sudoers.d/redflag-agent names;
// everything else (dpkg-query, apt list, rpm -q, checkupdates, AUR
// helpers, brew, winget…) runs directly as the agent's own user. As root,
// or with Exec.Sudo unset, nothing changes.

// SudoersFile is the sudoers drop-in the Linux install script writes.
const SudoersFile = "/etc/sudoers.d/redflag-agent"

// SudoPrograms are the programs an unprivileged agent runs as root through
// sudo, each with the absolute paths the sudoers drop-in allows (sudo
// compares a command with a sudoers path by name, then by device and
// inode, so /bin/apt-get on a merged-/usr system matches /usr/bin/apt-get).
// The drop-in in internal/installscript/scripts/linux.sh.tmpl must list
// exactly these paths; a test renders it and compares.
var SudoPrograms = map[string][]string{
	"apt-get":          {"/usr/bin/apt-get"},
	"dnf":              {"/usr/bin/dnf"},
	"dnf5":             {"/usr/bin/dnf5"},
	"yum":              {"/usr/bin/yum"},
	"needs-restarting": {"/usr/bin/needs-restarting"},
	"pacman":           {"/usr/bin/pacman"},
	"snap":             {"/usr/bin/snap"},
	"flatpak":          {"/usr/bin/flatpak"},
	"shutdown":         {"/usr/sbin/shutdown", "/sbin/shutdown"},
}

// sudoPaths are where sudo itself is looked for when it is not on PATH.
var sudoPaths = []string{"/usr/bin/sudo", "/bin/sudo", "/usr/local/bin/sudo"}

// needsSudo reports whether name (a program name or path) with args must
// go through sudo under this Exec.
func (e Exec) needsSudo(name string, args []string) bool {
	if !e.Sudo {
		return false
	}
	euid := os.Geteuid
	if e.Geteuid != nil {
		euid = e.Geteuid
	}
	if u := euid(); u == 0 || u < 0 { // root, or Windows (-1)
		return false
	}
	prog := filepath.Base(name)
	if _, ok := SudoPrograms[prog]; !ok {
		return false
	}
	// flatpak --user works on the calling user's own installation: as root
	// it would be root's, so it stays unprivileged.
	if prog == "flatpak" && slices.Contains(args, "--user") {
		return false
	}
	return true
}

// sudoArgv is the command that runs name with args as root: sudo's path
// and its arguments (-n: never prompt, fail instead; --: nothing after it
// is an option of sudo's). No shell is involved.
func (e Exec) sudoArgv(name string, args []string) (string, []string, error) {
	prog := filepath.Base(name)
	path := ""
	if filepath.IsAbs(name) {
		path = name
	} else {
		for _, p := range SudoPrograms[prog] {
			if fileIsExecutable(p) {
				path = p
				break
			}
		}
		if path == "" {
			// Not where the drop-in expects it: sudo will most likely
			// refuse, and says so through sudoRefusal.
			p, err := exec.LookPath(name)
			if err != nil {
				return "", nil, fmt.Errorf("running %s: %w", name, err)
			}
			if path, err = filepath.Abs(p); err != nil {
				return "", nil, fmt.Errorf("running %s: %w", name, err)
			}
		}
	}
	sudo, err := exec.LookPath("sudo")
	if err != nil {
		sudo = ""
		for _, p := range sudoPaths {
			if fileIsExecutable(p) {
				sudo = p
				break
			}
		}
		if sudo == "" {
			return "", nil, fmt.Errorf("running %s needs root and sudo is not installed: install sudo and run the agent's install script again (it writes %s)", prog, SudoersFile)
		}
	}
	return sudo, append([]string{"-n", "--", path}, args...), nil
}

// sudoRefusal returns the error for a sudo that refused to run prog, or nil
// when the command ran (whatever its exit code). sudo exits 1 without
// running anything when the sudoers rules do not allow the command or
// would need a password; its messages are fixed English text under
// LC_ALL=C.
func sudoRefusal(prog string, r Result) error {
	if r.ExitCode != 1 || len(bytes.TrimSpace(r.Stdout)) != 0 {
		return nil
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(r.Stderr)), "\n")
	if !strings.HasPrefix(first, "sudo: ") && !strings.Contains(first, "is not allowed to execute") {
		return nil
	}
	return fmt.Errorf("sudo refused %s: the sudoers drop-in %s is missing or does not allow it (%s)", prog, SudoersFile, cleanText(first, 300))
}

func fileIsExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}
