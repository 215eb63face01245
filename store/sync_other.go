//go:build !linux

package store

import (
	"os"

	bolt "go.etcd.io/bbolt"
)

func fdatasync(f *os.File) error { return f.Sync() }

// syncDir does nothing where directories cannot be synced.
func syncDir(dir string) error { return nil }

// releaseMapped does nothing where madvise is not at hand.
func releaseMapped(db *bolt.DB) error { return nil }
