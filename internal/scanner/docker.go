package scanner

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redflaghq/redflag/internal/protocol"
)

// Docker reports running containers whose image tag has moved on in its
// registry, and pulls (optionally: recreates) them.
//
// Scan: the running containers come from the Engine API on the local
// socket; for each distinct image reference they were started with
// (Config.Image), the registry's current digest of the tag is read ONCE
// per scan with a HEAD on the manifest (never a pull, never a GET: HEADs
// do not count against Docker Hub's pull limits). A container whose
// image's RepoDigests do not contain that digest is out of date.
// Containers started from a digest-pinned reference, from an image id or
// from a locally built image (no RepoDigests) are skipped with a log note:
// there is no tag to follow.
//
// An update: package_name the image reference in its familiar form
// ("nginx:1.27"), current_version/available_version the running and the
// registry digests, severity unknown (registries publish none), metadata
// the containers using it.
//
// Credentials: Docker's config.json "auths" (Options.DockerConfig, else
// $DOCKER_CONFIG, else ~/.docker/config.json of the agent's user). Not
// supported (those registries are queried anonymously): credential
// helpers, identity tokens. Windows: the default named pipe is a follow-up
// (ErrNpipeUnsupported); a unix socket works.
type Docker struct {
	opts Options
	// Log gets notes on skipped containers. Credentials are never logged.
	Log *slog.Logger

	// Seams for tests; NewDocker sets the real ones.
	dockerHost      string
	goos            string
	registryBase    func(apiHost string) (*url.URL, error)
	registryHTTP    *http.Client
	registryTimeout time.Duration
	sleep           func(ctx context.Context, d time.Duration) error
}

// NewDocker returns the docker scanner and installer. The Runner is not
// used: everything goes through the Engine API and registry HTTP, so no
// command line is ever built.
func NewDocker(_ Runner, o Options) *Docker {
	return &Docker{
		opts:         o,
		dockerHost:   os.Getenv("DOCKER_HOST"),
		goos:         runtime.GOOS,
		registryBase: defaultRegistryBase,
		registryHTTP: newRegistryHTTPClient(),
		sleep:        sleepCtx,
	}
}

// Name implements Scanner and Installer.
func (d *Docker) Name() string { return protocol.PkgDocker }

func (d *Docker) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.Default()
}

// Available reports whether the engine's socket (or pipe) exists. A
// configured endpoint we cannot use still counts as available, so the
// scan reports why instead of silently skipping Docker.
func (d *Docker) Available(context.Context) bool {
	ep, err := resolveDockerEndpoint(d.opts.DockerSocket, d.dockerHost, d.goos)
	if err != nil {
		return true
	}
	_, err = os.Stat(ep.Address)
	return err == nil
}

func (d *Docker) engine() (*engineClient, error) {
	ep, err := resolveDockerEndpoint(d.opts.DockerSocket, d.dockerHost, d.goos)
	if err != nil {
		return nil, err
	}
	return newEngineClient(ep)
}

// auths loads registry credentials; a broken config.json is logged and
// the scan goes on anonymously (public images still resolve).
func (d *Docker) auths() map[string]registryAuth {
	a, err := loadDockerAuths(dockerConfigPath(d.opts.DockerConfig))
	if err != nil {
		d.log().Warn("docker: ignoring registry credentials", "err", err)
		return map[string]registryAuth{}
	}
	return a
}

func (d *Docker) registry(auths map[string]registryAuth) *registryClient {
	return &registryClient{hc: d.registryHTTP, base: d.registryBase, auths: auths, sleep: d.sleep, timeout: d.registryTimeout,
		tokens: map[string]string{}, challenges: map[string]authChallenge{}}
}

// runningContainer is one running container of an imageGroup.
type runningContainer struct {
	ID      string
	Name    string
	ImageID string
	// Digests are the image's RepoDigests for the group's repository.
	Digests []string
}

// imageGroup is the running containers started from one image reference.
type imageGroup struct {
	Ref        imageRef
	Containers []runningContainer
}

// runningImages groups the running containers by the reference they were
// started with. Per-container problems are returned as errs and do not
// stop the others.
func (d *Docker) runningImages(ctx context.Context, eng *engineClient) ([]*imageGroup, []error) {
	list, err := eng.listContainers(ctx)
	if err != nil {
		return nil, []error{fmt.Errorf("listing containers: %w", err)}
	}
	var errs []error
	images := map[string]imageInfo{}
	groups := map[string]*imageGroup{}
	for _, c := range list {
		if c.State != "" && c.State != "running" {
			continue
		}
		ci, _, err := eng.inspectContainer(ctx, c.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("inspecting container %s: %w", c.ID[:12], err))
			continue
		}
		if !ci.Running {
			continue
		}
		ref, err := parseImageRef(ci.ConfigImage)
		switch {
		case startedByID(ci.ConfigImage, ci.ImageID):
			d.log().Info("docker: skipping container started from an image id", "container", ci.Name)
			continue
		case err != nil:
			d.log().Info("docker: skipping container not started from a registry reference", "container", ci.Name, "image", cleanText(ci.ConfigImage, 200))
			continue
		case ref.Digest != "":
			d.log().Info("docker: skipping container pinned by digest", "container", ci.Name, "image", ref.Familiar())
			continue
		}
		img, ok := images[ci.ImageID]
		if !ok {
			img, _, err = eng.inspectImage(ctx, ci.ImageID)
			if err != nil {
				errs = append(errs, fmt.Errorf("inspecting image of container %s: %w", ci.Name, err))
				continue
			}
			images[ci.ImageID] = img
		}
		digests := ref.repoDigests(img.RepoDigests)
		if len(digests) == 0 {
			d.log().Info("docker: skipping container whose image has no registry digest (built or loaded locally)", "container", ci.Name, "image", ref.Familiar())
			continue
		}
		sort.Strings(digests)
		g := groups[ref.String()]
		if g == nil {
			g = &imageGroup{Ref: ref}
			groups[ref.String()] = g
		}
		g.Containers = append(g.Containers, runningContainer{ID: ci.ID, Name: ci.Name, ImageID: ci.ImageID, Digests: digests})
	}
	out := make([]*imageGroup, 0, len(groups))
	for _, g := range groups {
		sort.Slice(g.Containers, func(i, j int) bool { return g.Containers[i].Name < g.Containers[j].Name })
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref.String() < out[j].Ref.String() })
	return out, errs
}

// startedByID reports whether Config.Image is the image's id (full,
// "sha256:"-prefixed or a short prefix) rather than a reference.
func startedByID(configImage, imageID string) bool {
	hex := strings.TrimPrefix(imageID, "sha256:")
	s := strings.TrimPrefix(configImage, "sha256:")
	return len(s) >= 12 && strings.HasPrefix(hex, s)
}

// outdated returns the containers whose image is not the registry's digest.
func (g *imageGroup) outdated(remote string) []runningContainer {
	var out []runningContainer
	for _, c := range g.Containers {
		if !slices.Contains(c.Digests, remote) {
			out = append(out, c)
		}
	}
	return out
}

// dockerUpdate builds the Update for a group whose outdated containers
// are stale against the registry digest remote.
func dockerUpdate(g *imageGroup, stale []runningContainer, remote string) protocol.Update {
	var names, ids []string
	for _, c := range stale {
		names = append(names, c.Name)
		if !slices.Contains(ids, c.ImageID) {
			ids = append(ids, c.ImageID)
		}
	}
	return protocol.Update{
		PackageType:      protocol.PkgDocker,
		PackageName:      g.Ref.Familiar(),
		CurrentVersion:   stale[0].Digests[0],
		AvailableVersion: remote,
		Severity:         protocol.SevUnknown,
		Source:           g.Ref.Domain,
		Metadata: map[string]string{
			"containers": strings.Join(names, ", "),
			"image_id":   strings.Join(ids, ", "),
			"registry":   g.Ref.Domain,
			"repository": g.Ref.Path,
			"tag":        g.Ref.Tag,
		},
	}
}

// Scan implements Scanner.
func (d *Docker) Scan(ctx context.Context) ([]protocol.Update, error) {
	eng, err := d.engine()
	if err != nil {
		return nil, err
	}
	defer eng.close()
	groups, errs := d.runningImages(ctx, eng)
	if len(groups) == 0 {
		return nil, errors.Join(errs...)
	}
	rc := d.registry(d.auths())
	var ups []protocol.Update
	for _, g := range groups {
		if ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("docker scan stopped: %w", ctx.Err()))
			break
		}
		remote, err := rc.digest(ctx, g.Ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		stale := g.outdated(remote)
		if len(stale) == 0 {
			continue
		}
		u := dockerUpdate(g, stale, remote)
		// Say when the new image is already here and only the containers
		// lag behind (pulled without recreate_containers).
		if img, _, err := eng.inspectImage(ctx, g.Ref.String()); err == nil && slices.Contains(g.Ref.repoDigests(img.RepoDigests), remote) {
			u.Metadata["new_image_pulled"] = "true"
		}
		ups = append(ups, u)
	}
	return ups, errors.Join(errs...)
}

// registryAuthHeader is the X-Registry-Auth value the daemon needs to
// pull a private image (it does not read config.json itself).
func registryAuthHeader(ref imageRef, auths map[string]registryAuth) string {
	a, ok := auths[strings.ToLower(ref.Domain)]
	if !ok {
		return ""
	}
	server := ref.Domain
	if server == dockerHubDomain {
		server = "https://index.docker.io/v1/"
	}
	b, _ := json.Marshal(map[string]string{"username": a.Username, "password": a.Password, "serveraddress": server})
	return base64.URLEncoding.EncodeToString(b)
}

// Install implements Installer: it pulls each requested image reference
// through the Engine API. A pull error in the progress stream fails the
// item.
//
// Recreating containers is opt-in (Options.RecreateContainers): a pulled
// image changes nothing that runs. When on, every running container
// started from the reference and not yet on the new image is replaced:
// stop it, rename it aside, create a container of the same name and
// configuration (the image's own defaults as of the old image are left
// out, so the new image's apply; anonymous volumes are carried over),
// connect its other networks, start it, and remove the old one. If
// create, connect or start fails, the new container is removed and the
// old one renamed back and started again. Swarm service tasks are left
// to swarm.
//
// A dry run changes nothing: it reports the pulls (and, with
// RecreateContainers, the containers) that would happen.
func (d *Docker) Install(ctx context.Context, items []protocol.InstallItem, dryRun bool) (InstallResult, error) {
	var res InstallResult
	var out []string
	type job struct {
		item protocol.InstallItem
		ref  imageRef
	}
	var jobs []job
	for _, it := range items {
		ref, err := parseImageRef(it.PackageName)
		if err == nil && ref.Digest != "" {
			err = errors.New("pinned by digest: nothing to pull")
		}
		if err != nil {
			res.Results = append(res.Results, protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "failed",
				Message: fmt.Sprintf("%s: %v", cleanText(it.PackageName, 200), err)})
			continue
		}
		jobs = append(jobs, job{it, ref})
	}
	finish := func() (InstallResult, error) {
		res.Output = Tail(strings.Join(out, "\n"), 64<<10)
		res.ExitCode = 0
		for _, r := range res.Results {
			if r.Status != "installed" {
				res.ExitCode = 1
			}
		}
		return res, nil
	}
	if len(jobs) == 0 {
		return finish()
	}
	eng, err := d.engine()
	if err != nil {
		return res, err
	}
	defer eng.close()
	groups, gerrs := d.runningImages(ctx, eng)
	for _, e := range gerrs {
		out = append(out, "warning: "+e.Error())
	}
	byRef := map[string]*imageGroup{}
	for _, g := range groups {
		byRef[g.Ref.String()] = g
	}

	if dryRun {
		for _, j := range jobs {
			ch := protocol.PackageChange{PackageType: protocol.PkgDocker, PackageName: j.ref.Familiar(), Action: "upgrade", ToVersion: j.item.Version}
			line := "would pull " + j.ref.Familiar()
			if g := byRef[j.ref.String()]; g != nil {
				// Containers already on the approved digest stay as they are.
				stale := g.Containers
				if digestRe.MatchString(j.item.Version) {
					stale = g.outdated(j.item.Version)
				}
				if len(stale) > 0 {
					ch.FromVersion = stale[0].Digests[0]
					if d.opts.RecreateContainers {
						line += "; would recreate containers: " + containerNames(stale)
					} else {
						line += "; containers keep running the current image (recreate_containers is off): " + containerNames(stale)
					}
				}
			}
			res.Changes = append(res.Changes, ch)
			out = append(out, line)
		}
		return finish()
	}

	auths := d.auths()
	timeout := d.opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	for _, j := range jobs {
		r := d.installOne(ctx, eng, j.ref, j.item, byRef[j.ref.String()], auths, timeout, &out)
		res.Results = append(res.Results, r)
		if r.Status == "installed" {
			ch := protocol.PackageChange{PackageType: protocol.PkgDocker, PackageName: j.ref.Familiar(), Action: "upgrade", ToVersion: r.InstalledVersion}
			if g := byRef[j.ref.String()]; g != nil {
				if stale := g.outdated(r.InstalledVersion); len(stale) > 0 {
					ch.FromVersion = stale[0].Digests[0]
				}
			}
			res.Changes = append(res.Changes, ch)
		}
	}
	return finish()
}

func containerNames(cs []runningContainer) string {
	names := make([]string, len(cs))
	for i, c := range cs {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// installOne pulls one reference and, when asked, recreates its containers.
func (d *Docker) installOne(ctx context.Context, eng *engineClient, ref imageRef, it protocol.InstallItem, g *imageGroup,
	auths map[string]registryAuth, timeout time.Duration, out *[]string) protocol.InstallItemResult {
	fail := func(err error) protocol.InstallItemResult {
		*out = append(*out, fmt.Sprintf("%s: failed: %v", ref.Familiar(), err))
		return protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "failed", Message: cleanText(err.Error(), 1000)}
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	pr, err := eng.pull(pctx, ref, registryAuthHeader(ref, auths))
	cancel()
	*out = append(*out, pr.Lines...)
	if err != nil {
		return fail(err)
	}
	img, _, err := eng.inspectImage(ctx, ref.String())
	if err != nil {
		return fail(fmt.Errorf("inspecting pulled image: %w", err))
	}
	digest := pr.Digest
	if ds := ref.repoDigests(img.RepoDigests); digest == "" && len(ds) > 0 {
		digest = ds[0]
	}
	msg := "pulled " + ref.Familiar() + " " + digest
	if it.Version != "" && digest != "" && it.Version != digest {
		msg += fmt.Sprintf(" (the tag moved again since the scan: approved %s)", cleanText(it.Version, 80))
	}
	var stale []runningContainer
	if g != nil {
		for _, c := range g.Containers {
			if c.ImageID != img.ID {
				stale = append(stale, c)
			}
		}
	}
	switch {
	case len(stale) == 0:
	case !d.opts.RecreateContainers:
		msg += "; still on the previous image until recreated (recreate_containers is off): " + containerNames(stale)
	default:
		var failed []string
		var errs []error
		for _, c := range stale {
			if err := d.recreate(ctx, eng, c.ID, img.ID, timeout); err != nil {
				failed = append(failed, c.Name)
				errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
				*out = append(*out, fmt.Sprintf("recreating %s failed: %v", c.Name, err))
				continue
			}
			*out = append(*out, "recreated "+c.Name+" on "+ref.Familiar())
		}
		if len(errs) > 0 {
			return fail(fmt.Errorf("image pulled, but recreating %s failed: %w", strings.Join(failed, ", "), errors.Join(errs...)))
		}
		msg += "; recreated: " + containerNames(stale)
	}
	*out = append(*out, msg)
	return protocol.InstallItemResult{UpdateID: it.UpdateID, Status: "installed", InstalledVersion: digest, Message: cleanText(msg, 1000)}
}
