package scanner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Recreating a container on a newly pulled image (opt-in, see
// Docker.Install): the Engine API has no "replace image", so the container
// is rebuilt from its inspect output.

// recreatePlan is what planRecreate derives from a container's inspect.
type recreatePlan struct {
	OldID      string
	Name       string
	WasRunning bool
	// StopTimeout is the container's own stop timeout in seconds.
	StopTimeout int
	// Body is the POST /containers/create body.
	Body map[string]any
	// Extra are networks to connect after create (name → EndpointConfig):
	// create takes one network on older daemons.
	Extra     map[string]map[string]json.RawMessage
	ExtraKeys []string
}

// imageDefaultKeys are Config fields that come from the image unless the
// container overrode them. Copying the old image's value into the new
// container would pin it, so a field equal to the old image's is left out.
var imageDefaultKeys = []string{"Cmd", "Entrypoint", "WorkingDir", "User", "StopSignal", "Healthcheck", "Shell", "OnBuild", "ArgsEscaped"}

// planRecreate builds the create request for a copy of the container
// described by containerJSON (GET /containers/{id}/json), whose image
// was imageJSON (GET /images/{id}/json of the image it runs now).
func planRecreate(containerJSON, imageJSON []byte) (recreatePlan, error) {
	var c struct {
		ID              string                     `json:"Id"`
		Name            string                     `json:"Name"`
		Config          map[string]json.RawMessage `json:"Config"`
		HostConfig      map[string]json.RawMessage `json:"HostConfig"`
		NetworkSettings struct {
			Networks map[string]map[string]json.RawMessage `json:"Networks"`
		} `json:"NetworkSettings"`
		Mounts []struct {
			Type        string `json:"Type"`
			Name        string `json:"Name"`
			Destination string `json:"Destination"`
			RW          bool   `json:"RW"`
		} `json:"Mounts"`
		State struct {
			Running bool `json:"Running"`
		} `json:"State"`
	}
	if err := json.Unmarshal(containerJSON, &c); err != nil {
		return recreatePlan{}, fmt.Errorf("container inspect: %w", err)
	}
	var img struct {
		Config map[string]json.RawMessage `json:"Config"`
	}
	if err := json.Unmarshal(imageJSON, &img); err != nil {
		return recreatePlan{}, fmt.Errorf("image inspect: %w", err)
	}
	if !containerIDRe.MatchString(c.ID) {
		return recreatePlan{}, fmt.Errorf("container inspect: bad id %q", cleanText(c.ID, 80))
	}
	name := strings.TrimPrefix(c.Name, "/")
	if !containerNameRe.MatchString(name) {
		return recreatePlan{}, fmt.Errorf("container inspect: bad name %q", cleanText(c.Name, 80))
	}
	if c.Config == nil || c.HostConfig == nil {
		return recreatePlan{}, errors.New("container inspect: no Config or HostConfig")
	}
	var labels map[string]string
	_ = json.Unmarshal(c.Config["Labels"], &labels)
	if labels["com.docker.swarm.service.id"] != "" {
		return recreatePlan{}, errors.New("the container is a swarm service task: update the service instead")
	}
	p := recreatePlan{OldID: c.ID, Name: name, WasRunning: c.State.Running, StopTimeout: 10, Extra: map[string]map[string]json.RawMessage{}}
	var st int
	if json.Unmarshal(c.Config["StopTimeout"], &st) == nil && st > 0 && st <= 3600 {
		p.StopTimeout = st
	}

	body := map[string]any{}
	for k, v := range c.Config {
		body[k] = v
	}
	imgCfg := img.Config
	for _, k := range imageDefaultKeys {
		if v, ok := c.Config[k]; ok && jsonEqual(v, imgCfg[k]) {
			delete(body, k)
		}
	}
	// Env: keep what the container added; the image's entries come back
	// from the new image.
	var env, imgEnv []string
	if json.Unmarshal(c.Config["Env"], &env) == nil && env != nil {
		_ = json.Unmarshal(imgCfg["Env"], &imgEnv)
		kept := []string{}
		for _, e := range env {
			if !slices.Contains(imgEnv, e) {
				kept = append(kept, e)
			}
		}
		body["Env"] = kept
	}
	var imgLabels map[string]string
	_ = json.Unmarshal(imgCfg["Labels"], &imgLabels)
	if labels != nil {
		kept := map[string]string{}
		for k, v := range labels {
			if iv, ok := imgLabels[k]; !ok || iv != v {
				kept[k] = v
			}
		}
		body["Labels"] = kept
	}
	for _, k := range []string{"ExposedPorts", "Volumes"} {
		var m, im map[string]json.RawMessage
		if json.Unmarshal(c.Config[k], &m) != nil || m == nil {
			continue
		}
		_ = json.Unmarshal(imgCfg[k], &im)
		kept := map[string]json.RawMessage{}
		for key, v := range m {
			if _, ok := im[key]; !ok {
				kept[key] = v
			}
		}
		body[k] = kept
	}
	// Docker sets the hostname to the short id unless one was given.
	var hostname string
	if json.Unmarshal(c.Config["Hostname"], &hostname) == nil && hostname == c.ID[:12] {
		delete(body, "Hostname")
	}

	hc, err := carryAnonymousVolumes(c.HostConfig, c.Mounts)
	if err != nil {
		return recreatePlan{}, err
	}
	body["HostConfig"] = hc

	var mode string
	_ = json.Unmarshal(c.HostConfig["NetworkMode"], &mode)
	nets := c.NetworkSettings.Networks
	if len(nets) > 0 && mode != "host" && mode != "none" && !strings.HasPrefix(mode, "container:") {
		names := make([]string, 0, len(nets))
		for n := range nets {
			if !networkNameRe.MatchString(n) {
				return recreatePlan{}, fmt.Errorf("container inspect: bad network name %q", cleanText(n, 80))
			}
			names = append(names, n)
		}
		sort.Strings(names)
		primary := names[0]
		if _, ok := nets[mode]; ok {
			primary = mode
		} else if _, ok := nets["bridge"]; ok && (mode == "default" || mode == "") {
			primary = "bridge"
		}
		body["NetworkingConfig"] = map[string]any{"EndpointsConfig": map[string]any{primary: endpointConfig(primary, nets[primary], c.ID)}}
		for _, n := range names {
			if n != primary {
				p.Extra[n] = endpointConfig(n, nets[n], c.ID)
				p.ExtraKeys = append(p.ExtraKeys, n)
			}
		}
	}
	p.Body = body
	return p, nil
}

// endpointConfig keeps the user's settings of a network endpoint and
// drops what the daemon assigned (ids, addresses, the old short id alias).
func endpointConfig(network string, ep map[string]json.RawMessage, oldID string) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for _, k := range []string{"IPAMConfig", "DriverOpts"} {
		if v, ok := ep[k]; ok && string(v) != "null" {
			out[k] = v
		}
	}
	// The default bridge has no aliases or links of its own.
	if network == "bridge" {
		return out
	}
	if v, ok := ep["Links"]; ok && string(v) != "null" {
		out["Links"] = v
	}
	var aliases []string
	if json.Unmarshal(ep["Aliases"], &aliases) == nil && len(aliases) > 0 {
		kept := []string{}
		for _, a := range aliases {
			if a != oldID[:12] && a != oldID {
				kept = append(kept, a)
			}
		}
		if b, err := json.Marshal(kept); err == nil && len(kept) > 0 {
			out["Aliases"] = b
		}
	}
	return out
}

// carryAnonymousVolumes adds the container's anonymous volumes to
// HostConfig.Mounts, so their data follows it instead of being left in a
// volume nobody uses.
func carryAnonymousVolumes(hostConfig map[string]json.RawMessage, mounts []struct {
	Type        string `json:"Type"`
	Name        string `json:"Name"`
	Destination string `json:"Destination"`
	RW          bool   `json:"RW"`
}) (map[string]json.RawMessage, error) {
	hc := map[string]json.RawMessage{}
	for k, v := range hostConfig {
		hc[k] = v
	}
	taken := map[string]bool{}
	var binds []string
	_ = json.Unmarshal(hostConfig["Binds"], &binds)
	for _, b := range binds {
		parts := strings.Split(b, ":")
		// src:dst[:opts]; a Windows source can hold a drive colon, so the
		// destination is the last part that starts with a path separator.
		for i := len(parts) - 1; i >= 1; i-- {
			if strings.HasPrefix(parts[i], "/") || strings.HasPrefix(parts[i], `\`) {
				taken[parts[i]] = true
				break
			}
		}
	}
	var hm []map[string]any
	if v, ok := hostConfig["Mounts"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &hm); err != nil {
			return nil, fmt.Errorf("container inspect: HostConfig.Mounts: %w", err)
		}
	}
	for _, m := range hm {
		if t, ok := m["Target"].(string); ok {
			taken[t] = true
		}
	}
	added := false
	for _, m := range mounts {
		if m.Type != "volume" || !imageIDHexRe.MatchString(m.Name) || m.Destination == "" || taken[m.Destination] {
			continue
		}
		hm = append(hm, map[string]any{"Type": "volume", "Source": m.Name, "Target": m.Destination, "ReadOnly": !m.RW})
		taken[m.Destination] = true
		added = true
	}
	if added {
		b, err := json.Marshal(hm)
		if err != nil {
			return nil, fmt.Errorf("encoding mounts: %w", err)
		}
		hc["Mounts"] = b
	}
	return hc, nil
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// recreate replaces container id with a copy running newImageID's tag.
// Every step after the old container stopped is undone on failure.
func (d *Docker) recreate(ctx context.Context, eng *engineClient, id, newImageID string, timeout time.Duration) error {
	ci, raw, err := eng.inspectContainer(ctx, id)
	if err != nil {
		return err
	}
	if ci.ImageID == newImageID {
		return nil
	}
	_, imgRaw, err := eng.inspectImage(ctx, ci.ImageID)
	if err != nil {
		return fmt.Errorf("inspecting the current image: %w", err)
	}
	p, err := planRecreate(raw, imgRaw)
	if err != nil {
		return err
	}
	oldName := p.Name + "-redflag-old"
	if len(oldName) > 255 {
		oldName = p.Name[:200] + "-redflag-old"
	}

	var stopped, renamed bool
	var newID string
	// rollback runs even when ctx was cancelled: a half-done replace is
	// worse than either state.
	rollback := func(cause error) error {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		errs := []error{cause}
		if newID != "" {
			if _, err := eng.call(rctx, http.MethodDelete, "/containers/"+newID, url.Values{"force": {"1"}}, nil, maxEngineError); err != nil {
				errs = append(errs, fmt.Errorf("rollback: removing new container: %w", err))
			}
		}
		if renamed {
			if _, err := eng.call(rctx, http.MethodPost, "/containers/"+p.OldID+"/rename", url.Values{"name": {p.Name}}, nil, maxEngineError); err != nil {
				errs = append(errs, fmt.Errorf("rollback: renaming old container back: %w", err))
			}
		}
		if stopped && p.WasRunning {
			if err := ignoreNotModified(eng.call(rctx, http.MethodPost, "/containers/"+p.OldID+"/start", nil, nil, maxEngineError)); err != nil {
				errs = append(errs, fmt.Errorf("rollback: starting old container: %w", err))
			}
		}
		if len(errs) == 1 {
			return fmt.Errorf("%w (rolled back: the old container runs again)", cause)
		}
		return errors.Join(errs...)
	}

	sctx, cancel := context.WithTimeout(ctx, time.Duration(p.StopTimeout)*time.Second+engineRequestTimeout)
	err = ignoreNotModified(eng.callNoTimeout(sctx, http.MethodPost, "/containers/"+p.OldID+"/stop", url.Values{"t": {strconv.Itoa(p.StopTimeout)}}, nil, maxEngineError))
	cancel()
	stopped = true // even a failed stop may have stopped it
	if err != nil {
		return rollback(fmt.Errorf("stopping: %w", err))
	}
	if _, err := eng.call(ctx, http.MethodPost, "/containers/"+p.OldID+"/rename", url.Values{"name": {oldName}}, nil, maxEngineError); err != nil {
		return rollback(fmt.Errorf("renaming aside: %w", err))
	}
	renamed = true
	b, err := eng.call(ctx, http.MethodPost, "/containers/create", url.Values{"name": {p.Name}}, p.Body, maxEngineInspect)
	if err != nil {
		return rollback(fmt.Errorf("creating: %w", err))
	}
	var created struct {
		ID string `json:"Id"`
	}
	if err := json.Unmarshal(b, &created); err != nil || !containerIDRe.MatchString(created.ID) {
		return rollback(fmt.Errorf("creating: bad answer %q", cleanText(string(b), 200)))
	}
	newID = created.ID
	for _, n := range p.ExtraKeys {
		body := map[string]any{"Container": newID, "EndpointConfig": p.Extra[n]}
		if _, err := eng.call(ctx, http.MethodPost, "/networks/"+n+"/connect", nil, body, maxEngineError); err != nil {
			return rollback(fmt.Errorf("connecting network %s: %w", n, err))
		}
	}
	if p.WasRunning {
		stx, cancel := context.WithTimeout(ctx, timeout)
		err := ignoreNotModified(eng.callNoTimeout(stx, http.MethodPost, "/containers/"+newID+"/start", nil, nil, maxEngineError))
		cancel()
		if err != nil {
			return rollback(fmt.Errorf("starting: %w", err))
		}
	}
	// The new container runs; failing to remove the old one only leaves
	// a stopped container behind.
	if _, err := eng.call(ctx, http.MethodDelete, "/containers/"+p.OldID, nil, nil, maxEngineError); err != nil {
		d.log().Warn("docker: recreated container, but could not remove the old one", "container", p.Name, "old", oldName, "err", err)
	}
	return nil
}

// ignoreNotModified treats 304 (already started/stopped) as success.
func ignoreNotModified(_ []byte, err error) error {
	var ee *EngineError
	if errors.As(err, &ee) && ee.Status == http.StatusNotModified {
		return nil
	}
	return err
}
