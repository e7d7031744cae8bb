package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/redflaghq/redflag/internal/agent"
)

// dockerGroup owns the Docker socket on most distributions.
const dockerGroup = "docker"

// applyServiceUser fills o's account fields for --user name (nothing for
// ""), hands the agent's config file and state directory to that account
// (install-service itself just created state files as root) and warns when
// the account cannot replace the binary, which a self-upgrade needs.
func applyServiceUser(o *agent.ServiceOptions, name string, stderr io.Writer) error {
	if name == "" {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("--user %s: %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("--user %s: unusable uid %q or gid %q", name, u.Uid, u.Gid)
	}
	if uid == 0 {
		// The same as no --user, spelt out.
		return nil
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return fmt.Errorf("--user %s: its primary group %s: %w", name, u.Gid, err)
	}
	o.User, o.Group = u.Username, g.Name
	// Membership of the docker group is root-equivalent; it is what the
	// docker scanner needs to read the socket, and is granted only where
	// Docker is installed (the group exists now).
	if _, err := user.LookupGroup(dockerGroup); err == nil {
		o.SupplementaryGroups = []string{dockerGroup}
	}
	if err := chownTree(o.StateDir, uid, gid); err != nil {
		return fmt.Errorf("giving %s to %s: %w", o.StateDir, name, err)
	}
	if err := os.Lchown(o.ConfigPath, uid, gid); err != nil {
		return fmt.Errorf("giving %s to %s: %w", o.ConfigPath, name, err)
	}
	if err := os.Lchown(filepath.Dir(o.ConfigPath), uid, gid); err != nil {
		return fmt.Errorf("giving %s to %s: %w", filepath.Dir(o.ConfigPath), name, err)
	}
	dir := filepath.Dir(o.Executable)
	if fi, err := os.Stat(dir); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
			fmt.Fprintf(stderr, "redflag-agent install-service: warning: %s is not owned by %s, so self-upgrades will fail; "+
				"install the binary in a directory of its own owned by %s (the install script uses /usr/local/lib/redflag)\n", dir, name, name)
		}
	}
	return nil
}

// chownTree gives dir and everything in it to uid:gid, without following
// symbolic links.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}
