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
