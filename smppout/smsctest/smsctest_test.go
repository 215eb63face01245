package smsctest

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"
	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// esme is a raw test client.
type esme struct {
	t   *testing.T
	nc  net.Conn
	r   *bufio.Reader
	seq uint32
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	s := New(cfg)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t *testing.T, s *Server) *esme {
	t.Helper()
	nc, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &esme{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (e *esme) send(id uint32, body []byte) uint32 {
	e.t.Helper()
	e.seq++
	if _, err := e.nc.Write(wire.PDU{ID: id, Seq: e.seq, Body: body}.Marshal()); err != nil {
		e.t.Fatal(err)
	}
	return e.seq
}

func (e *esme) read() wire.PDU {
	e.t.Helper()
	e.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := wire.Read(e.r)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *esme) bind(id uint32, systemID, password string) wire.PDU {
	e.t.Helper()
	e.send(id, wire.Bind{SystemID: systemID, Password: password, Version: 0x34}.Marshal())
	return e.read()
}

func (e *esme) submit(dest string, rd byte) string {
	e.t.Helper()
	body, _ := wire.SM{SourceTON: 5, Source: "Shop", DestTON: 1, DestNPI: 1, Dest: dest,
		RegisteredDelivery: rd, ShortMessage: []byte("hello world, this is long")}.Marshal()
	seq := e.send(wire.SubmitSM, body)
	p := e.read()
	id, err := wire.ParseMessageID(p.Body)
	if p.ID != wire.SubmitSMResp || p.Seq != seq || p.Status != 0 || err != nil || id == "" {
		e.t.Fatalf("submit_sm_resp %+v, %v", p, err)
	}
	return id
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestBind(t *testing.T) {
	tests := []struct {
		name, systemID, password string
		id                       uint32
		want                     uint32
	}{
		{"transceiver ok", "esme", "pw", wire.BindTransceiver, 0},
		{"transmitter ok", "esme", "pw", wire.BindTransmitter, 0},
		{"receiver ok", "esme", "pw", wire.BindReceiver, 0},
		{"wrong password", "esme", "nope", wire.BindTransceiver, wire.StatusInvPaswd},
		{"wrong system_id", "other", "pw", wire.BindTransceiver, wire.StatusInvSysID},
	}
	s := start(t, Config{SystemID: "esme", Password: "pw"})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := dial(t, s)
			p := e.bind(tc.id, tc.systemID, tc.password)
			if p.ID != tc.id|wire.RespBit || p.Status != tc.want || p.Seq != 1 {
				t.Fatalf("bind_resp %+v, want status 0x%X", p, tc.want)
			}
			if tc.want != 0 {
				e.nc.SetReadDeadline(time.Now().Add(time.Second))
				if _, err := wire.Read(e.r); err == nil {
					t.Fatal("connection open after a refused bind")
				}
			}
		})
	}
}

func TestSessionRequests(t *testing.T) {
	s := start(t, Config{})
	e := dial(t, s)
	e.bind(wire.BindTransceiver, "esme", "")
	tests := []struct {
		name       string
		id         uint32
		wantID     uint32
		wantStatus uint32
	}{
		{"enquire_link", wire.EnquireLink, wire.EnquireLinkResp, 0},
		{"cancel_sm", 0x08, wire.GenericNack, wire.StatusInvCmdID},
		{"unknown", 0x7777, wire.GenericNack, wire.StatusInvCmdID},
		{"second bind", wire.BindTransceiver, wire.BindTransceiverResp, wire.StatusAlyBnd},
		{"unbind", wire.Unbind, wire.UnbindResp, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seq := e.send(tc.id, nil)
			if p := e.read(); p.ID != tc.wantID || p.Status != tc.wantStatus || p.Seq != seq {
				t.Fatalf("got %+v", p)
			}
		})
	}
}

func TestSubmitOnReceiverRefused(t *testing.T) {
	s := start(t, Config{})
	e := dial(t, s)
	e.bind(wire.BindReceiver, "esme", "")
	body, _ := wire.SM{Dest: "1"}.Marshal()
	e.send(wire.SubmitSM, body)
	if p := e.read(); p.Status != wire.StatusInvBndSts {
		t.Fatalf("got %+v", p)
	}
}

func TestReceipt(t *testing.T) {
	tests := []struct {
		name, dest, stat, dlvrd string
		state                   byte
	}{
		{"delivered", "4915112345", "DELIVRD", "001", 2},
		{"undeliverable prefix", "4400001", "UNDELIV", "000", 5},
	}
	s := start(t, Config{Outcomes: []Outcome{{Prefix: "44", Stat: "UNDELIV", Err: "001"}}})
	e := dial(t, s)
	e.bind(wire.BindTransceiver, "esme", "")
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := e.submit(tc.dest, 1)
			raw := e.read()
			// go-smpp must decode it: no stray UDH bytes.
			p, err := pdu.Decode(bytes.NewReader(raw.Marshal()))
			if err != nil {
				t.Fatal(err)
			}
			text := p.Fields()[pdufield.ShortMessage].String()
			want := "id:" + id + " sub:001 dlvrd:" + tc.dlvrd + " submit date:"
			if !strings.HasPrefix(text, want) || !strings.Contains(text, " stat:"+tc.stat+" ") ||
				!strings.HasSuffix(text, " text:hello world, this is") {
				t.Fatalf("receipt text %q", text)
			}
			if got := p.Fields()[pdufield.ESMClass].Raw(); got != uint8(0x04) {
				t.Fatalf("esm_class %v", got)
			}
			tlv := p.TLVFields()
			if got := tlv[pdutlv.TagReceiptedMessageID].String(); got != id {
				t.Fatalf("receipted_message_id %q, want %q", got, id)
			}
			if got := tlv[pdutlv.TagMessageStateOption].Bytes(); !bytes.Equal(got, []byte{tc.state}) {
				t.Fatalf("message_state %v", got)
			}
			e.nc.Write(raw.Resp(0, wire.MessageIDBody("")).Marshal())
		})
	}
	if err := s.WaitReceiptsAcked(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestReceiptOnFailureOnly(t *testing.T) {
	s := start(t, Config{Outcomes: []Outcome{{Prefix: "44", Stat: "UNDELIV"}}})
	e := dial(t, s)
	e.bind(wire.BindTransceiver, "esme", "")
	e.submit("4915", 2) // delivered: no receipt
	id := e.submit("4400", 2)
	sm, err := wire.ParseSM(e.read().Body)
	if got := wire.CStringValue(sm.TLVMap[wire.TagReceiptedMessageID]); err != nil || got != id {
		t.Fatalf("first receipt for %q, %v; want %q", got, err, id)
	}
}

// TestReceiptSurvivesReconnect: a receipt not acknowledged (error status,
// then a disconnect) goes to the next session bound with the same system_id.
func TestReceiptSurvivesReconnect(t *testing.T) {
	s := start(t, Config{ReceiptRetry: time.Hour})
	e := dial(t, s)
	e.bind(wire.BindTransceiver, "esme", "")
	id := e.submit("4915", 1)
	d := e.read()
	e.nc.Write(d.Resp(wire.StatusXTAppn, nil).Marshal())
	if _, err := s.WaitDeliverResps(ctxT(t), 1); err != nil {
		t.Fatal(err)
	}
	e.nc.Close()

	other := dial(t, s)
	other.bind(wire.BindTransceiver, "someone-else", "")
	e2 := dial(t, s)
	e2.bind(wire.BindReceiver, "esme", "")
	d2 := e2.read()
	sm, err := wire.ParseSM(d2.Body)
	if err != nil || wire.CStringValue(sm.TLVMap[wire.TagReceiptedMessageID]) != id {
		t.Fatalf("resent receipt %+v, %v", sm, err)
	}
	e2.nc.Write(d2.Resp(0, nil).Marshal())
	if err := s.WaitReceiptsAcked(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestRestartKeepsState(t *testing.T) {
	s := start(t, Config{ReceiptDelay: 50 * time.Millisecond})
	e := dial(t, s)
	e.bind(wire.BindTransceiver, "esme", "")
	id := e.submit("4915", 1)
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	e2 := dial(t, s)
	e2.bind(wire.BindTransceiver, "esme", "")
	d := e2.read()
	if sm, _ := wire.ParseSM(d.Body); !strings.HasPrefix(string(sm.ShortMessage), "id:"+id+" ") {
		t.Fatalf("receipt %q", sm.ShortMessage)
	}
	if len(s.Messages()) != 1 {
		t.Fatal("messages lost")
	}
}

func TestBadFrameClosesConnection(t *testing.T) {
	s := start(t, Config{})
	e := dial(t, s)
	e.nc.Write([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	e.nc.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := wire.Read(e.r); err == nil {
		t.Fatal("connection kept")
	}
	e2 := dial(t, s) // and the server still serves
	if p := e2.bind(wire.BindTransceiver, "x", ""); p.Status != 0 {
		t.Fatal(p)
	}
}

func TestTextStart(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"ascii cut at 20", Message{ShortMessage: []byte("abcdefghijklmnopqrstuvwxyz")}, "abcdefghijklmnopqrst"},
		{"ucs2", Message{DataCoding: 8, ShortMessage: []byte{0, 'h', 0, 'i', 0x20, 0xAC}}, "hi?"},
		{"udh skipped", Message{ESMClass: 0x40, ShortMessage: []byte{5, 0, 3, 1, 2, 1, 'o', 'k'}}, "ok"},
		{"control bytes", Message{ShortMessage: []byte("a\nb")}, "a?b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := textStart(tc.m); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
