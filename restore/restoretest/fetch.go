package restoretest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kluis-nl/kluis/chunk"
	"github.com/kluis-nl/kluis/repo"
)

// fetchWorkers is the number of packs read at once (each streamed, one
// blob held at a time under the repository's read budget).
const fetchWorkers = 3

// maxPackErrors bounds how many bad packs a fetch failure lists.
const maxPackErrors = 3

type fetchStats struct {
	streams, blobs, packs int
	bytes                 int64 // plaintext bytes of every distinct blob
}

// fetchAll reads every distinct blob of a manifest through r (opened at
// the tested location alone): pack by pack, each pack streamed once,
// whole, and verified against its name, each blob decrypted and checked
// against its keyed ID as it passes (repo.Repo.VerifyPackBlobs), so memory
// does not grow with the pack size. It goes on past a bad pack so that
// the error says how many are bad.
func fetchAll(ctx context.Context, r *repo.Repo, m *repo.Manifest, progress func(done, total int64)) (fetchStats, error) {
	var st fetchStats
	idx, err := r.Index(ctx)
	if err != nil {
		return st, err
	}
	seen := map[chunk.ID]bool{}
	byPack := map[repo.Hash][]chunk.ID{}
	var total int64
	for _, s := range m.StreamsAndDictionary() {
		if s.Kind != repo.KindDictionary {
			st.streams++
		}
		for _, id := range s.AllBlobs() { // a row delta's chain too
			if seen[id] {
				continue
			}
			seen[id] = true
			bl, ok := idx.Lookup(id)
			if !ok {
				return st, fmt.Errorf("stream %s: blob %s is in no index at this location: %w", s.Name, id, repo.ErrNotFound)
			}
			byPack[bl.Pack] = append(byPack[bl.Pack], id)
			total += int64(bl.RawLength)
		}
	}
	st.blobs, st.packs = len(seen), len(byPack)
	packs := make([]repo.Hash, 0, len(byPack))
	for h := range byPack {
		packs = append(packs, h)
	}
	sort.Slice(packs, func(i, j int) bool { return packs[i].String() < packs[j].String() })

	var (
		done  atomic.Int64
		mu    sync.Mutex
		errs  []error
		wg    sync.WaitGroup
		next  = make(chan repo.Hash)
		pmu   sync.Mutex
		stopN atomic.Bool
	)
	report := func() {
		if progress != nil {
			pmu.Lock()
			progress(done.Load(), total)
			pmu.Unlock()
		}
	}
	for range fetchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range next {
				n, err := r.VerifyPackBlobs(ctx, h, byPack[h])
				done.Add(n)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					if ctx.Err() != nil {
						stopN.Store(true)
					}
				}
				report()
			}
		}()
	}
	for _, h := range packs {
		if stopN.Load() || ctx.Err() != nil {
			break
		}
		next <- h
	}
	close(next)
	wg.Wait()
	st.bytes = done.Load()
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if len(errs) > 0 {
		msgs := make([]string, 0, maxPackErrors)
		for i, e := range errs {
			if i == maxPackErrors {
				msgs = append(msgs, fmt.Sprintf("and %d more", len(errs)-maxPackErrors))
				break
			}
			msgs = append(msgs, e.Error())
		}
		return st, fmt.Errorf("%d of %d packs failed verification: %s", len(errs), len(packs), strings.Join(msgs, "; "))
	}
	return st, nil
}
