package smtpd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/store"
)

var (
	errAuthRequired = &smtp.SMTPError{
		Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required: your network is not trusted",
	}
	errBareNewline = &smtp.SMTPError{
		Code: 550, EnhancedCode: smtp.EnhancedCode{5, 5, 2},
		Message: "Message contains bare CR or LF: lines must end in CRLF (RFC 5321 section 2.3.8)",
	}
	errNoText = &smtp.SMTPError{
		Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Message has neither a text body nor a subject: nothing to send as SMS",
	}
	errTooComplex = &smtp.SMTPError{
		Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message too complex (MIME nesting, parts or text size over the limit)",
	}
	errStore = &smtp.SMTPError{
		Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary local problem: message not queued, try again later",
	}
)

type rcpt struct {
	addr   string // as given in RCPT TO
	number string // E.164
}

// session is one SMTP connection; go-smtp calls it from one goroutine.
type session struct {
	srv    *Server
	remote netip.Addr
	helo   string
	from   *string // nil until MAIL FROM
	rcpts  []rcpt
}

func (s *session) Reset() {
	s.from = nil
	s.rcpts = nil
}

func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if !s.srv.trusted(s.remote) {
		s.srv.log.Info("smtp refused", "client", s.remote, "from", from, "reason", "untrusted network")
		return errAuthRequired
	}
	s.from = &from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	cfg := &s.srv.cfg
	number, err := Recipient(to, cfg.Domains, cfg.DefaultRegion)
	if err != nil {
		s.srv.log.Info("smtp rcpt refused", "client", s.remote, "rcpt", to, "reason", err)
		return err
	}
	for _, r := range s.rcpts {
		if r.number == number {
			// Two addresses for one phone in one mail are one SMS, as an
			// MTA delivers one copy to a mailbox named twice.
			return nil
		}
	}
	s.rcpts = append(s.rcpts, rcpt{addr: to, number: number})
	return nil
}

func (s *session) Data(r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err // go-smtp's own *SMTPError for an oversize body
	}
	if hasBareNewline(body) {
		return errBareNewline
	}
	mail, err := convert.Extract(bytes.NewReader(body), s.srv.cfg.Convert)
	if err != nil {
		s.srv.log.Info("smtp mail refused", "client", s.remote, "err", err)
		return ConvertReply(err)
	}
	recs, err := s.records(mail)
	if err != nil {
		s.srv.log.Info("smtp mail refused", "client", s.remote, "msgid", mail.MessageID, "err", err)
		return ConvertReply(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.CommitTimeout)
	defer cancel()
	if err := s.srv.q.Add(ctx, recs); err != nil {
		s.srv.log.Error("smtp queue failed", "client", s.remote, "msgid", mail.MessageID, "err", err)
		return errStore
	}
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = rec.ID
		s.srv.log.Info("accepted", "id", rec.ID, "msgid", mail.MessageID, "from", rec.From,
			"to", rec.To, "segments", len(rec.Segments), "client", s.remote)
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0},
		Message: "OK: queued as " + strings.Join(ids, " ")}
}

// ConvertReply is the SMTP reply for an error of convert.Extract or
// convert.Encode.
func ConvertReply(err error) *smtp.SMTPError {
	var se *convert.SegmentsError
	switch {
	case errors.Is(err, convert.ErrNoText):
		return errNoText
	case errors.Is(err, convert.ErrTooComplex):
		return errTooComplex
	case errors.As(err, &se):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
			Message: fmt.Sprintf("Message too long: its text needs %d SMS, the limit is %d", se.Needed, se.Max)}
	}
	return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "Message could not be read: " + err.Error()}
}

// records encodes the text and makes one record per recipient. The store
// gives each its concatenation reference when it queues them.
func (s *session) records(m *convert.Mail) ([]*store.Record, error) {
	enc, err := convert.Encode(m.Text, s.srv.cfg.Convert)
	if err != nil {
		return nil, err
	}
	segs := make([]store.Segment, len(enc.Segments))
	for i, sg := range enc.Segments {
		segs[i] = store.Segment{Payload: sg.Payload, Text: sg.Text}
	}
	recs := make([]*store.Record, 0, len(s.rcpts))
	for _, r := range s.rcpts {
		recs = append(recs, &store.Record{
			From:         *s.from,
			Rcpt:         r.addr,
			To:           r.number,
			MessageID:    m.MessageID,
			Subject:      m.Subject,
			Header:       m.Header,
			Text:         m.Text,
			DataCoding:   enc.Coding.DataCoding(),
			Concat:       string(enc.Concat),
			Ref:          randomRef(),
			LockingShift: enc.LockingShift,
			SingleShift:  enc.SingleShift,
			Truncated:    enc.Truncated,
			Segments:     slices.Clone(segs),
		})
	}
	return recs, nil
}

// randomRef is a concatenation reference until the store assigns one per
// destination.
func randomRef() uint16 {
	var b [2]byte
	rand.Read(b[:])
	return uint16(b[0])<<8 | uint16(b[1])
}

// hasBareNewline reports a CR not followed by LF or an LF not preceded by
// CR. Refusing them (as Postfix's smtpd_forbid_bare_newline does) keeps a
// message from smuggling a second one past an MTA in front of us that reads
// line ends differently.
func hasBareNewline(b []byte) bool {
	for i, c := range b {
		switch c {
		case '\r':
			if i+1 >= len(b) || b[i+1] != '\n' {
				return true
			}
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return true
			}
		}
	}
	return false
}
