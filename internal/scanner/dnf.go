package scanner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/redflaghq/redflag/internal/protocol"
)

// DNF scans and installs RPM packages on Fedora, RHEL, AlmaLinux and Rocky
// Linux through dnf 5, dnf 4, or yum where neither dnf exists (EL7).
type DNF struct {
	r Runner
	o Options
}

// NewDNF returns the dnf scanner and installer.
func NewDNF(r Runner, o Options) *DNF { return &DNF{r: r, o: o} }

// Name implements Scanner and Installer.
func (*DNF) Name() string { return protocol.PkgDNF }

// Available implements Scanner: dnf5, dnf or yum is on PATH.
func (d *DNF) Available(context.Context) bool {
	_, ok := d.tool()
	return ok
}

// dnfTool is the front end found on this machine. dnf 5 renamed commands
// (check-upgrade, advisory); yum 3 (EL7) lists CVEs with its own syntax.
type dnfTool struct {
	bin  string
	v5   bool
	yum3 bool
}

// tool picks dnf5 first: on Fedora 41+ /usr/bin/dnf is dnf5 anyway, and
// where both exist dnf5 is the maintained one.
func (d *DNF) tool() (dnfTool, bool) {
	for _, t := range []dnfTool{{bin: "dnf5", v5: true}, {bin: "dnf"}, {bin: "yum", yum3: true}} {
		if _, err := d.r.LookPath(t.bin); err == nil {
			return t, true
		}
	}
	return dnfTool{}, false
}

func (t dnfTool) checkUpdateArgs(refresh bool) []string {
	args := []string{"check-update"}
	if t.v5 {
		args = []string{"check-upgrade"}
	}
	if refresh {
		// Expire the metadata cache first: dnf's own makecache step.
		args = append(args, "--refresh")
	}
	return args
}

// advisoryArgs lists the advisories of the pending updates; withCVE lists
// their CVE references instead of advisory ids (same line shape).
func (t dnfTool) advisoryArgs(withCVE bool) []string {
	switch {
	case t.v5 && withCVE:
		return []string{"advisory", "list", "--updates", "--with-cve"}
	case t.v5:
		return []string{"advisory", "list", "--updates"}
	case t.yum3 && withCVE:
		return []string{"updateinfo", "list", "cves"}
	case t.yum3:
		return []string{"updateinfo", "list", "updates"}
	case withCVE:
		return []string{"updateinfo", "list", "--updates", "--with-cve"}
	}
	return []string{"updateinfo", "list", "--updates"}
}

// rpmQueryFormat lists installed packages one per line; rpm expands the
// \t and \n escapes itself (no shell involved). %{EPOCH} (not EPOCHNUM)
// because every rpm has it; it prints "(none)" for no epoch.
const rpmQueryFormat = `%{NAME}\t%{ARCH}\t%{EPOCH}\t%{VERSION}-%{RELEASE}\n`

// Scan implements Scanner: check-update (exit 100: updates, 0: none, else
// an error) for the packages, updateinfo for advisory ids, severities and
// CVEs, rpm for the installed versions. Advisory or rpm failures are
// returned along with the updates found, so they are reported without
// hiding the updates.
func (d *DNF) Scan(ctx context.Context) ([]protocol.Update, error) {
	t, ok := d.tool()
	if !ok {
		return nil, fmt.Errorf("dnf: %w", ErrUnavailable)
	}
	args := t.checkUpdateArgs(d.o.RefreshLists)
	res, err := d.r.Run(ctx, t.bin, args...)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", t.bin, args[0], err)
	}
	switch res.ExitCode {
	case 0:
		return []protocol.Update{}, nil
	case 100:
	default:
		return nil, fmt.Errorf("%s %s exited %d: %s", t.bin, args[0], res.ExitCode, toolFailureText(res))
	}
	pkgs, perr := parseDNFCheckUpdate(res.Stdout)
	if len(pkgs) == 0 {
		// Exit 100 promises updates: a format we cannot read must not pass
		// for "up to date".
		return nil, errors.Join(fmt.Errorf("%w: %s %s exited 100 (updates available) but no package line was readable",
			errToolOutput, t.bin, args[0]), perr)
	}
	warns := []error{perr}

	var advs []dnfAdvisory
	for _, withCVE := range []bool{false, true} {
		aargs := t.advisoryArgs(withCVE)
		ares, err := d.r.Run(ctx, t.bin, aargs...)
		switch {
		case err != nil:
			warns = append(warns, fmt.Errorf("%s %s: %w", t.bin, strings.Join(aargs, " "), err))
		case ares.ExitCode != 0:
			warns = append(warns, fmt.Errorf("%s %s exited %d (severities and CVEs may be missing): %s",
				t.bin, strings.Join(aargs, " "), ares.ExitCode, toolFailureText(ares)))
		default:
			a, aerr := parseDNFUpdateinfo(ares.Stdout)
			advs = append(advs, a...)
			warns = append(warns, aerr)
		}
	}
	installed, ierr := d.installed(ctx)
	warns = append(warns, ierr)
	return dnfUpdates(pkgs, advs, installed), errors.Join(warns...)
}

// installed asks rpm for every installed package (one cheap rpmdb read).
func (d *DNF) installed(ctx context.Context) (rpmInstalled, error) {
	res, err := d.r.Run(ctx, "rpm", "-qa", "--qf", rpmQueryFormat)
	if err != nil {
		return nil, fmt.Errorf("listing installed packages (rpm -qa): %w", err)
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("rpm -qa exited %d: %s", res.ExitCode, toolFailureText(res))
	}
	return parseRPMQuery(res.Stdout)
}

// dnfPkg is one line of check-update: an available upgrade.
type dnfPkg struct {
	Name, Arch, EVR, Repo string
}

// parseDNFCheckUpdate reads `dnf check-update` (dnf 4, yum) and `dnf5
// check-upgrade`:
//
//	NAME.ARCH   [EPOCH:]VERSION-RELEASE   REPO
//
// dnf 4 wraps a name (or version) too wide for its column onto the next
// line, indented; those halves are joined. The "Obsoleting Packages"
// section lists packages to be replaced, not upgrades, and is skipped, as
// are the metadata, security and repository notes around the list.
func parseDNFCheckUpdate(out []byte) ([]dnfPkg, error) {
	var p toolParseProblems
	var pkgs []dnfPkg
	obsoleting := false
	var pend []string
	pendLine := 0
	flush := func() {
		if pend != nil {
			p.add(pendLine, "wrapped package line never completed", []byte(strings.Join(pend, " ")))
			pend = nil
		}
	}
	emit := func(n int, f []string, line string) {
		name, arch, ok := rpmSplitNA(f[0])
		if !ok || strings.Contains(name, ":") || !rpmLooksLikeEVR(f[1]) {
			p.add(n, "want NAME.ARCH VERSION-RELEASE REPO", []byte(line))
			return
		}
		pkgs = append(pkgs, dnfPkg{Name: name, Arch: arch, EVR: f[1], Repo: f[2]})
	}
	eachToolLine(out, &p, func(n int, line string) {
		t := strings.TrimSpace(line)
		if t == "" {
			flush()
			return
		}
		if strings.HasPrefix(strings.ToLower(t), "obsoleting packages") {
			flush()
			obsoleting = true
			return
		}
		if obsoleting {
			return
		}
		f := strings.Fields(t)
		indented := line[0] == ' ' || line[0] == '\t'
		if pend != nil {
			if indented {
				pend = append(pend, f...)
				if len(pend) >= 3 {
					if len(pend) == 3 {
						emit(pendLine, pend, strings.Join(pend, " "))
					} else {
						p.add(pendLine, "wrapped package line has extra columns", []byte(strings.Join(pend, " ")))
					}
					pend = nil
				}
				return
			}
			flush()
		}
		if indented {
			return // yum's " * base: mirror" notes
		}
		if name, _, ok := rpmSplitNA(f[0]); !ok || strings.Contains(name, ":") {
			return // Last metadata expiration check…, Security: …, Upgrades
		}
		switch {
		case len(f) == 3:
			emit(n, f, t)
		case len(f) < 3 && (len(f) == 1 || rpmLooksLikeEVR(f[1])):
			pend, pendLine = f, n
		case rpmLooksLikeEVR(f[1]):
			p.add(n, "unexpected columns after NAME.ARCH VERSION-RELEASE REPO", []byte(t))
		}
	})
	flush()
	return pkgs, p.err("dnf check-update")
}

var (
	rpmArchRe = regexp.MustCompile(`^[a-z0-9_]+$`)
	// rpmEVRRe: [epoch:]version-release; neither version nor release contains '-'.
	rpmEVRRe = regexp.MustCompile(`^([0-9]+:)?[A-Za-z0-9][A-Za-z0-9._+~^]*-[A-Za-z0-9._+~^]+$`)
)

// rpmSplitNA splits "name.arch".
func rpmSplitNA(s string) (name, arch string, ok bool) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || !rpmArchRe.MatchString(s[i+1:]) || strings.ContainsAny(s[:i], "/ ") {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

func rpmLooksLikeEVR(s string) bool { return len(s) <= MaxVersionLen && rpmEVRRe.MatchString(s) }

// rpmSplitNEVRA splits "name-[epoch:]version-release.arch" as updateinfo
// prints it.
func rpmSplitNEVRA(s string) (name, evr, arch string, ok bool) {
	nevr, arch, ok := rpmSplitNA(s)
	if !ok {
		return "", "", "", false
	}
	r := strings.LastIndexByte(nevr, '-')
	if r <= 0 {
		return "", "", "", false
	}
	v := strings.LastIndexByte(nevr[:r], '-')
	if v <= 0 {
		return "", "", "", false
	}
	name, evr = nevr[:v], nevr[v+1:]
	if !rpmLooksLikeEVR(evr) {
		return "", "", "", false
	}
	return name, evr, arch, true
}

// dnfAdvisory is one line of an advisory listing: an advisory (or, in a
// CVE listing, a CVE id) that applies to one package version.
type dnfAdvisory struct {
	ID       string // RHSA-2024:0105, FEDORA-2024-5f7d63a0d0, or CVE-2024-1234
	Type     string // security, bugfix, enhancement, newpackage, unknown…
	Severity string // as the tool prints it: Critical, Important, Moderate, Low, None, ""
	Name     string
	EVR      string
	Arch     string
}

// parseDNFUpdateinfo reads advisory listings of both generations:
//
//	dnf 4, yum:  ID  Important/Sec.  NEVRA      (or "bugfix", "enhancement"…)
//	dnf 5:       ID  security  Important  NEVRA  2024-01-19 01:25:26
//
// With --with-cve (dnf 5, dnf 4) or "list cves" (yum) the ID column holds
// CVE ids instead. Headers and metadata notes are skipped.
func parseDNFUpdateinfo(out []byte) ([]dnfAdvisory, error) {
	var p toolParseProblems
	var advs []dnfAdvisory
	eachToolLine(out, &p, func(n int, line string) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "i" {
			f = f[1:] // dnf 4 marks installed advisories with --all
		}
		var a dnfAdvisory
		switch {
		case len(f) == 3:
			name, evr, arch, ok := rpmSplitNEVRA(f[2])
			if !ok {
				return // a note, not an advisory line
			}
			a = dnfAdvisory{ID: f[0], Name: name, EVR: evr, Arch: arch}
			if sev, ok := strings.CutSuffix(f[1], "/Sec."); ok {
				a.Type = "security"
				if sev != "Unknown" {
					a.Severity = sev
				}
			} else {
				a.Type = f[1]
			}
		case (len(f) == 5 || len(f) == 6) && dnfIsDate(f[len(f)-2]):
			name, evr, arch, ok := rpmSplitNEVRA(f[len(f)-3])
			if !ok {
				p.add(n, "no NEVRA before the issued date", []byte(line))
				return
			}
			a = dnfAdvisory{ID: f[0], Type: f[1], Name: name, EVR: evr, Arch: arch}
			if len(f) == 6 {
				a.Severity = f[2]
			}
		default:
			return
		}
		if !dnfAdvisoryIDRe.MatchString(a.ID) {
			p.add(n, "advisory id", []byte(line))
			return
		}
		advs = append(advs, a)
	})
	return advs, p.err("dnf updateinfo")
}

var dnfAdvisoryIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

func dnfIsDate(s string) bool {
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return false
	}
	for i, c := range s {
		if i != 4 && i != 7 && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// dnfSeverity maps an advisory to a SPEC severity. Only security
// advisories carry one: dnf 4 prints a severity only for them ("Important/
// Sec."), and a bugfix's Fedora "urgency" is not a security rating, so
// dnf 5's severity column is read the same way. Critical, Important,
// Moderate and Low map to the SPEC levels of the same name; "None",
// missing or anything else is unknown. Prefixes are accepted because dnf 5
// truncates the column on a narrow terminal ("Importan").
func dnfSeverity(a dnfAdvisory) string {
	if !strings.HasPrefix(strings.ToLower(a.Type), "sec") {
		return protocol.SevUnknown
	}
	s := strings.ToLower(a.Severity)
	if len(s) < 3 {
		return protocol.SevUnknown
	}
	for _, sev := range []string{protocol.SevCritical, protocol.SevImportant, protocol.SevModerate, protocol.SevLow} {
		if strings.HasPrefix(sev, s) || strings.HasPrefix(s, sev) {
			return sev
		}
	}
	return protocol.SevUnknown
}

var dnfCVERe = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,}$`)

// dnfUpdates joins upgrades, advisories and installed versions. An
// advisory counts for an upgrade when it names the same package and arch
// (or just the name) at a version not newer than the one offered.
func dnfUpdates(pkgs []dnfPkg, advs []dnfAdvisory, installed rpmInstalled) []protocol.Update {
	byKey := map[string][]dnfAdvisory{}
	for _, a := range advs {
		byKey[a.Name+"."+a.Arch] = append(byKey[a.Name+"."+a.Arch], a)
		byKey[a.Name] = append(byKey[a.Name], a)
	}
	ups := make([]protocol.Update, 0, len(pkgs))
	for _, p := range pkgs {
		u := protocol.Update{
			PackageType:      protocol.PkgDNF,
			PackageName:      p.Name,
			CurrentVersion:   installed.current(p.Name, p.Arch),
			AvailableVersion: p.EVR,
			Severity:         protocol.SevUnknown,
			Source:           p.Repo,
			CVEIDs:           []string{},
			Metadata:         map[string]string{"arch": p.Arch, "repository": p.Repo},
		}
		list, ok := byKey[p.Name+"."+p.Arch]
		if !ok {
			list = byKey[p.Name]
		}
		var ids []string
		for _, a := range list {
			if rpmCompareEVR(a.EVR, p.EVR) > 0 {
				continue // an advisory for a version this upgrade does not reach
			}
			if dnfCVERe.MatchString(a.ID) {
				if !slices.Contains(u.CVEIDs, a.ID) {
					u.CVEIDs = append(u.CVEIDs, a.ID)
				}
			} else if !slices.Contains(ids, a.ID) {
				ids = append(ids, a.ID)
			}
			if s := dnfSeverity(a); toolSevRank(s) > toolSevRank(u.Severity) {
				u.Severity = s
			}
		}
		if len(ids) > 0 {
			sort.Strings(ids)
			u.Metadata["advisories"] = strings.Join(ids, ",")
		}
		sort.Strings(u.CVEIDs)
		ups = append(ups, u)
	}
	return ups
}

// rpmInstalled maps "name.arch" and "name" to the installed EVRs (several
// for install-only packages like kernels).
type rpmInstalled map[string][]string

// current is the highest installed EVR of name.arch (or of name).
func (m rpmInstalled) current(name, arch string) string {
	list, ok := m[name+"."+arch]
	if !ok {
		list = m[name]
	}
	best := ""
	for _, v := range list {
		if best == "" || rpmCompareEVR(v, best) > 0 {
			best = v
		}
	}
	return best
}

// parseRPMQuery reads rpm -qa with rpmQueryFormat: NAME TAB ARCH TAB
// EPOCH TAB VERSION-RELEASE.
func parseRPMQuery(out []byte) (rpmInstalled, error) {
	var p toolParseProblems
	m := rpmInstalled{}
	eachToolLine(out, &p, func(n int, line string) {
		if strings.TrimSpace(line) == "" {
			return
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[0] == "" || f[3] == "" {
			p.add(n, "want NAME ARCH EPOCH VERSION-RELEASE", []byte(line))
			return
		}
		evr := f[3]
		if f[2] != "0" && f[2] != "" && f[2] != "(none)" {
			evr = f[2] + ":" + evr
		}
		m[f[0]+"."+f[1]] = append(m[f[0]+"."+f[1]], evr)
		m[f[0]] = append(m[f[0]], evr)
	})
	return m, p.err("rpm -qa")
}

// rpmCompareEVR orders [epoch:]version[-release] strings like rpm does.
func rpmCompareEVR(a, b string) int {
	ea, va, ra := rpmSplitEVR(a)
	eb, vb, rb := rpmSplitEVR(b)
	if c := rpmvercmp(ea, eb); c != 0 {
		return c
	}
	if c := rpmvercmp(va, vb); c != 0 {
		return c
	}
	if ra == "" || rb == "" {
		return 0 // a version without release matches any release
	}
	return rpmvercmp(ra, rb)
}

func rpmSplitEVR(s string) (epoch, version, release string) {
	epoch = "0"
	if i := strings.IndexByte(s, ':'); i >= 0 {
		epoch, s = s[:i], s[i+1:]
		if epoch == "" {
			epoch = "0"
		}
	}
	version, release, _ = strings.Cut(s, "-")
	return epoch, version, release
}

// rpmvercmp is rpm's version segment comparison: alternating runs of
// digits (compared as numbers) and letters (compared as strings), other
// characters separate; '~' sorts before anything (pre-releases) and '^'
// after the base version but before anything else (snapshots).
func rpmvercmp(a, b string) int {
	if a == b {
		return 0
	}
	isAlnum := func(c byte) bool { return rpmIsDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	for len(a) > 0 || len(b) > 0 {
		for len(a) > 0 && !isAlnum(a[0]) && a[0] != '~' && a[0] != '^' {
			a = a[1:]
		}
		for len(b) > 0 && !isAlnum(b[0]) && b[0] != '~' && b[0] != '^' {
			b = b[1:]
		}
		if (len(a) > 0 && a[0] == '~') || (len(b) > 0 && b[0] == '~') {
			if len(a) == 0 || a[0] != '~' {
				return 1
			}
			if len(b) == 0 || b[0] != '~' {
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		if (len(a) > 0 && a[0] == '^') || (len(b) > 0 && b[0] == '^') {
			switch {
			case len(a) == 0:
				return -1
			case len(b) == 0:
				return 1
			case a[0] != '^':
				return 1
			case b[0] != '^':
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		if len(a) == 0 || len(b) == 0 {
			break
		}
		num := rpmIsDigit(a[0])
		seg := func(s string) (string, string) {
			i := 0
			for i < len(s) && (num && rpmIsDigit(s[i]) || !num && isAlnum(s[i]) && !rpmIsDigit(s[i])) {
				i++
			}
			return s[:i], s[i:]
		}
		var sa, sb string
		sa, a = seg(a)
		sb, b = seg(b)
		if sb == "" {
			// Different segment types: a number is newer than letters.
			if num {
				return 1
			}
			return -1
		}
		if num {
			sa, sb = strings.TrimLeft(sa, "0"), strings.TrimLeft(sb, "0")
			if len(sa) != len(sb) {
				if len(sa) > len(sb) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
	}
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return -1
	}
	return 1
}

func rpmIsDigit(c byte) bool { return c >= '0' && c <= '9' }

// dnfChange is one package of a dnf transaction table.
type dnfChange struct {
	Action  string // upgrade, install, remove
	Name    string
	Arch    string
	EVR     string
	FromEVR string // the version replaced, when the table says
	Repo    string
}

// dnfTransaction is what `dnf upgrade --assumeno` would do.
type dnfTransaction struct {
	Changes []dnfChange
	// Table is set when a transaction table was seen; NothingToDo when dnf
	// said so. Neither: dnf failed before resolving (the error is in its
	// output).
	Table       bool
	NothingToDo bool
}

// dnfSectionAction maps a transaction table section to a change action;
// "" for sections that list no package changes (groups, modules, skipped
// packages). Downgrades and reinstalls cannot come from an upgrade but are
// reported as installs (of a version that is not an upgrade) should they
// appear, so they land among the extras to confirm.
func dnfSectionAction(header string) string {
	switch strings.TrimSuffix(header, ":") {
	case "Upgrading", "Updating", "Updating for dependencies", "Upgrading dependencies":
		return "upgrade"
	case "Installing", "Installing dependencies", "Installing weak dependencies", "Installing for dependencies",
		"Installing group/module packages", "Reinstalling", "Downgrading":
		return "install"
	case "Removing", "Removing dependent packages", "Removing unused dependencies", "Erasing",
		"Removing for dependencies", "Erasing for dependencies":
		return "remove"
	}
	return ""
}

// parseDNFTransaction reads the transaction table dnf 4, dnf 5 and yum
// print before asking for confirmation (or, with --assumeno, aborting):
//
//	Upgrading:
//	 openssl        x86_64  1:3.0.7-25.el9_3   baseos   1.2 M
//	     replacing  openssl-compat.x86_64 1:3.0.7-24.el9          (dnf 4 obsoletes)
//	 curl           x86_64  8.9.1-3.fc41       updates  793.9 KiB
//	                        8.9.1-2.fc41                          (dnf 5: the old version)
//	   replacing curl x86_64 8.9.1-2.fc41      <unknown> 796 KiB  (older dnf 5)
//	 qemu-img       x86_64  2:9.1.2-1.fc41 <- 2:9.1.1-2.fc41 …    (dnf 5, wide terminal)
//
// dnf 4 wraps a long package name onto a line of its own. The table ends
// at "Transaction Summary".
func parseDNFTransaction(out []byte) (dnfTransaction, error) {
	var p toolParseProblems
	var tx dnfTransaction
	section := ""
	done := false
	var pend []dnfCol
	pendLine := 0
	last := -1
	add := func(n int, cols []dnfCol, raw string) {
		c := dnfChange{Action: section, Name: cols[0].v, Arch: cols[1].v, EVR: cols[2].v, FromEVR: cols[2].old, Repo: cols[3].v}
		if !rpmArchRe.MatchString(c.Arch) || !rpmLooksLikeEVR(c.EVR) {
			p.add(n, "want NAME ARCH VERSION REPO", []byte(raw))
			return
		}
		if c.FromEVR != "" && !rpmLooksLikeEVR(c.FromEVR) {
			c.FromEVR = ""
		}
		tx.Changes = append(tx.Changes, c)
		last = len(tx.Changes) - 1
	}
	flush := func() {
		if pend != nil {
			p.add(pendLine, "wrapped package line never completed", []byte(pend[0].v))
			pend = nil
		}
	}
	eachToolLine(out, &p, func(n int, line string) {
		if done {
			return
		}
		t := strings.TrimSpace(line)
		switch {
		case t == "":
			flush()
			return
		case strings.HasPrefix(t, "Transaction Summary"):
			flush()
			done = true
			return
		case t == "Nothing to do." || t == "No packages marked for update":
			tx.NothingToDo = true
			return
		case strings.Trim(t, "=-") == "":
			return // rules
		}
		f := strings.Fields(t)
		if f[0] == "Package" && len(f) >= 4 && strings.HasPrefix(f[1], "Arch") {
			tx.Table = true
			return
		}
		if line[0] != ' ' && strings.HasSuffix(t, ":") {
			flush()
			section, last = dnfSectionAction(t), -1
			if section != "" {
				tx.Table = true
			}
			return
		}
		if section == "" || line[0] != ' ' {
			return
		}
		if f[0] == "replacing" {
			flush()
			dnfReplacing(&tx, section, last, f)
			return
		}
		cols := dnfCols(f)
		if pend != nil {
			pend = append(pend, cols...)
			if len(pend) >= 4 {
				add(pendLine, pend, strings.Join(f, " "))
				pend = nil
			}
			return
		}
		// Package rows start with one space. dnf 5 on a narrow terminal puts
		// the replaced version on a row of its own under the package
		// (name cell empty, so deeper indented): [ARCH] EVR [REPO] [SIZE].
		if strings.HasPrefix(line, "  ") {
			if last >= 0 {
				for _, c := range f[:min(2, len(f))] {
					if rpmLooksLikeEVR(c) {
						tx.Changes[last].FromEVR = c
						break
					}
				}
			}
			return
		}
		if len(cols) < 4 {
			pend, pendLine = cols, n
			return
		}
		add(n, cols, t)
	})
	flush()
	return tx, p.err("dnf transaction")
}

// dnfCol is one cell of a table row; old is set for dnf 5's "NEW <- OLD".
type dnfCol struct{ v, old string }

func dnfCols(f []string) []dnfCol {
	var cols []dnfCol
	for i := 0; i < len(f); i++ {
		if i+2 < len(f) && f[i+1] == "<-" {
			cols = append(cols, dnfCol{v: f[i], old: f[i+2]})
			i += 2
			continue
		}
		cols = append(cols, dnfCol{v: f[i]})
	}
	return cols
}

// dnfReplacing reads a "replacing" line: the same package at its old
// version (the upgrade's from-version) or an obsoleted package of another
// name (removed).
func dnfReplacing(tx *dnfTransaction, section string, last int, f []string) {
	var name, arch, evr string
	switch {
	case len(f) == 3: // dnf 4: replacing NAME.ARCH EVR
		n, a, ok := rpmSplitNA(f[1])
		if !ok {
			return
		}
		name, arch, evr = n, a, f[2]
	case len(f) >= 4: // dnf 5: replacing NAME ARCH EVR REPO SIZE
		name, arch, evr = f[1], f[2], f[3]
	default:
		return
	}
	if !rpmLooksLikeEVR(evr) || !rpmArchRe.MatchString(arch) {
		return
	}
	if last >= 0 && tx.Changes[last].Name == name && tx.Changes[last].Arch == arch {
		tx.Changes[last].FromEVR = evr
		return
	}
	if section == "" {
		return
	}
	tx.Changes = append(tx.Changes, dnfChange{Action: "remove", Name: name, Arch: arch, FromEVR: evr})
}

// RPM package names: letters, digits and _ + . -, not starting with '-' or
// '.'. Versions: [epoch:]version[-release] of letters, digits and . _ + ~ ^.
var (
	dnfNameRe    = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$`)
	dnfVersionRe = regexp.MustCompile(`^([0-9]+:)?[A-Za-z0-9][A-Za-z0-9._+~^]*(-[A-Za-z0-9._+~^]+)?$`)
)

// dnfItemProblem says why an item must not reach dnf ("" when fine).
func dnfItemProblem(name, version string) string {
	return toolItemProblem(name, version, dnfNameRe, "an RPM package name", dnfVersionRe, "an RPM [epoch:]version-release")
}

// dnfSpec is the NEVRA-style argument dnf reads as name-[epoch:]version-release.
func dnfSpec(it protocol.InstallItem) string {
	if it.Version == "" {
		return it.PackageName
	}
	return it.PackageName + "-" + it.Version
}

// Install implements Installer. A dry run is `dnf upgrade --assumeno
// NAME-VERSION…` (dnf resolves, prints the transaction and answers no):
// the table gives Changes, and Extras are the changes that are not
// upgrades of requested packages. A real install is `dnf -y upgrade …`,
// then rpm says which version of each package is installed and
// needs-restarting -r whether a reboot is due. The error is for "could not
// run": per-item failures are in Results.
func (d *DNF) Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (InstallResult, error) {
	valid, refused := toolCheckItems(items, protocol.PkgDNF, dnfItemProblem)
	res := InstallResult{Results: refused}
	if len(valid) == 0 {
		return res, nil
	}
	t, ok := d.tool()
	if !ok {
		res.Results = append(res.Results, mgrFailAll(valid, "neither dnf nor yum is installed on this machine")...)
		return res, fmt.Errorf("dnf: %w", ErrUnavailable)
	}
	specs := make([]string, 0, len(valid))
	for _, it := range valid {
		specs = append(specs, dnfSpec(it))
	}
	specs = mgrDedupe(specs)
	if dryRun {
		return d.simulateInstall(ctx, t, valid, specs, res)
	}

	sctx, cancel := mgrStepContext(ctx, d.o.Timeout)
	run, err := d.r.Run(sctx, t.bin, append([]string{"-y", "upgrade"}, specs...)...)
	cancel()
	res.Output, res.ExitCode = toolInstallOutput(run), run.ExitCode
	if err != nil && ctx.Err() != nil {
		res.Results = append(res.Results, mgrFailAll(valid, toolRunProblem(t.bin, run, err))...)
		return res, fmt.Errorf("%s upgrade: %w", t.bin, err)
	}
	qctx, qcancel := mgrStepContext(ctx, d.o.Timeout)
	installed, qerr := d.installed(qctx)
	qcancel()
	for _, it := range valid {
		res.Results = append(res.Results, dnfItemResult(it, t.bin, run, err, installed, qerr))
	}
	rctx, rcancel := mgrStepContext(ctx, d.o.Timeout)
	res.RebootRequired = d.rebootRequired(rctx, t)
	rcancel()
	return res, nil
}

func (d *DNF) simulateInstall(ctx context.Context, t dnfTool, valid []protocol.InstallItem, specs []string, res InstallResult) (InstallResult, error) {
	sctx, cancel := mgrStepContext(ctx, d.o.Timeout)
	defer cancel()
	run, err := d.r.Run(sctx, t.bin, append([]string{"upgrade", "--assumeno"}, specs...)...)
	res.Output, res.ExitCode = toolInstallOutput(run), run.ExitCode
	if err != nil {
		return res, fmt.Errorf("%s upgrade --assumeno: %w", t.bin, err)
	}
	// --assumeno makes dnf exit 1 ("Operation aborted") after a good plan,
	// so the output, not the exit code, says whether it resolved.
	tx, perr := parseDNFTransaction(run.Stdout)
	if !tx.Table && !tx.NothingToDo {
		msg := fmt.Sprintf("%s upgrade --assumeno exited %d without a transaction: %s", t.bin, run.ExitCode, toolFailureText(run))
		res.Results = append(res.Results, mgrFailAll(valid, msg)...)
		return res, errors.Join(errors.New(msg), perr)
	}
	if slices.ContainsFunc(tx.Changes, func(c dnfChange) bool { return c.Action == "upgrade" && c.FromEVR == "" }) {
		// Best effort: the from-versions make the plan readable.
		if installed, err := d.installed(sctx); err == nil {
			for i, c := range tx.Changes {
				if c.Action == "upgrade" && c.FromEVR == "" {
					tx.Changes[i].FromEVR = installed.current(c.Name, c.Arch)
				}
			}
		}
	}
	res.Changes, res.Extras = dnfChanges(tx.Changes, valid)
	if perr != nil {
		return res, fmt.Errorf("reading the dnf transaction: %w", perr)
	}
	return res, nil
}

// dnfChanges converts a transaction; extras are changes that are not
// upgrades of a requested package.
func dnfChanges(changes []dnfChange, requested []protocol.InstallItem) (all, extras []protocol.PackageChange) {
	for _, c := range changes {
		pc := protocol.PackageChange{PackageType: protocol.PkgDNF, PackageName: cleanText(c.Name, MaxNameLen),
			Action: c.Action, FromVersion: cleanText(c.FromEVR, MaxVersionLen), ToVersion: cleanText(c.EVR, MaxVersionLen)}
		if c.Action == "remove" {
			// A removal row shows the installed version in the version column.
			pc.ToVersion = ""
			if pc.FromVersion == "" {
				pc.FromVersion = cleanText(c.EVR, MaxVersionLen)
			}
		}
		all = append(all, pc)
		wanted := slices.ContainsFunc(requested, func(it protocol.InstallItem) bool { return it.PackageName == c.Name })
		if c.Action != "upgrade" || !wanted {
			extras = append(extras, pc)
		}
	}
	return all, extras
}

// dnfItemResult decides one item from what rpm says is installed now.
func dnfItemResult(it protocol.InstallItem, bin string, run Result, runErr error, installed rpmInstalled, qerr error) protocol.InstallItemResult {
	why := toolRunProblem(bin, run, runErr)
	if qerr != nil {
		return mgrFail(it, cleanText(strings.TrimPrefix(why+"; ", "; ")+"cannot tell the installed version: "+qerr.Error(), 1024))
	}
	have := installed.current(it.PackageName, "")
	if it.Version != "" {
		// Install-only packages (kernels) keep older versions: any
		// installed copy at the requested version counts.
		for _, v := range installed[it.PackageName] {
			if rpmCompareEVR(v, it.Version) == 0 {
				have = v
			}
		}
	}
	return toolItemVerdict(it, have, "rpm", why,
		func(have, want string) bool { return rpmCompareEVR(have, want) == 0 })
}

// rebootRequired runs needs-restarting -r (yum-utils/dnf-utils, or the dnf
// plugin): exit 1 with "Reboot is required" means a core package (kernel,
// glibc, systemd…) changed since boot. Anything else, including a missing
// plugin ("No such command", also exit 1), is no.
func (d *DNF) rebootRequired(ctx context.Context, t dnfTool) bool {
	bin, args := "needs-restarting", []string{"-r"}
	if _, err := d.r.LookPath(bin); err != nil {
		bin, args = t.bin, []string{"needs-restarting", "-r"}
	}
	res, err := d.r.Run(ctx, bin, args...)
	if err != nil {
		return false
	}
	return needsRestartingSaysReboot(res)
}

func needsRestartingSaysReboot(res Result) bool {
	return res.ExitCode == 1 && bytes.Contains(bytes.ToLower(res.Stdout), []byte("reboot is required"))
}
