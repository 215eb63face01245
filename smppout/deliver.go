package smppout

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// readLoop reads PDUs until the connection fails, the framing breaks or
// the SMSC unbinds. Handlers run elsewhere: a slow store never stalls the
// responses this loop matches.
func (s *session) readLoop() error {
	for {
		p, err := wire.Read(s.r)
		if err != nil {
			return fmt.Errorf("smppout: read: %w", err)
		}
		if err := s.dispatch(p); err != nil {
			return err
		}
	}
}

func (s *session) dispatch(p wire.PDU) error {
	if wire.IsResponse(p.ID) {
		s.resolve(p)
		return nil
	}
	switch p.ID {
	case wire.EnquireLink:
		return s.write(p.Resp(0, nil))
	case wire.Unbind:
		s.write(p.Resp(0, nil))
		return errPeerUnbind
	case wire.DeliverSM:
		return s.deliverSM(p)
	case wire.DataSM:
		return s.dataSM(p)
	default:
		// outbind, alert_notification, cancel_sm, submit_sm, unknown… (§4.3)
		s.log.Warn("smpp request not handled: generic_nack", "seq", p.Seq, "command_id", fmt.Sprintf("0x%08X", p.ID))
		return s.write(p.Nack(wire.StatusInvCmdID))
	}
}

// isReceipt: esm_class bits 2-5 (§5.2.12) give the message type: 0x04
// SMSC delivery receipt, 0x08 SME delivery acknowledgement, 0x20
// intermediate delivery notification. A receipted_message_id TLV also
// marks a receipt: some SMSCs leave esm_class 0.
func isReceipt(esm byte, tlvs map[uint16][]byte) bool {
	switch esm & 0x3C {
	case 0x04, 0x08, 0x20:
		return true
	}
	_, ok := tlvs[wire.TagReceiptedMessageID]
	return ok
}

// deliverSM handles deliver_sm (§4.6.1): a receipt or an MO message.
func (s *session) deliverSM(p wire.PDU) error {
	resp := func(status uint32) wire.PDU { return p.Resp(status, wire.MessageIDBody("")) }
	sm, err := wire.ParseSM(p.Body)
	if err != nil {
		return s.malformed(p, err, resp)
	}
	if !isReceipt(sm.ESMClass, sm.TLVMap) {
		s.mo(p.Seq, newMO("deliver_sm", sm), resp)
		return nil
	}
	text := sm.ShortMessage
	if len(text) == 0 {
		text = sm.TLVMap[wire.TagMessagePayload]
	}
	s.receipt(p.Seq, string(text), sm.TLVMap, resp)
	return nil
}

// dataSM handles data_sm (§4.7.1) like deliver_sm; its user data is in
// message_payload.
func (s *session) dataSM(p wire.PDU) error {
	resp := func(status uint32) wire.PDU { return p.Resp(status, wire.MessageIDBody("")) }
	d, err := wire.ParseDataSM(p.Body)
	if err != nil {
		return s.malformed(p, err, resp)
	}
	if !isReceipt(d.ESMClass, d.TLVMap) {
		s.mo(p.Seq, newMO("data_sm", wire.SM{
			SourceTON: d.SourceTON, SourceNPI: d.SourceNPI, Source: d.Source,
			DestTON: d.DestTON, DestNPI: d.DestNPI, Dest: d.Dest,
			ESMClass: d.ESMClass, DataCoding: d.DataCoding, TLVMap: d.TLVMap}), resp)
		return nil
	}
	s.receipt(p.Seq, string(d.TLVMap[wire.TagMessagePayload]), d.TLVMap, resp)
	return nil
}

// malformed refuses a body that does not parse with ESME_RX_P_APPN: a
// broken PDU is an SMSC bug, and a permanent error stops it being resent
// forever. The session goes on: the framing is intact.
func (s *session) malformed(p wire.PDU, err error, resp func(uint32) wire.PDU) error {
	s.stats.malformed.Add(1)
	s.log.Error("smpp malformed request refused", "seq", p.Seq, "command_id", fmt.Sprintf("0x%08X", p.ID),
		"err", err, "body", fmt.Sprintf("%x", p.Body))
	return s.write(resp(wire.StatusXPAppn))
}

// receipt runs the Handler on its own goroutine and sends the response
// only when it returns: ESME_ROK if it stored the receipt, ESME_RX_T_APPN
// (temporary, the SMSC resends) if not. A receipt without a message id
// cannot be matched; it is refused with ESME_RX_P_APPN.
func (s *session) receipt(seq uint32, text string, tlvs map[uint16][]byte, resp func(uint32) wire.PDU) {
	r, err := receiptFromTLVs(text, tlvs, s.cfg.IDFormat)
	if err != nil {
		s.stats.malformed.Add(1)
		s.log.Error("smpp receipt without message id", "seq", seq, "err", err)
		s.write(resp(wire.StatusXPAppn))
		return
	}
	s.handle(seq, "receipt", func(ctx context.Context) error { return s.h(ctx, r) },
		&s.stats.receipts, resp, "smsc_id", r.MessageID, "stat", r.Stat)
}

// mo hands an MO message (or part) to Config.MO like receipt does; with
// no MOHandler it is acknowledged and logged.
func (s *session) mo(seq uint32, m MO, resp func(uint32) wire.PDU) {
	attrs := []any{"from", m.From, "to", m.To, "data_coding", m.DataCoding}
	if m.Part != nil {
		attrs = append(attrs, "ref", m.Part.Ref, "part", fmt.Sprintf("%d/%d", m.Part.Seq, m.Part.Total))
	}
	h := s.cfg.MO
	if h == nil {
		s.log.Info("smpp MO acknowledged and dropped: no MO handler", append([]any{"seq", seq}, attrs...)...)
		h = func(context.Context, MO) error { return nil }
	}
	s.handle(seq, "MO", func(ctx context.Context) error { return h(ctx, m) }, &s.stats.mo, resp, attrs...)
}

// maxHandlers bounds the receipt and MO handlers running at once per session.
const maxHandlers = 1000

// handle runs fn on its own goroutine, so a slow store never stalls the
// responses the read loop matches, and answers seq when fn returns:
// ESME_ROK for nil, ESME_RX_T_APPN otherwise (§5.1.3). fn gets
// RespTimeout: past it the SMSC has likely given up on this PDU anyway.
func (s *session) handle(seq uint32, what string, fn func(context.Context) error, ok *atomic.Uint64, resp func(uint32) wire.PDU, attrs ...any) {
	// An SMSC flushing a backlog faster than the store commits would
	// otherwise start a goroutine per PDU without end; waiting here stops
	// the read loop, and TCP pushes back on the SMSC.
	select {
	case s.slots <- struct{}{}:
	case <-s.done:
		return // the session is over: no answer, the SMSC resends
	}
	s.handlers.Add()
	go func() {
		defer func() { <-s.slots }()
		defer s.handlers.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.cfg.RespTimeout)
		defer cancel()
		status := uint32(wire.StatusOK)
		if err := fn(ctx); err != nil {
			status = wire.StatusXTAppn
			s.stats.handlerErrors.Add(1)
			s.log.Warn("smpp "+what+" handler failed: ESME_RX_T_APPN, the SMSC will resend", append([]any{"seq", seq, "err", err}, attrs...)...)
		}
		if status == wire.StatusOK {
			ok.Add(1) // before the write: once the SMSC has the answer, so do Stats
		}
		if err := s.write(resp(status)); err != nil {
			s.log.Warn("smpp "+what+" response not sent; the SMSC will resend", append([]any{"seq", seq, "err", err}, attrs...)...)
			return
		}
		s.log.Debug("smpp "+what, append([]any{"seq", seq, "status", status}, attrs...)...)
	}()
}
