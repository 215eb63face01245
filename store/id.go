package store

import (
	"encoding/binary"
	"encoding/hex"
	"math"
	"sync"
	"time"
)

// idGen makes record ids: 12 bytes, the creation time in Unix nanoseconds
// (8 bytes, big-endian) then a counter (4 bytes, big-endian), written as 24
// lowercase hex digits. Hex keeps the byte order, so ids sort by creation as
// strings and as bbolt keys, and reads well in logs.
//
// Ids are strictly increasing within a process: a second id in the same
// nanosecond, or a clock that went back, bumps the counter instead. Open
// resumes from the newest id in the file, so ids stay unique and increasing
// across restarts even if the clock was set back in between.
type idGen struct {
	mu   sync.Mutex
	nano uint64
	seq  uint32
}

func (g *idGen) next(now time.Time) string {
	n := uint64(max(now.UnixNano(), 0))
	g.mu.Lock()
	switch {
	case n > g.nano:
		g.nano, g.seq = n, 0
	case g.seq == math.MaxUint32:
		g.nano, g.seq = g.nano+1, 0
	default:
		g.seq++
	}
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], g.nano)
	binary.BigEndian.PutUint32(b[8:], g.seq)
	g.mu.Unlock()
	return hex.EncodeToString(b[:])
}

// resume makes every later id sort after id (ignored if id is not ours).
func (g *idGen) resume(id string) {
	b, err := hex.DecodeString(id)
	if err != nil || len(b) != 12 {
		return
	}
	g.mu.Lock()
	g.nano = binary.BigEndian.Uint64(b[:8])
	g.seq = binary.BigEndian.Uint32(b[8:])
	g.mu.Unlock()
}
