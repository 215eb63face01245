package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Inbound is a mobile-originated message (MO): an SMS a phone sent to one
// of our numbers. What happens to it next is not decided yet: it is kept
// and listed (retention does not purge it yet).
type Inbound struct {
	ID         string
	Received   time.Time
	Route      string
	From, To   string
	DataCoding byte
	Text       string // decoded when the data_coding is known, else hex
	Parts      int    // of a concatenated message
	Missing    []int  // parts that never came (the message was given up)
}

// Inbound buckets: "inbound" id → Inbound (JSON); "mo_parts" key → one
// stored part of a concatenated message not joined yet (opaque bytes, the
// caller's encoding).
var (
	bucketInbound = []byte("inbound")
	bucketMOParts = []byte("mo_parts")
)

// AddInbound stores a whole MO message and returns after the commit, so
// that its deliver_sm may be acknowledged.
func (s *Store) AddInbound(ctx context.Context, in *Inbound) error {
	return s.CompleteInbound(ctx, in, nil)
}

// AddMOPart stores one part of a concatenated MO under key (idempotent:
// the same key twice keeps one copy), and returns after the commit.
func (s *Store) AddMOPart(ctx context.Context, key string, part []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.w.do(func(tx *txn) error {
		return tx.Bucket(bucketMOParts).Put([]byte(key), part)
	})
	if err != nil {
		return fmt.Errorf("store: add MO part: %w", err)
	}
	return nil
}

// CompleteInbound stores in, with a fresh id, and deletes the parts it was
// joined from, in one transaction.
func (s *Store) CompleteInbound(ctx context.Context, in *Inbound, partKeys []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if in.ID == "" {
		in.ID = s.ids.next(s.opt.Now())
	}
	if in.Received.IsZero() {
		in.Received = s.opt.Now()
	}
	data, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("store: encode inbound: %w", err)
	}
	err = s.w.do(func(tx *txn) error {
		b := tx.Bucket(bucketInbound)
		parts := tx.Bucket(bucketMOParts)
		for _, k := range partKeys {
			if parts == nil || parts.Get([]byte(k)) == nil {
				// Joined already (a part resent, joined twice): keep one.
				return noWrite(errJoined)
			}
		}
		if err := b.Put([]byte(in.ID), data); err != nil {
			return err
		}
		for _, k := range partKeys {
			if err := parts.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, errJoined) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: add inbound: %w", err)
	}
	return nil
}

// errJoined: the parts of an inbound message were joined before.
var errJoined = errors.New("store: MO parts already joined")

// MOParts returns every stored part not joined yet, by key: what a
// reassembler needs at start.
func (s *Store) MOParts() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.w.view(func(tx *txn) error {
		b := tx.Bucket(bucketMOParts)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: MO parts: %w", err)
	}
	return out, nil
}

// ListInbound returns up to limit MO messages, newest first.
func (s *Store) ListInbound(limit int) ([]*Inbound, error) {
	var out []*Inbound
	err := s.w.view(func(tx *txn) error {
		b := tx.Bucket(bucketInbound)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			in := new(Inbound)
			if err := json.Unmarshal(v, in); err != nil {
				return fmt.Errorf("inbound %s: %w", k, err)
			}
			out = append(out, in)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list inbound: %w", err)
	}
	return out, nil
}
