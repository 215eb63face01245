package smppout

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
	"github.com/smsbridge/smsbridge/smppout/smsctest"
)

func TestBindModes(t *testing.T) {
	tests := []struct {
		name          string
		mode          BindMode
		binds         int
		sessions      int // bound sessions
		submitters    int // of which may submit
		wantReceivers bool
	}{
		{"one transceiver", BindTransceiver, 1, 1, 1, false},
		{"three transceivers", BindTransceiver, 3, 3, 3, false},
		{"two transmitters and two receivers", BindTransmitterReceiver, 2, 4, 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim := startSim(t, smsctest.Config{})
			cfg := fastConfig(sim.Addr())
			cfg.BindMode, cfg.Binds, cfg.Window = tc.mode, tc.binds, 2
			l := newLedger()
			c := New(cfg, l.handle, nil)
			runClient(t, c)
			waitFor(t, "all binds", func() bool { return c.Stats().Bound == tc.sessions })
			ids := sendAll(t, c, 20)
			checkNoneLost(t, sim, c, l, ids)
			conns := map[uint64]bool{}
			for _, m := range sim.Messages() {
				conns[m.Conn] = true
			}
			if len(conns) != tc.submitters {
				t.Errorf("submits came on %d sessions, want spread over %d", len(conns), tc.submitters)
			}
			if st := c.Stats(); st.WindowSize != 2*tc.submitters || st.Binds != uint64(tc.sessions) {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestBindFields: what each bind carries (§4.1.1).
func TestBindFields(t *testing.T) {
	f := startFake(t)
	cfg := fastConfig(f.addr())
	cfg.BindMode, cfg.AddressRange, cfg.InterfaceVersion, cfg.SystemType = BindTransmitterReceiver, "^49", 0x33, "VMA"
	runClient(t, New(cfg, nil, nil))
	got := map[uint32]wire.Bind{}
	for range 2 {
		_, p, b := f.acceptBind()
		got[p.ID] = b
	}
	for _, id := range []uint32{wire.BindTransmitter, wire.BindReceiver} {
		b, ok := got[id]
		if !ok || b.AddressRange != "^49" || b.Version != 0x33 || b.SystemType != "VMA" || b.SystemID != "esme" {
			t.Errorf("bind 0x%08X: %+v (present %v)", id, b, ok)
		}
	}
}

func TestSubmitNeedsATransmitter(t *testing.T) {
	f := startFake(t)
	cfg := fastConfig(f.addr())
	cfg.BindMode = BindTransmitterReceiver
	c := New(cfg, nil, nil)
	runClient(t, c)
	var rx *fakeConn
	for range 2 {
		if conn, p, _ := f.acceptBind(); p.ID == wire.BindReceiver {
			rx = conn
		} else {
			conn.nc.Close() // the transmitter goes away at once
		}
	}
	// Both binds were answered, but the client may read the transmitter's
	// bind_resp, and then its EOF, after the receiver's: wait until it has
	// counted both binds and lost the transmitter.
	waitFor(t, "only the receiver bound", func() bool {
		st := c.Stats()
		return st.Binds == 2 && st.Bound == 1 && !c.Bound()
	})
	if _, err := c.Submit(ctxT(t), hello); !errors.Is(err, ErrNotBound) {
		t.Fatalf("Submit with only a receiver = %v, want ErrNotBound", err)
	}
	_ = rx
}

func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	sim := startSim(t, smsctest.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	cfg := fastConfig(sim.Addr())
	cfg.TLS = &tls.Config{RootCAs: pool, ServerName: "smsc.test"}
	l := newLedger()
	c := New(cfg, l.handle, nil)
	runClient(t, c)
	waitFor(t, "bind over TLS", c.Bound)
	checkNoneLost(t, sim, c, l, sendAll(t, c, 5))

	t.Run("untrusted certificate is no bind", func(t *testing.T) {
		cfg := fastConfig(sim.Addr())
		cfg.TLS = &tls.Config{ServerName: "smsc.test"}
		_, err := New(cfg, nil, nil).runSession(ctxT(t), wire.BindTransceiver, discard())
		var ue x509.UnknownAuthorityError
		if !errors.As(err, &ue) {
			t.Fatalf("err = %v, want an unknown authority", err)
		}
	})
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "smsc.test"},
		DNSNames: []string{"smsc.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestTPSCap: the route's rate holds below the SMSC's, so it throttles nothing.
func TestTPSCap(t *testing.T) {
	sim := startSim(t, smsctest.Config{MaxTPS: 60})
	cfg := fastConfig(sim.Addr())
	cfg.TPS = 50
	l := newLedger()
	c := New(cfg, l.handle, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	start := time.Now()
	ids := sendAll(t, c, 30)
	// burst 5, then 25 tokens at 50/s: 0.5 s; allow for a slow machine only upwards.
	if el := time.Since(start); el < 350*time.Millisecond {
		t.Errorf("30 submits at 50 TPS took %v", el)
	}
	checkNoneLost(t, sim, c, l, ids)
	if st := c.Stats(); sim.Throttled() != 0 || st.RateWaits == 0 {
		t.Errorf("simulator throttled %d; stats %+v", sim.Throttled(), st)
	}
}

func TestTPSWaitRespectsCtx(t *testing.T) {
	sim := startSim(t, smsctest.Config{})
	cfg := fastConfig(sim.Addr())
	cfg.TPS = 1
	c := New(cfg, nil, nil)
	runClient(t, c)
	waitFor(t, "bind", c.Bound)
	if _, err := c.Submit(ctxT(t), hello); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Submit(ctx, hello)
	if !errors.Is(err, context.DeadlineExceeded) || InDoubt(err) || len(sim.Messages()) != 1 {
		t.Fatalf("err = %v (in doubt %v), %d messages; want the deadline, nothing sent", err, InDoubt(err), len(sim.Messages()))
	}
}

// TestInDoubt: a submit without its response is counted in doubt; a late
// response is counted too.
func TestInDoubt(t *testing.T) {
	tests := []struct {
		name   string
		giveUp func(cancel context.CancelFunc)
		want   error
	}{
		{"response timeout", func(context.CancelFunc) {}, ErrTimeout},
		{"caller gives up", func(cancel context.CancelFunc) { cancel() }, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t)
			cfg := fastConfig(f.addr())
			cfg.RespTimeout = 300 * time.Millisecond
			c := New(cfg, nil, nil)
			runClient(t, c)
			conn := f.accept()
			waitFor(t, "bind", c.Bound)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { _, err := c.Submit(ctx, hello); errc <- err }()
			p := conn.readSkipping()
			tc.giveUp(cancel)
			err := <-errc
			if !errors.Is(err, tc.want) || !InDoubt(err) || !Temporary(err) || c.Stats().InDoubt != 1 {
				t.Fatalf("err = %v, stats %+v", err, c.Stats())
			}
			conn.write(p.Resp(0, wire.MessageIDBody("late-1")))
			waitFor(t, "late response counted", func() bool { return c.Stats().LateResponses == 1 })
		})
	}
}

func TestStatsWindowInUse(t *testing.T) {
	// Held long enough for both windows to fill on a loaded machine.
	sim := startSim(t, smsctest.Config{RespDelay: time.Second})
	cfg := fastConfig(sim.Addr())
	cfg.Window, cfg.Binds, cfg.RespTimeout = 3, 2, 5*time.Second
	c := New(cfg, nil, nil)
	runClient(t, c)
	waitFor(t, "binds", func() bool { return c.Stats().Bound == 2 })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { c.Submit(ctxT(t), hello) })
	}
	waitFor(t, "full windows", func() bool { st := c.Stats(); return st.WindowInUse == 6 && st.WindowSize == 6 })
	wg.Wait()
	if st := c.Stats(); st.Submitted != 8 || st.WindowInUse != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestShutdownDrainsSeveralBinds: every session waits for its window,
// then unbinds. The responses are held a second, long enough for the 15
// submits to be in flight together on a loaded machine (150 ms was not,
// once, under CI).
func TestShutdownDrainsSeveralBinds(t *testing.T) {
	sim := startSim(t, smsctest.Config{RespDelay: time.Second})
	cfg := fastConfig(sim.Addr())
	cfg.Binds, cfg.Window, cfg.RespTimeout = 3, 5, 5*time.Second
	c := New(cfg, nil, nil)
	stop := runClient(t, c)
	waitFor(t, "binds", func() bool { return c.Stats().Bound == 3 })
	var wg sync.WaitGroup
	errs := make(chan error, 15)
	for range 15 {
		wg.Go(func() { _, err := c.Submit(context.Background(), hello); errs <- err })
	}
	waitFor(t, "windows full", func() bool { return c.Stats().WindowInUse == 15 })
	stop()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("in-flight submit: %v", err)
		}
	}
	if sim.Unbinds() != 3 || sim.Accepted() != 15 {
		t.Fatalf("%d unbinds, %d messages; want 3, 15", sim.Unbinds(), sim.Accepted())
	}
}
