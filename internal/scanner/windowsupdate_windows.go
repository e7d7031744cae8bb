//go:build windows

package scanner

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	ole "github.com/go-ole/go-ole"
	"github.com/go-ole/go-ole/oleutil"

	"github.com/redflaghq/redflag/internal/protocol"
)

// The Windows Update Agent through its COM automation interfaces
// (IUpdateSession, IUpdateSearcher, IUpdateDownloader, IUpdateInstaller,
// ISystemInformation), written from Microsoft's WUA API reference.
//
// Rules kept throughout: every COM call runs on one locked OS thread with
// COM initialised (withCOM), one WUA operation at a time; every IDispatch
// obtained is Released exactly once, every VARIANT holding a string is
// Cleared.

// wuSearchCriteria is what Scan and Install search for: software updates
// that are neither installed nor hidden by an admin. Drivers stay out
// (they are driver vendors' business and often unwanted).
const wuSearchCriteria = "IsInstalled=0 and IsHidden=0 and Type='Software'"

// WindowsUpdate is the windows_update scanner and installer.
type WindowsUpdate struct {
	// sem serialises WUA use; unlike a mutex, waiting for it respects the
	// caller's context.
	sem chan struct{}
}

// NewWindowsUpdate returns the windows_update scanner and installer.
func NewWindowsUpdate(_ Runner, _ Options) *WindowsUpdate {
	return &WindowsUpdate{sem: make(chan struct{}, 1)}
}

const (
	hrSFalse          = 0x00000001
	hrRPCEChangedMode = 0x80010106
)

// errWUAStillRunning: the caller gave up (context done) while a WUA call
// was running; it finishes in the background and releases the lock then.
var errWUAStillRunning = errors.New("the WUA call in progress is left to finish in the background")

// withCOM runs fn on its own locked OS thread with COM initialised. WUA's
// synchronous calls cannot be interrupted, so a cancelled context returns
// at once (wrapping errWUAStillRunning) and the call completes on its own.
func (w *WindowsUpdate) withCOM(ctx context.Context, fn func() error) error {
	select {
	case w.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("windows update: waiting for another WUA operation: %w", ctx.Err())
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-w.sem }()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		done <- runCOM(fn)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("windows update: %w: %w", ctx.Err(), errWUAStillRunning)
	}
}

// runCOM initialises COM on the current (locked) thread around fn.
func runCOM(fn func() error) (err error) {
	uninit := true
	if e := ole.CoInitializeEx(0, ole.COINIT_MULTITHREADED); e != nil {
		var oe *ole.OleError
		switch {
		case errors.As(e, &oe) && oe.Code() == hrSFalse:
			// Already initialised on this thread: still balance it.
		case errors.As(e, &oe) && oe.Code() == hrRPCEChangedMode:
			uninit = false // someone else's apartment: not ours to close
		default:
			return fmt.Errorf("windows update: CoInitializeEx: %w", e)
		}
	}
	if uninit {
		defer ole.CoUninitialize()
	}
	// go-ole panics on argument types it does not know; never take the
	// agent down with it.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("windows update: COM call panicked: %v", r)
		}
	}()
	return fn()
}

// createDispatch creates a COM object by ProgID and returns its IDispatch.
func createDispatch(progID string) (*ole.IDispatch, error) {
	unk, err := oleutil.CreateObject(progID)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", progID, err)
	}
	defer unk.Release()
	d, err := unk.QueryInterface(ole.IID_IDispatch)
	if err != nil {
		return nil, fmt.Errorf("%s: IDispatch: %w", progID, err)
	}
	return d, nil
}

// asDispatch takes the object out of a call's result; the reference the
// VARIANT held is then the caller's to Release.
func asDispatch(v *ole.VARIANT, err error, what string) (*ole.IDispatch, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	d := v.ToIDispatch()
	if d == nil {
		_ = v.Clear()
		return nil, fmt.Errorf("%s: not an object (VT %d)", what, v.VT)
	}
	return d, nil
}

func getDisp(d *ole.IDispatch, name string, args ...any) (*ole.IDispatch, error) {
	v, err := oleutil.GetProperty(d, name, args...)
	return asDispatch(v, err, name)
}

func callDisp(d *ole.IDispatch, name string, args ...any) (*ole.IDispatch, error) {
	v, err := oleutil.CallMethod(d, name, args...)
	return asDispatch(v, err, name+"()")
}

// callVoid calls a method whose result is not needed.
func callVoid(d *ole.IDispatch, name string, args ...any) error {
	v, err := oleutil.CallMethod(d, name, args...)
	if err != nil {
		return fmt.Errorf("%s(): %w", name, err)
	}
	_ = v.Clear()
	return nil
}

func putProp(d *ole.IDispatch, name string, val any) error {
	v, err := oleutil.PutProperty(d, name, val)
	if err != nil {
		return fmt.Errorf("setting %s: %w", name, err)
	}
	_ = v.Clear()
	return nil
}

func getString(d *ole.IDispatch, name string, args ...any) (string, error) {
	v, err := oleutil.GetProperty(d, name, args...)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	defer v.Clear()
	switch v.VT {
	case ole.VT_BSTR:
		return v.ToString(), nil
	case ole.VT_EMPTY, ole.VT_NULL:
		return "", nil
	}
	return "", fmt.Errorf("%s: not a string (VT %d)", name, v.VT)
}

func getInt(d *ole.IDispatch, name string, args ...any) (int64, error) {
	v, err := oleutil.GetProperty(d, name, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	defer v.Clear()
	n, err := variantInt(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// variantInt reads any integer VARIANT, including the DECIMAL WUA uses
// for sizes.
func variantInt(v *ole.VARIANT) (int64, error) {
	switch v.VT {
	case ole.VT_EMPTY, ole.VT_NULL:
		return 0, nil
	case ole.VT_DECIMAL:
		// A DECIMAL fills the VARIANT's first 16 bytes, its VT included.
		return decodeDecimal(*(*[16]byte)(unsafe.Pointer(v)))
	}
	switch x := v.Value().(type) {
	case int8:
		return int64(x), nil
	case uint8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case uint:
		return int64(x), nil
	case uint64:
		if x > 1<<62 {
			return 0, errors.New("integer out of range")
		}
		return int64(x), nil
	}
	return 0, fmt.Errorf("not an integer (VT %d)", v.VT)
}

func getBool(d *ole.IDispatch, name string) (bool, error) {
	v, err := oleutil.GetProperty(d, name)
	if err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	defer v.Clear()
	if b, ok := v.Value().(bool); ok {
		return b, nil
	}
	return false, fmt.Errorf("%s: not a boolean (VT %d)", name, v.VT)
}

// comReader keeps the first error, so reading a dozen properties stays
// readable.
type comReader struct{ err error }

func (r *comReader) str(d *ole.IDispatch, name string) string {
	if r.err != nil {
		return ""
	}
	s, err := getString(d, name)
	r.err = err
	return s
}

func (r *comReader) num(d *ole.IDispatch, name string) int64 {
	if r.err != nil {
		return 0
	}
	n, err := getInt(d, name)
	r.err = err
	return n
}

func (r *comReader) flag(d *ole.IDispatch, name string) bool {
	if r.err != nil {
		return false
	}
	b, err := getBool(d, name)
	r.err = err
	return b
}

// obj runs fn on a child object and releases it.
func (r *comReader) obj(d *ole.IDispatch, name string, fn func(*ole.IDispatch)) {
	if r.err != nil {
		return
	}
	c, err := getDisp(d, name)
	if err != nil {
		r.err = err
		return
	}
	defer c.Release()
	fn(c)
}

// each runs fn on every item of a collection property (Count/Item),
// refusing collections larger than limit.
func (r *comReader) each(d *ole.IDispatch, name string, limit int, fn func(item *ole.IDispatch, i int)) {
	r.obj(d, name, func(c *ole.IDispatch) {
		n := r.num(c, "Count")
		if r.err != nil {
			return
		}
		if n < 0 || n > int64(limit) {
			r.err = fmt.Errorf("%s: %d items", name, n)
			return
		}
		for i := 0; i < int(n) && r.err == nil; i++ {
			it, err := getDisp(c, "Item", i)
			if err != nil {
				r.err = err
				return
			}
			fn(it, i)
			it.Release()
		}
	})
}

// strs reads an IStringCollection property.
func (r *comReader) strs(d *ole.IDispatch, name string) []string {
	var out []string
	r.obj(d, name, func(c *ole.IDispatch) {
		n := r.num(c, "Count")
		if r.err != nil {
			return
		}
		if n < 0 || n > maxWUStrings {
			r.err = fmt.Errorf("%s: %d items", name, n)
			return
		}
		for i := 0; i < int(n) && r.err == nil; i++ {
			s, err := getString(c, "Item", i)
			r.err = err
			out = append(out, s)
		}
	})
	return out
}

// readWUUpdate reads the properties RedFlag uses of one IUpdate.
func readWUUpdate(u *ole.IDispatch) (wuUpdate, error) {
	var r comReader
	var w wuUpdate
	w.Title = r.str(u, "Title")
	r.obj(u, "Identity", func(id *ole.IDispatch) {
		w.Identity.UpdateID = r.str(id, "UpdateID")
		w.Identity.RevisionNumber = int32(r.num(id, "RevisionNumber"))
	})
	w.KBArticleIDs = r.strs(u, "KBArticleIDs")
	w.MsrcSeverity = r.str(u, "MsrcSeverity")
	r.obj(u, "InstallationBehavior", func(ib *ole.IDispatch) {
		w.InstallationBehavior.RebootBehavior = int32(r.num(ib, "RebootBehavior"))
	})
	w.MaxDownloadSize = r.num(u, "MaxDownloadSize")
	w.CveIDs = r.strs(u, "CveIDs")
	w.SecurityBulletinIDs = r.strs(u, "SecurityBulletinIDs")
	r.each(u, "Categories", maxWUCategories, func(c *ole.IDispatch, _ int) {
		w.Categories = append(w.Categories, wuCategory{Name: r.str(c, "Name"), Type: r.str(c, "Type"), CategoryID: r.str(c, "CategoryID")})
	})
	w.SupportURL = r.str(u, "SupportUrl")
	w.EulaAccepted = r.flag(u, "EulaAccepted")
	if r.err != nil {
		return wuUpdate{}, fmt.Errorf("reading update %q: %w", cleanText(w.Title, 120), r.err)
	}
	return w, nil
}

func releaseAll(ds []*ole.IDispatch) {
	for _, d := range ds {
		if d != nil {
			d.Release()
		}
	}
}

// newWUSession creates an IUpdateSession named after us in WUA's logs.
func newWUSession() (*ole.IDispatch, error) {
	s, err := createDispatch("Microsoft.Update.Session")
	if err != nil {
		return nil, err
	}
	_ = putProp(s, "ClientApplicationID", "RedFlag agent")
	return s, nil
}

// wuSearch runs the search and reads every update. The IUpdate objects
// are returned too (same order as the data), for the installer; the
// caller releases them. Updates that cannot be read are skipped and
// reported in readErr.
func wuSearch(session *ole.IDispatch) (us []wuUpdate, handles []*ole.IDispatch, readErr, err error) {
	searcher, err := callDisp(session, "CreateUpdateSearcher")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("windows update: %w", err)
	}
	defer searcher.Release()
	result, err := callDisp(searcher, "Search", wuSearchCriteria)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("windows update search: %w", err)
	}
	defer result.Release()
	code, err := getInt(result, "ResultCode")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("windows update search: %w", err)
	}
	if code != wuSucceeded && code != wuSucceededWithErrors {
		return nil, nil, nil, fmt.Errorf("windows update search %s", wuResultText(int(code)))
	}
	coll, err := getDisp(result, "Updates")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("windows update search: %w", err)
	}
	defer coll.Release()
	n, err := getInt(coll, "Count")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("windows update search: %w", err)
	}
	var errs []error
	if n > maxWUUpdates {
		errs = append(errs, fmt.Errorf("windows update: %d updates, only the first %d are read", n, maxWUUpdates))
		n = maxWUUpdates
	}
	for i := 0; i < int(n); i++ {
		u, err := getDisp(coll, "Item", i)
		if err != nil {
			releaseAll(handles)
			return nil, nil, nil, fmt.Errorf("windows update search: update %d: %w", i, err)
		}
		w, err := readWUUpdate(u)
		if err != nil {
			u.Release()
			errs = append(errs, err)
			continue
		}
		us = append(us, w)
		handles = append(handles, u)
	}
	return us, handles, errors.Join(errs...), nil
}

// Available implements Scanner: the WUA COM class is registered.
func (w *WindowsUpdate) Available(ctx context.Context) bool {
	select {
	case w.sem <- struct{}{}:
		<-w.sem
	default:
		return true // a WUA call is running right now, so WUA is here
	}
	return w.withCOM(ctx, func() error {
		_, err := ole.ClassIDFrom("Microsoft.Update.Session")
		return err
	}) == nil
}

// Scan implements Scanner. It searches online (Windows Update, Microsoft
// Update or the configured WSUS), which can take minutes.
func (w *WindowsUpdate) Scan(ctx context.Context) ([]protocol.Update, error) {
	var us []wuUpdate
	var readErr error
	err := w.withCOM(ctx, func() error {
		s, err := newWUSession()
		if err != nil {
			return fmt.Errorf("windows update: %w", err)
		}
		defer s.Release()
		var handles []*ole.IDispatch
		us, handles, readErr, err = wuSearch(s)
		releaseAll(handles)
		return err
	})
	if err != nil {
		return nil, err
	}
	ups, merr := mapWUUpdates(us)
	return ups, errors.Join(readErr, merr)
}

// opResults reads GetUpdateResult(k) of a download or installation
// result for every update k of the collection; idx maps k to the index
// into the searched updates.
func opResults(res *ole.IDispatch, idx []int, stage string, into map[int]wuOpResult) error {
	for k, j := range idx {
		ur, err := callDisp(res, "GetUpdateResult", k)
		if err != nil {
			return err
		}
		var r comReader
		code := r.num(ur, "ResultCode")
		hr := r.num(ur, "HResult")
		ur.Release()
		if r.err != nil {
			return r.err
		}
		into[j] = wuOpResult{Stage: stage, Code: int(code), HResult: int32(hr)}
	}
	return nil
}

// systemRebootRequired is ISystemInformation.RebootRequired: an install
// is waiting for a restart.
func systemRebootRequired() (bool, error) {
	si, err := createDispatch("Microsoft.Update.SystemInfo")
	if err != nil {
		return false, err
	}
	defer si.Release()
	return getBool(si, "RebootRequired")
}

// RebootPending reports whether Windows waits for a reboot to finish
// installing updates.
func (w *WindowsUpdate) RebootPending(ctx context.Context) (bool, error) {
	var rr bool
	err := w.withCOM(ctx, func() error {
		var err error
		rr, err = systemRebootRequired()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("windows update: reboot state: %w", err)
	}
	return rr, nil
}

// Install implements Installer: it searches again, picks the pending
// updates the items name (by KB or update id), accepts their EULAs (the
// admin's approval in RedFlag is that acceptance), downloads and
// installs them. A dry run lists the requested updates and changes
// nothing; WUA has no dependency resolution to preview.
func (w *WindowsUpdate) Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (InstallResult, error) {
	var res InstallResult
	err := w.withCOM(ctx, func() error {
		s, err := newWUSession()
		if err != nil {
			return fmt.Errorf("windows update: %w", err)
		}
		defer s.Release()
		us, handles, readErr, err := wuSearch(s)
		defer releaseAll(handles)
		if err != nil {
			return err
		}
		var out []string
		if readErr != nil {
			out = append(out, "warning: "+readErr.Error())
		}
		sel := wuSelect(us, items)
		if dryRun {
			res.Changes = wuChanges(us, sel, nil)
			res.Results = wuMissing(items, sel)
			for _, c := range res.Changes {
				out = append(out, "would install "+c.PackageName+" (revision "+c.ToVersion+")")
			}
			res.Output = strings.Join(out, "\n")
			return nil
		}
		todo := wuToInstall(sel)
		results := map[int]wuOpResult{}
		if len(todo) > 0 {
			if err := wuDownloadInstall(s, us, handles, todo, results, &res); err != nil {
				return err
			}
		}
		res.Results = wuItemResults(us, items, sel, results)
		res.Changes = wuChanges(us, sel, results)
		for _, j := range todo {
			out = append(out, fmt.Sprintf("%s: %s", cleanText(us[j].Title, 200), results[j]))
		}
		res.Output = strings.Join(out, "\n")
		return nil
	})
	if errors.Is(err, errWUAStillRunning) {
		// The closure still owns res: report nothing of it.
		return InstallResult{}, err
	}
	if err != nil {
		return res, err
	}
	for _, r := range res.Results {
		if r.Status != "installed" {
			res.ExitCode = 1
		}
	}
	return res, nil
}

// wuDownloadInstall downloads and installs the updates todo (indexes
// into us/handles), filling results and res.RebootRequired.
func wuDownloadInstall(s *ole.IDispatch, us []wuUpdate, handles []*ole.IDispatch, todo []int, results map[int]wuOpResult, res *InstallResult) error {
	coll, err := createDispatch("Microsoft.Update.UpdateColl")
	if err != nil {
		return fmt.Errorf("windows update: %w", err)
	}
	defer coll.Release()
	for _, j := range todo {
		if !us[j].EulaAccepted {
			if err := callVoid(handles[j], "AcceptEula"); err != nil {
				return fmt.Errorf("windows update: accepting the licence of %q: %w", cleanText(us[j].Title, 120), err)
			}
		}
		if err := callVoid(coll, "Add", handles[j]); err != nil {
			return fmt.Errorf("windows update: %w", err)
		}
	}

	dl, err := callDisp(s, "CreateUpdateDownloader")
	if err != nil {
		return fmt.Errorf("windows update: %w", err)
	}
	defer dl.Release()
	if err := putProp(dl, "Updates", coll); err != nil {
		return fmt.Errorf("windows update download: %w", err)
	}
	dres, err := callDisp(dl, "Download")
	if err != nil {
		return fmt.Errorf("windows update download: %w", err)
	}
	defer dres.Release()
	downloaded := map[int]wuOpResult{}
	if err := opResults(dres, todo, "download", downloaded); err != nil {
		return fmt.Errorf("windows update download: %w", err)
	}
	anyDownloaded := false
	for _, j := range todo {
		if r := downloaded[j]; r.Code == wuSucceeded || r.Code == wuSucceededWithErrors {
			anyDownloaded = true
		} else {
			results[j] = r
		}
	}
	if !anyDownloaded {
		return nil
	}

	inst, err := callDisp(s, "CreateUpdateInstaller")
	if err != nil {
		return fmt.Errorf("windows update: %w", err)
	}
	defer inst.Release()
	busy, err := getBool(inst, "IsBusy")
	if err != nil {
		return fmt.Errorf("windows update install: %w", err)
	}
	if busy {
		return errors.New("windows update install: another installation is in progress; try again later")
	}
	if err := putProp(inst, "Updates", coll); err != nil {
		return fmt.Errorf("windows update install: %w", err)
	}
	// IUpdateInstaller2: no UI even if an update would ask for one.
	_ = putProp(inst, "ForceQuiet", true)
	ires, err := callDisp(inst, "Install")
	if err != nil {
		return fmt.Errorf("windows update install: %w", err)
	}
	defer ires.Release()
	installed := map[int]wuOpResult{}
	if err := opResults(ires, todo, "install", installed); err != nil {
		return fmt.Errorf("windows update install: %w", err)
	}
	for j, r := range installed {
		if _, failedDownload := results[j]; !failedDownload {
			results[j] = r
		}
	}
	reboot, err := getBool(ires, "RebootRequired")
	if err != nil {
		return fmt.Errorf("windows update install: %w", err)
	}
	if !reboot {
		// The install result speaks for these updates only; the system
		// may still wait for a restart from earlier installs.
		reboot, _ = systemRebootRequired()
	}
	res.RebootRequired = reboot
	return nil
}
