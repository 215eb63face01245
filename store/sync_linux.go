package store

import (
	"os"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// fdatasync makes f's data durable without its times (the log is
// appended, so its size is written too).
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// syncDir makes the directory's entries durable (a new log file's name).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// releaseMapped drops the pages of bbolt's file mapping from the process's
// resident set (MADV_DONTNEED; they stay in the page cache, and a read
// faults them back in). bbolt maps the whole file and reads it through the
// mapping, so without this the RSS grows with every page the store ever
// read, up to the file's size. It runs in a read transaction: bbolt cannot
// remap meanwhile, so the range is bbolt's mapping and nothing else.
func releaseMapped(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, db.Info().Data, uintptr(tx.Size()), syscall.MADV_DONTNEED)
		if errno != 0 {
			return errno
		}
		return nil
	})
}
