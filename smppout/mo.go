package smppout

import (
	"context"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// MO is one mobile-originated message, or one part of a concatenated
// one, from deliver_sm (§4.6.1) or data_sm (§4.7.1).
//
// Parts are handed over one by one and each is acknowledged only after
// the MOHandler stored it, so no part is lost across a crash: the SMSC
// resends what was not acknowledged. Whoever stores the parts joins them
// with a Reassembler (and rebuilds one from the stored parts at start).
type MO struct {
	Command  string // "deliver_sm" or "data_sm"
	From, To string // "+digits" when the TON is international (1), else as sent
	FromTON  byte
	FromNPI  byte
	ToTON    byte
	ToNPI    byte
	ESMClass byte
	// DataCoding is as sent (§5.2.19): 0x00 GSM 7-bit (one septet an
	// octet in SMPP), 0x08 UCS-2, 0x04 8-bit…
	DataCoding byte
	// UDH is the user data header with its length octet when esm_class
	// has UDHI (0x40, §5.2.12); Payload is the user data after it, from
	// short_message or message_payload (§5.3.2.32).
	UDH, Payload []byte
	// Part places the message in a concatenated one (UDH IE 0x00 or 0x08,
	// 3GPP TS 23.040 §9.2.3.24.1/.8, or the sar_* TLVs, §5.3.2.22-24);
	// nil for a message on its own.
	Part *SAR
	TLVs map[uint16][]byte // all optional parameters, by tag
}

// MOHandler receives MO messages. The deliver_sm_resp (or data_sm_resp)
// is sent only after it returns: ESME_ROK when it returns nil,
// ESME_RX_T_APPN (the SMSC resends later) otherwise.
type MOHandler func(ctx context.Context, m MO) error

// newMO builds an MO from the fields shared by deliver_sm and data_sm.
func newMO(command string, sm wire.SM) MO {
	ud := sm.ShortMessage
	if len(ud) == 0 {
		ud = sm.TLVMap[wire.TagMessagePayload]
	}
	m := MO{
		Command: command, From: e164(sm.Source, sm.SourceTON), To: e164(sm.Dest, sm.DestTON),
		FromTON: sm.SourceTON, FromNPI: sm.SourceNPI, ToTON: sm.DestTON, ToNPI: sm.DestNPI,
		ESMClass: sm.ESMClass, DataCoding: sm.DataCoding, Payload: ud, TLVs: sm.TLVMap,
	}
	if sm.ESMClass&0x40 != 0 {
		if udh, rest, ok := splitUDH(ud); ok {
			m.UDH, m.Payload = udh, rest
			m.Part = udhPart(udh)
		}
	}
	if m.Part == nil {
		m.Part = sarPart(sm.TLVMap)
	}
	return m
}

// e164 adds "+" to an international number (TON 1, §5.2.5).
func e164(addr string, ton byte) string {
	if ton == 1 && isDigits(addr) {
		return "+" + addr
	}
	return addr
}

// splitUDH cuts the user data header (its length octet UDHL first, 3GPP
// TS 23.040 §9.2.3.24) off ud.
func splitUDH(ud []byte) (udh, rest []byte, ok bool) {
	if len(ud) == 0 || int(ud[0])+1 > len(ud) {
		return nil, ud, false
	}
	n := int(ud[0]) + 1
	return ud[:n], ud[n:], true
}

// udhPart finds a concatenation IE in udh: 0x00 (8-bit reference, 3
// octets) or 0x08 (16-bit reference, 4 octets). An IE with a zero total
// or a sequence out of range is ignored, as 23.040 asks.
func udhPart(udh []byte) *SAR {
	ies := udh[1:]
	for len(ies) >= 2 {
		iei, n := ies[0], int(ies[1])
		if 2+n > len(ies) {
			return nil
		}
		v := ies[2 : 2+n]
		switch {
		case iei == 0x00 && n == 3:
			return validPart(uint16(v[0]), v[1], v[2])
		case iei == 0x08 && n == 4:
			return validPart(uint16(v[0])<<8|uint16(v[1]), v[2], v[3])
		}
		ies = ies[2+n:]
	}
	return nil
}

// sarPart reads the sar_* TLVs (§5.3.2.22-24), all three or none.
func sarPart(tlvs map[uint16][]byte) *SAR {
	ref, ok1 := tlvs[wire.TagSARMsgRefNum]
	total, ok2 := tlvs[wire.TagSARTotalSegments]
	seq, ok3 := tlvs[wire.TagSARSegmentSeqnum]
	if !ok1 || !ok2 || !ok3 || len(ref) != 2 || len(total) != 1 || len(seq) != 1 {
		return nil
	}
	return validPart(uint16(ref[0])<<8|uint16(ref[1]), total[0], seq[0])
}

func validPart(ref uint16, total, seq byte) *SAR {
	if total < 2 || seq == 0 || seq > total {
		return nil // one part, or nonsense: a message on its own
	}
	return &SAR{Ref: ref, Total: total, Seq: seq}
}
