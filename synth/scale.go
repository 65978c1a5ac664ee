package synth

import "fmt"

// BytesPerClient is the approximate size of one client's rows in a plain
// text dump: TestBytesPerClient estimates 15,560 bytes from the generated
// values in PostgreSQL COPY text format, and pg_dump of a database of 3,084
// clients produced 48.2 MB, 15,620 bytes per client. About 69% is report
// text, 13% attachments (hex), 6% measurements. The database itself is
// smaller (PostgreSQL: about 14 KB per client; bytea is binary and long
// text compressed). ScaleForBytes divides by it.
const BytesPerClient = 15_600

// Scale sizes a generated database. Clients drives everything else; see
// the package documentation for the rows per client.
type Scale struct {
	Clients int
}

// Common scales.
var (
	// Tiny is for unit tests: 30 clients, about 470 KB.
	Tiny = Scale{Clients: 30}
	// Small is about 10 MiB (672 clients).
	Small = ScaleForBytes(10 << 20)
	// Demo is about 500 MiB (33,600 clients).
	Demo = ScaleForBytes(500 << 20)
)

// maxClients keeps BSNs distinct, leaving room for a few years of working
// days.
const maxClients = bsnSpace / 2

// ScaleForBytes returns the Scale whose plain dump is about n bytes (at
// least one client).
func ScaleForBytes(n int64) Scale {
	c := n / BytesPerClient
	if c < 1 {
		c = 1
	}
	if c > maxClients {
		c = maxClients
	}
	return Scale{Clients: int(c)}
}

// ApproxBytes is the approximate plain-dump size of a database of scale s
// before any working day.
func (s Scale) ApproxBytes() int64 { return int64(s.Clients) * BytesPerClient }

func (s Scale) validate() error {
	if s.Clients < 1 || s.Clients > maxClients {
		return fmt.Errorf("synth: scale of %d clients outside 1–%d", s.Clients, maxClients)
	}
	return nil
}

// addresses is the number of addresses: households share them.
func (s Scale) addresses() int64 { return max(1, int64(s.Clients)*2/3) }

// staff is the number of staff members.
func (s Scale) staff() int { return 5 + s.Clients/40 }
