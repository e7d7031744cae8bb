package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/redflaghq/redflag/internal/auth"
	"github.com/redflaghq/redflag/internal/events"
	"github.com/redflaghq/redflag/internal/protocol"
	"github.com/redflaghq/redflag/internal/store"
)

// Bounds of a scan report.
const (
	MaxReportUpdates  = 20000
	MaxScanErrors     = 64
	MaxCVEsPerUpdate  = 1000
	MaxMetadataKeys   = 64
	MaxUpdateIDs      = 10000
	maxScanIntervalS  = 30 * 24 * 3600
	maxPackageNameLen = 512
)

// updateReportBody is the body of POST /api/v1/agents/{id}/reports/updates
// as decoded: "updates" stays raw, since the report hash is the SHA-256 of
// its exact bytes (protocol.UpdateReport is the documented shape).
type updateReportBody struct {
	Scanner         string               `json:"scanner"`
	ScannedAt       time.Time            `json:"scanned_at"`
	Updates         json.RawMessage      `json:"updates"`
	Errors          []protocol.ScanError `json:"errors"`
	UnchangedHash   string               `json:"unchanged_hash"`
	IntervalSeconds int                  `json:"interval_seconds"`
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validateUpdateReport checks a decoded report and turns it into the
// store's form (without agent, signer and time). A full report's updates
// are decoded strictly here; the hash is taken over their bytes as received.
func validateUpdateReport(b *updateReportBody) (store.UpdateReport, *apiError) {
	var rep store.UpdateReport
	if !slices.Contains(protocol.PackageTypes, b.Scanner) {
		return rep, errf(http.StatusBadRequest, "invalid_field", "Field \"scanner\" must be one of %s.", strings.Join(protocol.PackageTypes, ", "))
	}
	if b.ScannedAt.IsZero() {
		return rep, errf(http.StatusBadRequest, "missing_field", "Field \"scanned_at\" is required (RFC 3339).")
	}
	if b.IntervalSeconds < 0 || b.IntervalSeconds > maxScanIntervalS {
		return rep, errf(http.StatusBadRequest, "invalid_field", "Field \"interval_seconds\" must be from 0 (not said) to %d.", maxScanIntervalS)
	}
	if len(b.Errors) > MaxScanErrors {
		return rep, errf(http.StatusBadRequest, "invalid_field", "A report lists at most %d errors.", MaxScanErrors)
	}
	for i, se := range b.Errors {
		if se.Scanner != "" && se.Scanner != b.Scanner {
			return rep, errf(http.StatusBadRequest, "invalid_field", "errors[%d].scanner must be the report's scanner %q.", i, b.Scanner)
		}
		if err := protocol.CheckText(se.Message, 4096, true); err != nil || strings.TrimSpace(se.Message) == "" {
			return rep, errf(http.StatusBadRequest, "invalid_field", "errors[%d].message must be text of 1 to 4096 bytes without control characters.", i)
		}
		rep.Errors = append(rep.Errors, se.Message)
	}
	full := len(b.Updates) > 0 && !bytes.Equal(b.Updates, []byte("null"))
	if b.UnchangedHash != "" {
		if full {
			return rep, errf(http.StatusBadRequest, "invalid_field", "A report carries either \"updates\" or \"unchanged_hash\", not both.")
		}
		if len(b.Errors) > 0 {
			return rep, errf(http.StatusBadRequest, "invalid_field", "A report with errors cannot be unchanged; send the errors with the updates found, if any.")
		}
		if !isLowerHex64(b.UnchangedHash) {
			return rep, errf(http.StatusBadRequest, "invalid_field", "Field \"unchanged_hash\" must be 64 lowercase hexadecimal characters (a SHA-256).")
		}
	} else if !full && len(b.Errors) == 0 {
		return rep, errf(http.StatusBadRequest, "missing_field", "A report needs \"updates\" (an array, possibly empty), \"unchanged_hash\" or \"errors\".")
	}
	rep.Scanner, rep.ScannedAt, rep.IntervalSeconds, rep.UnchangedHash = b.Scanner, b.ScannedAt, b.IntervalSeconds, b.UnchangedHash
	if !full {
		return rep, nil
	}
	if b.Updates[0] != '[' {
		return rep, errf(http.StatusBadRequest, "invalid_type", "Field \"updates\" must be of JSON type array.")
	}
	var ups []protocol.Update
	if e := decodeJSONReader(bytes.NewReader(b.Updates), MaxReportBodyBytes, &ups); e != nil {
		e.Message = "updates: " + e.Message
		return rep, e
	}
	if len(ups) > MaxReportUpdates {
		return rep, errf(http.StatusBadRequest, "too_many_updates", "A report lists at most %d updates; this one has %d.", MaxReportUpdates, len(ups))
	}
	seen := make(map[string]bool, len(ups))
	rep.Full, rep.Updates = true, make([]store.UpdateInput, len(ups))
	for i, u := range ups {
		if e := validateUpdate(i, u, b.Scanner); e != nil {
			return rep, e
		}
		if seen[u.PackageName] {
			return rep, errf(http.StatusBadRequest, "duplicate_package", "updates[%d]: package %q is listed twice.", i, truncateText(u.PackageName, 80))
		}
		seen[u.PackageName] = true
		rep.Updates[i] = store.UpdateInput{PackageType: u.PackageType, PackageName: u.PackageName, CurrentVersion: u.CurrentVersion,
			AvailableVersion: u.AvailableVersion, Severity: u.Severity, Source: u.Source, CVEIDs: u.CVEIDs, SizeBytes: u.SizeBytes,
			RequiresReboot: u.RequiresReboot, Metadata: u.Metadata}
	}
	rep.Hash = protocol.UpdatesHash(b.Updates)
	return rep, nil
}

func validateUpdate(i int, u protocol.Update, scanner string) *apiError {
	name := func(f string) string { return fmt.Sprintf("updates[%d].%s", i, f) }
	if u.PackageType != scanner {
		return errf(http.StatusBadRequest, "invalid_field", "Field %q must be the report's scanner %q.", name("package_type"), scanner)
	}
	if !slices.Contains(protocol.Severities, u.Severity) {
		return errf(http.StatusBadRequest, "invalid_field", "Field %q must be one of %s.", name("severity"), strings.Join(protocol.Severities, ", "))
	}
	if u.SizeBytes < 0 {
		return errf(http.StatusBadRequest, "invalid_field", "Field %q cannot be negative.", name("size_bytes"))
	}
	if len(u.CVEIDs) > MaxCVEsPerUpdate || len(u.Metadata) > MaxMetadataKeys {
		return errf(http.StatusBadRequest, "invalid_field", "updates[%d] may list at most %d CVE ids and %d metadata keys.", i, MaxCVEsPerUpdate, MaxMetadataKeys)
	}
	checks := []*apiError{
		field(name("package_name"), u.PackageName, maxPackageNameLen, true),
		field(name("current_version"), u.CurrentVersion, 255, false),
		field(name("available_version"), u.AvailableVersion, 255, false),
		field(name("source"), u.Source, 255, false),
	}
	for _, c := range u.CVEIDs {
		checks = append(checks, field(name("cve_ids"), c, 64, true))
	}
	for k, v := range u.Metadata {
		checks = append(checks, field(name("metadata")+" key", k, 64, true), field(name("metadata."+truncateText(k, 64)), v, 1024, false))
	}
	return firstErr(checks...)
}

// signerOnce builds the store's command signer for install commands: the
// params are protocol.InstallUpdatesParams, marshalled compact and
// HTML-escaped (what is signed is what is sent), signed like every command.
// The expiry setting is read once, on first use.
func (a *API) signerOnce(ctx context.Context, createdBy string) store.CommandSigner {
	var once sync.Once
	var expiry time.Duration
	var loadErr error
	return func(agentID, typ string, items []store.InstallItem, dryRun bool) (store.CommandRecord, error) {
		once.Do(func() {
			set, err := a.d.Store.LoadSettings(ctx, a.d.DefaultSettings)
			expiry, loadErr = time.Duration(set.CommandExpirySeconds)*time.Second, err
		})
		if loadErr != nil {
			return store.CommandRecord{}, loadErr
		}
		p := protocol.InstallUpdatesParams{Updates: make([]protocol.InstallItem, len(items)), DryRun: dryRun}
		for i, it := range items {
			p.Updates[i] = protocol.InstallItem{UpdateID: it.UpdateID, PackageType: it.PackageType, PackageName: it.PackageName, Version: it.Version}
		}
		b, err := json.Marshal(p) // compact, with <, > and & escaped like the response encoder does
		if err != nil {
			return store.CommandRecord{}, err
		}
		return a.signCommands([]string{agentID}, typ, b, createdBy, expiry)[0], nil
	}
}

func (a *API) publish(cmds []store.CommandRecord) {
	if len(cmds) == 0 {
		return
	}
	ids := make([]string, len(cmds))
	for i, c := range cmds {
		ids[i] = c.AgentID
	}
	if a.d.Hub != nil {
		a.d.Hub.Publish(ids...)
	}
	a.publishQueued(cmds[0].Type, ids)
}

// publishQueued tells the dashboard commands were queued: one event per
// request, naming at most 100 of the agents.
func (a *API) publishQueued(typ string, agentIDs []string) {
	if len(agentIDs) == 0 {
		return
	}
	a.d.Stream.Publish(events.CommandQueued, map[string]any{"type": typ, "count": len(agentIDs), "agent_ids": agentIDs[:min(len(agentIDs), 100)]})
}

// isInstallCommand: its result moves updates.
func isInstallCommand(typ string) bool {
	return typ == protocol.CmdInstallUpdates || typ == protocol.CmdConfirmDependencies || typ == protocol.CmdRollbackUpdate
}

func (a *API) updateReport(w http.ResponseWriter, r *http.Request, ag store.AgentAuth) {
	var body updateReportBody
	if e := decodeJSON(w, r, MaxReportBodyBytes, &body); e != nil {
		writeError(w, e)
		return
	}
	rep, e := validateUpdateReport(&body)
	if e != nil {
		writeError(w, e)
		return
	}
	rep.AgentID, rep.Now, rep.Sign = ag.ID, a.d.Now(), a.signerOnce(r.Context(), "system")
	out, err := a.d.Store.IngestUpdateReport(r.Context(), rep)
	switch {
	case errors.Is(err, store.ErrReportHashUnknown):
		writeError(w, errf(http.StatusConflict, "report_hash_unknown", "The server does not hold a report with this hash for scanner %s; send the full report.", rep.Scanner))
		return
	case errors.Is(err, store.ErrInvalid):
		writeError(w, errf(http.StatusBadRequest, "invalid_field", "%s.", strings.TrimSuffix(err.Error(), ": "+store.ErrInvalid.Error())))
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	a.publish(out.Commands)
	a.d.Stream.Publish(events.ScanReported, map[string]string{"agent_id": ag.ID, "scanner": rep.Scanner})
	a.d.Stream.Publish(events.UpdatesChanged, map[string]string{"agent_id": ag.ID})
	writeJSON(w, http.StatusOK, protocol.UpdateReportResponse{Hash: out.Hash})
}

func (a *API) listUpdates(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	pg, e := parsePage(r)
	if e != nil {
		writeError(w, e)
		return
	}
	q := r.URL.Query()
	f := store.UpdateFilter{AgentID: strings.ToLower(q.Get("agent_id")), Severity: q.Get("severity"), PackageType: q.Get("package_type"),
		Status: q.Get("status"), Query: q.Get("q"), Sort: q.Get("sort"), Page: pg}
	bad := func(format string, args ...any) {
		writeError(w, errf(http.StatusBadRequest, "invalid_query", format, args...))
	}
	if _, err := uuid.Parse(f.AgentID); f.AgentID != "" && (err != nil || len(f.AgentID) != 36) {
		bad("agent_id must be an agent UUID.")
		return
	}
	if f.Severity != "" && !slices.Contains(protocol.Severities, f.Severity) {
		bad("severity must be one of %s.", strings.Join(protocol.Severities, ", "))
		return
	}
	if f.PackageType != "" && !slices.Contains(protocol.PackageTypes, f.PackageType) {
		bad("package_type must be one of %s.", strings.Join(protocol.PackageTypes, ", "))
		return
	}
	if f.Status != "" && f.Status != store.UpdateStatusOpen && !slices.Contains(store.UpdateStatuses, f.Status) {
		bad("status must be one of %s, or open.", strings.Join(store.UpdateStatuses, ", "))
		return
	}
	if e := field("q", f.Query, 255, false); e != nil {
		e.Code = "invalid_query"
		writeError(w, e)
		return
	}
	if _, ok := store.SortableUpdateFields[trimDash(f.Sort)]; f.Sort != "" && !ok {
		keys := make([]string, 0, len(store.SortableUpdateFields))
		for k := range store.SortableUpdateFields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		bad("sort must be one of %s, optionally prefixed with '-'.", strings.Join(keys, ", "))
		return
	}
	ups, total, err := a.d.Store.ListUpdates(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list[store.UpdateRecord]{Items: ups, Total: total, NextCursor: nextCursor(pg, len(ups), total)})
}

func (a *API) getUpdate(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	id, e := pathID(r)
	if e != nil {
		writeError(w, e)
		return
	}
	u, err := a.d.Store.GetUpdate(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// updateIDsRequest is the body of reject, ignore and confirm.
type updateIDsRequest struct {
	UpdateIDs []string `json:"update_ids"`
}

// approveRequest is the body of approve: dry_run queues install_updates as
// a dry run first.
type approveRequest struct {
	UpdateIDs []string `json:"update_ids"`
	DryRun    bool     `json:"dry_run"`
}

// validateUpdateIDs returns the ids, lower case and deduplicated.
func validateUpdateIDs(ids []string) ([]string, *apiError) {
	if len(ids) == 0 || len(ids) > MaxUpdateIDs {
		return nil, errf(http.StatusBadRequest, "invalid_field", "Field \"update_ids\" must list 1 to %d updates.", MaxUpdateIDs)
	}
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		u, err := uuid.Parse(id)
		if err != nil || len(id) != 36 {
			return nil, errf(http.StatusBadRequest, "invalid_field", "update_ids must be update UUIDs; %q is not.", truncateText(id, 40))
		}
		s := u.String()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

func (a *API) approveUpdates(w http.ResponseWriter, r *http.Request, p auth.Principal) {
	var req approveRequest
	if e := decodeJSON(w, r, MaxBodyBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	a.actOnUpdates(w, r, p, store.ActionApprove, req.UpdateIDs, req.DryRun)
}

func (a *API) updateAction(action string) func(http.ResponseWriter, *http.Request, auth.Principal) {
	return func(w http.ResponseWriter, r *http.Request, p auth.Principal) {
		var req updateIDsRequest
		if e := decodeJSON(w, r, MaxBodyBytes, &req); e != nil {
			writeError(w, e)
			return
		}
		a.actOnUpdates(w, r, p, action, req.UpdateIDs, false)
	}
}

func (a *API) actOnUpdates(w http.ResponseWriter, r *http.Request, p auth.Principal, action string, rawIDs []string, dryRun bool) {
	ids, e := validateUpdateIDs(rawIDs)
	if e != nil {
		writeError(w, e)
		return
	}
	audit := p.Audit("update."+action, "update", "", clientIP(r))
	if len(ids) == 1 {
		audit.TargetID = ids[0]
	}
	res, err := a.d.Store.ActOnUpdates(r.Context(), store.UpdateActionParams{Action: action, IDs: ids, DryRun: dryRun,
		Actor: p.User.Username, Sign: a.signerOnce(r.Context(), p.User.Username), Audit: audit, Now: a.d.Now()})
	var unknown *store.UnknownUpdatesError
	var state *store.UpdateStateError
	switch {
	case errors.As(err, &unknown):
		writeError(w, errf(http.StatusNotFound, "unknown_updates", "%d of the update ids name no update: %s.", len(unknown.IDs), listSome(unknown.IDs, 20)))
		return
	case errors.As(err, &state):
		items := make([]string, len(state.Items))
		for i, it := range state.Items {
			items[i] = it.ID + " (" + it.Status + ")"
		}
		writeError(w, errf(http.StatusConflict, "invalid_update_state", "%d update(s) cannot be %s from their status: %s.", len(state.Items),
			actionDone[action], listSome(items, 20)))
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	a.publish(res.Commands)
	writeJSON(w, http.StatusOK, res)
}

var actionDone = map[string]string{store.ActionApprove: "approved", store.ActionReject: "rejected", store.ActionIgnore: "ignored",
	store.ActionConfirm: "confirmed"}

func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}

// cleanText makes agent text safe to keep: valid UTF-8, control characters
// turned into spaces (line breaks and tabs kept where multiline), at most
// max bytes.
func cleanText(s string, max int, multiline bool) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case multiline && (r == '\n' || r == '\t'):
			return r
		case r == utf8.RuneError:
			return -1
		case unicode.IsControl(r):
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) > max {
		s = s[:max]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// Bounds of what an install result keeps.
const (
	maxInstallResults = 20000
	maxExtras         = 1000
)

// installOutcome reads the details of a result as protocol.InstallDetails,
// leniently (other command types have other details), and cleans every
// text it keeps. nil when the details are absent or not that shape.
func installOutcome(details json.RawMessage) *store.InstallOutcome {
	if len(details) == 0 || bytes.Equal(bytes.TrimSpace(details), []byte("null")) {
		return nil
	}
	var d protocol.InstallDetails
	if json.Unmarshal(details, &d) != nil {
		return nil
	}
	o := &store.InstallOutcome{DryRun: d.DryRun, RebootRequired: d.RebootRequired}
	for _, r := range d.Results[:min(len(d.Results), maxInstallResults)] {
		id, err := uuid.Parse(r.UpdateID)
		if err != nil {
			continue
		}
		o.Results = append(o.Results, store.InstallItemOutcome{UpdateID: id.String(), Status: cleanText(r.Status, 32, false),
			InstalledVersion: cleanText(r.InstalledVersion, 255, false), Message: cleanText(r.Message, 4096, true)})
	}
	if len(d.Extras) > 0 {
		ex := make([]protocol.PackageChange, 0, min(len(d.Extras), maxExtras))
		for _, c := range d.Extras[:min(len(d.Extras), maxExtras)] {
			ex = append(ex, protocol.PackageChange{PackageType: cleanText(c.PackageType, 32, false), PackageName: cleanText(c.PackageName, maxPackageNameLen, false),
				Action: cleanText(c.Action, 32, false), FromVersion: cleanText(c.FromVersion, 255, false), ToVersion: cleanText(c.ToVersion, 255, false)})
		}
		if b, err := json.Marshal(ex); err == nil {
			o.Extras, o.HasExtras = b, true
		}
	}
	return o
}
