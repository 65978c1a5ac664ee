package browsertest

import (
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// Authenticator app: the TOTP codes a user reads from the app they put
// the enrolment secret into (RFC 6238, SHA-1, 6 digits, 30 s).
type TOTP struct {
	Secret string
	mu     sync.Mutex
	last   int64 // newest time step a code was taken for
}

// NewTOTP is the app holding secret (the base32 secret the enrolment
// page shows).
func NewTOTP(secret string) *TOTP { return &TOTP{Secret: secret} }

// Code returns a code the server has not seen yet: the current step's,
// or, when that was used already (a login right after enrolment), the
// next step's — servers accept one step of clock drift either way —
// waiting for the clock when even that was used.
func (a *TOTP) Code(t testing.TB) string {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		now := time.Now().Unix() / 30
		step := max(now, a.last+1)
		if step <= now+1 {
			a.last = step
			return CodeAt(t, a.Secret, time.Unix(step*30, 0))
		}
		time.Sleep(time.Until(time.Unix((now+1)*30, 0)) + 50*time.Millisecond)
	}
}

// CodeAt is the code of secret at time at.
func CodeAt(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatalf("TOTP code of the enrolment secret: %v", err)
	}
	return code
}
