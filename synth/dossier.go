package synth

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"
)

var (
	baseDate     = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) // a Monday
	historyStart = time.Date(2023, 1, 5, 0, 0, 0, 0, time.UTC)
	birthFirst   = time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC)
	birthLast    = time.Date(2022, 12, 31, 0, 0, 0, 0, time.UTC)
)

// BaseDate is working day 0: the generated history lies before it, and
// working day n happens on BaseDate plus n days. Times are wall-clock times
// in Europe/Amsterdam, represented in UTC.
func BaseDate() time.Time { return baseDate }

// Random streams: each kind of thing draws from its own stream, so adding
// rows of one kind never shifts the values of another.
const (
	streamClient uint64 = iota + 1
	streamAddresses
	streamStaff
	streamDay
)

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// newRand returns the random stream (kind, n) of seed.
func newRand(seed, kind uint64, n int64) *rand.Rand {
	a := splitmix(seed ^ splitmix(kind<<56^uint64(n)))
	return rand.New(rand.NewPCG(a, splitmix(a^kind)))
}

// batch holds generated rows per table, in schemaTables order.
type batch struct {
	rows [numTables][][]any
}

func (b *batch) add(t int, row ...any) { b.rows[t] = append(b.rows[t], row) }

// gen generates rows and hands out ids. next[t] is the last id used in
// table t.
type gen struct {
	seed       uint64
	scale      Scale
	addresses  int64
	staffNames []string
	next       [numTables]int64
}

func newGen(seed uint64, s Scale) *gen {
	g := &gen{seed: seed, scale: s, addresses: s.addresses()}
	rng := newRand(seed, streamStaff, 0)
	for range s.staff() {
		g.staffNames = append(g.staffNames, pick(rng, firstNames)+" "+pick(rng, lastNames))
	}
	return g
}

func (g *gen) id(t int) int64 {
	g.next[t]++
	return g.next[t]
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }

func between(rng *rand.Rand, lo, hi int) int { return lo + rng.IntN(hi-lo+1) }

// shared appends the addresses and staff, the rows clients share.
func (g *gen) shared(b *batch) {
	rng := newRand(g.seed, streamAddresses, 0)
	for range g.addresses {
		var suffix any
		if rng.IntN(5) == 0 {
			suffix = pick(rng, houseSuffixes)
		}
		b.add(tAddresses, g.id(tAddresses), pick(rng, streets), int64(between(rng, 1, 250)), suffix,
			postcode(rng), pick(rng, cities))
	}
	rng = newRand(g.seed, streamStaff, 1)
	for _, name := range g.staffNames {
		b.add(tStaff, g.id(tStaff), name, pick(rng, staffRoles))
	}
}

// postcode returns a Dutch postcode such as "1234 AB" (never SA, SD or SS).
func postcode(rng *rand.Rand) string {
	for {
		l1, l2 := byte('A'+rng.IntN(26)), byte('A'+rng.IntN(26))
		if l1 == 'S' && (l2 == 'A' || l2 == 'D' || l2 == 'S') {
			continue
		}
		return fmt.Sprintf("%04d %c%c", between(rng, 1000, 9999), l1, l2)
	}
}

// window is the period a dossier's events fall in, [from, to).
type window struct{ from, to time.Time }

// officeTime returns a random time during office hours (08:00–18:00) on a
// day in w.
func (w window) officeTime(rng *rand.Rand, from time.Time) time.Time {
	day := from.Truncate(24 * time.Hour)
	days := int(w.to.Sub(day) / (24 * time.Hour))
	if days < 1 {
		days = 1
	}
	return day.AddDate(0, 0, rng.IntN(days)).Add(8*time.Hour + time.Duration(rng.IntN(10*3600))*time.Second)
}

func (w window) date(rng *rand.Rand, from time.Time) time.Time {
	return w.officeTime(rng, from).Truncate(24 * time.Hour)
}

// dossier appends the rows of client id: a full history when intake is
// false, otherwise the rows of a new client's first day in w.
func (g *gen) dossier(b *batch, id int64, w window, intake bool) {
	rng := newRand(g.seed, streamClient, id)
	created := w.officeTime(rng, w.from)
	if !intake {
		created = window{w.from, w.to.AddDate(0, 0, -30)}.officeTime(rng, w.from)
	}
	first, last := pick(rng, firstNames), pick(rng, lastNames)
	birth := birthFirst.AddDate(0, 0, rng.IntN(int(birthLast.Sub(birthFirst)/(24*time.Hour))))
	var email any
	if rng.IntN(4) != 0 {
		email = emailFor(first, last, rng.IntN(100))
	}
	updated := created
	if !intake && rng.IntN(3) == 0 {
		updated = w.officeTime(rng, created)
	}
	b.add(tClients, id, bsnFor(id), first, last, date{birth}, email, 1+rng.Int64N(g.addresses),
		rng.IntN(10) != 0, stamp{created}, stamp{updated})

	n := func(lo, hi int) int {
		if intake {
			return 1
		}
		return between(rng, lo, hi)
	}
	staff := func() int64 { return 1 + rng.Int64N(int64(len(g.staffNames))) }

	treatments := make([]int64, n(1, 5))
	for i := range treatments {
		treatments[i] = g.id(tTreatments)
		started := w.date(rng, created)
		var ended any
		if e := started.AddDate(0, 0, between(rng, 7, 180)); !intake && rng.IntN(2) == 0 && e.Before(w.to) {
			ended = date{e}
		}
		b.add(tTreatments, treatments[i], id, staff(), date{started}, ended)
	}
	for range n(5, 15) {
		if intake {
			at := w.from.AddDate(0, 0, between(rng, 1, 14)).Add(8*time.Hour + time.Duration(rng.IntN(40))*15*time.Minute)
			b.add(tAppointments, g.id(tAppointments), id, staff(), stampTZ{at}, "gepland")
			continue
		}
		at := w.officeTime(rng, created).Truncate(15 * time.Minute)
		b.add(tAppointments, g.id(tAppointments), id, staff(), stampTZ{at}, pick(rng, appointmentStatuses))
	}
	for range n(2, 8) {
		b.add(tReports, g.id(tReports), id, pick(rng, treatments), stamp{w.officeTime(rng, created)},
			reportBody(rng, between(rng, 200, 4000)))
	}
	for range n(10, 30) + boolInt(intake) {
		at := stamp{w.officeTime(rng, created)}
		kind, value := measurement(rng)
		b.add(tMeasurements, g.id(tMeasurements), id, at, kind, value)
	}
	for range n(2, 6) {
		g.invoice(b, rng, id, w, created)
	}
	if rng.IntN(10) < 3 || (intake && rng.IntN(2) == 0) {
		g.attachment(b, rng, id)
	}
	if rng.IntN(4) == 0 {
		var tab any
		if rng.IntN(10) >= 3 {
			tab = pick(rng, tabColumnValues)
		}
		b.add(tNotes, g.id(tNotes), id, pick(rng, noteTexts), tab)
	}
	for range n(1, 3) {
		g.audit(b, rng, w, created, fmt.Sprintf("%s (cliënt %d)", pick(rng, auditActions), id))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// measurement returns the kind and value of a measurement.
func measurement(rng *rand.Rand) (string, float64) {
	k := pick(rng, measurementKinds)
	v := k.lo + rng.Float64()*(k.hi-k.lo)
	if k.decimals >= 0 {
		p := 1.0
		for range k.decimals {
			p *= 10
		}
		v = float64(int64(v*p+0.5)) / p
		if v < 0 {
			v = -float64(int64(-v*p+0.5)) / p
		}
	}
	return k.name, v
}

// invoice appends an invoice of client with its lines.
func (g *gen) invoice(b *batch, rng *rand.Rand, client int64, w window, from time.Time) {
	id := g.id(tInvoices)
	issued := w.date(rng, from)
	var total money
	lines := between(rng, 1, 5)
	for l := 1; l <= lines; l++ {
		amount := money(between(rng, 1000, 15000))
		total += amount
		b.add(tInvoiceLines, id, int64(l), pick(rng, invoiceLineDescriptions), amount)
	}
	var paid any
	if p := issued.AddDate(0, 0, between(rng, 1, 60)); rng.IntN(100) >= 15 && p.Before(w.to) {
		paid = date{p}
	}
	b.add(tInvoices, id, firstInvoiceNumber-1+id, client, date{issued}, total, paid)
}

// attachment appends a file of a few KiB: a format's magic bytes, then
// pseudo-random bytes with runs of zeros.
func (g *gen) attachment(b *batch, rng *rand.Rand, client int64) {
	id := g.id(tAttachments)
	k := pick(rng, attachmentKinds)
	name := k.name
	if strings.Contains(name, "%d") {
		name = fmt.Sprintf(name, id)
	}
	content := make([]byte, between(rng, 1024, 6*1024))
	copy(content, k.magic)
	for i := len(k.magic); i < len(content); {
		if rng.IntN(16) == 0 {
			i += between(rng, 8, 64) // leave zeros
			continue
		}
		x := rng.Uint64()
		for j := 0; j < 8 && i < len(content); j++ {
			content[i] = byte(x >> (8 * j))
			i++
		}
	}
	b.add(tAttachments, id, client, name+"."+k.ext, k.mime, content)
}

func (g *gen) audit(b *batch, rng *rand.Rand, w window, from time.Time, action string) {
	actor := "systeem"
	if rng.IntN(4) != 0 {
		actor = pick(rng, g.staffNames)
	}
	b.add(tAuditLog, stamp{w.officeTime(rng, from)}, actor, action)
}

// reportBody returns about n bytes of valid UTF-8 free text: sentences,
// line breaks (LF and CRLF), tabs, backslashes (including "\N" and a line
// "\."), quotes and emoji.
func reportBody(rng *rand.Rand, n int) string {
	b := make([]byte, 0, n+64)
	for len(b) < n {
		if rng.IntN(5) == 0 {
			b = append(b, pick(rng, reportOddities)...)
		} else {
			b = append(b, pick(rng, reportSentences)...)
		}
		if rng.IntN(6) == 0 {
			b = append(b, '\n')
		} else {
			b = append(b, ' ')
		}
	}
	i := n
	for i < len(b) && i > 0 && !utf8.RuneStart(b[i]) {
		i--
	}
	return string(b[:i])
}

var emailFold = strings.NewReplacer(
	"ï", "i", "ë", "e", "é", "e", "ç", "c", "ü", "u", "ö", "o", "ı", "i", "ş", "s",
	"ğ", "g", "ọ", "o", "ị", "i", "ễ", "e", "ø", "o", "ł", "l", "ś", "s", "Ś", "s",
	"Ç", "c", "Ö", "o", "Ł", "l", "ĳ", "ij",
)

// emailFor returns a plausible address at example.org.
func emailFor(first, last string, n int) string {
	s := strings.ToLower(emailFold.Replace(first + "." + last))
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			b.WriteRune(r)
		}
	}
	if n < 30 {
		fmt.Fprintf(&b, "%d", n)
	}
	b.WriteString("@example.org")
	return b.String()
}
