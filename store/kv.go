package store

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/google/btree"
	bolt "go.etcd.io/bbolt"
)

// The store's view of its data: what bbolt holds, under the writes logged
// since (see wal.go). Every function of the store reads and writes through
// a tx of this file, never through bbolt directly, so that it sees the
// logged writes that bbolt does not hold yet.
//
// A tx has up to two overlays above bbolt, newest first: the writes since
// the last checkpoint began (active), and the writes being copied into
// bbolt by that checkpoint (frozen). An overlay is a B-tree of items keyed
// by bucket id ‖ key, each a value or a tombstone. A key is read from the
// first layer that has it; a cursor merges the layers in key order and
// skips tombstones.
//
// A tx in direct mode has no overlay: it reads and writes bbolt (Open uses
// it for migrations, replay and checkpoints).

// item is a key of an overlay: bucket id ‖ key, and its value, or a
// tombstone if del.
type item struct {
	k, v []byte
	del  bool
}

func itemLess(a, b item) bool { return bytes.Compare(a.k, b.k) < 0 }

type overlay = btree.BTreeG[item]

// newOverlay returns an empty overlay. The degree suits small keys: it
// keeps nodes within a few cache lines' worth of item headers.
func newOverlay() *overlay { return btree.NewG(16, itemLess) }

// bucketIDs numbers the buckets for overlay keys; ids are not stored
// anywhere (the log names buckets).
type bucketIDs struct {
	byName map[string]byte
	names  [][]byte
}

func newBucketIDs(names [][]byte) *bucketIDs {
	ids := &bucketIDs{byName: make(map[string]byte, len(names))}
	for _, n := range names {
		ids.byName[string(n)] = byte(len(ids.names))
		ids.names = append(ids.names, n)
	}
	return ids
}

// tx is a read or write transaction over the layers.
type txn struct {
	ids    *bucketIDs
	layers []*overlay // newest first; nil in direct mode
	base   *bolt.Tx
	// w records a write transaction's changes; nil for reads and in
	// direct mode (where base is writable).
	w        *round
	onCommit []func()
	scratch  []byte
	buckets  []*bucket // by id, opened on first use
}

// errReadOnly is returned by writes in a read transaction.
var errReadOnly = errors.New("store: write in a read transaction")

func (t *txn) writable() bool { return t.w != nil || t.base.Writable() }

// OnCommit runs fn once the transaction is durable.
func (t *txn) OnCommit(fn func()) {
	if t.layers == nil {
		t.base.OnCommit(fn)
		return
	}
	t.onCommit = append(t.onCommit, fn)
}

// Bucket returns the named bucket; it panics on a name the store does not
// know, a programming error.
func (t *txn) Bucket(name []byte) *bucket {
	id, ok := t.ids.byName[string(name)]
	if !ok {
		panic(fmt.Sprintf("store: unknown bucket %q", name))
	}
	if t.buckets == nil {
		t.buckets = make([]*bucket, len(t.ids.names))
	}
	if b := t.buckets[id]; b != nil {
		return b
	}
	b := t.base.Bucket(name)
	if b == nil {
		panic(fmt.Sprintf("store: bucket %q missing from the file", name))
	}
	t.buckets[id] = &bucket{t: t, id: id, name: t.ids.names[id], b: b}
	return t.buckets[id]
}

// bucket is one bucket of a tx.
type bucket struct {
	t    *txn
	id   byte
	name []byte
	b    *bolt.Bucket
}

// key returns id ‖ k in the tx's scratch buffer (valid until the next call).
func (b *bucket) key(k []byte) []byte {
	b.t.scratch = append(append(b.t.scratch[:0], b.id), k...)
	return b.t.scratch
}

// Get returns the value of k, or nil. The value must not be changed, and is
// valid for the life of the transaction.
func (b *bucket) Get(k []byte) []byte {
	if b.t.layers == nil {
		return b.b.Get(k)
	}
	probe := item{k: b.key(k)}
	for _, o := range b.t.layers {
		if o == nil {
			continue
		}
		if it, ok := o.Get(probe); ok {
			if it.del {
				return nil
			}
			return it.v
		}
	}
	return b.b.Get(k)
}

// Put sets k to v. Both are copied.
func (b *bucket) Put(k, v []byte) error {
	switch {
	case b.t.layers == nil:
		return b.b.Put(k, v)
	case b.t.w == nil:
		return errReadOnly
	case len(k) == 0:
		return errors.New("store: empty key")
	}
	buf := make([]byte, 1+len(k)+len(v))
	buf[0] = b.id
	copy(buf[1:], k)
	copy(buf[1+len(k):], v)
	b.t.w.set(b, item{k: buf[:1+len(k)], v: buf[1+len(k):]})
	return nil
}

// Delete removes k; a key that is not there is no error.
func (b *bucket) Delete(k []byte) error {
	switch {
	case b.t.layers == nil:
		return b.b.Delete(k)
	case b.t.w == nil:
		return errReadOnly
	}
	if b.Get(k) == nil {
		return nil
	}
	full := make([]byte, 1+len(k))
	full[0] = b.id
	copy(full[1:], k)
	b.t.w.set(b, item{k: full, del: true})
	return nil
}

// ForEach calls fn for each key in order; fn must not write to b.
func (b *bucket) ForEach(fn func(k, v []byte) error) error {
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// KeyN counts the keys (it reads them all).
func (b *bucket) KeyN() int {
	if b.t.layers == nil {
		return b.b.Stats().KeyN
	}
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		n++
	}
	return n
}

// Cursor returns a cursor over the bucket's keys. Writes to the bucket
// while it is open are allowed: each move starts from the key the cursor is
// on, not from a position in a page.
func (b *bucket) Cursor() *cursor {
	return &cursor{b: b, bc: b.b.Cursor()}
}

// cursor walks a bucket in key order over every layer.
type cursor struct {
	b   *bucket
	bc  *bolt.Cursor
	cur []byte // the key the cursor is on; nil before the first move
}

func (c *cursor) First() ([]byte, []byte)        { return c.forward(nil, true) }
func (c *cursor) Seek(k []byte) ([]byte, []byte) { return c.forward(k, true) }
func (c *cursor) Last() ([]byte, []byte)         { return c.backward(nil, true) }

// Next moves past the current key; after the end it stays there.
func (c *cursor) Next() ([]byte, []byte) {
	if c.cur == nil {
		return nil, nil
	}
	return c.forward(c.cur, false)
}

// Prev moves before the current key.
func (c *cursor) Prev() ([]byte, []byte) {
	if c.cur == nil {
		return nil, nil
	}
	return c.backward(c.cur, false)
}

// Delete removes the key the cursor is on; Next and Prev go on from it.
func (c *cursor) Delete() error {
	if c.cur == nil {
		return errors.New("store: cursor delete before a move")
	}
	if c.b.t.layers == nil {
		return c.bc.Delete()
	}
	return c.b.Delete(c.cur)
}

// forward moves to the first key after from (or at it if incl; from nil is
// the start) that is not deleted.
func (c *cursor) forward(from []byte, incl bool) ([]byte, []byte) {
	if c.b.t.layers == nil {
		k, v := c.boltForward(from, incl)
		c.setCur(k)
		return k, v
	}
	for {
		k, v, del := c.step(from, incl, true)
		if k == nil || !del {
			c.setCur(k)
			return k, v
		}
		from, incl = k, false
	}
}

// backward moves to the last key before from (or at it if incl; from nil
// is the end) that is not deleted.
func (c *cursor) backward(from []byte, incl bool) ([]byte, []byte) {
	if c.b.t.layers == nil {
		k, v := c.boltBackward(from, incl)
		c.setCur(k)
		return k, v
	}
	for {
		k, v, del := c.step(from, incl, false)
		if k == nil || !del {
			c.setCur(k)
			return k, v
		}
		from, incl = k, false
	}
}

func (c *cursor) setCur(k []byte) {
	if k == nil {
		c.cur = nil
		return
	}
	c.cur = append(c.cur[:0:0], k...)
}

// step finds the nearest key from from in the direction asked, over all
// layers, and what the newest layer holding it says of it.
func (c *cursor) step(from []byte, incl, fwd bool) (k, v []byte, del bool) {
	var bk, bv []byte
	if fwd {
		bk, bv = c.boltForward(from, incl)
	} else {
		bk, bv = c.boltBackward(from, incl)
	}
	k, v = bk, bv
	// Layers are newest first: an equal key in a newer layer wins, so go
	// oldest first and let each replace on equality.
	for i := len(c.b.t.layers) - 1; i >= 0; i-- {
		o := c.b.t.layers[i]
		if o == nil {
			continue
		}
		it, ok := c.overlayStep(o, from, incl, fwd)
		if !ok {
			continue
		}
		ok2 := it.k[1:]
		if k == nil || (fwd && bytes.Compare(ok2, k) <= 0) || (!fwd && bytes.Compare(ok2, k) >= 0) {
			k, v, del = ok2, it.v, it.del
		}
	}
	return k, v, del
}

// overlayStep finds the nearest item of the bucket in o from from.
func (c *cursor) overlayStep(o *overlay, from []byte, incl, fwd bool) (item, bool) {
	id := c.b.id
	var found item
	ok := false
	if fwd {
		probe := item{k: append([]byte{id}, from...)}
		o.AscendGreaterOrEqual(probe, func(it item) bool {
			if it.k[0] != id {
				return false
			}
			if !incl && bytes.Equal(it.k[1:], from) {
				return true
			}
			found, ok = it, true
			return false
		})
		return found, ok
	}
	visit := func(it item) bool {
		if it.k[0] != id {
			return false
		}
		if !incl && bytes.Equal(it.k[1:], from) {
			return true
		}
		found, ok = it, true
		return false
	}
	if from == nil {
		// Bucket ids are small: id+1 does not wrap.
		o.DescendLessOrEqual(item{k: []byte{id + 1}}, visit) // no key is empty
		return found, ok
	}
	o.DescendLessOrEqual(item{k: append([]byte{id}, from...)}, visit)
	return found, ok
}

func (c *cursor) boltForward(from []byte, incl bool) ([]byte, []byte) {
	if from == nil {
		return c.bc.First()
	}
	k, v := c.bc.Seek(from)
	if k != nil && !incl && bytes.Equal(k, from) {
		k, v = c.bc.Next()
	}
	return k, v
}

func (c *cursor) boltBackward(from []byte, incl bool) ([]byte, []byte) {
	if from == nil {
		return c.bc.Last()
	}
	k, v := c.bc.Seek(from)
	switch {
	case k == nil:
		return c.bc.Last()
	case incl && bytes.Equal(k, from):
		return k, v
	}
	return c.bc.Prev()
}
