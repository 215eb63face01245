package smtpd

import (
	"bytes"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
)

// authGuard counts AUTH failures per client address in a sliding window.
type authGuard struct {
	now    func() time.Time
	window time.Duration

	mu    sync.Mutex
	fails map[string][]time.Time
}

func newAuthGuard(now func() time.Time, window time.Duration) *authGuard {
	return &authGuard{now: now, window: window, fails: make(map[string][]time.Time)}
}

// recent returns the failures of key within the window, dropping older ones.
func (g *authGuard) recent(key string, now time.Time) []time.Time {
	ts := g.fails[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= g.window {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(g.fails, key)
	} else {
		g.fails[key] = ts
	}
	return ts
}

// failures is how many times key failed within the window.
func (g *authGuard) failures(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.recent(key, g.now()))
}

// fail records a failure and returns the count within the window.
func (g *authGuard) fail(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	ts := append(g.recent(key, now), now)
	g.fails[key] = ts
	if len(g.fails) > 100000 { // a flood of addresses: forget the oldest state
		for k := range g.fails {
			delete(g.fails, k)
			if len(g.fails) <= 50000 {
				break
			}
		}
	}
	return len(ts)
}

// authenticator checks a user name and password; it returns nil or the
// *smtp.SMTPError to answer.
type authenticator func(identity, username, password string) error

// plainServer is SASL PLAIN (RFC 4616). go-sasl's answers a malformed
// response with an error that go-smtp turns into "454 4.7.0"; ours gives
// 501 5.5.2.
type plainServer struct {
	auth authenticator
	done bool
}

func (p *plainServer) Next(resp []byte) ([]byte, bool, error) {
	if p.done {
		return nil, true, errAuthMalformed
	}
	if resp == nil {
		return []byte{}, false, nil // no initial response: empty challenge
	}
	p.done = true
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 {
		return nil, true, errAuthMalformed
	}
	return nil, true, p.auth(string(parts[0]), string(parts[1]), string(parts[2]))
}

// loginServer is the obsolete but common LOGIN mechanism
// (draft-murchison-sasl-login): "Username:", then "Password:".
type loginServer struct {
	auth     authenticator
	step     int
	username string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(resp) == 0 {
			return []byte("Username:"), false, nil
		}
		fallthrough // initial response is the user name
	case 1:
		l.username = string(resp)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.auth("", l.username, string(resp))
	}
	return nil, true, errAuthMalformed
}

var (
	_ sasl.Server = (*plainServer)(nil)
	_ sasl.Server = (*loginServer)(nil)
)
