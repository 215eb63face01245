package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nyaruka/phonenumbers"

	"github.com/smsbridge/smsbridge/bridge"
	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/smppout"
	"github.com/smsbridge/smsbridge/store"
)

// Config is the whole configuration: the file (TOML) with flags on top.
// Every key and its default is in smsbridge.example.toml.
type Config struct {
	SMTPAddr      string   `toml:"smtp_addr"`
	Domains       []string `toml:"domains"`
	DefaultRegion string   `toml:"default_region"`
	DataDir       string   `toml:"data_dir"`
	AdminAddr     string   `toml:"admin_addr"`
	// AdminToken is the bearer token of the admin API (or env
	// SMSBRIDGE_ADMIN_TOKEN); required when admin_addr is not loopback.
	AdminToken string `toml:"admin_token"`
	// AdminPprof serves Go's profiles under /debug/pprof/ on the admin
	// listener, behind admin_token like the rest.
	AdminPprof      bool     `toml:"admin_pprof"`
	TrustedNetworks []string `toml:"trusted_networks"`
	Hostname        string   `toml:"hostname"`
	SourceAddr      string   `toml:"source_addr"`
	Smarthost       string   `toml:"smarthost"`
	Postmaster      string   `toml:"postmaster"`
	// ReportSuccess: mail a report when an SMS is delivered, not only when
	// it fails. Unset: on in demo mode, off otherwise.
	ReportSuccess *bool `toml:"report_success"`
	// Reports when the sender's NOTIFY (RFC 3461) does not say: failures
	// (default on), delays (a record still waiting after
	// report_delay_after, once; default off). report_give_up: a report
	// not delivered by then is dropped with an error. report_group: the
	// recipients of one mail that end together share one report.
	ReportFailures   *bool    `toml:"report_failures"`
	ReportDelays     bool     `toml:"report_delays"`
	ReportDelayAfter Duration `toml:"report_delay_after"`
	ReportGiveUp     Duration `toml:"report_give_up"`
	ReportGroup      bool     `toml:"report_group"`
	// ReportDelivery "mx" sends reports straight to the sender domain's
	// MX when no smarthost is set; "" writes them to the outbox.
	ReportDelivery string `toml:"report_delivery"`
	// Smarthost STARTTLS: "" (opportunistic), "required" (certificate
	// checked, against smarthost_ca if set) or "none"; AUTH if a username
	// is set (password also from SMSBRIDGE_SMARTHOST_PASSWORD).
	SmarthostTLS      string `toml:"smarthost_tls"`
	SmarthostCA       string `toml:"smarthost_ca"`
	SmarthostUsername string `toml:"smarthost_username"`
	SmarthostPassword string `toml:"smarthost_password"`
	// Logs: "text" or "json", a slog level, and whether the last digits
	// of phone numbers are masked in them.
	LogFormat      string `toml:"log_format"`
	LogLevel       string `toml:"log_level"`
	LogMaskNumbers bool   `toml:"log_mask_numbers"`

	SMTP    SMTPConfig    `toml:"smtp"`
	SMSC    SMSCConfig    `toml:"smsc"`
	Routes  []RouteConfig `toml:"routes"`
	Retry   RetryConfig   `toml:"retry"`
	Store   StoreConfig   `toml:"store"`
	Convert ConvertConfig `toml:"convert"`
}

// ConvertConfig is how a mail becomes SMS text (see package convert).
type ConvertConfig struct {
	Subject          string   `toml:"subject"`
	SubjectSeparator string   `toml:"subject_separator"`
	Footers          []string `toml:"footers"`
	Transliterate    string   `toml:"transliterate"`
	MaxSegments      int      `toml:"max_segments"`
	Overflow         string   `toml:"overflow"`
	MaxDepth         int      `toml:"max_depth"`
	MaxParts         int      `toml:"max_parts"`
	MaxTextBytes     int64    `toml:"max_text_bytes"`
}

// SMTPConfig is the front door's policy beyond the listen address.
type SMTPConfig struct {
	// TLS certificate and key (PEM) for STARTTLS and smtps_addr. Unset:
	// no STARTTLS, except in demo mode, which makes a self-signed one.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// SMTPSAddr is an implicit-TLS listener (port 465 style); "" for none.
	SMTPSAddr string `toml:"smtps_addr"`
	// LMTPAddr is an LMTP listener for an MTA in front: "host:port" or
	// "unix:/path/to/socket"; "" for none.
	LMTPAddr string `toml:"lmtp_addr"`
	// UsersFile lists who may AUTH (smsbridge passwd writes it); "" turns
	// AUTH off.
	UsersFile string `toml:"users_file"`
	// TrustedSenders, if set, are the only envelope senders the trusted
	// networks may use without AUTH ("a@b.example", "@b.example", "<>").
	TrustedSenders  []string `toml:"trusted_senders"`
	MaxMessageBytes int64    `toml:"max_message_bytes"`
	// MaxReturnBytes: a mail sent with RET=FULL is kept up to this size to
	// return it with a failure report; larger ones return their headers.
	MaxReturnBytes      int64    `toml:"max_return_bytes"`
	MaxRecipients       int      `toml:"max_recipients"`
	MaxLineLength       int      `toml:"max_line_length"`
	MaxConnections      int      `toml:"max_connections"`
	MaxConnectionsPerIP int      `toml:"max_connections_per_ip"`
	MaxErrors           int      `toml:"max_errors"`
	IdleTimeout         Duration `toml:"idle_timeout"`
	AllowPrefixes       []string `toml:"allow_prefixes"`
	// MobileOnly refuses at RCPT (550 5.1.3) numbers the numbering plan
	// says are fixed lines, toll-free, premium rate…
	MobileOnly   bool     `toml:"mobile_only"`
	DenyPrefixes []string `toml:"deny_prefixes"`
	LimitTrusted bool     `toml:"limit_trusted"`
	UserLimits   Limits   `toml:"user_limits"`
	IPLimits     Limits   `toml:"ip_limits"`
}

// Limits are rate limits and daily quotas; 0 is no limit.
type Limits struct {
	MessagesPerMinute int `toml:"messages_per_minute"`
	MessagesPerHour   int `toml:"messages_per_hour"`
	MessagesPerDay    int `toml:"messages_per_day"`
	SegmentsPerMinute int `toml:"segments_per_minute"`
	SegmentsPerHour   int `toml:"segments_per_hour"`
	SegmentsPerDay    int `toml:"segments_per_day"`
}

// SMSCConfig is the SMPP bind. An empty Addr means demo mode: an SMSC
// simulator in the process.
type SMSCConfig struct {
	// SMSCID names the SMSC account behind the route in the store: its
	// message ids are kept as SMSCID:id, for receipts to find their
	// records (ids are unique per SMSC only). It defaults to the route's
	// name. Set it to the old name when renaming a route that has
	// messages in flight, or their receipts match nothing.
	SMSCID      string   `toml:"smsc_id"`
	Addr        string   `toml:"addr"`
	SystemID    string   `toml:"system_id"`
	Password    string   `toml:"password"`
	SystemType  string   `toml:"system_type"`
	Window      int      `toml:"window"`
	EnquireLink Duration `toml:"enquire_link"`
	RespTimeout Duration `toml:"resp_timeout"`
	// Languages are the national language shift tables this SMSC's
	// phones may be sent (ISO 639-1: "tr", "es", "pt"); none by default.
	Languages []string `toml:"languages"`
	// Concat is how long messages are tied together: udh8, udh16, sar, payload.
	Concat string `toml:"concat"`
	// ReconnectMin and ReconnectMax bound the backoff between bind attempts.
	ReconnectMin Duration `toml:"reconnect_min"`
	ReconnectMax Duration `toml:"reconnect_max"`
	// BindMode: "transceiver" or "transmitter+receiver"; Binds: how many
	// (pairs of) sessions.
	BindMode string `toml:"bind_mode"`
	Binds    int    `toml:"binds"`
	// TLS dials the SMSC over TLS (certificate verified).
	TLS bool `toml:"tls"`
	// TPS caps segments per second on this route; 0 is no cap.
	TPS int `toml:"tps"`
	// IDFormat: how the SMSC writes message ids in submit_sm_resp and in
	// receipts: "" (as sent), "dec", "hex", "hex/dec", "dec/hex".
	IDFormat string `toml:"id_format"`
	// GSMDataCoding is the data_coding for GSM 7-bit text: 0 (SMSC
	// default alphabet) or 1 for SMSCs that want it.
	GSMDataCoding int `toml:"gsm_data_coding"`
	// GSMPacked sends GSM 7-bit text packed (8 septets in 7 octets)
	// instead of one septet per octet.
	GSMPacked bool `toml:"gsm_packed"`
	// The source_addr TON/NPI ("5/0"), per kind of sender; "" derives it:
	// alphanumeric 5/0, +digits 1/1, short code (3–8 digits) 3/0,
	// other digits 0/1.
	TonNpiAlphanumeric  string `toml:"ton_npi_alphanumeric"`
	TonNpiInternational string `toml:"ton_npi_international"`
	TonNpiShortCode     string `toml:"ton_npi_short_code"`
	TonNpiNational      string `toml:"ton_npi_national"`
}

// sourceTypes reads the TON/NPI overrides.
func (sc SMSCConfig) sourceTypes() (smppout.SourceTypes, error) {
	var st smppout.SourceTypes
	var errs []error
	for _, f := range []struct {
		key, v string
		dst    **smppout.AddrType
	}{
		{"ton_npi_alphanumeric", sc.TonNpiAlphanumeric, &st.Alphanumeric},
		{"ton_npi_international", sc.TonNpiInternational, &st.International},
		{"ton_npi_short_code", sc.TonNpiShortCode, &st.ShortCode},
		{"ton_npi_national", sc.TonNpiNational, &st.National},
	} {
		if f.v == "" {
			continue
		}
		var ton, npi uint8
		if _, err := fmt.Sscanf(f.v, "%d/%d", &ton, &npi); err != nil || fmt.Sprintf("%d/%d", ton, npi) != f.v {
			errs = append(errs, fmt.Errorf("%s: %q is not TON/NPI, e.g. \"5/0\"", f.key, f.v))
			continue
		}
		*f.dst = &smppout.AddrType{TON: ton, NPI: npi}
	}
	return st, errors.Join(errs...)
}

// RouteConfig is one more SMSC, serving the numbers of its prefixes. The
// [smsc] section is the route "default", serving every number; a route with
// a longer matching prefix, or the same and a lower priority, is preferred,
// and when it is down the next one serving the number takes over.
type RouteConfig struct {
	Name       string   `toml:"name"`
	Prefixes   []string `toml:"prefixes"`
	Priority   int      `toml:"priority"`
	SourceAddr string   `toml:"source_addr"`
	SMSCConfig
}

// RetryConfig is the dispatcher's retry policy.
type RetryConfig struct {
	Min         Duration `toml:"min"`
	Max         Duration `toml:"max"`
	Validity    Duration `toml:"validity"`
	MaxAttempts int      `toml:"max_attempts"`
}

// StoreConfig is how long the store keeps what.
type StoreConfig struct {
	// Retention: final, reported records are purged this long after they
	// ended.
	Retention Duration `toml:"retention"`
	// DedupWindow: a mail with the Message-ID and recipient of one accepted
	// this recently gets 250 but no second SMS. 0 turns the filter off.
	DedupWindow Duration `toml:"dedup_window"`
	// ParkedMaxAge: a receipt for an SMSC id not known (yet) is kept this
	// long for its submit_sm_resp to be written down, then logged and
	// dropped.
	ParkedMaxAge Duration `toml:"parked_max_age"`
}

// Duration reads "30s", "10m", "48h" from the file.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func defaultConfig() Config {
	return Config{
		SMTPAddr:         "127.0.0.1:2525",
		Domains:          []string{"sms.localhost"},
		DefaultRegion:    "US",
		DataDir:          "./smsbridge-data",
		AdminAddr:        "127.0.0.1:8025",
		TrustedNetworks:  []string{"127.0.0.0/8", "::1/128"},
		SourceAddr:       "smsbridge",
		ReportDelayAfter: Duration{4 * time.Hour},
		ReportGiveUp:     Duration{5 * 24 * time.Hour},
		LogFormat:        "text",
		LogLevel:         "info",
		SMTP: SMTPConfig{
			TrustedSenders:      []string{},
			MaxMessageBytes:     10 << 20,
			MaxReturnBytes:      256 << 10,
			MaxRecipients:       100,
			MaxLineLength:       10000,
			MaxConnections:      100,
			MaxConnectionsPerIP: 10,
			MaxErrors:           20,
			IdleTimeout:         Duration{5 * time.Minute},
			AllowPrefixes:       []string{},
			DenyPrefixes:        []string{},
		},
		SMSC: SMSCConfig{
			Window:       10,
			EnquireLink:  Duration{30 * time.Second},
			RespTimeout:  Duration{30 * time.Second},
			ReconnectMin: Duration{time.Second},
			ReconnectMax: Duration{time.Minute},
			Languages:    []string{},
			Concat:       string(convert.ConcatUDH8),
			BindMode:     "transceiver",
			Binds:        1,
		},
		Routes:  []RouteConfig{},
		Convert: defaultConvertConfig(),
		Retry: RetryConfig{
			Min:         Duration{30 * time.Second},
			Max:         Duration{10 * time.Minute},
			Validity:    Duration{48 * time.Hour},
			MaxAttempts: 100,
		},
		Store: StoreConfig{
			Retention:    Duration{7 * 24 * time.Hour},
			DedupWindow:  Duration{10 * time.Minute},
			ParkedMaxAge: Duration{time.Hour},
		},
	}
}

func defaultConvertConfig() ConvertConfig {
	d := convert.DefaultOptions()
	return ConvertConfig{
		Subject:          string(d.Subject),
		SubjectSeparator: d.SubjectSeparator,
		Footers:          d.Footers,
		Transliterate:    string(d.Transliterate),
		MaxSegments:      d.MaxSegments,
		Overflow:         string(d.Overflow),
		MaxDepth:         d.Limits.MaxDepth,
		MaxParts:         d.Limits.MaxParts,
		MaxTextBytes:     d.Limits.MaxBytes,
	}
}

// convertOptions are the options of package convert that the config gives.
func (c *Config) convertOptions() convert.Options {
	cc := c.Convert
	return convert.Options{
		Limits:           convert.Limits{MaxDepth: cc.MaxDepth, MaxParts: cc.MaxParts, MaxBytes: cc.MaxTextBytes},
		Subject:          convert.SubjectPolicy(cc.Subject),
		SubjectSeparator: cc.SubjectSeparator,
		Footers:          cc.Footers,
		Transliterate:    convert.Transliteration(cc.Transliterate),
		Languages:        c.SMSC.Languages,
		Concat:           convert.Concat(c.SMSC.Concat),
		MaxSegments:      cc.MaxSegments,
		Overflow:         convert.Overflow(cc.Overflow),
	}
}

// errUnreadable marks a config file that could not be read or parsed at
// all, as opposed to one with bad keys or values.
var errUnreadable = errors.New("config file unreadable")

// loadFile reads a TOML config file over the defaults. An unknown key is an
// error that names it: a typo must not silently fall back to a default.
func loadFile(path string, c *Config) error {
	md, err := toml.DecodeFile(path, c)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("%w: %s: %s", errUnreadable, path, perr.ErrorWithPosition())
		}
		return fmt.Errorf("%w: %s: %w", errUnreadable, path, err)
	}
	var errs []error
	for _, k := range md.Undecoded() {
		errs = append(errs, keyError{k.String(), errors.New("unknown key")})
	}
	return withLines(path, errors.Join(errs...))
}

// listFlag is a repeatable (or comma-separated) string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

// parseServeFlags reads --config and the flags that override it.
func parseServeFlags(args []string) (Config, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var (
		file                           string
		domains, trusted               listFlag
		smtpAddr, region, dataDir      string
		smsc, sysID, password, source  string
		smarthost, adminAddr, hostname string
	)
	fs.StringVar(&file, "config", "", "config file (TOML)")
	fs.StringVar(&smtpAddr, "smtp-addr", "", "SMTP listen address (default 127.0.0.1:2525)")
	fs.Var(&domains, "domain", "SMS domain; repeatable (default sms.localhost)")
	fs.StringVar(&region, "default-region", "", "region for numbers without country code (default US)")
	fs.StringVar(&dataDir, "data-dir", "", "directory of the store and outbox (default ./smsbridge-data)")
	fs.StringVar(&smsc, "smsc", "", "SMSC host:port; empty starts the built-in simulator (demo mode)")
	fs.StringVar(&sysID, "smsc-system-id", "", "SMPP system_id")
	fs.StringVar(&password, "smsc-password", "", "SMPP password (or SMSBRIDGE_SMSC_PASSWORD)")
	fs.StringVar(&source, "source-addr", "", "source address shown on the phone (default smsbridge)")
	fs.StringVar(&smarthost, "smarthost", "", "host:port receiving report mails; empty writes them to <data-dir>/outbox")
	fs.StringVar(&adminAddr, "admin-addr", "", "admin HTTP listen address (default 127.0.0.1:8025)")
	fs.Var(&trusted, "trusted-networks", "CIDRs that may send without AUTH (default 127.0.0.0/8,::1/128)")
	fs.StringVar(&hostname, "hostname", "", "our host name in greetings and reports (default: the system's)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c := defaultConfig()
	var fileErr error
	if file != "" {
		// Unknown keys do not stop the checks: an operator wants every
		// problem of the file at once.
		if fileErr = loadFile(file, &c); errors.Is(fileErr, errUnreadable) {
			return Config{}, fileErr
		}
	}
	if p := os.Getenv("SMSBRIDGE_SMSC_PASSWORD"); p != "" {
		c.SMSC.Password = p
	}
	if t := os.Getenv("SMSBRIDGE_ADMIN_TOKEN"); t != "" {
		c.AdminToken = t
	}
	if p := os.Getenv("SMSBRIDGE_SMARTHOST_PASSWORD"); p != "" {
		c.SmarthostPassword = p
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "smtp-addr":
			c.SMTPAddr = smtpAddr
		case "domain":
			c.Domains = domains
		case "default-region":
			c.DefaultRegion = region
		case "data-dir":
			c.DataDir = dataDir
		case "smsc":
			c.SMSC.Addr = smsc
		case "smsc-system-id":
			c.SMSC.SystemID = sysID
		case "smsc-password":
			c.SMSC.Password = password
		case "source-addr":
			c.SourceAddr = source
		case "smarthost":
			c.Smarthost = smarthost
		case "admin-addr":
			c.AdminAddr = adminAddr
		case "trusted-networks":
			c.TrustedNetworks = trusted
		case "hostname":
			c.Hostname = hostname
		}
	})
	if err := errors.Join(fileErr, withLines(file, c.validate())); err != nil {
		return Config{}, err
	}
	return c, nil
}

// keyError is a problem with one key of the configuration.
type keyError struct {
	Key string // dotted path: "smsc.window"
	Err error
}

func (e keyError) Error() string { return e.Key + ": " + e.Err.Error() }

// validate reports every problem, each as a keyError.
func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, keyError{key, fmt.Errorf(format, args...)})
	}
	if len(c.Domains) == 0 {
		bad("domains", "at least one SMS domain is needed")
	}
	if !phonenumbers.GetSupportedRegions()[c.DefaultRegion] {
		bad("default_region", "%q is not a region code (ISO 3166-1 alpha-2, upper case, e.g. US, DE)", c.DefaultRegion)
	}
	for _, n := range c.TrustedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			bad("trusted_networks", "%q is not a CIDR prefix (e.g. 10.0.0.0/8)", n)
		}
	}
	if c.SMTPAddr == "" {
		bad("smtp_addr", "empty")
	}
	if w := c.Store.DedupWindow.Duration; w > store.MaxDedupWindow {
		bad("store.dedup_window", "%v is over %v (every 10 minutes of window cost each recipient one more lookup)", w, store.MaxDedupWindow)
	}
	if c.DataDir == "" {
		bad("data_dir", "empty")
	}
	if c.AdminAddr != "" && c.AdminToken == "" && !loopbackAddr(c.AdminAddr) {
		bad("admin_token", "required when admin_addr (%s) is not a loopback address", c.AdminAddr)
	}
	if _, err := c.SMSC.sourceTypes(); err != nil {
		for _, e := range unjoin(err) {
			bad("smsc."+strings.SplitN(e.Error(), ":", 2)[0], "%v", e)
		}
	}
	for i, r := range c.Routes {
		if _, err := r.sourceTypes(); err != nil {
			bad(fmt.Sprintf("routes[%d]", i), "%v", err)
		}
	}
	if w := c.SMSC.Window; w < 1 || w > 1000 {
		bad("smsc.window", "%d is not in 1..1000", w)
	}
	if strings.ContainsAny(c.SMSC.SMSCID, ": ") {
		bad("smsc.smsc_id", "%q: no spaces or colons", c.SMSC.SMSCID)
	}
	// Two routes may share an smsc_id only if they bind the same SMSC
	// account; otherwise the ids of two SMSCs could meet in one key.
	type account struct{ addr, systemID string }
	idScopes := map[string]account{bridge.Route{Name: "default", SMSCID: c.SMSC.SMSCID}.IDScope(): {c.SMSC.Addr, c.SMSC.SystemID}}
	names := map[string]bool{"default": true}
	for i, r := range c.Routes {
		scope, acct := bridge.Route{Name: r.Name, SMSCID: r.SMSCID}.IDScope(), account{r.Addr, r.SystemID}
		if other, ok := idScopes[scope]; ok && other != acct {
			bad(fmt.Sprintf("routes[%d].smsc_id", i), "%q names another route's SMSC account too (%s as %q): message ids of two SMSCs would mix", scope, other.addr, other.systemID)
		}
		idScopes[scope] = acct
		key := fmt.Sprintf("routes[%d]", i)
		switch {
		case r.Name == "" || strings.ContainsAny(r.Name, ": "):
			bad(key+".name", "%q: a route needs a name without spaces or colons", r.Name)
		case names[r.Name]:
			bad(key+".name", "%q is used twice (default is the [smsc] route)", r.Name)
		}
		names[r.Name] = true
		if strings.ContainsAny(r.SMSCID, ": ") {
			bad(key+".smsc_id", "%q: no spaces or colons", r.SMSCID)
		}
		if r.Addr == "" {
			bad(key+".addr", "a route needs the SMSC's host:port")
		}
		for _, p := range r.Prefixes {
			if p != "+" && !validPrefix(p) {
				bad(key+".prefixes", "%q is not an E.164 prefix (+ and digits)", p)
			}
		}
		if err := c.routeEncoding(r).Validate(); err != nil {
			for _, e := range unjoin(err) {
				bad(key, "%v", e)
			}
		}
	}
	switch c.SmarthostTLS {
	case "", "required", "none":
	default:
		bad("smarthost_tls", "%q is not \"\", \"required\" or \"none\"", c.SmarthostTLS)
	}
	switch c.ReportDelivery {
	case "", "mx":
	default:
		bad("report_delivery", "%q is not \"\" (outbox) or \"mx\"", c.ReportDelivery)
	}
	if !smppout.ValidSource(c.SourceAddr) {
		bad("source_addr", "%q is not a sender id: up to 11 letters, digits, spaces or . - _ &; + and up to 15 digits; or up to 20 digits", c.SourceAddr)
	}
	for i, r := range c.Routes {
		if r.SourceAddr != "" && !smppout.ValidSource(r.SourceAddr) {
			bad(fmt.Sprintf("routes[%d].source_addr", i), "%q is not a sender id", r.SourceAddr)
		}
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log_format", "%q is not text or json", c.LogFormat)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		bad("log_level", "%q is not debug, info, warn or error", c.LogLevel)
	}
	errs = append(errs, convertErrors(c.convertOptions().Validate())...)
	if c.SMTP.TLSCert != "" && c.SMTP.TLSKey == "" || c.SMTP.TLSCert == "" && c.SMTP.TLSKey != "" {
		bad("smtp.tls_key", "tls_cert and tls_key go together")
	}
	if len(errs) == 0 { // smtpdConfig needs the trusted networks parsed
		if err := smtpdValidate(c); err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, keyError{"smtp", e})
			}
		}
	}
	return errors.Join(errs...)
}

// convertErrors files the errors of convert.Options.Validate under the
// keys they come from: concat and languages belong to the SMSC.
func convertErrors(err error) []error {
	if err == nil {
		return nil
	}
	list := unjoin(err)
	var out []error
	for _, e := range list {
		field, msg, ok := strings.Cut(e.Error(), ": ")
		if !ok {
			field, msg = "convert", e.Error()
		}
		key := "convert." + field
		if field == "concat" || field == "languages" {
			key = "smsc." + field
		}
		out = append(out, keyError{key, errors.New(msg)})
	}
	return out
}

// withLines prefixes each keyError in err with FILE:LINE when the key is
// written in the file, so an operator goes straight to it.
func withLines(path string, err error) error {
	if err == nil || path == "" {
		return err
	}
	src, rerr := os.ReadFile(path)
	if rerr != nil {
		return err
	}
	list := unjoin(err)
	var out []error
	for _, e := range list {
		var ke keyError
		if errors.As(e, &ke) {
			if line := keyLine(src, ke.Key); line > 0 {
				e = fmt.Errorf("%s:%d: %w", path, line, e)
			} else {
				e = fmt.Errorf("%s: %w", path, e)
			}
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// keyLine finds the line (from 1) that sets a dotted key in TOML source,
// following [table] headers; 0 if it is not there.
func keyLine(src []byte, key string) int {
	table := ""
	for i, line := range strings.Split(string(src), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			table = strings.Trim(line, "[] ")
			continue
		}
		k, _, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		full := strings.TrimSpace(k)
		if table != "" {
			full = table + "." + full
		}
		if full == key {
			return i + 1
		}
	}
	return 0
}

func (c *Config) trustedPrefixes() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, s := range c.TrustedNetworks {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_networks: %q: %w", s, err)
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

// demo reports whether smsbridge runs its own SMSC simulator.
// With [[routes]] but no [smsc] address there is no default route, and no
// simulator: a number no route serves waits, it is not delivered to a fake.
func (c *Config) demo() bool { return c.SMSC.Addr == "" && len(c.Routes) == 0 }

// loopbackAddr reports whether host:port listens on loopback only.
func loopbackAddr(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func validPrefix(p string) bool {
	if len(p) < 2 || p[0] != '+' {
		return false
	}
	for _, c := range p[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// routeEncoding is how texts are encoded for route r: the [convert] and
// [smsc] options, with r's languages and concat where it sets them.
func (c *Config) routeEncoding(r RouteConfig) convert.Options {
	opt := c.convertOptions()
	if r.Languages != nil {
		opt.Languages = r.Languages
	}
	if r.Concat != "" {
		opt.Concat = convert.Concat(r.Concat)
	}
	return opt
}
