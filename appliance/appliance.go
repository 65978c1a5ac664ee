// Package appliance wires a validated config into the things commands and
// the daemon work with: locations, the master key, tenant repositories,
// tenant locks and database engines. It holds no business logic of its
// own; it only knows which concrete backend a config entry means.
package appliance

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/config"
	"github.com/kluis-nl/kluis/repo"
	"github.com/kluis-nl/kluis/repo/deadline"
	"github.com/kluis-nl/kluis/repo/local"
	"github.com/kluis-nl/kluis/repo/s3"
	"github.com/kluis-nl/kluis/secretfile"
)

// Appliance is a loaded config plus the resources derived from it.
type Appliance struct {
	Cfg *config.Config
	Log *slog.Logger
	Now func() time.Time

	masterOnce sync.Once
	master     repo.MasterKey
	masterErr  error
}

// New returns an Appliance for a validated config.
func New(cfg *config.Config, log *slog.Logger) *Appliance {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Appliance{Cfg: cfg, Log: log, Now: time.Now}
}

// StateDir is the appliance's local state directory.
func (a *Appliance) StateDir() string { return a.Cfg.Resolve(a.Cfg.Appliance.StateDir) }

// TimeZone is the appliance's time zone (validated by config).
func (a *Appliance) TimeZone() *time.Location {
	tz, err := time.LoadLocation(a.Cfg.Appliance.TimeZone)
	if err != nil {
		return time.UTC
	}
	return tz
}

// Locations opens every configured location, each operation bounded by
// policy.location_timeout (repo/deadline): a hung endpoint fails its
// operations after that long, and is then skipped for a cool-off, so it
// costs a job seconds, not the whole job.
func (a *Appliance) Locations() ([]repo.Location, error) {
	out := make([]repo.Location, 0, len(a.Cfg.Locations))
	for _, l := range a.Cfg.Locations {
		loc, err := OpenLocation(a.Cfg, l)
		if err != nil {
			return nil, err
		}
		state := deadline.StateFor(l.Name+"\x00"+l.Endpoint+"\x00"+l.Bucket+"\x00"+l.Prefix+"\x00"+a.Cfg.Resolve(l.Path), l.Name)
		out = append(out, deadline.New(loc, deadline.Options{Timeout: a.Cfg.Policy.LocationTimeout.D(), State: state}))
	}
	return out, nil
}

// OpenLocation opens one configured location.
func OpenLocation(cfg *config.Config, l config.Location) (repo.Location, error) {
	switch l.Type {
	case "dir":
		return local.New(l.Name, cfg.Resolve(l.Path)), nil
	case "s3":
		o := s3.Options{Name: l.Name, Endpoint: l.Endpoint, Region: l.Region, Bucket: l.Bucket, Prefix: l.Prefix,
			PathStyle: l.PathStyle, AccessKeyIDFile: cfg.Resolve(l.AccessKeyIDFile),
			SecretAccessKeyFile: cfg.Resolve(l.SecretAccessKeyFile), CAFile: cfg.Resolve(l.CAFile)}
		if ol := l.ObjectLock; ol != nil {
			o.Lock = &s3.Lock{Mode: ol.Mode, Days: ol.Days}
		}
		return s3.New(context.Background(), o)
	}
	return nil, fmt.Errorf("location %s: unsupported type %q", l.Name, l.Type)
}

// MasterKey loads the master key once.
func (a *Appliance) MasterKey() (repo.MasterKey, error) {
	a.masterOnce.Do(func() {
		a.master, a.masterErr = repo.LoadMasterKey(a.Cfg.Resolve(a.Cfg.Appliance.MasterKeyFile))
		if adv := a.missingMasterKeyAdvice(); adv != "" && errors.Is(a.masterErr, fs.ErrNotExist) {
			a.masterErr = fmt.Errorf("%w; %s", a.masterErr, adv)
		} else {
			a.masterErr = a.KeyFileError(a.masterErr)
		}
	})
	return a.master, a.masterErr
}

func (a *Appliance) repoOptions() (repo.Options, error) {
	mk, err := a.MasterKey()
	if err != nil {
		return repo.Options{}, err
	}
	signer, err := a.keyFileSigner()
	if err != nil {
		return repo.Options{}, err
	}
	return repo.Options{
		Master: mk, RecoveryRecipient: a.Cfg.Appliance.RecoveryRecipient,
		PackSize: int64(a.Cfg.Policy.PackSize), Logger: a.Log, Now: a.Now,
		Ledger: a.Ledger(),
		Signer: signer,
		// Snapshot start times, so that finding the latest snapshot opens
		// one manifest however long the history (repo/snaptimes.go).
		CacheDir: filepath.Join(a.StateDir(), "cache"),
	}, nil
}

// ChunkParams returns the chunker parameters a new repository of tenant t
// gets; the repository's config records them, so an existing repository
// keeps its own (docs/format.md, "Chunk size"). policy.chunk_average, when
// set, decides for every tenant (min avg/4, max avg×8). Otherwise a
// PostgreSQL tenant, whose tables with a primary key are stored as row
// deltas after the first night, gets chunk.RowDeltaParams: there the
// chunk size no longer decides the increment, and larger chunks compress
// better and cost less metadata. Every other engine stores whole tables
// every night and keeps chunk.DefaultParams, as does a PostgreSQL tenant
// under policy.delta_max_steps -1 (no row deltas).
//
// A PostgreSQL tenant's chunks end at row ends (chunk.CutRows, whatever
// the size): its table streams are COPY text, one row per line.
func (a *Appliance) ChunkParams(t *config.Tenant) chunk.Params {
	p := chunk.DefaultParams
	if t.Engine == "postgres" && a.Cfg.Policy.DeltaMaxSteps >= 0 {
		p = chunk.RowDeltaParams
	}
	if avg := uint(a.Cfg.Policy.ChunkAverage); avg != 0 {
		p = chunk.Params{Min: avg / 4, Avg: avg, Max: min(avg*8, chunk.MaxChunkSize)}
	}
	if t.Engine == "postgres" {
		p.Cut = chunk.CutRows
	}
	return p
}

// OpenRepo opens a tenant's repository.
func (a *Appliance) OpenRepo(ctx context.Context, tenant string) (*repo.Repo, error) {
	if _, err := a.Cfg.Tenant(tenant); err != nil {
		return nil, err
	}
	return a.OpenGoneRepo(ctx, tenant)
}

// OpenGoneRepo opens the repository of a tenant id whether or not the
// config (or discovery) still has it: the daemon applies retention to the
// snapshots of a tenant that is gone (daemon.GoneTenants).
func (a *Appliance) OpenGoneRepo(ctx context.Context, tenant string) (*repo.Repo, error) {
	opts, err := a.repoOptions()
	if err != nil {
		return nil, err
	}
	locs, err := a.Locations()
	if err != nil {
		return nil, err
	}
	return repo.Open(ctx, tenant, locs, opts)
}

// InitRepo creates a tenant's repository at every location.
func (a *Appliance) InitRepo(ctx context.Context, tenant string) (*repo.Repo, []repo.LocationResult, error) {
	t, err := a.Cfg.Tenant(tenant)
	if err != nil {
		return nil, nil, err
	}
	opts, err := a.repoOptions()
	if err != nil {
		return nil, nil, err
	}
	opts.Chunker = a.ChunkParams(t)
	locs, err := a.Locations()
	if err != nil {
		return nil, nil, err
	}
	for _, l := range locs {
		if c, ok := repo.As[interface{ Create() error }](l); ok {
			if err := c.Create(); err != nil {
				a.Log.Warn("cannot create location root", "location", l.Name(), "err", err)
			}
		}
	}
	return repo.Init(ctx, tenant, locs, opts)
}

// OpenOrInitRepo opens a tenant's repository, creating it at its first
// backup (a newly discovered tenant).
func (a *Appliance) OpenOrInitRepo(ctx context.Context, tenant string) (*repo.Repo, error) {
	r, err := a.OpenRepo(ctx, tenant)
	if errors.Is(err, repo.ErrNotFound) {
		var res []repo.LocationResult
		r, res, err = a.InitRepo(ctx, tenant)
		if err == nil {
			a.Log.Info("created repository", "tenant", tenant)
		}
		for _, lr := range res {
			if !lr.OK {
				a.Log.Warn("repository not created at a location", "tenant", tenant, "location", lr.Location, "err", lr.Error)
			}
		}
	}
	return r, err
}

// BackupOptions are the repo.BackupOptions the configuration sets, for
// every backup the appliance takes (the CLI's, the daemon's, the demo's).
func (a *Appliance) BackupOptions() repo.BackupOptions {
	return repo.BackupOptions{Appliance: a.Cfg.Appliance.ID, DeltaMaxSteps: a.Cfg.Policy.DeltaMaxSteps, ResealAbove: a.Cfg.Policy.ResealAbove()}
}

// FinishReseal deletes the old packs a committed backup's re-seal
// superseded (repo.Repo.DropResealed), under the tenant's exclusive lock,
// waiting at most a minute for it: the caller must have released its own.
// What it did, or why not, goes into res.Reseal; the old packs it leaves
// are unindexed, and prune removes them.
func (a *Appliance) FinishReseal(ctx context.Context, r *repo.Repo, tenant string, res *repo.Result) {
	if res == nil || !res.Reseal.HasOld() {
		return
	}
	rs := res.Reseal
	start := time.Now()
	defer func() { rs.DropSeconds = time.Since(start).Seconds() }()
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	lock, err := a.Lock(lctx, tenant, true)
	cancel()
	if err != nil {
		rs.DropError = fmt.Sprintf("%v: the old packs stay until prune", err)
		a.Log.Warn("re-sealed packs: the old ones are left for prune", "tenant", tenant, "err", err)
		return
	}
	defer lock.Unlock()
	n, err := r.DropResealed(ctx, rs)
	rs.Dropped = n
	if err != nil {
		rs.DropError = fmt.Sprintf("%v: the old packs stay until prune", err)
		a.Log.Warn("re-sealed packs: the old ones are left for prune", "tenant", tenant, "err", err)
	}
}

// Lock takes a tenant's lock (see repo.LockTenant).
func (a *Appliance) Lock(ctx context.Context, tenant string, exclusive bool) (*repo.Lock, error) {
	return repo.LockTenant(ctx, a.StateDir(), tenant, exclusive)
}

// ReadDSN reads a tenant's DSN file. The DSN is a secret: it is never
// logged, and errors about it name the file, not its contents.
func ReadDSN(path string) (string, error) {
	// secretfile: no symbolic link, owned by the kluis user, mode 0600,
	// a directory nobody else can write, checked on the descriptor read.
	b, err := secretfile.Read(path, 64<<10)
	if err != nil {
		return "", fmt.Errorf("dsn_file: %w", err)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("dsn_file %s is empty", path)
	}
	return dsn, nil
}

// HistoryFile is where the appliance records backup results.
func (a *Appliance) HistoryFile() string { return filepath.Join(a.StateDir(), "history.jsonl") }
