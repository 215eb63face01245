package smtpd

import "github.com/smsbridge/smsbridge/smtpd/ratelimit"

// Policy is the part of Config that a reload (SIGHUP) may change while
// sessions run: who may send without AUTH, where to, and how much.
type Policy struct {
	TrustedSenders []string
	AllowPrefixes  []string
	DenyPrefixes   []string
	MobileOnly     bool
	UserLimits     ratelimit.Limits
	IPLimits       ratelimit.Limits
	LimitTrusted   bool
}

func (c *Config) policy() *Policy {
	return &Policy{TrustedSenders: c.TrustedSenders, AllowPrefixes: c.AllowPrefixes, DenyPrefixes: c.DenyPrefixes,
		MobileOnly: c.MobileOnly, UserLimits: c.UserLimits, IPLimits: c.IPLimits, LimitTrusted: c.LimitTrusted}
}

// SetPolicy replaces the policy; sessions use it from their next command.
// It is checked as Config.Validate checks it, and refused whole if wrong.
func (s *Server) SetPolicy(p Policy) error {
	c := s.cfg
	c.TrustedSenders, c.AllowPrefixes, c.DenyPrefixes = p.TrustedSenders, p.AllowPrefixes, p.DenyPrefixes
	c.MobileOnly, c.UserLimits, c.IPLimits, c.LimitTrusted = p.MobileOnly, p.UserLimits, p.IPLimits, p.LimitTrusted
	if err := c.Validate(); err != nil {
		return err
	}
	s.pol.Store(c.policy())
	return nil
}
