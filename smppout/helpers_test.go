package smppout

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
	"github.com/smsbridge/smsbridge/smppout/smsctest"
)

// fastConfig is a Config with test-sized timers.
func fastConfig(addr string) Config {
	return Config{Addr: addr, SystemID: "esme", Password: "pw", EnquireLink: time.Second,
		RespTimeout: time.Second, Window: 10, BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
}

func startSim(t *testing.T, cfg smsctest.Config) *smsctest.Server {
	t.Helper()
	s := smsctest.New(cfg)
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// runClient runs c until the test ends and checks Run returns nil.
func runClient(t *testing.T, c *Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fakeSMSC is a scripted SMSC: each accepted connection is bound
// (bind_transceiver_resp OK) and handed to script.
type fakeSMSC struct {
	t     *testing.T
	ln    net.Listener
	conns chan *fakeConn
}

type fakeConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func startFake(t *testing.T) *fakeSMSC {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSMSC{t: t, ln: ln, conns: make(chan *fakeConn, 10)}
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { nc.Close() })
			f.conns <- &fakeConn{t: t, nc: nc, r: bufio.NewReader(nc)}
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *fakeSMSC) addr() string { return f.ln.Addr().String() }

// accept returns the next connection after answering its bind_transceiver.
func (f *fakeSMSC) accept() *fakeConn {
	c, p, b := f.acceptBind()
	if p.ID != wire.BindTransceiver || b.Version != 0x34 || b.SystemID != "esme" || b.Password != "pw" {
		c.t.Fatalf("first PDU 0x%08X, bind %+v; want bind_transceiver", p.ID, b)
	}
	return c
}

// acceptBind returns the next connection, its bind PDU and body, after
// answering it ESME_ROK.
func (f *fakeSMSC) acceptBind() (*fakeConn, wire.PDU, wire.Bind) {
	f.t.Helper()
	select {
	case c := <-f.conns:
		p := c.read()
		b, err := wire.ParseBind(p.Body)
		if err != nil {
			c.t.Fatalf("bind 0x%08X: %v", p.ID, err)
		}
		c.write(p.Resp(0, wire.SystemIDBody("fake")))
		return c, p, b
	case <-time.After(5 * time.Second):
		f.t.Fatal("fake SMSC: no connection")
		return nil, wire.PDU{}, wire.Bind{}
	}
}

func (c *fakeConn) read() wire.PDU {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := wire.Read(c.r)
	if err != nil {
		c.t.Fatalf("fake SMSC read: %v", err)
	}
	return p
}

// readSkipping reads the next PDU that is not an enquire_link, which it answers.
func (c *fakeConn) readSkipping() wire.PDU {
	for {
		p := c.read()
		if p.ID != wire.EnquireLink {
			return p
		}
		c.write(p.Resp(0, nil))
	}
}

func (c *fakeConn) write(p wire.PDU) { c.writeRaw(p.Marshal()) }

func (c *fakeConn) writeRaw(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("fake SMSC write: %v", err)
	}
}

// closedByPeer reports whether the client closed the connection within d.
func (c *fakeConn) closedByPeer(d time.Duration) bool {
	c.nc.SetReadDeadline(time.Now().Add(d))
	for {
		if _, err := wire.Read(c.r); err != nil {
			ne, ok := err.(net.Error)
			return !(ok && ne.Timeout())
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
