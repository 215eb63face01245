package smsctest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// receipt is a deliver_sm waiting to be acknowledged.
type receipt struct {
	msg    Message
	out    Outcome
	done   time.Time
	due    time.Time // when to (re)send, if conn is nil
	conn   *conn     // session it was sent on, nil when not in flight
	seq    uint32
	sentAt time.Time
	sent   int // attempts so far
	// duplicated: sent again on purpose after its first ESME_ROK
	duplicated bool
	body       []byte // the PDU body when not a receipt (SendMO)
	command    uint32 // deliver_sm, or data_sm for SendMO
}

// resendLocked makes the receipts already sent once to systemID due now:
// a new bind is when a restarted ESME wants them. s.mu held.
func (s *Server) resendLocked(systemID string) {
	now := time.Now()
	for _, r := range s.outbox {
		if r.conn == nil && r.sent > 0 && r.msg.SystemID == systemID {
			r.due = now
		}
	}
}

// accept1 records m and returns its fresh message id.
func (s *Server) accept1(m Message) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	m.ID = strconv.FormatUint(s.idBase+s.nextID, 16)
	if max := s.cfg.MaxMessages; max > 0 && len(s.msgs) >= max {
		s.msgs = append(s.msgs[:0], s.msgs[len(s.msgs)-max/2:]...) // keep the newest half
	}
	s.msgs = append(s.msgs, m)
	s.total++
	s.notifyLocked()
	return m.ID
}

// outcome picks the first Outcome whose Prefix starts dest.
func (s *Server) outcome(dest string) Outcome {
	for _, o := range s.cfg.Outcomes {
		if strings.HasPrefix(dest, o.Prefix) {
			if o.Err == "" {
				o.Err = "000"
			}
			return o
		}
	}
	return Outcome{Stat: "DELIVRD", Err: "000"}
}

// queueReceipt queues m's receipt if registered_delivery asks for one
// (§5.2.17: 1 on final outcome, 2 on failure only).
func (s *Server) queueReceipt(m Message) {
	if s.cfg.NoReceipts {
		return
	}
	o := s.outcome(m.Dest)
	switch m.RegisteredDelivery & 0x03 {
	case 1:
	case 2:
		if o.Stat == "DELIVRD" {
			return
		}
	default:
		return
	}
	now := time.Now()
	at := now.Add(s.cfg.ReceiptDelay)
	if j := s.cfg.ReceiptJitter; j > 0 {
		at = at.Add(rand.N(j))
	}
	s.mu.Lock()
	s.outbox = append(s.outbox, &receipt{msg: m, out: o, done: at, due: at})
	s.notifyLocked()
	s.wakeLocked()
	s.mu.Unlock()
}

func (s *Server) wake() {
	s.mu.Lock()
	s.wakeLocked()
	s.mu.Unlock()
}

func (s *Server) wakeLocked() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// pump sends due receipts to a session bound with their system_id.
func (s *Server) pump(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		next := s.sendDue()
		t.Reset(time.Until(next))
		select {
		case <-stop:
			return
		case <-s.kick:
		case <-t.C:
		}
	}
}

type outPDU struct {
	c *conn
	p wire.PDU
}

// sendDue sends what is due and returns when to look again.
func (s *Server) sendDue() time.Time {
	now := time.Now()
	next := now.Add(time.Hour)
	var out []outPDU
	s.mu.Lock()
	for _, r := range s.outbox {
		if r.conn != nil && now.Sub(r.sentAt) > s.cfg.RespTimeout {
			r.conn, r.due = nil, now // no deliver_sm_resp: resend
		}
		if r.conn == nil && !r.due.After(now) {
			if c := s.receiverLocked(r.msg.SystemID); c != nil {
				r.conn, r.seq, r.sentAt = c, c.nextSeqLocked(), now
				r.sent++
				out = append(out, outPDU{c, r.pdu(s.cfg.IDStyle)})
			}
		}
		switch {
		case r.conn != nil:
			next = earliest(next, r.sentAt.Add(s.cfg.RespTimeout))
		case r.due.After(now):
			next = earliest(next, r.due)
		}
	}
	s.mu.Unlock()
	for _, o := range out {
		o.c.write(o.p) // a failed write closes the conn; its close requeues
	}
	return next
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// receiverLocked returns the newest session bound as systemID that may
// receive deliver_sm; s.mu held.
func (s *Server) receiverLocked(systemID string) *conn {
	var best *conn
	for c := range s.conns {
		if c.bound && c.receiver && !c.closed && c.systemID == systemID {
			if best == nil || c.born > best.born {
				best = c
			}
		}
	}
	return best
}

// pdu is the deliver_sm (or data_sm) that sends r.
func (r *receipt) pdu(style string) wire.PDU {
	if r.body != nil {
		return wire.PDU{ID: r.command, Seq: r.seq, Body: r.body}
	}
	return wire.PDU{ID: wire.DeliverSM, Seq: r.seq, Body: receiptBody(r, style)}
}

// receiptBody builds the deliver_sm (§4.6.1) for r: esm_class 0x04
// (SMSC delivery receipt, §5.2.12), the Appendix B text, and the TLVs
// receipted_message_id and message_state (§5.3.2.12, §5.3.2.35), the ids
// written in style (Config.IDStyle). Built by hand: go-smpp's
// NewDeliverSM serialises stray UDH bytes.
func receiptBody(r *receipt, style string) []byte {
	tlvID, textID := receiptIDs(r.msg.ID, style)
	tlvs := []wire.TLV{
		{Tag: wire.TagReceiptedMessageID, Value: append([]byte(tlvID), 0)},
		{Tag: wire.TagMessageState, Value: []byte{messageState(r.out.Stat)}},
	}
	if code, err := strconv.Atoi(r.out.Err); err == nil && code != 0 {
		tlvs = append(tlvs, wire.TLV{Tag: wire.TagNetworkErrorCode, Value: []byte{3, byte(code >> 8), byte(code)}}) // 3: GSM
	}
	sm := wire.SM{
		SourceTON: 1, SourceNPI: 1, Source: r.msg.Dest,
		DestTON: 1, DestNPI: 1, Dest: r.msg.Source,
		ESMClass: 0x04, ShortMessage: []byte(receiptText(textID, r.msg, r.out, r.done)), TLVs: tlvs,
	}
	b, err := sm.Marshal()
	if err != nil { // cannot happen: the text is short
		panic(fmt.Sprintf("smsctest: receipt body: %v", err))
	}
	return b
}

// ReceiptText is the SMPP v3.4 Appendix B receipt text for m.
func ReceiptText(m Message, o Outcome, done time.Time) string {
	return receiptText(m.ID, m, o, done)
}

func receiptText(id string, m Message, o Outcome, done time.Time) string {
	dlvrd := "000"
	if o.Stat == "DELIVRD" {
		dlvrd = "001"
	}
	return fmt.Sprintf("id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%s text:%s",
		id, dlvrd, m.At.Format("0601021504"), done.Format("0601021504"), o.Stat, o.Err, textStart(m))
}

// textStart is the first 20 characters of the message, printable ASCII
// only (others become '?'): UCS-2 is decoded, a UDH skipped.
func textStart(m Message) string {
	b := m.ShortMessage
	if m.ESMClass&0x40 != 0 && len(b) > 0 && int(b[0]) < len(b) {
		b = b[1+int(b[0]):]
	}
	var rs []rune
	if m.DataCoding == 0x08 {
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		}
		rs = utf16.Decode(u)
	} else {
		for _, c := range b {
			rs = append(rs, rune(c))
		}
	}
	rs = rs[:min(len(rs), 20)]
	for i, r := range rs {
		if r < 0x20 || r > 0x7E {
			rs[i] = '?'
		}
	}
	return string(rs)
}

// messageState maps a stat: word to message_state (§5.2.28).
func messageState(stat string) byte {
	states := map[string]byte{"ENROUTE": 1, "DELIVRD": 2, "EXPIRED": 3, "DELETED": 4,
		"UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7, "REJECTD": 8}
	if v, ok := states[stat]; ok {
		return v
	}
	return 7
}

// InjectReceipt sends a receipt deliver_sm for message id with the given
// sequence number (0: the session's next) on the newest session bound as
// systemID. It bypasses the receipt queue: it is not resent. For tests,
// e.g. a deliver_sm whose seq equals a pending submit_sm's.
func (s *Server) InjectReceipt(systemID string, seq uint32, id, stat string) error {
	m := Message{ID: id, At: time.Now()}
	r := &receipt{msg: m, out: Outcome{Stat: stat, Err: "000"}, done: m.At}
	s.mu.Lock()
	c := s.receiverLocked(systemID)
	if c == nil {
		s.mu.Unlock()
		return errors.New("smsctest: no session bound as " + systemID)
	}
	if seq == 0 {
		seq = c.nextSeqLocked()
	}
	if c.injected == nil {
		c.injected = make(map[uint32]string)
	}
	c.injected[seq] = id
	s.mu.Unlock()
	return c.write(wire.PDU{ID: wire.DeliverSM, Seq: seq, Body: receiptBody(r, s.cfg.IDStyle)})
}

// respID is how submit_sm_resp writes id (Config.IDStyle).
func (s *Server) respID(id string) string {
	n, err := strconv.ParseUint(id, 16, 64)
	switch {
	case err != nil:
		return id
	case s.cfg.IDStyle == "hex/dec":
		return fmt.Sprintf("%012X", n)
	case s.cfg.IDStyle == "dec":
		return strconv.FormatUint(n, 10)
	}
	return id
}

// receiptIDs are how a receipt writes id in its TLV and its text.
func receiptIDs(id, style string) (tlv, text string) {
	n, err := strconv.ParseUint(id, 16, 64)
	if err != nil || (style != "hex/dec" && style != "dec") {
		return id, id
	}
	d := fmt.Sprintf("%020d", n) // fixed width: leading zeros the ESME must ignore
	return d, d
}

// sendReceiptNow sends m's receipt on c at once (ReceiptBeforeResp):
// tracked like any receipt, so it is resent until acknowledged.
func (s *Server) sendReceiptNow(c *conn, m Message) {
	o := s.outcome(m.Dest)
	if m.RegisteredDelivery&0x03 == 0 || (m.RegisteredDelivery&0x03 == 2 && o.Stat == "DELIVRD") {
		return
	}
	now := time.Now()
	r := &receipt{msg: m, out: o, done: now, due: now, sentAt: now, sent: 1}
	s.mu.Lock()
	r.conn, r.seq = c, c.nextSeqLocked()
	s.outbox = append(s.outbox, r)
	s.mu.Unlock()
	c.write(r.pdu(s.cfg.IDStyle))
}

// SendMO queues a mobile-originated deliver_sm (§4.6.1) or data_sm
// (§4.7.1) for m.SystemID, resent like a receipt until acknowledged with
// ESME_ROK. It returns the id DeliverResps reports for it ("mo-N").
func (s *Server) SendMO(m MO) string {
	now := time.Now()
	r := &receipt{due: now, body: moBody(m), command: wire.DeliverSM}
	if m.DataSM {
		r.command = wire.DataSM
	}
	s.mu.Lock()
	s.moSeq++
	r.msg = Message{ID: fmt.Sprintf("mo-%d", s.moSeq), SystemID: m.SystemID, At: now}
	s.outbox = append(s.outbox, r)
	s.notifyLocked()
	s.wakeLocked()
	s.mu.Unlock()
	return r.msg.ID
}

// moBody encodes m: esm_class 0 (or 0x40 with a UDH, §5.2.12).
func moBody(m MO) []byte {
	esm := byte(0)
	ud := append(append([]byte(nil), m.UDH...), m.Text...)
	if len(m.UDH) > 0 {
		esm = 0x40
	}
	var tlvs []wire.TLV
	for tag, v := range m.TLVs {
		tlvs = append(tlvs, wire.TLV{Tag: tag, Value: v})
	}
	if m.DataSM {
		tlvs = append(tlvs, wire.TLV{Tag: wire.TagMessagePayload, Value: ud})
		return wire.DataSMBody{SourceTON: 1, SourceNPI: 1, Source: m.From, DestTON: 1, DestNPI: 1, Dest: m.To,
			ESMClass: esm, DataCoding: m.DataCoding}.Marshal(tlvs...)
	}
	sm := wire.SM{SourceTON: 1, SourceNPI: 1, Source: m.From, DestTON: 1, DestNPI: 1, Dest: m.To,
		ESMClass: esm, DataCoding: m.DataCoding, ShortMessage: ud, TLVs: tlvs}
	if len(ud) > 254 {
		sm.ShortMessage, sm.TLVs = nil, append(tlvs, wire.TLV{Tag: wire.TagMessagePayload, Value: ud})
	}
	b, err := sm.Marshal()
	if err != nil {
		panic(fmt.Sprintf("smsctest: MO body: %v", err)) // only with a test's absurd TLVs
	}
	return b
}

// InjectCommand sends a request with commandID and body on the newest
// session bound as systemID, e.g. a command the ESME does not know. Its
// response is recorded in Responses.
func (s *Server) InjectCommand(systemID string, commandID uint32, body []byte) (uint32, error) {
	s.mu.Lock()
	c := s.boundLocked(systemID)
	if c == nil {
		s.mu.Unlock()
		return 0, errors.New("smsctest: no session bound as " + systemID)
	}
	seq := c.nextSeqLocked()
	if c.commands == nil {
		c.commands = make(map[uint32]bool)
	}
	c.commands[seq] = true
	s.mu.Unlock()
	return seq, c.write(wire.PDU{ID: commandID, Seq: seq, Body: body})
}

// boundLocked returns the newest open session bound as systemID.
func (s *Server) boundLocked(systemID string) *conn {
	var best *conn
	for c := range s.conns {
		if c.bound && !c.closed && c.systemID == systemID && (best == nil || c.born > best.born) {
			best = c
		}
	}
	return best
}
