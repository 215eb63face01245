package store

import (
	"os"
	"syscall"
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
