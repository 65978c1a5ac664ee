package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kluis-nl/kluis/repo"
)

// DirResult reports a restore into a directory.
type DirResult struct {
	Snapshot string   `json:"snapshot"`
	Files    []string `json:"files"`
	Bytes    int64    `json:"bytes"`
}

// ToDir writes every stream of a snapshot to dir/NAME (a stream name with
// slashes becomes subdirectories). Each file is written under a temporary
// name and renamed into place only when its every blob has verified, so a
// failed restore leaves no file that looks complete. Existing files are
// not overwritten.
func ToDir(ctx context.Context, r *repo.Repo, snap repo.SnapshotInfo, dir string, progress func(done, total int64)) (*DirResult, error) {
	m := snap.Manifest
	res := &DirResult{Snapshot: snap.ID.String()}
	total := m.Bytes()
	var targets []string
	for _, s := range m.Streams {
		p, err := streamPath(dir, s.Name)
		if err != nil {
			return nil, err
		}
		if _, err := os.Lstat(p); err == nil {
			return nil, fmt.Errorf("%s exists: refusing to overwrite", p)
		}
		targets = append(targets, p)
	}
	for i, s := range m.Streams {
		if err := writeStream(ctx, r, &s, targets[i], func(n int64) {
			if progress != nil {
				progress(res.Bytes+n, total)
			}
		}); err != nil {
			return res, err
		}
		res.Files = append(res.Files, targets[i])
		res.Bytes += s.Size
	}
	return res, nil
}

// streamPath maps a stream name to a path under dir, refusing any name
// that would escape it.
func streamPath(dir, name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("stream name %q cannot be a file name", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("stream name %q cannot be a file name", name)
		}
	}
	return filepath.Join(dir, filepath.FromSlash(name)), nil
}

func writeStream(ctx context.Context, r *repo.Repo, s *repo.Stream, path string, progress func(int64)) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".kluis-restore-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	rd := r.StreamReader(ctx, s)
	defer rd.Close()
	n, err := io.Copy(f, &progressReader{r: rd, fn: progress})
	if err != nil {
		return fmt.Errorf("stream %s: %w", s.Name, err)
	}
	if n != s.Size {
		return fmt.Errorf("stream %s: restored %d bytes, manifest says %d: %w", s.Name, n, s.Size, repo.ErrCorrupt)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(f.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s appeared during the restore: refusing to overwrite", path)
		}
		return err
	}
	return os.Remove(f.Name())
}

type progressReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.fn != nil && n > 0 {
		p.fn(p.n)
	}
	return n, err
}
