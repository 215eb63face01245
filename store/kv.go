package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

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
// bbolt by that checkpoint (frozen). An overlay maps bucket id ‖ key to a
// value or a tombstone. The active one orders its keys in a B-tree when a
// cursor needs them; a frozen one gets no more writes, and sorts them once
// into a slice. A key is read from the first layer that has it; a cursor
// merges the layers in key order and skips tombstones.
//
// A tx in direct mode has no overlay: it reads and writes bbolt (Open uses
// it for migrations, replay and checkpoints).

// item is the value of a key in an overlay, or its tombstone.
type item struct {
	v   []byte
	del bool
}

// overlay holds the writes of many rounds: the items by key (bucket id ‖
// key) for lookups, and the keys in order for cursors. Lookups and
// replacements, most of the writer's work, cost a map access. A new key
// goes to its bucket's pending list, unordered; it joins the B-tree only
// when a cursor over that bucket needs the order. Most of a message's
// index keys live a few rounds and are deleted before that. The
// dispatcher scans the due queue after every commit, but the records,
// SMSC ids and the duplicate filter, read by key on the message's path
// (by cursor only for the admin API and the purge), stay unordered
// meanwhile. A checkpoint orders its frozen overlay in its own goroutine,
// beside the writer.
type overlay struct {
	m    map[string]item
	keys *btree.BTreeG[string]
	// pending holds, by bucket id, the keys set since that bucket was
	// last ordered, in no order; some may since have been unset, or be
	// set twice.
	pending [][]string
	// sealed is set, with omu held, when the overlay gets no more writes
	// (frozen, or the last active one at Close); sorted then holds its
	// keys in order, made once, in place of keys and pending.
	sealed bool
	sorted []string
	// order guards the merge of pending into keys, and sorted: once the
	// overlay is sealed, the checkpoint (without omu) and readers (with
	// omu) may order it at the same time. set and unset need only omu:
	// nobody calls them on an overlay that someone reads without omu.
	order sync.Mutex
}

// newOverlay makes an overlay; hint is the number of keys it may get.
func newOverlay(hint int) *overlay {
	return &overlay{
		m:    make(map[string]item, hint),
		keys: btree.NewG(32, func(a, b string) bool { return a < b }),
	}
}

func (o *overlay) get(k []byte) (item, bool) {
	it, ok := o.m[string(k)]
	return it, ok
}

// set sets k and returns what it replaced.
func (o *overlay) set(k string, it item) (old item, had bool) {
	if old, had = o.m[k]; had {
		o.m[k] = it
		return old, true
	}
	o.m[k] = it
	id := int(k[0])
	if id >= len(o.pending) {
		o.pending = append(o.pending, make([][]string, id+1-len(o.pending))...)
	}
	o.pending[id] = append(o.pending[id], k)
	return item{}, false
}

// unset removes k altogether (undoing its set).
func (o *overlay) unset(k string) {
	delete(o.m, k)
	o.keys.Delete(k) // a no-op while k is only pending
}

// ordered brings the B-tree up to date for bucket id: every key of m in
// that bucket is in it.
func (o *overlay) ordered(id byte) *btree.BTreeG[string] {
	o.order.Lock()
	defer o.order.Unlock()
	if int(id) >= len(o.pending) || len(o.pending[id]) == 0 {
		return o.keys
	}
	// Sorted, the inserts walk the tree's nodes in order.
	pending := o.pending[id]
	slices.Sort(pending)
	for _, k := range pending {
		if _, ok := o.m[k]; ok {
			o.keys.ReplaceOrInsert(k)
		}
	}
	clear(pending)
	o.pending[id] = pending[:0]
	return o.keys
}

// sortedKeys returns a sealed overlay's keys in order. One sort of them
// all costs a checkpoint half of what inserting them into the B-tree did,
// and the B-tree is not needed any more.
func (o *overlay) sortedKeys() []string {
	o.order.Lock()
	defer o.order.Unlock()
	if o.sorted == nil {
		keys := make([]string, 0, len(o.m))
		for k := range o.m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		o.sorted, o.keys, o.pending = keys, nil, nil
	}
	return o.sorted
}

// ascend calls fn on each key of a sealed overlay, in order: the
// checkpoint's walk.
func (o *overlay) ascend(fn func(k string, it item) bool) {
	if !o.sealed {
		panic("store: ascend of an overlay that still takes writes")
	}
	for _, k := range o.sortedKeys() {
		if !fn(k, o.m[k]) {
			return
		}
	}
}

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
	gen      uint64 // writes so far, for cursors
	scratch  []byte
	buckets  []*bucket // by id, opened on first use
}

// errReadOnly is returned by writes in a read transaction.
var errReadOnly = errors.New("store: write in a read transaction")

// OnCommit runs fn once the transaction is durable. fn may read the store
// but not write to it: the notifier that runs it answers writes, its own
// too.
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
	bc   *bolt.Cursor // for lookups below the overlays; see boltGet
}

// boltGet is b.b.Get(k) for a tx over overlays, whose bbolt tx is read-only.
// bbolt's Get makes a cursor and grows its stack on every call; most keys
// the writer looks up are not in bbolt at all (a duplicate, a reference, a
// key about to be deleted), and those lookups cost the writer about three
// allocations each. One cursor per bucket and tx, moved with Seek, costs
// none after the first.
func (b *bucket) boltGet(k []byte) []byte {
	if b.bc == nil {
		b.bc = b.b.Cursor()
	}
	ck, v := b.bc.Seek(k)
	if ck == nil || !bytes.Equal(ck, k) {
		return nil
	}
	return v
}

// key returns id ‖ k in the tx's scratch buffer (valid until the next call).
func (b *bucket) key(k []byte) []byte {
	b.t.scratch = append(append(b.t.scratch[:0], b.id), k...)
	return b.t.scratch
}

// Get returns the value of k, or nil. The value must not be changed, and is
// valid for the life of the transaction.
func (b *bucket) Get(k []byte) []byte {
	v, _ := b.lookup(k)
	return v
}

// lookup is Get, and tells whether the value is an overlay's: such a value
// is never changed, and lives as long as anyone refers to it, beyond the
// transaction.
func (b *bucket) lookup(k []byte) (v []byte, stable bool) {
	if b.t.layers == nil {
		return b.b.Get(k), false
	}
	probe := b.key(k)
	for _, o := range b.t.layers {
		if o == nil {
			continue
		}
		if it, ok := o.get(probe); ok {
			if it.del {
				return nil, false
			}
			return it.v, true
		}
	}
	return b.boltGet(k), false
}

// Put sets k to v. Both are copied.
func (b *bucket) Put(k, v []byte) error {
	return b.put(k, v, false)
}

// putOwned is Put for a value that nobody changes after: it is kept as is
// (k is still copied).
func (b *bucket) putOwned(k, v []byte) error {
	return b.put(k, v, true)
}

func (b *bucket) put(k, v []byte, owned bool) error {
	switch {
	case b.t.layers == nil:
		return b.b.Put(k, v)
	case b.t.w == nil:
		return errReadOnly
	case len(k) == 0:
		return errors.New("store: empty key")
	// bbolt's limits, checked here: the checkpoint must never meet a write
	// that was acknowledged and that bbolt refuses.
	case len(k) > bolt.MaxKeySize:
		return bolt.ErrKeyTooLarge
	case int64(len(v)) > bolt.MaxValueSize:
		return bolt.ErrValueTooLarge
	}
	if !owned {
		v = append(make([]byte, 0, len(v)), v...)
	}
	b.t.w.set(b, k, item{v: v})
	return nil
}

// Delete removes k (not kept); a key that is not there is no error. A key
// that only the active overlay holds leaves it, with no tombstone: keys
// that live a few rounds (an index entry of a message's short life) never
// reach bbolt, and cursors need not step over them.
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
	if b.heldBelow(k) {
		b.t.w.set(b, k, item{del: true})
	} else {
		b.t.w.remove(b, k)
	}
	return nil
}

// heldBelow reports whether k has a value under the active overlay, which
// a tombstone must hide.
func (b *bucket) heldBelow(k []byte) bool {
	probe := b.key(k)
	for _, o := range b.t.layers[1:] {
		if o == nil {
			continue
		}
		if it, ok := o.get(probe); ok {
			return !it.del
		}
	}
	return b.boltGet(k) != nil
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
// while it is open are allowed: the next move starts again from the key the
// cursor is on.
func (b *bucket) Cursor() *cursor {
	c := &cursor{b: b, bc: b.b.Cursor()}
	for _, o := range b.t.layers {
		if o != nil {
			c.its = append(c.its, &ovIter{o: o, id: b.id})
		}
	}
	return c
}

// cursor walks a bucket in key order over every layer: a merge of a bbolt
// cursor and one iterator per overlay, each kept on its next key, so that a
// step costs a comparison per layer, and a run of deleted keys costs a
// step each, not a search each.
type cursor struct {
	b   *bucket
	bc  *bolt.Cursor
	its []*ovIter // newest layer first
	fwd bool
	bk  []byte // the bbolt cursor's next key in the direction, nil at the end
	bv  []byte
	cur []byte // the key the cursor is on; nil before the first move and at the end
	gen uint64 // the tx's write count when the iterators were placed
}

func (c *cursor) First() ([]byte, []byte)        { return c.place(nil, true, true) }
func (c *cursor) Seek(k []byte) ([]byte, []byte) { return c.place(k, true, true) }
func (c *cursor) Last() ([]byte, []byte)         { return c.place(nil, true, false) }

// Next moves past the current key; after the end it stays there.
func (c *cursor) Next() ([]byte, []byte) { return c.move(true) }

// Prev moves before the current key.
func (c *cursor) Prev() ([]byte, []byte) { return c.move(false) }

func (c *cursor) move(fwd bool) ([]byte, []byte) {
	if c.cur == nil {
		return nil, nil
	}
	if c.b.t.layers == nil {
		var k, v []byte
		if fwd {
			k, v = c.bc.Next()
		} else {
			k, v = c.bc.Prev()
		}
		c.setCur(k)
		return k, v
	}
	if fwd != c.fwd || c.gen != c.b.t.gen {
		// A turn, or writes since the iterators were placed.
		return c.place(c.cur, false, fwd)
	}
	return c.merge()
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

// place puts every source on its first key from from in the direction
// (from nil: the start or the end; incl: from itself counts), then merges.
func (c *cursor) place(from []byte, incl, fwd bool) ([]byte, []byte) {
	c.fwd = fwd
	if fwd {
		c.bk, c.bv = c.boltForward(from, incl)
	} else {
		c.bk, c.bv = c.boltBackward(from, incl)
	}
	if c.b.t.layers == nil {
		c.setCur(c.bk)
		return c.bk, c.bv
	}
	for _, it := range c.its {
		it.place(from, incl, fwd)
	}
	c.gen = c.b.t.gen
	return c.merge()
}

// merge takes the nearest key of all sources, what the newest layer holding
// it says of it, and moves every source holding it on; deleted keys are
// skipped.
func (c *cursor) merge() ([]byte, []byte) {
	for {
		var k []byte // nearest key
		var ok string
		src := -2 // -1: bbolt; i: c.its[i]
		if c.bk != nil {
			k, src = c.bk, -1
		}
		for i := len(c.its) - 1; i >= 0; i-- { // oldest first: newer win ties
			key, has := c.its[i].peek()
			if !has {
				continue
			}
			if src == -2 || c.before(key[1:], k, ok) || c.equal(key[1:], k, ok) {
				k, ok, src = nil, key[1:], i
			}
		}
		if src == -2 {
			c.cur = nil
			return nil, nil
		}
		var key, val []byte
		del := false
		if src == -1 {
			key, val = k, c.bv
		} else {
			it := c.its[src].o.m[c.its[src].keys[c.its[src].pos]]
			key, val, del = []byte(ok), it.v, it.del
		}
		// Move every source on its key past it.
		if c.bk != nil && bytes.Equal(c.bk, key) {
			if c.fwd {
				c.bk, c.bv = c.bc.Next()
			} else {
				c.bk, c.bv = c.bc.Prev()
			}
		}
		for _, it := range c.its {
			if k2, has := it.peek(); has && k2[1:] == string(key) {
				it.pos++
			}
		}
		c.setCur(key)
		if !del {
			return c.cur, val
		}
	}
}

// before reports whether overlay key a comes before the current candidate
// (bbolt key bk, or overlay key ok) in the cursor's direction.
func (c *cursor) before(a string, bk []byte, ok string) bool {
	var cmp int
	if bk != nil {
		cmp = strings.Compare(a, string(bk))
	} else {
		cmp = strings.Compare(a, ok)
	}
	if c.fwd {
		return cmp < 0
	}
	return cmp > 0
}

func (c *cursor) equal(a string, bk []byte, ok string) bool {
	if bk != nil {
		return a == string(bk)
	}
	return a == ok
}

func (c *cursor) setCur(k []byte) {
	if k == nil {
		c.cur = nil
		return
	}
	c.cur = append(c.cur[:0:0], k...)
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

// ovIter walks one overlay's keys of one bucket in a direction, a batch of
// keys at a time.
type ovIter struct {
	o    *overlay
	id   byte
	fwd  bool
	keys []string // id ‖ key, in the direction
	pos  int
	end  bool // no keys beyond keys
}

const ovBatch = 64

// place loads the first keys from from (see cursor.place).
func (it *ovIter) place(from []byte, incl, fwd bool) {
	it.fwd = fwd
	start := string(append([]byte{it.id}, from...))
	if from == nil && !fwd {
		// Bucket ids are small: id+1 does not wrap, and no key is empty.
		start = string([]byte{it.id + 1})
	}
	it.load(start, incl || from == nil)
}

// load fills keys with up to ovBatch keys of the bucket from start.
func (it *ovIter) load(start string, incl bool) {
	it.keys, it.pos, it.end = it.keys[:0], 0, false
	visit := func(k string) bool {
		if k[0] != it.id {
			it.end = true
			return false
		}
		if !incl && k == start {
			return true
		}
		if len(it.keys) == ovBatch {
			return false
		}
		it.keys = append(it.keys, k)
		return true
	}
	switch {
	case it.o.sealed && it.fwd:
		keys := it.o.sortedKeys()
		i, _ := slices.BinarySearch(keys, start)
		for ; i < len(keys) && visit(keys[i]); i++ {
		}
	case it.o.sealed:
		keys := it.o.sortedKeys()
		i, found := slices.BinarySearch(keys, start)
		if !found {
			i-- // the last key before start
		}
		for ; i >= 0 && visit(keys[i]); i-- {
		}
	case it.fwd:
		it.o.ordered(it.id).AscendGreaterOrEqual(start, visit)
	default:
		it.o.ordered(it.id).DescendLessOrEqual(start, visit)
	}
	if len(it.keys) < ovBatch {
		it.end = true
	}
}

// peek returns the iterator's next key (id ‖ key).
func (it *ovIter) peek() (string, bool) {
	if it.pos == len(it.keys) {
		if it.end || len(it.keys) == 0 {
			return "", false
		}
		it.load(it.keys[len(it.keys)-1], false)
		if len(it.keys) == 0 {
			return "", false
		}
	}
	return it.keys[it.pos], true
}
