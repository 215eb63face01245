package smtpd

import (
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// numberCache remembers what the numbering plan said of recent numbers:
// parsing and validating with libphonenumber is the most expensive step of
// a RCPT (its regular expressions), and gateways see the same numbers again
// and again (the on-call phone of every alarm).
type numberCache struct {
	mu      sync.Mutex
	entries map[string]*numberEntry
	max     int // 0: maxNumbers
}

// numberEntry is the verdict on one local part: the number in E.164 and
// its type (which validation computes anyway), or the reply refusing it.
// The region is looked up only when asked (numberCache.region): it costs
// another pass over the plan's patterns and serves only logs and a reply.
type numberEntry struct {
	e164, kind string
	num        *phonenumbers.PhoneNumber
	region     string // "" until asked; guarded by numberCache.mu
	err        error
}

// maxNumbers bounds the cache; when full it starts again empty, which
// costs one parse per number and never grows memory.
const maxNumbers = 10_000

// recipient is Recipient with the verdict cached, and the number's type
// with it.
func (c *numberCache) recipient(addr string, domains []string, region string) (*numberEntry, error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !ourDomain(addr[at+1:], domains) {
		return nil, errNotOurDomain
	}
	key := region + "\x00" + addr[:at]
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if !ok {
		e = new(numberEntry)
		var typ phonenumbers.PhoneNumberType
		e.num, typ, e.err = parseRecipient(addr[:at], region)
		if e.err == nil {
			e.e164, e.kind = phonenumbers.Format(e.num, phonenumbers.E164), numberTypes[typ]
		}
		c.mu.Lock()
		limit := c.max
		if limit == 0 {
			limit = maxNumbers
		}
		if c.entries == nil || len(c.entries) >= limit {
			c.entries = make(map[string]*numberEntry)
		}
		c.entries[key] = e
		c.mu.Unlock()
	}
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

// region returns the ISO 3166-1 region of e's number ("DE"), looked up
// once.
func (c *numberCache) region(e *numberEntry) string {
	c.mu.Lock()
	r := e.region
	c.mu.Unlock()
	if r != "" {
		return r
	}
	r = phonenumbers.GetRegionCodeForNumber(e.num)
	c.mu.Lock()
	e.region = r
	c.mu.Unlock()
	return r
}
