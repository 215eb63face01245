package smsctest

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// conn is one ESME connection. Its bind state is guarded by Server.mu.
type conn struct {
	s   *Server
	nc  net.Conn
	log *slog.Logger
	wmu sync.Mutex // writes never interleave

	// guarded by s.mu
	born     uint64 // accept order: the newest session gets receipts
	bound    bool
	receiver bool // may get deliver_sm: bound as receiver or transceiver
	sender   bool // may submit: bound as transmitter or transceiver
	systemID string
	seq      uint32
	closed   bool
	injected map[uint32]string // seq → message id of InjectReceipt PDUs
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

// close forgets the connection; receipts waiting for its
// deliver_sm_resp go back to the queue for the next bind.
func (c *conn) close() {
	c.nc.Close()
	s := c.s
	s.mu.Lock()
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

// write sends p; errors surface as the read loop's.
func (c *conn) write(p wire.PDU) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.RespTimeout))
	_, err := c.nc.Write(p.Marshal())
	if err != nil {
		c.nc.Close()
	}
	return err
}

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
	case wire.DeliverSMResp, wire.GenericNack:
		c.deliverResp(p)
		return true
	case wire.EnquireLink:
		c.s.mu.Lock()
		c.s.enquires++
		c.s.notifyLocked()
		c.s.mu.Unlock()
		return c.write(p.Resp(0, nil)) == nil
	case wire.Unbind:
		c.write(p.Resp(0, nil))
		return false
	}
	if wire.IsResponse(p.ID) {
		return true // enquire_link_resp, unbind_resp…
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
	if c.s.cfg.SubmitStatus != nil {
		if st := c.s.cfg.SubmitStatus(m); st != 0 {
			return c.write(p.Resp(st, nil))
		}
	}
	m.ID = c.s.accept1(m)
	c.log.Info("smsc got SMS", "smsc_id", m.ID, "from", m.Source, "to", m.Dest,
		"data_coding", m.DataCoding, "esm_class", m.ESMClass, "text", preview(m))
	if c.s.cfg.OnSubmit != nil {
		c.s.cfg.OnSubmit(m, p.Seq)
	}
	if err := c.write(p.Resp(0, wire.MessageIDBody(m.ID))); err != nil {
		return err
	}
	c.s.queueReceipt(m)
	return nil
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
		if p.Status == 0 {
			s.outbox = append(s.outbox[:i], s.outbox[i+1:]...)
		} else {
			r.due = time.Now().Add(s.cfg.ReceiptRetry)
		}
		break
	}
	if !ok {
		c.log.Warn("smsc: unexpected response", "seq", p.Seq, "command_id", fmt.Sprintf("0x%08X", p.ID))
		return
	}
	s.resps = append(s.resps, DeliverResp{MessageID: id, Seq: p.Seq, Status: p.Status})
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
