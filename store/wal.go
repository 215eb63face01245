package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The write-ahead log.
//
// The rounds of the writer (writer.go) that the syncer takes together are
// one log record, appended to the current log file and made durable with
// fdatasync before any of their calls is answered: the log, not bbolt, is
// what makes a write durable. bbolt is
// brought up to date by checkpoints, each of which copies the writes of
// many rounds into one bbolt transaction (committed with fsync, as always),
// where the four or five writes of one message's life collapse into their
// final values. A bbolt commit writes every B-tree page it touches, so one
// per round cost most of the writer's time; an append costs one sequential
// write.
//
// Files are named <store file>-wal.<gen>, gen a decimal number that grows
// by one at each checkpoint: the writer starts a new file, and the old one
// is deleted once its checkpoint committed. A record is
//
//	length of payload (uint32) ‖ CRC-32C of seq ‖ payload (uint32) ‖ seq (uint64) ‖ payload
//
// all big-endian; seq numbers the records from 1 without gaps, across
// files. The payload is a list of operations:
//
//	1 ‖ uvarint len ‖ bucket ‖ uvarint len ‖ key ‖ uvarint len ‖ value   (put)
//	2 ‖ uvarint len ‖ bucket ‖ uvarint len ‖ key                        (delete)
//
// A checkpoint writes the seq of the last round it holds to the meta bucket
// (key "wal_seq") in its own transaction. Open replays, in order, every
// record after that seq, up to a torn last record (short, or its CRC does
// not match): that round was never acknowledged, since an answer waits for
// its fdatasync. Anything else wrong (a bad record with good ones after it,
// a gap in seq) is damage, not a crash: Open fails and leaves the files as
// they are (see replay). Puts and deletes set keys to values, so replaying
// a round bbolt already holds is harmless too.

var (
	keyWALSeq  = []byte("wal_seq")
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

const (
	opPut    = 1
	opDelete = 2

	walHeader = 16
	// maxWALRecord bounds one record (the length field is 32 bits).
	maxWALRecord int64 = 1<<32 - 1 - walHeader
	// maxRoundBytes ends a round early: the calls left wait for the next.
	maxRoundBytes = 16 << 20
)

// wal is the log file being appended to.
type wal struct {
	path string // the store file's; logs are path-wal.<gen>
	f    *os.File
	gen  uint64
	seq  uint64 // of the last record written
	size int64  // bytes in the current file
}

func walName(path string, gen uint64) string {
	return path + "-wal." + strconv.FormatUint(gen, 10)
}

// walFiles returns the generations of the log files beside path, oldest
// first. path is absolute and clean (Open sees to it): the names are
// compared as strings, not as glob patterns.
func walFiles(path string) ([]uint64, error) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	prefix := filepath.Base(path) + "-wal."
	var gens []uint64
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		g, err := strconv.ParseUint(rest, 10, 64)
		if err != nil || strconv.FormatUint(g, 10) != rest {
			continue // not ours
		}
		gens = append(gens, g)
	}
	slices.Sort(gens)
	return gens, nil
}

// create starts log file gen, and makes its name durable.
func (l *wal) create(gen uint64) error {
	f, err := os.OpenFile(walName(l.path, gen), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create log: %w", err)
	}
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		f.Close()
		return fmt.Errorf("create log: %w", err)
	}
	if l.f != nil {
		l.f.Close()
	}
	l.f, l.gen, l.size = f, gen, 0
	return nil
}

// write appends one record holding payload, which sync then makes
// durable. buf has walHeader bytes free in front of payload.
func (l *wal) write(buf []byte) error {
	payload := buf[walHeader:]
	seq := l.seq + 1
	binary.BigEndian.PutUint32(buf[0:], uint32(len(payload)))
	binary.BigEndian.PutUint64(buf[8:], seq)
	crc := crc32.Update(crc32.Checksum(buf[8:16], castagnoli), castagnoli, payload)
	binary.BigEndian.PutUint32(buf[4:], crc)
	if _, err := l.f.Write(buf); err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	l.seq = seq
	l.size += int64(len(buf))
	return nil
}

// sync waits for the records written to be on disk.
func (l *wal) sync() error {
	if err := fdatasync(l.f); err != nil {
		return fmt.Errorf("sync log: %w", err)
	}
	return nil
}

func (l *wal) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// appendOp adds an operation to a payload.
func appendOp(p []byte, op byte, bucket, k, v []byte) []byte {
	p = append(p, op)
	p = binary.AppendUvarint(p, uint64(len(bucket)))
	p = append(p, bucket...)
	p = binary.AppendUvarint(p, uint64(len(k)))
	p = append(p, k...)
	if op == opPut {
		p = binary.AppendUvarint(p, uint64(len(v)))
		p = append(p, v...)
	}
	return p
}

// errTorn ends a log: the rest was never acknowledged.
var errTorn = errors.New("torn log record")

// nextRecord splits the first record off data.
func nextRecord(data []byte) (seq uint64, payload, rest []byte, err error) {
	if len(data) < walHeader {
		return 0, nil, nil, errTorn
	}
	n := binary.BigEndian.Uint32(data[0:])
	if uint64(n) > uint64(len(data)-walHeader) {
		return 0, nil, nil, errTorn
	}
	payload = data[walHeader : walHeader+int(n)]
	crc := crc32.Update(crc32.Checksum(data[8:16], castagnoli), castagnoli, payload)
	if crc != binary.BigEndian.Uint32(data[4:]) {
		return 0, nil, nil, errTorn
	}
	return binary.BigEndian.Uint64(data[8:]), payload, data[walHeader+int(n):], nil
}

// laterRecord reports whether data holds, at any offset, a good record
// with a seq after seq: then a bad record before it was not the last one
// written. Only offsets whose seq field is plausible are checked in full.
func laterRecord(data []byte, seq uint64) bool {
	for off := 0; off+walHeader <= len(data); off++ {
		s := binary.BigEndian.Uint64(data[off+8:])
		if s <= seq || s-seq > 1<<32 {
			continue
		}
		if _, _, _, err := nextRecord(data[off:]); err == nil {
			return true
		}
	}
	return false
}

// applyOps applies a payload's operations to a bbolt transaction.
func applyOps(btx *bolt.Tx, p []byte) error {
	for len(p) > 0 {
		op := p[0]
		p = p[1:]
		bucket, rest, err := field(p)
		if err != nil {
			return err
		}
		k, rest, err := field(rest)
		if err != nil {
			return err
		}
		b := btx.Bucket(bucket)
		if b == nil {
			return fmt.Errorf("log names unknown bucket %q", bucket)
		}
		switch op {
		case opPut:
			var v []byte
			if v, rest, err = field(rest); err != nil {
				return err
			}
			err = b.Put(k, v)
		case opDelete:
			err = b.Delete(k)
		default:
			return fmt.Errorf("log has unknown operation %d", op)
		}
		if err != nil {
			return err
		}
		p = rest
	}
	return nil
}

func field(p []byte) (f, rest []byte, err error) {
	n, w := binary.Uvarint(p)
	if w <= 0 || uint64(len(p)-w) < n {
		return nil, nil, errors.New("malformed log operation")
	}
	return p[w : w+int(n)], p[w+int(n):], nil
}

// replay applies to btx, in order, the rounds of the log files beside path
// that follow the checkpoint btx holds, and records the last one as
// checkpointed. It returns the last seq and the newest generation seen.
//
// Only the last record of the newest file can be torn: a file is followed
// by another only once its last append was on disk, and a write that
// failed stops the writer. A torn record anywhere else, or a round that
// does not follow the one before (a store file older than its log, as
// from a backup taken without it), is an error: Open fails and leaves the
// files alone, rather than drop rounds that were acknowledged.
func replay(btx *bolt.Tx, path string) (seq, gen uint64, rounds int, err error) {
	meta := btx.Bucket(bucketMeta)
	if v := meta.Get(keyWALSeq); len(v) == 8 {
		seq = binary.BigEndian.Uint64(v)
	}
	gens, err := walFiles(path)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("replay log: %w", err)
	}
	for i, g := range gens {
		gen = g
		data, err := os.ReadFile(walName(path, g))
		if err != nil {
			return 0, 0, 0, fmt.Errorf("replay log: %w", err)
		}
		for len(data) > 0 {
			s, payload, rest, err := nextRecord(data)
			if err != nil {
				if i < len(gens)-1 || laterRecord(data[1:], seq) {
					return 0, 0, 0, fmt.Errorf("replay log %s: %w followed by good ones (damaged)", walName(path, g), err)
				}
				break // the round being written at the crash
			}
			data = rest
			if s <= seq {
				continue // checkpointed already
			}
			if s != seq+1 {
				return 0, 0, 0, fmt.Errorf("replay log %s: round %d follows %d: the log does not continue the store file", walName(path, g), s, seq)
			}
			if err := applyOps(btx, payload); err != nil {
				return 0, 0, 0, fmt.Errorf("replay log %s round %d: %w", walName(path, g), s, err)
			}
			seq = s
			rounds++
		}
	}
	if err := meta.Put(keyWALSeq, binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return 0, 0, 0, err
	}
	return seq, gen, rounds, nil
}
