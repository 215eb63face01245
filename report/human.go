package report

import (
	"fmt"
	"mime"
	"strings"
	"time"
)

// smsPreview is how many characters of the SMS text the human-readable
// part quotes.
const smsPreview = 160

// subject is the report's Subject, RFC 2047 encoded if not ASCII.
func (r Report) subject() string {
	orig := oneLine(r.OrigSubject)
	if orig == "" {
		orig = "SMS to " + r.number()
	}
	return r.outcome().subject + ": " + mime.QEncoding.Encode("utf-8", orig)
}

func (r Report) number() string {
	if n := oneLine(r.Number); n != "" {
		return n
	}
	return oneLine(r.FinalRcpt)
}

// outcome is the wording for one action.
type outcome struct {
	subject  string // Subject prefix
	headline string // first sentence, %s is the number
	when     string // label of LastAttempt
}

func (r Report) outcome() outcome { return outcomeOf(r.action()) }

func outcomeOf(a Action) outcome {
	switch a {
	case ActionDelivered:
		return outcome{"Delivered", "Your message to %s was delivered.", "Delivered"}
	case ActionDelayed:
		return outcome{"Delayed", "Your message to %s has not been delivered yet; delivery is still being attempted.", "Last attempt"}
	default:
		return outcome{"Undeliverable", "Your message to %s could not be delivered.", "Failed"}
	}
}

// textPart is the human-readable first part (RFC 6522), quoted-printable
// so that non-ASCII SMS text survives relays without 8BITMIME.
func (r Report) textPart() part {
	h := newHeader(
		"Content-Type", mediaType("text/plain", map[string]string{"charset": "utf-8"}),
		"Content-Transfer-Encoding", "quoted-printable",
	)
	return part{header: h, body: []byte(r.humanText())}
}

func (r Report) humanText() string {
	if len(r.Also) > 0 {
		return r.humanTextMany()
	}
	var b strings.Builder
	o := r.outcome()
	fmt.Fprintf(&b, o.headline, r.number())
	b.WriteString("\n\n")
	row(&b, "Number", r.number())
	row(&b, "Submitted", dateOrEmpty(r.Arrival))
	row(&b, o.when, dateOrEmpty(r.LastAttempt))
	if r.Segments > 0 {
		row(&b, "Segments", fmt.Sprint(r.Segments))
	}
	row(&b, "Diagnostic", oneLine(r.Diagnostic))
	if text := preview(r.Text); text != "" {
		b.WriteString("\nText of the SMS:\n\n  " + strings.ReplaceAll(text, "\n", "\n  ") + "\n")
	}
	fmt.Fprintf(&b, "\n-- \nThe SMS gateway at %s\n", r.ReportingMTA)
	return b.String()
}

// humanTextMany is the text of a report on several recipients of one
// mail: one paragraph per recipient, the SMS text once.
func (r Report) humanTextMany() string {
	var b strings.Builder
	rcpts := r.recipients()
	same := true
	for _, rc := range rcpts {
		same = same && rc.Action == rcpts[0].Action
	}
	if same {
		numbers := make([]string, len(rcpts))
		for i, rc := range rcpts {
			numbers[i] = rc.number()
		}
		fmt.Fprintf(&b, outcomeOf(rcpts[0].Action).headline, strings.Join(numbers, ", "))
	} else {
		b.WriteString("Your message was not delivered to every recipient.")
	}
	b.WriteString("\n\n")
	row(&b, "Submitted", dateOrEmpty(r.Arrival))
	if r.Segments > 0 {
		row(&b, "Segments", fmt.Sprint(r.Segments))
	}
	for _, rc := range rcpts {
		o := outcomeOf(rc.Action)
		b.WriteString("\n")
		row(&b, "Number", rc.number())
		row(&b, "Outcome", o.subject)
		row(&b, o.when, dateOrEmpty(rc.LastAttempt))
		row(&b, "Diagnostic", oneLine(rc.Diagnostic))
	}
	if text := preview(r.Text); text != "" {
		b.WriteString("\nText of the SMS:\n\n  " + strings.ReplaceAll(text, "\n", "\n  ") + "\n")
	}
	fmt.Fprintf(&b, "\n-- \nThe SMS gateway at %s\n", r.ReportingMTA)
	return b.String()
}

func (r Recipient) number() string {
	if n := oneLine(r.Number); n != "" {
		return n
	}
	return oneLine(r.FinalRcpt)
}

func row(b *strings.Builder, label, value string) {
	if value != "" {
		fmt.Fprintf(b, "%-13s %s\n", label+":", value)
	}
}

func dateOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatDate(t)
}

// preview is the start of the SMS text with line ends normalised to LF,
// cut at smsPreview characters with "…".
func preview(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = strings.ReplaceAll(text, "\r\n", "\n")
	text = strings.TrimSpace(strings.ReplaceAll(text, "\r", "\n"))
	runes := []rune(text)
	if len(runes) <= smsPreview {
		return text
	}
	return strings.TrimRight(string(runes[:smsPreview]), " \n") + "…"
}
