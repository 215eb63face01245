package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/smtpd/ratelimit"
	"github.com/smsbridge/smsbridge/smtpd/users"
	"github.com/smsbridge/smsbridge/store"
)

type rcpt struct {
	addrs  []string // as given in RCPT TO: several may name one number
	number string   // E.164
	notify string   // RFC 3461 NOTIFY of the first address, as store.Record.Notify
	orcpt  string   // RFC 3461 ORCPT of the first address, as store.Record.ORcpt
}

// dsn is what MAIL FROM said of delivery status notifications.
type dsn struct {
	ret   string // RFC 3461 RET: "FULL", "HDRS" or ""
	envID string // RFC 3461 ENVID, decoded
	utf8  bool   // SMTPUTF8
}

// session is one SMTP conversation: go-smtp makes a new one at the first
// EHLO and after STARTTLS. Its methods run on the connection's goroutine,
// except Data under BDAT (CHUNKING), which go-smtp runs on another while
// it may call Reset: hence mu.
type session struct {
	srv     *Server
	c       *conn // nil only if the listener was not ours
	remote  netip.Addr
	trusted bool
	tls     bool
	lmtp    bool
	helo    string // the client's EHLO, HELO or LHLO name

	mu    sync.Mutex
	user  *users.User // after AUTH
	from  *string     // nil until MAIL FROM
	dsn   dsn
	rcpts []rcpt
	given []string // every RCPT TO accepted, in order, for LMTP replies
	// postmaster are the addresses given for the postmaster (postmaster.go).
	postmaster []string
}

func (s *Server) newSession(c *smtp.Conn, lmtp bool) *session {
	nc := c.Conn()
	_, isTLS := c.TLSConnectionState()
	remote := addrOf(nc.RemoteAddr())
	unix := nc.RemoteAddr() != nil && nc.RemoteAddr().Network() == "unix"
	return &session{
		srv: s, c: connOf(nc), remote: remote, tls: isTLS, lmtp: lmtp, helo: c.Hostname(),
		trusted: unix || s.trusted(remote),
	}
}

func (s *session) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.from = nil
	s.dsn = dsn{}
	s.rcpts = nil
	s.given = nil
	s.postmaster = nil
}

func (s *session) Logout() error { return nil }

// fail counts a refusal; past Config.MaxErrors it becomes the last reply.
func (s *session) fail(err *smtp.SMTPError) error {
	if s.c.countError(s.srv.cfg.MaxErrors) {
		s.srv.log.Warn("smtp too many errors", "client", s.remote, "last", err.Error())
		return s.hangup(errTooManyErrors)
	}
	return err
}

// hangup gives err as the last reply of the connection. Our go-smtp
// closes the connection itself after a 421 (third_party/go-smtp, change 5),
// once the command's replies are out; other codes need our conn to hang up
// after the next write, which is this reply's: go-smtp flushes before it
// reads the message, so nothing else is buffered then.
func (s *session) hangup(err *smtp.SMTPError) error {
	if err.Code != 421 {
		s.c.hangupAfterReply()
	}
	return err
}

// AuthMechanisms implements smtp.AuthSession: AUTH is advertised only over
// TLS, and only with users configured.
func (s *session) AuthMechanisms() []string {
	if !s.tls || s.lmtp || s.srv.users.Load() == nil {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements smtp.AuthSession.
func (s *session) Auth(mech string) (sasl.Server, error) {
	switch {
	case s.lmtp || s.srv.users.Load() == nil:
		return nil, s.fail(errAuthDisabled)
	case !s.tls:
		return nil, s.fail(errNeedTLS)
	case s.srv.auth.failures(clientKey(s.remote)) >= s.srv.cfg.AuthMaxFailures:
		s.srv.log.Warn("smtp auth refused", "client", s.remote, "reason", "too many failures")
		return nil, s.hangup(errAuthLocked)
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return &plainServer{auth: s.authenticate}, nil
	case sasl.Login:
		return &loginServer{auth: s.authenticate}, nil
	}
	return nil, s.fail(errAuthMechanism)
}

func (s *session) authenticate(identity, name, password string) error {
	db := s.srv.users.Load()
	u, ok := db.Authenticate(name, password)
	if ok && (identity == "" || identity == name) {
		s.mu.Lock()
		s.user = u
		s.mu.Unlock()
		s.srv.log.Info("smtp auth", "client", s.remote, "user", name)
		return nil
	}
	cfg := &s.srv.cfg
	n := s.srv.auth.fail(clientKey(s.remote))
	s.srv.log.Warn("smtp auth failed", "client", s.remote, "user", name, "failures", n)
	if n >= cfg.AuthMaxFailures {
		return s.hangup(errAuthLocked)
	}
	if n >= cfg.AuthSlowAfter {
		s.srv.sleep(cfg.AuthDelay)
	}
	return s.fail(errAuthFailed)
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.srv.isDraining() {
		return s.hangup(errShuttingDown)
	}
	s.mu.Lock()
	user, open := s.user, s.from != nil
	s.mu.Unlock()
	if open {
		// RFC 5321 section 4.1.4: MAIL inside a transaction is a bad
		// sequence (RSET first); go-smtp leaves this one to us.
		return s.fail(errNestedMail)
	}
	if (opts == nil || !opts.UTF8) && !isASCII(from) {
		return s.fail(errUTF8Address)
	}
	switch {
	case user != nil:
		if !users.SenderAllowed(user.Senders, from) {
			s.srv.log.Info("smtp refused", "client", s.remote, "user", user.Name, "from", from, "reason", "sender not allowed for user")
			return s.fail(replyf(553, 5, 7, 1, "Sender address <%s> not owned by user %s", from, user.Name))
		}
	case s.trusted:
		if !users.SenderAllowed(s.srv.pol.Load().TrustedSenders, from) {
			s.srv.log.Info("smtp refused", "client", s.remote, "from", from, "reason", "sender not allowed without AUTH")
			return s.fail(errTrustedSender)
		}
	default:
		s.srv.log.Info("smtp refused", "client", s.remote, "from", from, "reason", "untrusted network")
		return s.fail(errAuthRequired)
	}
	s.mu.Lock()
	s.from = &from
	s.dsn = dsn{}
	if opts != nil {
		s.dsn = dsn{ret: string(opts.Return), envID: opts.EnvelopeID, utf8: opts.UTF8}
	}
	s.mu.Unlock()
	return nil
}

// notifyString is NOTIFY as store.Record.Notify has it: "NEVER", or the
// values asked for in the order SUCCESS, FAILURE, DELAY; "" if absent.
func notifyString(n []smtp.DSNNotify) string {
	var out []string
	for _, v := range []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed} {
		if slices.Contains(n, v) {
			out = append(out, string(v))
		}
	}
	if slices.Contains(n, smtp.DSNNotifyNever) {
		return string(smtp.DSNNotifyNever) // go-smtp refuses NEVER with others
	}
	return strings.Join(out, ",")
}

// orcptString is ORCPT as "addr-type;address" with the type in lower case,
// as RFC 3464 §2.3.1 writes it.
func orcptString(opts *smtp.RcptOptions) string {
	if opts == nil || opts.OriginalRecipient == "" {
		return ""
	}
	return strings.ToLower(string(opts.OriginalRecipientType)) + ";" + opts.OriginalRecipient
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if s.srv.isDraining() {
		return s.hangup(errShuttingDown)
	}
	cfg := &s.srv.cfg
	if cfg.PostmasterDir != "" && isPostmaster(to, cfg.Domains) {
		s.mu.Lock()
		s.postmaster = append(s.postmaster, to)
		s.given = append(s.given, to)
		s.mu.Unlock()
		return nil
	}
	num, err := s.srv.numbers.recipient(to, cfg.Domains, cfg.DefaultRegion)
	if err != nil {
		s.srv.log.Info("smtp rcpt refused", "client", s.remote, "rcpt", to, "reason", err)
		s.mu.Lock()
		utf8 := s.dsn.utf8
		s.mu.Unlock()
		if !isASCII(to) && !utf8 {
			return s.fail(errUTF8Address) // RFC 6531 3.7.4.1; a number is ASCII anyway
		}
		var se *smtp.SMTPError
		errors.As(err, &se)
		return s.fail(se)
	}
	number := num.e164
	if s.srv.pol.Load().MobileOnly && cannotReceiveSMS[num.kind] {
		region := s.srv.numbers.region(num)
		s.srv.log.Info("smtp rcpt refused", "client", s.remote, "rcpt", to, "to", number,
			"country", region, "type", num.kind, "reason", "not a mobile number")
		return s.fail(replyf(550, 5, 1, 3, "%s is a %s number in %s, not a mobile phone", number, strings.ReplaceAll(num.kind, "_", " "), region))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason := s.destinationRefused(number); reason != "" {
		s.srv.log.Info("smtp rcpt refused", "client", s.remote, "rcpt", to, "to", number, "reason", reason)
		return s.fail(replyf(550, 5, 7, 1, "Destination %s not allowed: %s", number, reason))
	}
	for i, r := range s.rcpts {
		if r.number == number {
			// Two addresses for one phone in one mail are one SMS, as an
			// MTA delivers one copy to a mailbox named twice.
			s.rcpts[i].addrs = append(s.rcpts[i].addrs, to)
			s.given = append(s.given, to)
			return nil
		}
	}
	// Refuse at RCPT what cannot fit the rate limits now, so that an MTA
	// sends the others and retries these later.
	n := len(s.rcpts) + 1
	if err := s.srv.rate.Check(s.claims(n, n)...); err != nil {
		s.srv.log.Info("smtp rcpt refused", "client", s.remote, "rcpt", to, "reason", err)
		var e *ratelimit.Exceeded
		if errors.As(err, &e) {
			e.TooLarge = false // this recipient alone would fit later, in a mail of its own
		}
		return s.fail(limitReply(err))
	}
	r := rcpt{addrs: []string{to}, number: number}
	if opts != nil {
		r.notify, r.orcpt = notifyString(opts.Notify), orcptString(opts)
	}
	s.rcpts = append(s.rcpts, r)
	s.given = append(s.given, to)
	return nil
}

// destinationRefused returns why number may not be sent to, or "".
func (s *session) destinationRefused(number string) string {
	cfg := s.srv.pol.Load()
	switch {
	case users.HasPrefix(number, cfg.DenyPrefixes):
		return "the prefix is blocked on this server"
	case len(cfg.AllowPrefixes) > 0 && !users.HasPrefix(number, cfg.AllowPrefixes):
		return "this server does not send to that prefix"
	case s.user != nil && len(s.user.Prefixes) > 0 && !users.HasPrefix(number, s.user.Prefixes):
		return "user " + s.user.Name + " may not send to that prefix"
	}
	return ""
}

// claims are what msgs SMS messages of segs segments would count against.
// Called with mu held.
func (s *session) claims(msgs, segs int) []ratelimit.Claim {
	cfg := s.srv.pol.Load()
	var cl []ratelimit.Claim
	if s.user != nil {
		if l := s.user.Limits.Or(cfg.UserLimits); !l.IsZero() {
			cl = append(cl, ratelimit.Claim{Key: "user:" + s.user.Name, Who: "user " + s.user.Name,
				Limits: l, Messages: msgs, Segments: segs})
		}
	}
	if !cfg.IPLimits.IsZero() && s.remote.IsValid() && (!s.trusted || cfg.LimitTrusted) {
		k := clientKey(s.remote)
		cl = append(cl, ratelimit.Claim{Key: "ip:" + k, Who: "your address " + k,
			Limits: cfg.IPLimits, Messages: msgs, Segments: segs})
	}
	return cl
}

// limitReply is the reply for a *ratelimit.Exceeded.
func limitReply(err error) *smtp.SMTPError {
	var e *ratelimit.Exceeded
	if !errors.As(err, &e) {
		return errStore
	}
	switch {
	case e.TooLarge:
		return replyf(550, 5, 7, 1, "Mail needs %d %s, more than the limit of %d per %s for %s",
			e.Claimed, e.What, e.Limit, e.Window, e.Who)
	case e.Window == ratelimit.Day:
		return replyf(550, 5, 7, 1, "Daily quota exceeded: %s may send %d %s per day; it resets at %s",
			e.Who, e.Limit, e.What, e.Reset.UTC().Format("2006-01-02 15:04 MST"))
	}
	return replyf(451, 4, 7, 1, "Rate limit reached: %s may send %d %s per %s; try again after %s",
		e.Who, e.Limit, e.What, e.Window, e.Reset.UTC().Format("15:04:05 MST"))
}

// envelope is a copy of the transaction taken when DATA starts.
type envelope struct {
	from       string
	dsn        dsn
	user       *users.User
	rcpts      []rcpt
	given      []string
	postmaster []string
	claims     func(msgs, segs int) []ratelimit.Claim
}

func (s *session) envelope() (envelope, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.from == nil || len(s.rcpts) == 0 && len(s.postmaster) == 0 {
		return envelope{}, false // reset under BDAT
	}
	return envelope{from: *s.from, dsn: s.dsn, user: s.user, rcpts: slices.Clone(s.rcpts), given: slices.Clone(s.given),
		postmaster: slices.Clone(s.postmaster),
		claims: func(m, g int) []ratelimit.Claim {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.claims(m, g)
		}}, true
}

// read reads the message and refuses what cannot be an SMS. After a
// timeout the connection cannot go on: the reply is the last.
func (s *session) read(r io.Reader) ([]byte, error) {
	body, err := io.ReadAll(r)
	var ne net.Error
	switch {
	case err == nil:
	case errors.As(err, &ne) && ne.Timeout():
		s.srv.log.Info("smtp mail refused", "client", s.remote, "reason", "timeout in DATA")
		return nil, s.hangup(errDataTimeout)
	default:
		return nil, err // go-smtp's own *SMTPError for an oversize body; a lost connection
	}
	if hasBareNewline(body) {
		s.srv.log.Info("smtp mail refused", "client", s.remote, "reason", "bare CR or LF")
		return nil, s.fail(errBareNewline)
	}
	// go-smtp (our fork) bounds a message's lines by its size only, so
	// that this reply comes after the end of data and the session goes on.
	if longestLine(body) > s.srv.cfg.MaxLineLength {
		s.srv.log.Info("smtp mail refused", "client", s.remote, "reason", "line too long")
		return nil, s.fail(replyf(552, 5, 3, 4, "Message has a line longer than %d bytes", s.srv.cfg.MaxLineLength))
	}
	return body, nil
}

// longestLine is the length of b's longest line, without its CRLF.
func longestLine(b []byte) int {
	longest := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		longest = max(longest, len(bytes.TrimSuffix(b[:i], []byte("\r"))))
		b = b[min(i+1, len(b)):]
	}
	return longest
}

// message reads DATA and makes the records of every recipient; what is
// left to Data and LMTPData is committing them (and the postmaster's
// copy of body) and replying.
func (s *session) message(r io.Reader) (env envelope, body []byte, recs []*store.Record, msgid string, err error) {
	env, ok := s.envelope()
	if body, err = s.read(r); err != nil {
		return env, nil, nil, "", err
	}
	if !ok {
		return env, nil, nil, "", smtp.ErrDataReset
	}
	if len(env.rcpts) > 0 {
		recs, msgid, err = s.records(env, body)
	}
	return env, body, recs, msgid, err
}

func (s *session) Data(r io.Reader) error {
	s.c.beginData()
	defer s.c.endData()
	env, body, recs, msgid, err := s.message(r)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		if err := s.toPostmaster(env, body, true); err != nil {
			return err
		}
		return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: kept for the postmaster"}
	}
	if err := s.queue(env, recs, msgid); err != nil {
		return err
	}
	if err := s.toPostmaster(env, body, false); err != nil {
		return err // the client sends again; the store's duplicate filter spares the SMS
	}
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: queuedAs(recs)}
}

// toPostmaster keeps the postmaster's copy of body, if the mail is for the
// postmaster too: after its SMS are queued, so that a mail refused for them
// (a quota) leaves no copy. A mail for the postmaster alone takes one
// message of the client's rate limits (claim). A copy that failed is kept
// again when the client retries: at least once, as for SMS.
func (s *session) toPostmaster(env envelope, body []byte, claim bool) error {
	if len(env.postmaster) == 0 {
		return nil
	}
	undo := func() {}
	if claim {
		var err error
		if undo, err = s.srv.rate.Take(env.claims(1, 0)...); err != nil {
			s.srv.log.Info("smtp mail refused", "client", s.remote, "reason", err)
			return s.fail(limitReply(err))
		}
	}
	path, err := keepForPostmaster(s.srv.cfg.PostmasterDir, s.postmasterTrace(env), body)
	if err != nil {
		undo()
		s.srv.log.Error("smtp postmaster mail not kept", "client", s.remote, "from", env.from, "err", err)
		return errStore
	}
	s.srv.log.Info("kept for the postmaster", "from", env.from, "to", env.postmaster, "file", path, "client", s.remote)
	return nil
}

// maxReplyText keeps a reply line within its 512 octets (RFC 5321 section
// 4.5.3.1.5) with room for any enhanced code, as go-smtp's cap (which would
// cut the text, and the " and N more" with it) does.
const maxReplyText = 512 - len("250 ") - len("5.999.999 ") - len("\r\n")

// queuedAs is the text of the 250 to a message: the ids of its records, as
// many as fit in one reply line, then how many more there are (the log
// has every id with the mail's Message-ID).
func queuedAs(recs []*store.Record) string {
	var b strings.Builder
	b.WriteString("OK: queued as")
	for i, rec := range recs {
		// Room for this id and, if others follow, for saying how many:
		// the step before kept room for " and N more" from here.
		need := 1 + len(rec.ID)
		if rest := len(recs) - i - 1; rest > 0 {
			need += len(" and  more") + len(strconv.Itoa(rest))
		}
		if b.Len()+need > maxReplyText {
			fmt.Fprintf(&b, " and %d more", len(recs)-i)
			break
		}
		b.WriteString(" " + rec.ID)
	}
	return b.String()
}

// LMTPData implements smtp.LMTPSession: each recipient is queued on its
// own and gets its own reply, so one failure does not fail the others.
func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	s.c.beginData()
	defer s.c.endData()
	env, body, recs, msgid, err := s.message(r)
	if err != nil {
		return err
	}
	if len(env.postmaster) > 0 {
		reply := s.toPostmaster(env, body, len(recs) == 0)
		if reply == nil {
			reply = &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: kept for the postmaster"}
		}
		for _, a := range env.postmaster {
			status.SetStatus(a, reply)
		}
	}
	for i, rec := range recs {
		var reply error
		if err := s.queue(env, []*store.Record{rec}, msgid); err != nil {
			reply = err
			if se, ok := err.(*smtp.SMTPError); ok && se.Code == 421 {
				// The session ends with this reply: queue no more,
				// and give the rest the same answer.
				for _, r := range env.rcpts[i:] {
					for _, a := range r.addrs {
						status.SetStatus(a, err)
					}
				}
				return nil
			}
		} else {
			reply = &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK: queued as " + rec.ID}
		}
		for _, a := range env.rcpts[i].addrs {
			status.SetStatus(a, reply)
		}
	}
	return nil
}

// queue takes the rate limits for recs and commits them.
func (s *session) queue(env envelope, recs []*store.Record, msgid string) error {
	segs := 0
	for _, rec := range recs {
		segs += len(rec.Segments)
	}
	undo, err := s.srv.rate.Take(env.claims(len(recs), segs)...)
	if err != nil {
		s.srv.log.Info("smtp mail refused", "client", s.remote, "msgid", msgid, "reason", err)
		return s.fail(limitReply(err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.srv.cfg.CommitTimeout)
	defer cancel()
	if err := s.srv.q.Add(ctx, recs); err != nil {
		undo()
		s.srv.log.Error("smtp queue failed", "client", s.remote, "msgid", msgid, "err", err)
		return errStore
	}
	for _, rec := range recs {
		if rec.DuplicateOf != "" {
			// The client retried after a lost reply: 250 again, no SMS.
			s.srv.log.Info("duplicate: accepted again without a second SMS", "id", rec.DuplicateOf,
				"msgid", msgid, "from", rec.From, "to", rec.To, "client", s.remote)
			continue
		}
		if !s.srv.log.Enabled(context.Background(), slog.LevelInfo) {
			continue // the region costs a pass over the numbering plan
		}
		var region, kind string
		if num, err := s.srv.numbers.recipient(rec.Rcpt, s.srv.cfg.Domains, s.srv.cfg.DefaultRegion); err == nil {
			region, kind = s.srv.numbers.region(num), num.kind
		}
		s.srv.log.Info("accepted", "id", rec.ID, "msgid", msgid, "from", rec.From, "user", rec.User,
			"to", rec.To, "country", region, "type", kind, "segments", len(rec.Segments), "client", s.remote)
	}
	return nil
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

// records converts the mail and makes one record per recipient. The store
// gives each its concatenation reference when it queues them.
func (s *session) records(env envelope, body []byte) ([]*store.Record, string, error) {
	opts := s.srv.cfg.Convert
	if env.user != nil && env.user.MaxSegments > 0 {
		max := opts.MaxSegments
		if max == 0 {
			max = convert.DefaultOptions().MaxSegments
		}
		opts.MaxSegments = min(max, env.user.MaxSegments)
	}
	m, err := convert.Extract(bytes.NewReader(body), opts)
	if err != nil {
		s.srv.log.Info("smtp mail refused", "client", s.remote, "err", err)
		return nil, "", s.fail(ConvertReply(err))
	}
	enc, err := convert.Encode(m.Text, opts)
	if err != nil {
		s.srv.log.Info("smtp mail refused", "client", s.remote, "msgid", m.MessageID, "err", err)
		return nil, "", s.fail(ConvertReply(err))
	}
	segs := make([]store.Segment, len(enc.Segments))
	for i, sg := range enc.Segments {
		segs[i] = store.Segment{Payload: sg.Payload, Text: sg.Text}
	}
	var name, source, policy string
	if env.user != nil {
		name, source, policy = env.user.Name, env.user.Source, string(env.user.Report)
	}
	noReport := loopReason(env.from, m.Fields)
	var original []byte
	if env.dsn.ret == string(smtp.DSNReturnFull) && noReport == "" && int64(len(body)) <= s.srv.cfg.MaxReturnBytes {
		original = body
	}
	recs := make([]*store.Record, 0, len(env.rcpts))
	for _, r := range env.rcpts {
		recs = append(recs, &store.Record{
			From:         env.from,
			Rcpt:         r.addrs[0],
			User:         name,
			Source:       source,
			To:           r.number,
			MessageID:    m.MessageID,
			Subject:      m.Subject,
			Header:       capHeader(m.Header),
			Text:         m.Text,
			DataCoding:   enc.Coding.DataCoding(),
			Concat:       string(enc.Concat),
			LockingShift: enc.LockingShift,
			SingleShift:  enc.SingleShift,
			Truncated:    enc.Truncated,
			Segments:     slices.Clone(segs),
			Notify:       r.notify,
			ORcpt:        r.orcpt,
			Ret:          env.dsn.ret,
			EnvID:        env.dsn.envID,
			UTF8:         env.dsn.utf8,
			Original:     original,
			ReportPolicy: policy,
			NoReport:     noReport,
		})
	}
	return recs, m.MessageID, nil
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

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// maxKeptHeader bounds the original header block kept with each record
// for its report (text/rfc822-headers): a mail may carry megabytes of
// headers, and every recipient's record holds its own copy.
const maxKeptHeader = 64 << 10

// capHeader cuts h to maxKeptHeader at a line boundary.
func capHeader(h []byte) []byte {
	if len(h) <= maxKeptHeader {
		return h
	}
	cut := bytes.LastIndex(h[:maxKeptHeader], []byte("\n"))
	return h[:cut+1]
}
