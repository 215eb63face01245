package wire

import (
	"encoding/binary"
	"fmt"
)

// Bind is the body of bind_transmitter/receiver/transceiver (§4.1.1).
type Bind struct {
	SystemID, Password, SystemType string
	Version                        byte // interface_version, 0x34
	TON, NPI                       byte // addr_ton, addr_npi
	AddressRange                   string
}

// Marshal encodes the body.
func (b Bind) Marshal() []byte {
	var w Builder
	return w.CString(b.SystemID).CString(b.Password).CString(b.SystemType).
		Byte(b.Version).Byte(b.TON).Byte(b.NPI).CString(b.AddressRange).Bytes()
}

// ParseBind decodes a bind body.
func ParseBind(body []byte) (Bind, error) {
	p := NewParser(body)
	b := Bind{SystemID: p.CString(), Password: p.CString(), SystemType: p.CString(),
		Version: p.Byte(), TON: p.Byte(), NPI: p.Byte(), AddressRange: p.CString()}
	return b, p.Err()
}

// SM is the body shared by submit_sm (§4.4.1) and deliver_sm (§4.6.1).
type SM struct {
	ServiceType          string
	SourceTON, SourceNPI byte
	Source               string
	DestTON, DestNPI     byte
	Dest                 string
	ESMClass             byte
	ProtocolID           byte
	Priority             byte
	ScheduleDelivery     string
	Validity             string
	RegisteredDelivery   byte
	ReplaceIfPresent     byte
	DataCoding           byte
	DefaultMsgID         byte
	ShortMessage         []byte
	TLVs                 []TLV // encoded in order; decoded into TLVMap
	TLVMap               map[uint16][]byte
}

// TLV is one optional parameter.
type TLV struct {
	Tag   uint16
	Value []byte
}

// Marshal encodes the body. short_message must fit sm_length (≤ 254,
// §4.4.1); longer text goes in a message_payload TLV.
func (m SM) Marshal() ([]byte, error) {
	if len(m.ShortMessage) > 254 {
		return nil, fmt.Errorf("smpp: short_message of %d octets (max 254)", len(m.ShortMessage))
	}
	var w Builder
	w.CString(m.ServiceType).Byte(m.SourceTON).Byte(m.SourceNPI).CString(m.Source).
		Byte(m.DestTON).Byte(m.DestNPI).CString(m.Dest).
		Byte(m.ESMClass).Byte(m.ProtocolID).Byte(m.Priority).
		CString(m.ScheduleDelivery).CString(m.Validity).
		Byte(m.RegisteredDelivery).Byte(m.ReplaceIfPresent).Byte(m.DataCoding).
		Byte(m.DefaultMsgID).Byte(byte(len(m.ShortMessage))).Octets(m.ShortMessage)
	for _, t := range m.TLVs {
		if len(t.Value) > 0xFFFF {
			return nil, fmt.Errorf("smpp: TLV 0x%04X of %d octets", t.Tag, len(t.Value))
		}
		w.TLV(t.Tag, t.Value)
	}
	if len(w.Bytes())+HeaderLen > MaxLen {
		return nil, fmt.Errorf("smpp: PDU of %d octets exceeds %d", len(w.Bytes())+HeaderLen, MaxLen)
	}
	return w.Bytes(), nil
}

// ParseSM decodes a submit_sm or deliver_sm body; short_message keeps its
// UDH, if any.
func ParseSM(body []byte) (SM, error) {
	p := NewParser(body)
	m := SM{ServiceType: p.CString(), SourceTON: p.Byte(), SourceNPI: p.Byte(), Source: p.CString(),
		DestTON: p.Byte(), DestNPI: p.Byte(), Dest: p.CString(),
		ESMClass: p.Byte(), ProtocolID: p.Byte(), Priority: p.Byte(),
		ScheduleDelivery: p.CString(), Validity: p.CString(),
		RegisteredDelivery: p.Byte(), ReplaceIfPresent: p.Byte(), DataCoding: p.Byte(),
		DefaultMsgID: p.Byte()}
	n := p.Byte()
	m.ShortMessage = p.Octets(int(n))
	m.TLVMap = p.TLVs()
	return m, p.Err()
}

// DataSMBody is the body of data_sm (§4.7.1): addresses, flags and TLVs.
type DataSMBody struct {
	ServiceType          string
	SourceTON, SourceNPI byte
	Source               string
	DestTON, DestNPI     byte
	Dest                 string
	ESMClass             byte
	RegisteredDelivery   byte
	DataCoding           byte
	TLVMap               map[uint16][]byte
}

// ParseDataSM decodes a data_sm body.
func ParseDataSM(body []byte) (DataSMBody, error) {
	p := NewParser(body)
	d := DataSMBody{ServiceType: p.CString(), SourceTON: p.Byte(), SourceNPI: p.Byte(), Source: p.CString(),
		DestTON: p.Byte(), DestNPI: p.Byte(), Dest: p.CString(),
		ESMClass: p.Byte(), RegisteredDelivery: p.Byte(), DataCoding: p.Byte()}
	d.TLVMap = p.TLVs()
	return d, p.Err()
}

// Marshal encodes the body.
func (d DataSMBody) Marshal(tlvs ...TLV) []byte {
	var w Builder
	w.CString(d.ServiceType).Byte(d.SourceTON).Byte(d.SourceNPI).CString(d.Source).
		Byte(d.DestTON).Byte(d.DestNPI).CString(d.Dest).
		Byte(d.ESMClass).Byte(d.RegisteredDelivery).Byte(d.DataCoding)
	for _, t := range tlvs {
		w.TLV(t.Tag, t.Value)
	}
	return w.Bytes()
}

// MessageIDBody is the body of submit_sm_resp (§4.4.2), deliver_sm_resp
// (§4.6.2, always empty) and data_sm_resp (§4.7.2): a message_id.
func MessageIDBody(id string) []byte {
	var w Builder
	return w.CString(id).Bytes()
}

// ParseMessageID decodes a *_sm_resp body. An error response may carry
// no body at all (§4.4.2: "only returned if command_status is zero").
func ParseMessageID(body []byte) (string, error) {
	if len(body) == 0 {
		return "", nil
	}
	p := NewParser(body)
	id := p.CString()
	return id, p.Err()
}

// SystemIDBody is the body of bind_*_resp (§4.1.2).
func SystemIDBody(id string) []byte { return MessageIDBody(id) }

// NetworkErrorCode decodes the network_error_code TLV (§5.3.2.31): one
// octet network type, two octets error code.
func NetworkErrorCode(v []byte) (code int, ok bool) {
	if len(v) != 3 {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(v[1:])), true
}
