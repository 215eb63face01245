package store

import (
	"os/signal"
	"syscall"
	"testing"
)

// TestPartialLogWrite: the file-size limit cuts a batch's log record short
// (as a full disk would). Its calls fail, reads go on over what was
// durable before, and the next Open finds the same: the short record is
// the log's torn last one.
func TestPartialLogWrite(t *testing.T) {
	noCheckpoints(t)
	signal.Ignore(syscall.SIGXFSZ) // the write fails with EFBIG instead
	s, path := openTemp(t, Options{})
	r := record("+491511234567", 1)
	mustAdd(t, s, r)
	size := func() int64 {
		cf := snapshotFiles(t, path)
		return int64(len(cf.logs[cf.maxGen()]))
	}
	before := size()
	mustUpdate(t, s, r.ID, func(r *Record) error { r.Attempts = 1; return nil })
	after := size()
	release, errs := heldUpdates(t, s, r.ID, 2) // one round, then a batch of two
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	saved := limit
	// Room for the first round's record (as long as the last one, give or
	// take a byte), and a few bytes of the batch's.
	limit.Cur = uint64(after + (after - before) + 8)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_FSIZE, &saved)
	release()
	failed := 0
	for range 3 {
		if err := <-errs; err != nil {
			failed++
		}
	}
	syscall.Setrlimit(syscall.RLIMIT_FSIZE, &saved)
	got := mustGet(t, s, r.ID).Attempts
	if err := s.Close(); err == nil {
		t.Error("Close hid the log's failure")
	}
	s2 := openAt(t, path, Options{})
	if again := mustGet(t, s2, r.ID).Attempts; again != got {
		t.Errorf("reopened: %d attempts; the store showed %d after %d of 3 updates failed", again, got, failed)
	}
	if failed != 2 || got != 11 {
		t.Errorf("%d updates failed, %d attempts; want the batch's 2 failed, 11 (the first round's)", failed, got)
	}
}
