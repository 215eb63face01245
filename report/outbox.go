package report

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Send writes msg to a new file "<UTC timestamp>-<random>.eml" in Dir,
// creating Dir (0700) if needed. The file is written under a temporary
// name, fsync'd, renamed and the directory fsync'd, so a reader sees whole
// reports only. rcpt does not appear in the file name (it is the To header
// inside); the file holds msg unchanged.
func (o Outbox) Send(ctx context.Context, rcpt string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("report: outbox %s: %w", o.Dir, err)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("report: outbox: %w", err)
	}
	name, err := outboxName(time.Now())
	if err != nil {
		return err
	}
	if err := writeAtomic(o.Dir, name, msg); err != nil {
		return fmt.Errorf("report: outbox %s: report to %s: %w", o.Dir, rcpt, err)
	}
	return nil
}

// outboxName is built only from the time and random bytes, so it sorts by
// time and is safe as a path element.
func outboxName(now time.Time) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("report: outbox name: %w", err)
	}
	return now.UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(b[:]) + ".eml", nil
}

// writeAtomic writes data to dir/name via a temporary file that never ends
// in ".eml" and is removed on failure.
func writeAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, ".tmp-report-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
