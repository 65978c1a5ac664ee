package synth

// bsnSpace is how many distinct BSNs bsnFor can produce: one per 7-digit
// prefix 1000000–9999999.
const bsnSpace = 9_000_000

// bsnFor returns the BSN of client id (1 ≤ id ≤ bsnSpace): nine digits that
// pass the eleven-test, distinct for distinct ids. The first seven digits
// are an affine scramble of id modulo bsnSpace (a bijection, as the
// multiplier is coprime to 2, 3 and 5); the eighth is the first digit,
// starting from id mod 10, for which the check digit is below 10.
func bsnFor(id int64) string {
	p := (uint64(id)*7_654_321+1_234_567)%bsnSpace + 1_000_000
	var d [9]byte
	for i := 6; i >= 0; i-- {
		d[i] = byte(p % 10)
		p /= 10
	}
	s := 0
	for i := 0; i < 7; i++ {
		s += (9 - i) * int(d[i])
	}
	for k := 0; k < 10; k++ {
		d8 := (int(uint64(id)%10) + k) % 10
		if c := (s + 2*d8) % 11; c < 10 {
			d[7], d[8] = byte(d8), byte(c)
			break
		}
	}
	var out [9]byte
	for i, x := range d {
		out[i] = '0' + x
	}
	return string(out[:])
}

// ValidBSN reports whether s is nine digits passing the eleven-test for
// burgerservicenummers: 9·d1 + 8·d2 + … + 2·d8 − d9 is divisible by 11 (and
// not all zero).
func ValidBSN(s string) bool {
	if len(s) != 9 {
		return false
	}
	sum := 0
	for i := 0; i < 9; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		w := 9 - i
		if i == 8 {
			w = -1
		}
		sum += w * int(c-'0')
	}
	return sum%11 == 0 && s != "000000000"
}
