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

	"github.com/smsbridge/smsbridge/report"
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

// keepForPostmaster writes trace, then msg, into the postmaster's maildir
// and returns the file's path once it is durable: written to tmp/,
// fsync'd, renamed into new/, and new/ fsync'd (the maildir protocol).
func keepForPostmaster(dir, trace string, msg []byte) (string, error) {
	if err := makeMaildir(dir); err != nil {
		return "", err
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
	_, err = f.WriteString(trace)
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

// makeMaildir makes dir and its tmp/, new/ and cur/ if they are missing,
// each made durable in its parent, so that a file renamed into new/ after
// a first start cannot lose its directory in a crash.
func makeMaildir(dir string) error {
	for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "new"), filepath.Join(dir, "cur")} {
		if _, err := os.Stat(d); err == nil {
			continue
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// postmasterTrace is what goes on top of a message for the postmaster: its
// Return-Path and our Received field (RFC 5321 §4.4), and Delivered-To.
func (s *session) postmasterTrace(env envelope) string {
	with := "ESMTP" // RFC 3848
	switch {
	case s.lmtp:
		with = "LMTP"
	case s.tls && env.user != nil:
		with = "ESMTPSA"
	case s.tls:
		with = "ESMTPS"
	case env.user != nil:
		with = "ESMTPA"
	}
	helo := s.helo
	if helo == "" {
		helo = "unknown"
	}
	return fmt.Sprintf("Return-Path: <%s>\r\nDelivered-To: postmaster\r\n"+
		"Received: from %s ([%s])\r\n\tby %s (smsbridge) with %s;\r\n\t%s\r\n",
		report.Mailbox(env.from), helo, s.remote, s.srv.cfg.Hostname, with,
		s.srv.cfg.Now().Format("Mon, 02 Jan 2006 15:04:05 -0700"))
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
