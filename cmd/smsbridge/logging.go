package main

import (
	"io"
	"log/slog"
	"strings"
)

// numberKeys are the log attributes that hold phone numbers or addresses
// made of them; log_mask_numbers hides their last digits.
var numberKeys = map[string]bool{"to": true, "rcpt": true, "dest": true, "from_number": true}

// newLogger builds the process's logger from the config.
func newLogger(c *Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.LogLevel)) // validated before
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogMaskNumbers {
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if numberKeys[a.Key] && a.Value.Kind() == slog.KindString {
				a.Value = slog.StringValue(maskNumber(a.Value.String()))
			}
			return a
		}
	}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// maskNumber replaces the last four digits of s by x: "+14155550123" →
// "+1415555xxxx", "+14155550123@sms.example" → "+1415555xxxx@sms.example".
// The country and area stay readable for troubleshooting.
func maskNumber(s string) string {
	local, domain, hasDomain := strings.Cut(s, "@")
	b := []byte(local)
	for i, n := len(b)-1, 0; i >= 0 && n < 4; i-- {
		if b[i] >= '0' && b[i] <= '9' {
			b[i] = 'x'
			n++
		}
	}
	if hasDomain {
		return string(b) + "@" + domain
	}
	return string(b)
}
