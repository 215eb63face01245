// Package wire frames SMPP v3.4 PDUs on a byte stream and encodes the
// bodies smppout and smsctest exchange. Command ids and TLV tags come from
// go-smpp; the mandatory-field codec is ours because go-smpp's splits the
// UDH off short_message and accepts truncated bodies.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"
)

// Command ids (SMPP v3.4 §5.1.2.1).
const (
	GenericNack         = uint32(pdu.GenericNACKID)
	BindReceiver        = uint32(pdu.BindReceiverID)
	BindTransmitter     = uint32(pdu.BindTransmitterID)
	BindTransceiver     = uint32(pdu.BindTransceiverID)
	SubmitSM            = uint32(pdu.SubmitSMID)
	SubmitSMResp        = uint32(pdu.SubmitSMRespID)
	DeliverSM           = uint32(pdu.DeliverSMID)
	DeliverSMResp       = uint32(pdu.DeliverSMRespID)
	Unbind              = uint32(pdu.UnbindID)
	UnbindResp          = uint32(pdu.UnbindRespID)
	EnquireLink         = uint32(pdu.EnquireLinkID)
	EnquireLinkResp     = uint32(pdu.EnquireLinkRespID)
	DataSM              = uint32(pdu.DataSMID)
	DataSMResp          = uint32(pdu.DataSMRespID)
	BindTransceiverResp = uint32(pdu.BindTransceiverRespID)
	RespBit             = uint32(0x80000000)
)

// Command statuses (SMPP v3.4 §5.1.3) used by this module.
const (
	StatusOK         = 0x00
	StatusInvCmdLen  = 0x02
	StatusInvCmdID   = 0x03
	StatusInvBndSts  = 0x04
	StatusAlyBnd     = 0x05
	StatusSysErr     = 0x08
	StatusBindFail   = 0x0D
	StatusInvPaswd   = 0x0E
	StatusInvSysID   = 0x0F
	StatusMsgQFul    = 0x14
	StatusSubmitFail = 0x45
	StatusThrottled  = 0x58
	StatusXTAppn     = 0x64 // ESME_RX_T_APPN: temporary app error
	StatusXPAppn     = 0x65 // ESME_RX_P_APPN: permanent app error
)

// TLV tags (SMPP v3.4 §5.3.2).
const (
	TagReceiptedMessageID = uint16(pdutlv.TagReceiptedMessageID)
	TagMessageState       = uint16(pdutlv.TagMessageStateOption)
	TagNetworkErrorCode   = uint16(pdutlv.TagNetworkErrorCode)
	TagMessagePayload     = uint16(pdutlv.TagMessagePayload)
	TagSARMsgRefNum       = uint16(pdutlv.TagSarMsgRefNum)
	TagSARTotalSegments   = uint16(pdutlv.TagSarTotalSegments)
	TagSARSegmentSeqnum   = uint16(pdutlv.TagSarSegmentSeqnum)
)

// Frame bounds. The spec sets no maximum; 64 KiB is far above any
// submit_sm we send (message_payload included) and caps what a broken
// peer can make us allocate.
const (
	HeaderLen = 16
	MaxLen    = 64 * 1024
)

// ErrFrame is a command_length outside [HeaderLen, MaxLen]: the stream
// cannot be resynchronised and the session must be closed.
var ErrFrame = errors.New("smpp: bad command_length")

// PDU is one decoded frame: the header (§3.2) and the raw body.
type PDU struct {
	ID, Status, Seq uint32
	Body            []byte
}

// IsResponse reports whether id is a response (bit 31 set, §5.1.2.1).
func IsResponse(id uint32) bool { return id&RespBit != 0 }

// Read reads one PDU. It never allocates more than MaxLen bytes.
func Read(r io.Reader) (PDU, error) {
	var h [HeaderLen]byte
	if _, err := io.ReadFull(r, h[:4]); err != nil {
		return PDU{}, err
	}
	n := binary.BigEndian.Uint32(h[:4])
	if n < HeaderLen || n > MaxLen {
		return PDU{}, fmt.Errorf("%w: %d", ErrFrame, n)
	}
	if _, err := io.ReadFull(r, h[4:]); err != nil {
		return PDU{}, unexpected(err)
	}
	p := PDU{
		ID:     binary.BigEndian.Uint32(h[4:8]),
		Status: binary.BigEndian.Uint32(h[8:12]),
		Seq:    binary.BigEndian.Uint32(h[12:16]),
		Body:   make([]byte, n-HeaderLen),
	}
	if _, err := io.ReadFull(r, p.Body); err != nil {
		return PDU{}, unexpected(err)
	}
	return p, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Marshal returns the PDU's wire form.
func (p PDU) Marshal() []byte {
	return p.AppendTo(make([]byte, 0, HeaderLen+len(p.Body)))
}

// AppendTo appends the PDU's wire form to b.
func (p PDU) AppendTo(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(HeaderLen+len(p.Body)))
	b = binary.BigEndian.AppendUint32(b, p.ID)
	b = binary.BigEndian.AppendUint32(b, p.Status)
	b = binary.BigEndian.AppendUint32(b, p.Seq)
	return append(b, p.Body...)
}

// Resp returns the response to request p with the given status and body.
func (p PDU) Resp(status uint32, body []byte) PDU {
	return PDU{ID: p.ID | RespBit, Status: status, Seq: p.Seq, Body: body}
}

// Nack returns a generic_nack for p (§4.3).
func (p PDU) Nack(status uint32) PDU {
	return PDU{ID: GenericNack, Status: status, Seq: p.Seq}
}
