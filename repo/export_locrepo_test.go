package repo

import (
	"context"
	"crypto/sha256"
)

// DowngradeToV1 rewrites every index object and manifest, at every
// location, as kluis wrote them before index format version 2 (version 1
// encoding, version 1 associated data), for tests that old repositories
// stay readable.
func (r *Repo) DowngradeToV1(ctx context.Context) error {
	for _, kind := range []string{kindIndex, kindSnapshot} {
		all := map[Hash]bool{}
		for _, l := range r.locs {
			names, err := r.listNames(ctx, l, kind)
			if err != nil {
				return err
			}
			for h := range names {
				all[h] = true
			}
		}
		for h := range all {
			v, err := r.readOpened(ctx, kind, h)
			if err != nil {
				return err
			}
			var sealed []byte
			switch kind {
			case kindIndex:
				sealed = r.meta.seal(adIndex, encodeIndexVersion(&indexObject{Version: indexVersion1, Packs: v.(*indexObject).Packs}))
			default:
				plain, err := encodeManifest(v.(*Manifest))
				if err != nil {
					return err
				}
				sealed = r.meta.seal(adManifest, plain)
			}
			for _, l := range r.locs {
				if err := l.Put(ctx, objectName(r.tenant, kind, sha256.Sum256(sealed)), sealed); err != nil {
					return err
				}
				if err := l.Delete(ctx, objectName(r.tenant, kind, h)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
