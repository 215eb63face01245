//go:build !linux

package store

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

// syncDir does nothing where directories cannot be synced.
func syncDir(dir string) error { return nil }
