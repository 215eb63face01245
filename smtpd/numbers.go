package smtpd

import (
	"strings"
	"sync"
)

// numberCache remembers what the numbering plan said of recent numbers:
// parsing and validating with libphonenumber is the most expensive step of
// a RCPT (its regular expressions), and gateways see the same numbers again
// and again (the on-call phone of every alarm).
type numberCache struct {
	mu      sync.Mutex
	entries map[string]numberEntry
	max     int // 0: maxNumbers
}

type numberEntry struct {
	e164, region, kind string
	err                error
}

// maxNumbers bounds the cache; when full it starts again empty, which
// costs one parse per number and never grows memory.
const maxNumbers = 10_000

// recipient is Recipient with the number's verdict cached, and the number's
// region and type (NumberInfo) with it.
func (c *numberCache) recipient(addr string, domains []string, region string) (e164, numRegion, kind string, err error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !ourDomain(addr[at+1:], domains) {
		return "", "", "", errNotOurDomain
	}
	key := region + "\x00" + addr[:at]
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if !ok {
		e.e164, e.err = Recipient(addr, domains, region)
		if e.err == nil {
			e.region, e.kind = NumberInfo(e.e164)
		}
		c.mu.Lock()
		limit := c.max
		if limit == 0 {
			limit = maxNumbers
		}
		if c.entries == nil || len(c.entries) >= limit {
			c.entries = make(map[string]numberEntry)
		}
		c.entries[key] = e
		c.mu.Unlock()
	}
	return e.e164, e.region, e.kind, e.err
}
