package bridge

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/smppout"
	"github.com/smsbridge/smsbridge/store"
)

// MO messages: each part is stored before its deliver_sm is acknowledged,
// so none is lost in a crash (the SMSC resends what we did not
// acknowledge); concatenated parts are joined in any order by a
// Reassembler, rebuilt from the stored parts at start, and a message still
// incomplete after moTimeout is kept with its missing parts noted.

// moTimeout is how long the parts of a concatenated MO may take to come.
const moTimeout = 10 * time.Minute

// InboundStore is what the MO path needs of the store.
type InboundStore interface {
	AddInbound(ctx context.Context, in *store.Inbound) error
	AddMOPart(ctx context.Context, key string, part []byte) error
	CompleteInbound(ctx context.Context, in *store.Inbound, partKeys []string) error
	MOParts() (map[string][]byte, error)
}

// moJoiner joins concatenated MO per route.
type moJoiner struct {
	mu    sync.Mutex
	reasm map[string]*smppout.Reassembler // by route
	// loaded is closed once the stored parts are back in the
	// reassemblers: parts arriving before then wait, or a part the SMSC
	// resends at bind and its stored copy would start two messages.
	loaded chan struct{}
}

// storedPart is a part as kept in the store.
type storedPart struct {
	Route string
	At    time.Time
	MO    smppout.MO
}

func partKey(route string, m smppout.MO) string {
	return fmt.Sprintf("%s/%s/%s/%d/%d/%d", route, m.From, m.To, m.Part.Ref, m.Part.Total, m.Part.Seq)
}

// MOHandler returns the smppout.MOHandler of the named route.
func (b *Bridge) MOHandler(route string) smppout.MOHandler {
	return func(ctx context.Context, m smppout.MO) error {
		is, ok := b.st.(InboundStore)
		if !ok {
			return fmt.Errorf("bridge: the store keeps no MO")
		}
		now := b.cfg.Now()
		if m.Part == nil || m.Part.Total <= 1 {
			in := inbound(route, now, m.From, m.To, m.DataCoding, m.Payload, 1, nil)
			if err := is.AddInbound(ctx, in); err != nil {
				return err
			}
			b.log.Info("MO received", "mo", in.ID, "route", route, "from", m.From, "to", m.To)
			return nil
		}
		data, err := json.Marshal(storedPart{Route: route, At: now, MO: m})
		if err != nil {
			return err
		}
		select {
		case <-b.mo.loaded:
		case <-ctx.Done():
			return ctx.Err() // not acknowledged: the SMSC resends it
		}
		if err := is.AddMOPart(ctx, partKey(route, m), data); err != nil {
			return err
		}
		// The part is safe: joining it is work the start-up reload can redo.
		b.joinMO(context.WithoutCancel(ctx), is, route, now, m)
		return nil
	}
}

func (b *Bridge) joinMO(ctx context.Context, is InboundStore, route string, now time.Time, m smppout.MO) {
	b.mo.mu.Lock()
	r := b.mo.reasm[route]
	if r == nil {
		r = smppout.NewReassembler(moTimeout)
		b.mo.reasm[route] = r
	}
	a, done := r.Add(now, m)
	b.mo.mu.Unlock()
	if done {
		b.storeJoined(ctx, is, route, a)
	}
}

func (b *Bridge) storeJoined(ctx context.Context, is InboundStore, route string, a smppout.Assembled) {
	var keys []string
	for _, p := range a.Parts {
		if p.Part != nil {
			keys = append(keys, partKey(route, p))
		}
	}
	in := inbound(route, a.First, a.From, a.To, a.DataCoding, a.Payload(), a.Total, a.Missing())
	if err := is.CompleteInbound(ctx, in, keys); err != nil {
		// The parts stay stored; the next start joins them again.
		b.log.Error("storing a joined MO", "route", route, "from", a.From, "err", err)
		return
	}
	b.log.Info("MO received", "mo", in.ID, "route", route, "from", a.From, "to", a.To,
		"parts", a.Total, "missing", len(in.Missing))
}

// moLoop reloads the stored parts, then gives up on incomplete messages
// past moTimeout, until ctx is done.
func (b *Bridge) moLoop(ctx context.Context) error {
	is, ok := b.st.(InboundStore)
	if !ok {
		close(b.mo.loaded)
		return nil
	}
	parts, err := is.MOParts()
	if err != nil {
		return fmt.Errorf("bridge: MO parts: %w", err)
	}
	for _, v := range parts {
		var p storedPart
		if json.Unmarshal(v, &p) == nil {
			b.joinMO(ctx, is, p.Route, p.At, p.MO)
		}
	}
	close(b.mo.loaded)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		b.mo.mu.Lock()
		expired := map[string][]smppout.Assembled{}
		for route, r := range b.mo.reasm {
			expired[route] = r.Expire(b.cfg.Now())
		}
		b.mo.mu.Unlock()
		for route, as := range expired {
			for _, a := range as {
				b.storeJoined(ctx, is, route, a)
			}
		}
	}
}

func inbound(route string, at time.Time, from, to string, dcs byte, payload []byte, parts int, missing []int) *store.Inbound {
	return &store.Inbound{Received: at, Route: route, From: from, To: to, DataCoding: dcs,
		Text: moText(dcs, payload), Parts: parts, Missing: missing}
}

// moText decodes an MO payload: GSM 7-bit (one septet an octet in SMPP)
// and UCS-2 as TS 23.038 says, anything else kept as hex.
func moText(dcs byte, payload []byte) string {
	var c convert.Coding
	switch dcs {
	case 0x00:
		c = convert.GSM7
	case 0x08:
		c = convert.UCS2
	default:
		return "hex:" + hex.EncodeToString(payload)
	}
	text, err := convert.Decode(c, payload)
	if err != nil {
		return "hex:" + hex.EncodeToString(payload)
	}
	return text
}
