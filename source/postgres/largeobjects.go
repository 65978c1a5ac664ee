package postgres

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/kluis-nl/kluis/source"
)

// loChunk is how much of a large object is read or written per round trip:
// memory stays at a few of these whatever the object's size.
const loChunk = 1 << 20

const invRead = 0x40000 // INV_READ

// largeObject is one large object as the snapshot saw it.
type largeObject struct {
	oid     uint32
	comment *string
}

// readLargeObjects lists the large objects and their comments in the
// snapshot, by oid.
func readLargeObjects(ctx context.Context, conn *pgx.Conn) ([]largeObject, error) {
	rows, err := conn.Query(ctx, `
SELECT l.oid, d.description
FROM pg_catalog.pg_largeobject_metadata l
LEFT JOIN pg_catalog.pg_description d ON d.objoid = l.oid AND d.classoid = 'pg_catalog.pg_largeobject'::pg_catalog.regclass AND d.objsubid = 0
ORDER BY l.oid`)
	if err != nil {
		return nil, err
	}
	var out []largeObject
	for rows.Next() {
		var lo largeObject
		if err := rows.Scan(&lo.oid, &lo.comment); err != nil {
			return nil, err
		}
		out = append(out, lo)
	}
	return out, rows.Err()
}

// LargeObjects returns how many large objects the snapshot holds.
func (s *snapshot) LargeObjects() int { return len(s.largeObjects) }

// WriteLargeObjects streams every large object in the snapshot, loChunk at
// a time, as a large-object stream (source.LargeObjectsFormat).
func (s *snapshot) WriteLargeObjects(ctx context.Context, w io.Writer) (source.TableResult, error) {
	s.mu.Lock()
	idle := s.idle
	s.mu.Unlock()
	if idle == nil {
		return source.TableResult{}, errors.New("postgres: snapshot is closed")
	}
	var conn *pgx.Conn
	select {
	case conn = <-idle:
	case <-ctx.Done():
		return source.TableResult{}, ctx.Err()
	}
	defer func() { idle <- conn }()
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := io.WriteString(bw, "-- "+source.LargeObjectsFormat+"\n"); err != nil {
		return source.TableResult{}, err
	}
	fp := source.NewFingerprinter(s.key)
	for _, lo := range s.largeObjects {
		sum, err := readLargeObject(ctx, conn, lo.oid, func(size int64) error {
			_, err := fmt.Fprintf(bw, "lo %d %d\n", lo.oid, size)
			return err
		}, bw)
		if err != nil {
			return source.TableResult{}, redactError(fmt.Errorf("large object %d: %w", lo.oid, err), s.password)
		}
		if err := bw.WriteByte('\n'); err != nil {
			return source.TableResult{}, err
		}
		fp.AddRow(source.LargeObjectRow(lo.oid, sum))
	}
	if err := bw.Flush(); err != nil {
		return source.TableResult{}, err
	}
	return fp.Result(), nil
}

// readLargeObject reads one object (in conn's transaction) into w after
// calling header with its size, and returns the SHA-256 of its contents.
func readLargeObject(ctx context.Context, conn *pgx.Conn, oid uint32, header func(int64) error, w io.Writer) (string, error) {
	var fd int32
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.lo_open($1, $2)", oid, invRead).Scan(&fd); err != nil {
		return "", err
	}
	var size int64
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.lo_lseek64($1, 0, 2)", fd).Scan(&size); err != nil {
		return "", err
	}
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.lo_lseek64($1, 0, 0)", fd).Scan(new(int64)); err != nil {
		return "", err
	}
	if header != nil {
		if err := header(size); err != nil {
			return "", err
		}
	}
	h := sha256.New()
	// loread's result is read straight from the connection's buffer (binary
	// bytea: the raw bytes), so no chunk is ever copied into a new slice.
	params := [][]byte{[]byte(strconv.Itoa(int(fd))), []byte(strconv.Itoa(loChunk))}
	for done := int64(0); done < size; {
		rr := conn.PgConn().ExecParams(ctx, "SELECT pg_catalog.loread($1, $2)", params, []uint32{23, 23}, nil, []int16{1})
		n := 0
		var werr error
		for rr.NextRow() {
			v := rr.Values()[0]
			n = len(v)
			if int64(n) > size-done {
				werr = fmt.Errorf("grew beyond %d bytes while read", size)
				continue
			}
			h.Write(v)
			if w != nil && werr == nil {
				_, werr = w.Write(v)
			}
		}
		if _, err := rr.Close(); err != nil {
			return "", err
		}
		if werr != nil {
			return "", werr
		}
		if n == 0 {
			return "", fmt.Errorf("ended at %d of %d bytes", done, size)
		}
		done += int64(n)
	}
	if err := execSimple(ctx, conn, "SELECT pg_catalog.lo_close("+strconv.Itoa(int(fd))+")"); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// largeObjectComments are COMMENT ON LARGE OBJECT statements for the
// post-data section (the objects exist by then).
func (s *snapshot) largeObjectComments() []string {
	var out []string
	for _, lo := range s.largeObjects {
		if lo.comment != nil {
			out = append(out, fmt.Sprintf("COMMENT ON LARGE OBJECT %d IS %s;", lo.oid, sqlLiteral(*lo.comment)))
		}
	}
	return out
}

// LoadLargeObjects creates every object of a large-object stream with its
// oid and contents, in one transaction, loChunk at a time.
func (t *Target) LoadLargeObjects(ctx context.Context, r io.Reader) (err error) {
	conn, err := t.acquire(ctx)
	if err != nil {
		return err
	}
	defer func() { t.release(conn, err) }()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return redactError(err, t.cfg.Password)
	}
	defer tx.Rollback(context.Background())
	rd := source.NewLargeObjectReader(r)
	buf := make([]byte, loChunk)
	for {
		oid, size, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_catalog.lo_create($1)", oid); err != nil {
			return redactError(fmt.Errorf("large object %d: %w", oid, err), t.cfg.Password)
		}
		for off := int64(0); off < size; {
			n, err := io.ReadFull(rd, buf[:min(int64(len(buf)), size-off)])
			if err != nil {
				return fmt.Errorf("large object %d: %w", oid, err)
			}
			if _, err := tx.Exec(ctx, "SELECT pg_catalog.lo_put($1, $2, $3)", oid, off, buf[:n]); err != nil {
				return redactError(fmt.Errorf("large object %d: %w", oid, err), t.cfg.Password)
			}
			off += int64(n)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return redactError(fmt.Errorf("large objects: %w", err), t.cfg.Password)
	}
	return nil
}

// FingerprintLargeObjects reads every large object of the target back and
// fingerprints them as WriteLargeObjects did.
func (t *Target) FingerprintLargeObjects(ctx context.Context) (res source.TableResult, err error) {
	conn, err := t.acquire(ctx)
	if err != nil {
		return source.TableResult{}, err
	}
	defer func() { t.release(conn, err) }()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return source.TableResult{}, redactError(err, t.cfg.Password)
	}
	defer tx.Rollback(context.Background())
	los, err := readLargeObjects(ctx, conn)
	if err != nil {
		return source.TableResult{}, redactError(fmt.Errorf("listing large objects: %w", err), t.cfg.Password)
	}
	fp := source.NewFingerprinter(t.key)
	for _, lo := range los {
		sum, err := readLargeObject(ctx, conn, lo.oid, nil, nil)
		if err != nil {
			return source.TableResult{}, redactError(fmt.Errorf("large object %d: %w", lo.oid, err), t.cfg.Password)
		}
		fp.AddRow(source.LargeObjectRow(lo.oid, sum))
	}
	return fp.Result(), nil
}
