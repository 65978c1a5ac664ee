package repo

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sort"
)

// kindRegister holds the tenant's register records: sealed copies of the
// appliance's erasure register and dossier access log lines that concern
// the tenant, each of which is also an anchor of its log (docs/format.md,
// "Register records"). The repository stores them opaquely: package
// restore says what they mean.
const kindRegister = "registers"

// adRegister is the associated data of a sealed register record.
const adRegister = "kluis register record v1"

// MaxRegisterRecord bounds the plaintext of one register record.
const MaxRegisterRecord = 1 << 20

const maxRegisterObject = MaxRegisterRecord + 64

// PutRegisterRecord seals plain under the tenant's data key and writes it,
// write-once and content-addressed, as TENANT/registers/<sha256> at every
// location in parallel. A location that fails is reported in the results;
// Sync copies the record there later.
func (r *Repo) PutRegisterRecord(ctx context.Context, plain []byte) ([]LocationResult, error) {
	if len(plain) > MaxRegisterRecord {
		return nil, fmt.Errorf("register record of %d bytes is larger than %d", len(plain), MaxRegisterRecord)
	}
	sealed := r.meta.seal(adRegister, plain)
	name := objectName(r.tenant, kindRegister, sha256.Sum256(sealed))
	rs := r.forEachLocation(ctx, func(ctx context.Context, l Location) error {
		return l.Put(ctx, name, sealed)
	})
	if countOK(rs) == 0 {
		return rs, fmt.Errorf("tenant %s: register record written at no location: %s", r.tenant, joinErrors(rs))
	}
	return rs, nil
}

// RegisterRecords returns the plaintext of every register record held at
// any location (the union; a record is read from the first location whose
// copy verifies and opens). A record that no location holds intact is an
// error: a refusal must not rest on a partial register. A location that
// cannot be listed is skipped when another one could be.
func (r *Repo) RegisterRecords(ctx context.Context) ([][]byte, error) {
	union := map[Hash]bool{}
	listed := 0
	var lerr error
	for _, l := range r.locs {
		names, err := r.listNames(ctx, l, kindRegister)
		if err != nil {
			lerr = fmt.Errorf("%s: %w", l.Name(), err)
			continue
		}
		listed++
		for h := range names {
			union[h] = true
		}
	}
	if listed == 0 && lerr != nil {
		return nil, fmt.Errorf("tenant %s: listing register records: %w", r.tenant, lerr)
	}
	names := make([]Hash, 0, len(union))
	for h := range union {
		names = append(names, h)
	}
	sort.Slice(names, func(i, j int) bool { return names[i].String() < names[j].String() })
	out := make([][]byte, 0, len(names))
	for _, h := range names {
		data, err := r.readVerified(ctx, kindRegister, h, maxRegisterObject)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: register record: %w", r.tenant, err)
		}
		plain, err := r.meta.open(adRegister, data)
		if err != nil {
			return nil, fmt.Errorf("tenant %s: register record %s does not open under the tenant key: %w", r.tenant, h.Short(), err)
		}
		out = append(out, plain)
	}
	return out, nil
}

// readRegisterForCopy reads a register record for Sync: only a copy that
// matches its name and opens under the tenant's key is copied.
func (r *Repo) readRegisterForCopy(ctx context.Context, h Hash) ([]byte, error) {
	data, err := r.readVerified(ctx, kindRegister, h, maxRegisterObject)
	if err != nil {
		return nil, err
	}
	if _, err := r.meta.open(adRegister, data); err != nil {
		return nil, fmt.Errorf("%s: matches its name but does not open under the tenant key: %w: %w", objectName(r.tenant, kindRegister, h), errPlanted, ErrCorrupt)
	}
	return data, nil
}
