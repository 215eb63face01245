package report

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
)

// ErrNullMX means the recipient's domain publishes a null MX (RFC 7505):
// it accepts no mail. It is permanent for IsPermanent.
var ErrNullMX = errors.New("report: the domain accepts no mail (null MX)")

// MX delivers reports straight to the mail exchangers of the recipient's
// domain (RFC 5321 §5.1), for a gateway without a smarthost: the MX hosts
// in preference order, on port 25, each with STARTTLS as TLS says and
// without AUTH. A 5xx answer ends the attempt (it is the domain's word); a
// temporary failure tries the next host.
type MX struct {
	Helo      string // our host name, for EHLO
	TLS       TLSMode
	TLSConfig *tls.Config
	// Port is "25" if empty; tests set another.
	Port string
	// LookupMX defaults to net.DefaultResolver.LookupMX.
	LookupMX func(ctx context.Context, domain string) ([]*net.MX, error)
	// Pool, if set, keeps connections to the exchangers between reports
	// (keyed by host, like the smarthost's): the reports of a busy sender
	// domain share one session.
	Pool *Pool
}

// Send implements Sender.
func (m MX) Send(ctx context.Context, rcpt string, msg []byte) error {
	if err := checkRcpt(rcpt); err != nil {
		return err
	}
	at := strings.LastIndexByte(rcpt, '@')
	if at < 0 || at == len(rcpt)-1 {
		return fmt.Errorf("%w: recipient %q has no domain", ErrInvalid, rcpt)
	}
	domain := strings.TrimSuffix(rcpt[at+1:], ".")
	hosts, err := m.hosts(ctx, domain)
	if err != nil {
		return err
	}
	port := m.Port
	if port == "" {
		port = "25"
	}
	var errs []error
	for _, h := range hosts {
		s := SMTP{Addr: net.JoinHostPort(h, port), Helo: m.Helo, TLS: m.TLS, TLSConfig: m.TLSConfig, Pool: m.Pool}
		err := s.Send(ctx, rcpt, msg)
		if err == nil || IsPermanent(err) || ended(ctx) != nil {
			return err
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("report: mx of %s: every host failed: %w", domain, errors.Join(errs...))
}

// hosts are the MX hosts of domain by preference (the resolver sorts them
// and shuffles equal preferences), or the domain itself when it has no MX
// record (RFC 5321 §5.1 implicit MX).
func (m MX) hosts(ctx context.Context, domain string) ([]string, error) {
	lookup := m.LookupMX
	if lookup == nil {
		lookup = net.DefaultResolver.LookupMX
	}
	mxs, err := lookup(ctx, domain)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return []string{domain}, nil
	case err != nil && len(mxs) == 0:
		return nil, fmt.Errorf("report: mx of %s: %w", domain, err)
	case len(mxs) == 0:
		return []string{domain}, nil
	case len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == ""):
		return nil, fmt.Errorf("%w: %s", ErrNullMX, domain)
	}
	hosts := make([]string, 0, len(mxs))
	for _, mx := range mxs {
		if h := strings.TrimSuffix(mx.Host, "."); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts, nil
}
