package smtpd

import (
	"mime"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// loopReason says why no delivery report may ever be sent for a mail, or
// "": reports on a report or an automatic mail could go back and forth
// between two systems for ever.
//
//   - the null sender <> (RFC 5321 §4.5.5, RFC 3464 §2): where a report
//     would go there is nobody, by definition;
//   - Auto-Submitted other than "no" (RFC 3834 §2): an automatic mail
//     must not get an automatic answer (§3.1.1 asks responders to check);
//   - a multipart/report (RFC 6522), a report itself, whatever its
//     envelope sender claims.
//
// The verdict is stored with each record (store.Record.NoReport) and
// honoured by the report loop, whatever NOTIFY asked.
func loopReason(from string, h textproto.Header) string {
	if from == "" {
		return "null sender"
	}
	if v := strings.TrimSpace(h.Get("Auto-Submitted")); v != "" {
		keyword, _, _ := strings.Cut(v, ";") // RFC 3834 §5: keyword, then optional parameters
		if kw := strings.ToLower(strings.TrimSpace(keyword)); kw != "no" {
			return "Auto-Submitted: " + kw
		}
	}
	if t, _, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil && t == "multipart/report" {
		return "the mail is a report (multipart/report)"
	}
	return ""
}
