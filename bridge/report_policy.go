package bridge

import (
	"strings"

	"github.com/smsbridge/smsbridge/store"
)

// reportKind is what a report would say: RFC 3461 §4.1 names the three a
// sender can ask for.
type reportKind string

const (
	kindSuccess reportKind = "SUCCESS"
	kindFailure reportKind = "FAILURE"
	kindDelay   reportKind = "DELAY"
)

// finalKind is the kind of a final record's report.
func finalKind(rec *store.Record) reportKind {
	if rec.State == store.Delivered {
		return kindSuccess
	}
	return kindFailure
}

// wants decides whether rec gets a report of kind k, and if not, why. In
// order:
//
//  1. never on a mail from the null sender, an automatic mail or a
//     report (rec.NoReport, set by smtpd at DATA): loops;
//  2. NOTIFY=NEVER: none; NOTIFY given: exactly the kinds it lists
//     (RFC 3461 §4.1), whatever the policies below say;
//  3. the authenticated user's policy (users file report=): none,
//     failures (failures only), all (successes, failures and delays);
//  4. the server's: Config.ReportFailures (default on),
//     Config.ReportSuccess (off; on in demo mode), Config.ReportDelays
//     (off).
func (b *Bridge) wants(rec *store.Record, k reportKind) (bool, string) {
	switch {
	case rec.From == "":
		return false, "null sender"
	case rec.NoReport != "":
		return false, rec.NoReport
	case rec.Notify == "NEVER":
		return false, "NOTIFY=NEVER"
	case rec.Notify != "":
		if notifyHas(rec.Notify, k) {
			return true, ""
		}
		return false, "NOTIFY=" + rec.Notify
	}
	switch rec.ReportPolicy {
	case "none":
		return false, "the user's policy is none"
	case "failures":
		if k == kindFailure {
			return true, ""
		}
		return false, "the user's policy is failures"
	case "all":
		return true, ""
	}
	on := map[reportKind]bool{
		kindSuccess: b.cfg.ReportSuccess,
		kindFailure: *b.cfg.ReportFailures,
		kindDelay:   b.cfg.ReportDelays,
	}[k]
	if on {
		return true, ""
	}
	return false, strings.ToLower(string(k)) + " reports are off"
}

func notifyHas(notify string, k reportKind) bool {
	for _, v := range strings.Split(notify, ",") {
		if v == string(k) {
			return true
		}
	}
	return false
}
