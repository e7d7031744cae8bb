package scanner

// AUR scans and installs updates of packages built from the Arch User
// Repository, through an AUR helper: paru, or yay when paru is absent. The
// scanner is available only where one of them is installed.
//
// Both helpers refuse to build AUR packages as root (makepkg must not run
// as root): the installer checks this first and reports a clear failure
// instead of letting them fail halfway. Scanning (-Qua) works as any user.
//
// The AUR publishes no severities: every update is "unknown".

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/redflaghq/redflag/internal/protocol"
)

// AUR is the AUR scanner and installer.
type AUR struct {
	r    Runner
	o    Options
	euid func() int // os.Geteuid; tests substitute it
}

var _ interface {
	Scanner
	Installer
} = (*AUR)(nil)

// NewAUR returns the AUR scanner and installer.
func NewAUR(r Runner, o Options) *AUR { return &AUR{r: r, o: o, euid: os.Geteuid} }

// Name implements Scanner and Installer.
func (a *AUR) Name() string { return protocol.PkgAUR }

// helper is the AUR helper to use: paru first, then yay.
func (a *AUR) helper() (string, bool) { return mgrFirstPath(a.r, "paru", "yay") }

// Available implements Scanner.
func (a *AUR) Available(context.Context) bool {
	_, ok := a.helper()
	return ok
}

// Scan implements Scanner: `paru -Qua` (or `yay -Qua`), the AUR packages
// with a newer version on the AUR, in pacman's "name old -> new" format.
func (a *AUR) Scan(ctx context.Context) ([]protocol.Update, error) {
	h, ok := a.helper()
	if !ok {
		return nil, ErrUnavailable
	}
	res, err := a.r.Run(ctx, h, "-Qua")
	if err != nil {
		return nil, fmt.Errorf("running %s -Qua: %w", h, err)
	}
	// Like pacman -Qu, the helpers exit 1 when there is nothing to upgrade.
	if res.ExitCode != 0 {
		if res.ExitCode == 1 && len(bytes.TrimSpace(res.Stdout)) == 0 && !mgrContains(res, "error") {
			return nil, nil
		}
		return nil, fmt.Errorf("%s -Qua exited %d: %s", h, res.ExitCode, mgrLastLine(res))
	}
	ups, err := pacmanUpdates(protocol.PkgAUR, h+" -Qua", res.Stdout, map[string]string{"checked_with": h + " -Qua"})
	for i := range ups {
		ups[i].Source = "aur"
	}
	return ups, err
}

// aurRootMessage explains why nothing can run as root.
func aurRootMessage(h string) string {
	return h + " refuses to build and install AUR packages as root (makepkg must not run as root): " +
		"run the RedFlag agent's AUR installs as an unprivileged user allowed to run pacman through sudo"
}

// Install implements Installer: `paru -S --noconfirm --needed name…` (or
// yay), judged per package by `pacman -Q` before and after.
//
// Dry run: neither helper can preview an AUR transaction without fetching
// and evaluating PKGBUILDs (--print only covers repository packages), so
// the dry run reports the requested changes only, with no extras.
func (a *AUR) Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (InstallResult, error) {
	ok, refused := mgrPartition(protocol.PkgAUR, items, pacmanCheckItem)
	res := InstallResult{Results: refused}
	if len(ok) == 0 {
		return res, nil
	}
	h, found := a.helper()
	if !found {
		res.Results = append(res.Results, mgrFailAll(ok, "no AUR helper (paru or yay) on this machine")...)
		return res, nil
	}
	if a.euid() == 0 {
		// Checked before running anything: the helpers would fail only
		// after downloading sources, and say it less clearly.
		if dryRun {
			res.Changes = mgrRequested(protocol.PkgAUR, ok)
		}
		res.Results = append(res.Results, mgrFailAll(ok, aurRootMessage(h))...)
		return res, nil
	}
	if dryRun {
		res.Changes = mgrRequested(protocol.PkgAUR, ok)
		return res, nil
	}
	args := append([]string{"-S", "--noconfirm", "--needed"}, mgrNames(ok)...)
	res, err := pacmanApply(ctx, a.r, a.o.Timeout, h, args, ok, res, func(it protocol.InstallItem, v string) string {
		return fmt.Sprintf("%s left %s at %s: it built no newer version", h, it.PackageName, v)
	})
	// The helpers' own root check (e.g. run through sudo): say why.
	if res.ExitCode != 0 && strings.Contains(strings.ToLower(res.Output), "as root") {
		for i := range res.Results {
			if res.Results[i].Status == "failed" && !strings.HasPrefix(res.Results[i].Message, mgrRefusedPrefix) {
				res.Results[i].Message = aurRootMessage(h)
			}
		}
	}
	return res, err
}
