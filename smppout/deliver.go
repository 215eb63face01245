package smppout

import (
	"context"
	"fmt"

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

// deliverSM handles deliver_sm (§4.6.1).
func (s *session) deliverSM(p wire.PDU) error {
	resp := func(status uint32) wire.PDU { return p.Resp(status, wire.MessageIDBody("")) }
	sm, err := wire.ParseSM(p.Body)
	if err != nil {
		// A broken PDU is an SMSC bug; a permanent error stops it being resent forever.
		s.log.Error("smpp malformed deliver_sm", "seq", p.Seq, "err", err, "body", fmt.Sprintf("%x", p.Body))
		return s.write(resp(wire.StatusXPAppn))
	}
	text := sm.ShortMessage
	if len(text) == 0 {
		text = sm.TLVMap[wire.TagMessagePayload]
	}
	if !isReceipt(sm.ESMClass, sm.TLVMap) {
		// MO messages are not handled yet: acknowledge so the SMSC does not resend.
		s.log.Info("smpp MO deliver_sm ignored", "seq", p.Seq, "from", sm.Source, "to", sm.Dest)
		return s.write(resp(0))
	}
	s.receipt(p.Seq, string(text), sm.TLVMap, resp)
	return nil
}

// dataSM handles data_sm (§4.7.1): receipts as for deliver_sm, anything
// else acknowledged and logged.
func (s *session) dataSM(p wire.PDU) error {
	resp := func(status uint32) wire.PDU { return p.Resp(status, wire.MessageIDBody("")) }
	d, err := wire.ParseDataSM(p.Body)
	if err != nil {
		s.log.Error("smpp malformed data_sm", "seq", p.Seq, "err", err, "body", fmt.Sprintf("%x", p.Body))
		return s.write(resp(wire.StatusXPAppn))
	}
	if !isReceipt(d.ESMClass, d.TLVMap) {
		s.log.Info("smpp MO data_sm ignored", "seq", p.Seq, "from", d.Source, "to", d.Dest)
		return s.write(resp(0))
	}
	s.receipt(p.Seq, string(d.TLVMap[wire.TagMessagePayload]), d.TLVMap, resp)
	return nil
}

// receipt runs the Handler on its own goroutine and sends the response
// only when it returns: ESME_ROK if it stored the receipt, ESME_RX_T_APPN
// (temporary, the SMSC resends) if not. A receipt without a message id
// cannot be matched; it is refused with ESME_RX_P_APPN.
func (s *session) receipt(seq uint32, text string, tlvs map[uint16][]byte, resp func(uint32) wire.PDU) {
	r, err := receiptFromTLVs(text, tlvs)
	if err != nil {
		s.log.Error("smpp receipt without message id", "seq", seq, "err", err)
		s.write(resp(wire.StatusXPAppn))
		return
	}
	s.handlers.Add()
	go func() {
		defer s.handlers.Done()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), s.cfg.RespTimeout)
		defer cancel()
		status := uint32(0)
		if err := s.h(ctx, r); err != nil {
			status = wire.StatusXTAppn
			s.log.Warn("smpp receipt handler failed", "seq", seq, "smsc_id", r.MessageID, "err", err)
		}
		if err := s.write(resp(status)); err != nil {
			s.log.Warn("smpp receipt response not sent; the SMSC will resend", "seq", seq, "smsc_id", r.MessageID, "err", err)
			return
		}
		s.log.Debug("smpp receipt", "seq", seq, "smsc_id", r.MessageID, "stat", r.Stat, "status", status)
	}()
}
