package smtpd

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Mail to the postmaster.
//
// RFC 5321 §4.5.1: a server MUST take mail for "postmaster" at the domains
// it serves, and "RCPT TO:<Postmaster>" without a domain (case does not
// matter). Such mail is no SMS: it goes whole into a maildir,
// Config.PostmasterDir (one file per message in new/, on disk before the
// 250), where the operator reads it with any mail reader, or a script.
// The same mail to numbers as well is an SMS for them, and a copy for the
// postmaster.

// isPostmaster reports whether addr is the postmaster of our domains.
func isPostmaster(addr string, domains []string) bool {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return strings.EqualFold(addr, "postmaster")
	}
	return strings.EqualFold(addr[:at], "postmaster") && ourDomain(addr[at+1:], domains)
}

// keepForPostmaster writes msg into the postmaster's maildir with a
// Return-Path and a Delivered-To field on top (RFC 5321 §4.4), and returns
// the file's path once it is durable: written to tmp/, fsync'd, renamed
// into new/, and new/ fsync'd (the maildir protocol).
func keepForPostmaster(dir, from string, msg []byte) (string, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return "", err
		}
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	name := strconv.FormatInt(time.Now().UnixNano(), 10) + "." + hex.EncodeToString(r[:]) + ".smsbridge"
	tmp, final := filepath.Join(dir, "tmp", name), filepath.Join(dir, "new", name)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	_, err = fmt.Fprintf(f, "Return-Path: <%s>\r\nDelivered-To: postmaster\r\n", from)
	if err == nil {
		_, err = f.Write(msg)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(filepath.Join(dir, "new"))
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return final, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
