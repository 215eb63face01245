package smsctest

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// conn is one ESME connection. Its bind state is guarded by Server.mu.
type conn struct {
	s   *Server
	nc  net.Conn
	log *slog.Logger
	w   *wire.Writer  // writes never interleave; many PDUs a syscall
	end chan struct{} // closed by close

	// guarded by s.mu
	born     uint64 // accept order: the newest session gets receipts
	bound    bool
	receiver bool // may get deliver_sm: bound as receiver or transceiver
	sender   bool // may submit: bound as transmitter or transceiver
	systemID string
	seq      uint32
	closed   bool
	injected map[uint32]string // seq → message id of InjectReceipt PDUs
	commands map[uint32]bool   // seqs of InjectCommand requests
}

func (c *conn) serve() {
	defer c.s.wg.Done()
	defer c.close()
	r := bufio.NewReader(c.nc)
	for {
		p, err := wire.Read(r)
		if err != nil {
			c.log.Debug("smsc connection ends", "err", err)
			return
		}
		if !c.dispatch(p) {
			return
		}
	}
}

// close forgets the connection, after sending what is queued (an
// unbind_resp); receipts waiting for its deliver_sm_resp go back to the
// queue for the next bind.
func (c *conn) close() {
	c.w.Close()
	c.nc.Close()
	s := c.s
	s.mu.Lock()
	if !c.closed {
		close(c.end)
	}
	c.closed = true
	delete(s.conns, c)
	for _, r := range s.outbox {
		if r.conn == c {
			r.conn = nil
		}
	}
	s.notifyLocked()
	s.mu.Unlock()
}

// write queues p; a failed write closes the connection, so errors
// surface as the read loop's.
func (c *conn) write(p wire.PDU) error { return c.w.Write(p) }

// nextSeqLocked: 1..0x7FFFFFFF, wrapping (§3.2); s.mu held.
func (c *conn) nextSeqLocked() uint32 {
	c.seq++
	if c.seq > 0x7FFFFFFF {
		c.seq = 1
	}
	return c.seq
}

// dispatch handles one PDU; false ends the connection.
func (c *conn) dispatch(p wire.PDU) bool {
	switch p.ID {
	case wire.BindTransceiver, wire.BindTransmitter, wire.BindReceiver:
		return c.bind(p)
	case wire.SubmitSM:
		return c.submit(p) == nil
	case wire.EnquireLink:
		c.s.mu.Lock()
		c.s.enquires++
		c.s.notifyLocked()
		c.s.mu.Unlock()
		return c.write(p.Resp(0, nil)) == nil
	case wire.Unbind:
		c.s.mu.Lock()
		c.s.unbinds++
		c.s.notifyLocked()
		c.s.mu.Unlock()
		c.write(p.Resp(0, nil))
		return false
	}
	if wire.IsResponse(p.ID) {
		c.response(p)
		return true
	}
	c.log.Warn("smsc: command not handled", "seq", p.Seq, "command_id", fmt.Sprintf("0x%08X", p.ID))
	return c.write(p.Nack(wire.StatusInvCmdID)) == nil
}

// bind answers bind_* (§4.1); a refused bind gets its bind_resp and then
// the connection is closed.
func (c *conn) bind(p wire.PDU) bool {
	b, err := wire.ParseBind(p.Body)
	c.s.mu.Lock()
	status := uint32(wire.StatusAlyBnd)
	if !c.bound {
		status = c.bindStatus(b, err)
	}
	if status == 0 {
		c.bound, c.systemID = true, b.SystemID
		c.receiver = p.ID != wire.BindTransmitter
		c.sender = p.ID != wire.BindReceiver
		c.s.resendLocked(b.SystemID)
	}
	c.s.mu.Unlock()
	if err := c.write(p.Resp(status, wire.SystemIDBody("smsctest"))); err != nil {
		return false
	}
	c.log.Info("smsc bind", "system_id", b.SystemID, "status", status)
	if status == wire.StatusAlyBnd {
		return true
	}
	if status != 0 {
		return false
	}
	c.s.mu.Lock()
	c.s.binds++
	c.s.notifyLocked()
	if c.s.cfg.EnquireLink > 0 {
		c.s.wg.Add(1)
		go c.keepalive()
	}
	c.s.mu.Unlock()
	c.s.wake() // receipts kept for this system_id go out now
	return true
}

func (c *conn) bindStatus(b wire.Bind, err error) uint32 {
	cfg := c.s.cfg
	switch {
	case err != nil:
		return wire.StatusBindFail
	case cfg.SystemID == "":
		return 0
	case b.SystemID != cfg.SystemID:
		return wire.StatusInvSysID
	case b.Password != cfg.Password:
		return wire.StatusInvPaswd
	}
	return 0
}

// submit answers submit_sm (§4.4) and queues its receipt.
func (c *conn) submit(p wire.PDU) error {
	c.s.mu.Lock()
	ok, systemID := c.bound && c.sender, c.systemID
	c.s.mu.Unlock()
	if !ok {
		return c.write(p.Resp(wire.StatusInvBndSts, nil))
	}
	sm, err := wire.ParseSM(p.Body)
	if err != nil {
		c.log.Warn("smsc: malformed submit_sm", "seq", p.Seq, "err", err)
		return c.write(p.Resp(0x01, nil)) // ESME_RINVMSGLEN
	}
	m := messageOf(sm, systemID)
	m.Conn = c.born
	if st := c.s.refuse(m); st != 0 {
		return c.respond(p.Resp(st, nil))
	}
	m.ID = c.s.accept1(m)
	if c.log.Enabled(context.Background(), slog.LevelInfo) {
		c.log.Info("smsc got SMS", "smsc_id", m.ID, "from", m.Source, "to", m.Dest,
			"data_coding", m.DataCoding, "esm_class", m.ESMClass, "text", preview(m))
	}
	if c.s.cfg.OnSubmit != nil {
		c.s.cfg.OnSubmit(m, p.Seq)
	}
	if c.s.cfg.ReceiptBeforeResp {
		c.s.sendReceiptNow(c, m)
	}
	if err := c.respond(p.Resp(0, wire.MessageIDBody(c.s.respID(m.ID)))); err != nil {
		return err
	}
	if !c.s.cfg.ReceiptBeforeResp {
		c.s.queueReceipt(m)
	}
	return nil
}

// respond sends a submit_sm_resp, after RespDelay and RespJitter if set.
func (c *conn) respond(p wire.PDU) error {
	d := c.s.cfg.RespDelay
	if j := c.s.cfg.RespJitter; j > 0 {
		d += rand.N(j)
	}
	if d <= 0 {
		return c.write(p)
	}
	time.AfterFunc(d, func() { c.write(p) }) // fails quietly once the conn is gone
	return nil
}

// refuse returns the status for a submit_sm the simulator refuses: by
// SubmitStatus, ThrottleFraction or MaxTPS (ESME_RTHROTTLED, §5.1.3).
func (s *Server) refuse(m Message) uint32 {
	if s.cfg.SubmitStatus != nil {
		if st := s.cfg.SubmitStatus(m); st != 0 {
			return st
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.cfg.ThrottleFraction; f > 0 {
		s.throttleAcc += f
		if s.throttleAcc >= 1 {
			s.throttleAcc--
			s.throttled++
			return wire.StatusThrottled
		}
	}
	if s.cfg.MaxTPS > 0 {
		sec := time.Now().Truncate(time.Second)
		if !sec.Equal(s.tpsSecond) {
			s.tpsSecond, s.tpsCount = sec, 0
		}
		if s.tpsCount >= s.cfg.MaxTPS {
			s.throttled++
			return wire.StatusThrottled
		}
		s.tpsCount++
	}
	return 0
}

// keepalive sends enquire_link every EnquireLink while c is open (§4.11).
func (c *conn) keepalive() {
	defer c.s.wg.Done()
	t := time.NewTicker(c.s.cfg.EnquireLink)
	defer t.Stop()
	for {
		select {
		case <-c.end:
			return
		case <-t.C:
		}
		c.s.mu.Lock()
		seq := c.nextSeqLocked()
		c.s.mu.Unlock()
		if c.write(wire.PDU{ID: wire.EnquireLink, Seq: seq}) != nil {
			return
		}
	}
}

// response handles a response from the ESME: to InjectCommand, to our
// enquire_link, or to a deliver_sm/data_sm.
func (c *conn) response(p wire.PDU) {
	s := c.s
	s.mu.Lock()
	if c.commands[p.Seq] {
		delete(c.commands, p.Seq)
		s.cmdResps = append(s.cmdResps, Response{CommandID: p.ID, Status: p.Status, Seq: p.Seq})
		s.notifyLocked()
		s.mu.Unlock()
		return
	}
	if p.ID == wire.EnquireLinkResp {
		s.enqResps++
		s.notifyLocked()
	}
	s.mu.Unlock()
	switch p.ID {
	case wire.DeliverSMResp, wire.DataSMResp, wire.GenericNack:
		c.deliverResp(p)
	}
}

func messageOf(sm wire.SM, systemID string) Message {
	text := sm.ShortMessage
	if len(text) == 0 {
		text = sm.TLVMap[wire.TagMessagePayload]
	}
	return Message{
		SystemID: systemID, Source: sm.Source, Dest: sm.Dest,
		ESMClass: sm.ESMClass, DataCoding: sm.DataCoding, RegisteredDelivery: sm.RegisteredDelivery,
		ShortMessage: text, Validity: sm.Validity, TLVs: sm.TLVMap, At: time.Now(),
	}
}

// deliverResp records a deliver_sm_resp (or a generic_nack to our
// deliver_sm) and settles its receipt: ESME_ROK removes it, anything else
// schedules a resend after ReceiptRetry.
func (c *conn) deliverResp(p wire.PDU) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := c.injected[p.Seq]
	delete(c.injected, p.Seq)
	for i, r := range s.outbox {
		if r.conn != c || r.seq != p.Seq {
			continue
		}
		id, ok = r.msg.ID, true
		r.conn = nil
		switch {
		case p.Status == 0 && s.cfg.DuplicateReceipts && !r.duplicated:
			r.duplicated, r.due = true, time.Now() // and again, as after a lost resp
			s.dupReceipts++
		case p.Status == 0:
			s.outbox = append(s.outbox[:i], s.outbox[i+1:]...)
		default:
			r.due = time.Now().Add(s.cfg.ReceiptRetry)
		}
		break
	}
	if !ok {
		c.log.Warn("smsc: unexpected response", "seq", p.Seq, "command_id", fmt.Sprintf("0x%08X", p.ID))
		return
	}
	if max := s.cfg.MaxMessages; max > 0 && len(s.resps) >= max {
		s.resps = append(s.resps[:0], s.resps[len(s.resps)-max/2:]...) // keep the newest half
	}
	s.resps = append(s.resps, DeliverResp{MessageID: id, Seq: p.Seq, Status: p.Status})
	s.respTotal++
	s.notifyLocked()
	s.wakeLocked()
}

// preview is the text of m for the log, its UDH left out.
func preview(m Message) string {
	b := m.ShortMessage
	if m.ESMClass&0x40 != 0 && len(b) > 0 && int(b[0]) < len(b) {
		b = b[1+int(b[0]):]
	}
	coding := convert.GSM7
	switch m.DataCoding {
	case 0x00:
	case 0x08:
		coding = convert.UCS2
	default:
		return fmt.Sprintf("(%d octets, data_coding %#x)", len(b), m.DataCoding)
	}
	text, err := convert.Decode(coding, b)
	if err != nil {
		return fmt.Sprintf("(%d octets: %v)", len(b), err)
	}
	return text
}
