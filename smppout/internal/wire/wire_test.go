package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
)

func TestReadFrameBounds(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"length below header", []byte{0, 0, 0, 8, 0, 0, 0, 0}, ErrFrame},
		{"length above 64 KiB", []byte{0xFF, 0xFF, 0xFF, 0xFF}, ErrFrame},
		{"truncated body", []byte{0, 0, 0, 20, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1}, nil},
		{"header only", PDU{ID: EnquireLink, Seq: 7}.Marshal(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.in))
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	in := PDU{ID: SubmitSMResp, Status: 0x58, Seq: 0x7FFFFFFF, Body: MessageIDBody("abc")}
	out, err := Read(bytes.NewReader(in.Marshal()))
	if err != nil || out.ID != in.ID || out.Status != in.Status || out.Seq != in.Seq || !bytes.Equal(out.Body, in.Body) {
		t.Fatalf("got %+v, %v; want %+v", out, err, in)
	}
}

// TestSMDecodesWithGoSMPP checks our submit_sm encoding against go-smpp's
// decoder, which other SMPP stacks resemble.
func TestSMDecodesWithGoSMPP(t *testing.T) {
	sm := SM{SourceTON: 5, Source: "Shop", DestTON: 1, DestNPI: 1, Dest: "4915112345",
		RegisteredDelivery: 1, DataCoding: 8, ShortMessage: []byte{0, 'h', 0, 'i'},
		TLVs: []TLV{{Tag: TagReceiptedMessageID, Value: []byte("x\x00")}}}
	body, err := sm.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := pdu.Decode(bytes.NewReader(PDU{ID: SubmitSM, Seq: 1, Body: body}.Marshal()))
	if err != nil {
		t.Fatal(err)
	}
	f := p.Fields()
	for name, want := range map[pdufield.Name]string{
		pdufield.SourceAddr: "Shop", pdufield.DestinationAddr: "4915112345", pdufield.ShortMessage: "\x00h\x00i",
	} {
		if got := f[name].String(); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := f[pdufield.SourceAddrTON].Raw(); got != uint8(5) {
		t.Errorf("source_addr_ton = %v", got)
	}
	back, err := ParseSM(body)
	if err != nil || back.Source != "Shop" || !bytes.Equal(back.ShortMessage, sm.ShortMessage) ||
		string(back.TLVMap[TagReceiptedMessageID]) != "x\x00" {
		t.Fatalf("ParseSM = %+v, %v", back, err)
	}
}

func TestParseSMKeepsUDH(t *testing.T) {
	udh := []byte{5, 0, 3, 7, 2, 1, 'a', 'b'}
	body, _ := SM{Dest: "1", ESMClass: 0x40, ShortMessage: udh}.Marshal()
	sm, err := ParseSM(body)
	if err != nil || !bytes.Equal(sm.ShortMessage, udh) {
		t.Fatalf("short_message = %x, %v; want %x", sm.ShortMessage, err, udh)
	}
}

func TestParseTruncated(t *testing.T) {
	body, _ := SM{Dest: "1", ShortMessage: []byte("hello")}.Marshal()
	for n := 0; n < len(body); n++ {
		if _, err := ParseSM(body[:n]); err == nil {
			t.Fatalf("ParseSM of %d/%d octets: no error", n, len(body))
		}
	}
}

// FuzzReadPDU: arbitrary bytes never panic the frame reader or the body
// parsers, and never make them allocate past MaxLen.
func FuzzReadPDU(f *testing.F) {
	body, _ := SM{Dest: "1", ESMClass: 0x04, ShortMessage: []byte("id:1 stat:DELIVRD"),
		TLVs: []TLV{{TagMessageState, []byte{2}}}}.Marshal()
	f.Add(PDU{ID: DeliverSM, Seq: 1, Body: body}.Marshal())
	f.Add(PDU{ID: BindTransceiver, Seq: 1, Body: Bind{SystemID: "a", Version: 0x34}.Marshal()}.Marshal())
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0, 0, 0, 16, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			p, err := Read(r)
			if err != nil {
				return
			}
			if len(p.Body) > MaxLen-HeaderLen {
				t.Fatalf("body of %d octets", len(p.Body))
			}
			ParseSM(p.Body)
			ParseDataSM(p.Body)
			ParseBind(p.Body)
			ParseMessageID(p.Body)
		}
	})
}
