package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"sync"
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
	// The next command need not read back what this one wrote.
	r.regs.opened(Hash(sha256.Sum256(sealed)), bytes.Clone(plain), sealed)
	r.regs.save(nil)
	return rs, nil
}

// RegisterRecords returns the plaintext of every register record held at
// any location (the union; a record is read from the first location whose
// copy verifies and opens). A record that no location holds intact is an
// error: a refusal must not rest on a partial register. A location that
// cannot be listed is skipped when another one could be.
//
// The listing decides which records there are; what each holds comes
// from the register record cache (registercache.go) when it has a copy
// whose SHA-256 is the listed name and that opens under the tenant's key,
// and otherwise from the locations (read in parallel, then cached). So
// a command reads from the locations only the records it has not seen.
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
	sort.Slice(names, func(i, j int) bool { return bytes.Compare(names[i][:], names[j][:]) < 0 })
	r.regs.load(union)
	out := make([][]byte, len(names))
	var missing []int
	for i, h := range names {
		plain, sealed := r.regs.get(h)
		if plain == nil && sealed != nil {
			var err error
			if plain, err = r.meta.open(adRegister, sealed); err != nil {
				r.log.Warn("cached register record does not open: reading it from the locations", "record", h.Short())
				r.regs.drop(h)
			} else {
				r.regs.opened(h, plain, nil)
			}
		}
		if plain == nil {
			missing = append(missing, i)
		}
		out[i] = plain
	}
	if err := r.readRegisters(ctx, names, missing, out); err != nil {
		return nil, err
	}
	r.regs.save(union)
	return out, nil
}

// readRegisterWorkers bounds the register records read at once: the first
// command after an upgrade (or a lost cache) reads every one.
const readRegisterWorkers = 8

// readRegisters reads the records names[i] for i in missing from the
// locations, in parallel, into out[i], and caches them.
func (r *Repo) readRegisters(ctx context.Context, names []Hash, missing []int, out [][]byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(missing))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(readRegisterWorkers, len(missing)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				h := names[missing[j]]
				data, err := r.readVerified(ctx, kindRegister, h, maxRegisterObject)
				if err != nil {
					errs[j] = fmt.Errorf("tenant %s: register record: %w", r.tenant, err)
					cancel()
					continue
				}
				plain, err := r.meta.open(adRegister, data)
				if err != nil {
					errs[j] = fmt.Errorf("tenant %s: register record %s does not open under the tenant key: %w", r.tenant, h.Short(), err)
					cancel()
					continue
				}
				r.regs.opened(h, plain, data)
				out[missing[j]] = plain
			}
		}()
	}
	for j := range missing {
		if ctx.Err() != nil {
			break
		}
		next <- j
	}
	close(next)
	wg.Wait()
	// The first error in name order, not a cancellation it caused.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
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
