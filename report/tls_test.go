package report

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// selfSigned is a certificate for 127.0.0.1 and its pool.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sink.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"sink.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// tlsSink is an SMTP server with optional STARTTLS and AUTH that records
// how each delivery came.
type tlsSink struct {
	mechs []string // AUTH mechanisms offered; nil: none
	user  string   // the accepted user ("pw" is the password)
	no8   bool     // do not offer 8BITMIME

	mu  sync.Mutex
	got []tlsDelivery
}

type tlsDelivery struct {
	helo, authed string
	tls          bool
	body         smtp.BodyType
	from         string
	data         string
}

func (s *tlsSink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &tlsSession{s: s, d: tlsDelivery{helo: c.Hostname(), tls: isTLS}}, nil
}

func (s *tlsSink) deliveries() []tlsDelivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]tlsDelivery(nil), s.got...)
}

type tlsSession struct {
	s *tlsSink
	d tlsDelivery
}

func (x *tlsSession) AuthMechanisms() []string { return x.s.mechs }

func (x *tlsSession) Auth(mech string) (sasl.Server, error) {
	check := func(user, pw string) error {
		if user != x.s.user || pw != "pw" {
			return errors.New("bad credentials")
		}
		x.d.authed = mech + ":" + user
		return nil
	}
	if mech == sasl.Login {
		return &loginServer{check: check}, nil
	}
	return sasl.NewPlainServer(func(_, user, pw string) error { return check(user, pw) }), nil
}

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	check func(user, pw string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if resp != nil {
			l.user, l.step = string(resp), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(resp))
}

func (x *tlsSession) Mail(from string, o *smtp.MailOptions) error {
	x.d.from = from
	if o != nil {
		x.d.body = o.Body
	}
	return nil
}
func (x *tlsSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (x *tlsSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.d.data = string(b)
	x.s.mu.Lock()
	x.s.got = append(x.s.got, x.d)
	x.s.mu.Unlock()
	return nil
}
func (x *tlsSession) Reset()        {}
func (x *tlsSession) Logout() error { return nil }

// startTLSSink serves s with STARTTLS if cert is set.
func startTLSSink(t *testing.T, s *tlsSink, cert *tls.Certificate) string {
	t.Helper()
	srv := smtp.NewServer(s)
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return l.Addr().String()
}

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSMTPTLSAndAuth(t *testing.T) {
	cert, pool := selfSigned(t)
	tests := []struct {
		name     string
		offerTLS bool
		mechs    []string
		s        SMTP
		wantErr  error // errors.Is; nil: delivered
		wantTLS  bool
		wantAuth string
	}{
		{"opportunistic uses STARTTLS when offered", true, nil, SMTP{}, nil, true, ""},
		{"opportunistic goes plain when not offered", false, nil, SMTP{}, nil, false, ""},
		{"required verifies the certificate", true, nil, SMTP{TLS: TLSRequired, TLSConfig: &tls.Config{RootCAs: pool}}, nil, true, ""},
		{"required fails without STARTTLS", false, nil, SMTP{TLS: TLSRequired}, ErrTLSRequired, false, ""},
		{"required fails on an unknown certificate", true, nil, SMTP{TLS: TLSRequired}, ErrTLSRequired, false, ""},
		{"none never uses STARTTLS", true, nil, SMTP{TLS: TLSNone}, nil, false, ""},
		{"AUTH PLAIN over TLS", true, []string{sasl.Plain, sasl.Login}, SMTP{Username: "gw", Password: "pw"}, nil, true, "PLAIN:gw"},
		{"AUTH LOGIN when only LOGIN is offered", true, []string{sasl.Login}, SMTP{Username: "gw", Password: "pw"}, nil, true, "LOGIN:gw"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &tlsSink{mechs: tc.mechs, user: "gw"}
			var c *tls.Certificate
			if tc.offerTLS {
				c = &cert
			}
			s := tc.s
			s.Addr, s.Helo = startTLSSink(t, sink, c), "gw.example"
			err := s.Send(ctx10s(t), "alice@example.com", mustBuild(t, base()))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Send: %v, want %v", err, tc.wantErr)
				}
				if IsPermanent(err) {
					t.Errorf("%v is permanent; a TLS failure must be retried", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := sink.deliveries()
			if len(got) != 1 {
				t.Fatalf("%d deliveries", len(got))
			}
			d := got[0]
			if d.tls != tc.wantTLS || d.authed != tc.wantAuth || d.helo != "gw.example" || d.from != "" {
				t.Errorf("delivery: tls %v auth %q helo %q from %q; want tls %v auth %q helo gw.example from <>",
					d.tls, d.authed, d.helo, d.from, tc.wantTLS, tc.wantAuth)
			}
		})
	}
}

// TestSMTPAuthPlainOnLoopback: without TLS the password goes only to a
// loopback address.
func TestSMTPAuthPlainOnLoopback(t *testing.T) {
	sink := &tlsSink{mechs: []string{sasl.Plain}, user: "gw"}
	s := SMTP{Addr: startTLSSink(t, sink, nil), Username: "gw", Password: "pw"}
	if err := s.Send(ctx10s(t), "alice@example.com", mustBuild(t, base())); err != nil {
		t.Fatalf("loopback: %v", err)
	}
	if got := sink.deliveries(); len(got) != 1 || got[0].authed != "PLAIN:gw" || got[0].tls {
		t.Errorf("deliveries %+v", got)
	}
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "192.0.2.1": false, "mail.example": false} {
		if isLoopback(host) != want {
			t.Errorf("isLoopback(%s) = %v", host, !want)
		}
	}
}

func TestSMTP8BitOriginal(t *testing.T) {
	r := failedWithEnvelope()
	r.Original = []byte(strings.Replace(origMail, "Lunch at", "Déjeuner à", 1))
	msg := mustBuild(t, r)
	t.Run("BODY=8BITMIME when offered", func(t *testing.T) {
		sink := &tlsSink{}
		s := SMTP{Addr: startTLSSink(t, sink, nil)}
		if err := s.Send(ctx10s(t), "alice@example.com", msg); err != nil {
			t.Fatal(err)
		}
		if got := sink.deliveries(); len(got) != 1 || got[0].body != smtp.Body8BitMIME {
			t.Errorf("deliveries %+v, want one with BODY=8BITMIME", got)
		}
	})
}

func TestMXDelivery(t *testing.T) {
	sink := &tlsSink{}
	addr := startTLSSink(t, sink, nil)
	_, port, _ := net.SplitHostPort(addr)
	tests := []struct {
		name    string
		mx      []*net.MX
		lookErr error
		wantErr error // nil: delivered
	}{
		{"first MX answers", []*net.MX{{Host: "127.0.0.1.", Pref: 10}}, nil, nil},
		{"unreachable MX is skipped", []*net.MX{{Host: "unreachable.invalid.", Pref: 5}, {Host: "127.0.0.1.", Pref: 10}}, nil, nil},
		{"no MX record: the domain itself", nil, &net.DNSError{Err: "no such host", IsNotFound: true}, nil},
		{"null MX is permanent", []*net.MX{{Host: ".", Pref: 0}}, nil, ErrNullMX},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(sink.deliveries())
			var asked string
			m := MX{Helo: "gw.example", Port: port, LookupMX: func(_ context.Context, d string) ([]*net.MX, error) {
				asked = d
				return tc.mx, tc.lookErr
			}}
			rcpt := "alice@example.com"
			if tc.lookErr != nil {
				rcpt = "alice@127.0.0.1"
			}
			err := m.Send(ctx10s(t), rcpt, mustBuild(t, base()))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !IsPermanent(err) {
					t.Fatalf("Send: %v, want permanent %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if asked != strings.SplitN(rcpt, "@", 2)[1] {
				t.Errorf("looked up %q", asked)
			}
			if n := len(sink.deliveries()) - before; n != 1 {
				t.Errorf("%d deliveries, want 1", n)
			}
		})
	}
}
