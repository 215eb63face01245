package convert

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
)

// SubjectPolicy says whether the subject goes into the SMS.
type SubjectPolicy string

const (
	SubjectNone    SubjectPolicy = "none"     // never
	SubjectPrefix  SubjectPolicy = "prefix"   // subject, separator, body
	SubjectIfEmpty SubjectPolicy = "if-empty" // only when the body has no text (default)
)

// Transliteration says which characters may be replaced to stay in GSM 7-bit.
type Transliteration string

const (
	TranslitNone Transliteration = "none"
	// TranslitLookalike replaces typographic quotes, dashes, ellipsis,
	// NBSP and similar by their GSM look-alikes, only when that makes the
	// whole text GSM (default).
	TranslitLookalike Transliteration = "lookalike"
	// TranslitASCII also folds accents and other letters to their base.
	TranslitASCII Transliteration = "ascii"
)

// Concat is how the parts of a long message are tied together.
type Concat string

const (
	ConcatUDH8    Concat = "udh8"    // UDH IEI 00, 8-bit reference (default)
	ConcatUDH16   Concat = "udh16"   // UDH IEI 08, 16-bit reference
	ConcatSAR     Concat = "sar"     // SMPP sar_* TLVs, no concatenation UDH
	ConcatPayload Concat = "payload" // one submit_sm with message_payload; the SMSC splits
)

// Overflow says what happens to a text that needs more than MaxSegments.
type Overflow string

const (
	OverflowTruncate Overflow = "truncate" // cut inside the cap, ending with a marker (default)
	OverflowReject   Overflow = "reject"   // refuse: *SegmentsError
)

// Options are the conversion policy: what text a mail gives, and how it is
// encoded. The zero value of a field means its default (DefaultOptions).
type Options struct {
	Limits Limits

	Subject          SubjectPolicy
	SubjectSeparator string   // between subject and body with SubjectPrefix; default ": "
	Footers          []string // RE2 patterns for footer lines ("Sent from my iPhone"); default DefaultFooters

	Transliterate Transliteration
	// Languages are the national language shift tables that may be used,
	// by ISO 639-1 code ("tr", "es", "pt"…); none by default. A table is
	// used only when the text needs it and it is cheaper than UCS-2.
	Languages   []string
	Concat      Concat
	MaxSegments int // default 10, at most 255
	Overflow    Overflow
}

// DefaultFooters are footer lines that mail clients add and phones need not
// see. A line matching one (white space trimmed), and everything below it,
// is removed when it is among the last 5 non-blank lines and text is left
// above it.
var DefaultFooters = slices.Clone(defaultFooterPatterns)

// defaultFooterPatterns are DefaultFooters as built in, kept apart so that
// their compiled form can be shared. Read-only.
var defaultFooterPatterns = []string{
	`^Sent from my (iPhone|iPad|Android|BlackBerry|mobile device|Galaxy|Samsung|Huawei|Xiaomi|Pixel|Windows Phone|smartphone)\b.*$`,
	`^Sent from (Mail|Outlook|Yahoo Mail|AOL Mail) for (Windows|iOS|Android|iPhone|iPad|Mac).*$`,
	`^Sent (from|with) (Proton Mail|ProtonMail|Tuta|BlackBerry|Samsung Mobile|Gmail Mobile).*$`,
	`^Get Outlook for (iOS|Android|Mac).*$`,
	`^Von meinem .+ gesendet\.?$`,
	`^Gesendet von meinem .+$`,
	`^Envoyé de mon .+$`,
	`^Enviado desde mi .+$`,
	`^Enviado do meu .+$`,
	`^Inviato da(l mio)? (iPhone|iPad|Android|smartphone).*$`,
	`^Verzonden (vanaf|met) mijn .+$`,
}

// DefaultOptions returns the defaults, spelled out.
func DefaultOptions() Options {
	d := defaultOptions
	d.Footers = slices.Clone(defaultFooterPatterns)
	return d
}

// defaultOptions are the defaults, shared read-only (Footers is never
// written through).
var defaultOptions = Options{
	Limits:           DefaultLimits(),
	Subject:          SubjectIfEmpty,
	SubjectSeparator: ": ",
	Footers:          defaultFooterPatterns,
	Transliterate:    TranslitLookalike,
	Concat:           ConcatUDH8,
	MaxSegments:      10,
	Overflow:         OverflowTruncate,
}

// withDefaults fills zero fields from DefaultOptions.
func (o Options) withDefaults() Options {
	d := defaultOptions
	if o.Limits == (Limits{}) {
		o.Limits = d.Limits
	}
	o.Limits = o.Limits.withDefaults()
	if o.Subject == "" {
		o.Subject = d.Subject
	}
	if o.SubjectSeparator == "" {
		o.SubjectSeparator = d.SubjectSeparator
	}
	if o.Footers == nil {
		o.Footers = defaultFooterPatterns // read-only: spares a copy per mail
	}
	if o.Transliterate == "" {
		o.Transliterate = d.Transliterate
	}
	if o.Concat == "" {
		o.Concat = d.Concat
	}
	if o.MaxSegments == 0 {
		o.MaxSegments = d.MaxSegments
	}
	if o.Overflow == "" {
		o.Overflow = d.Overflow
	}
	return o
}

// Validate reports every option that is not one of the known values.
func (o Options) Validate() error {
	var errs []error
	bad := func(field string, v any) { errs = append(errs, fmt.Errorf("%s: unknown value %q", field, v)) }
	switch o.Subject {
	case "", SubjectNone, SubjectPrefix, SubjectIfEmpty:
	default:
		bad("subject", o.Subject)
	}
	switch o.Transliterate {
	case "", TranslitNone, TranslitLookalike, TranslitASCII:
	default:
		bad("transliterate", o.Transliterate)
	}
	switch o.Concat {
	case "", ConcatUDH8, ConcatUDH16, ConcatSAR, ConcatPayload:
	default:
		bad("concat", o.Concat)
	}
	switch o.Overflow {
	case "", OverflowTruncate, OverflowReject:
	default:
		bad("overflow", o.Overflow)
	}
	if o.MaxSegments < 0 || o.MaxSegments > MaxSegments {
		errs = append(errs, fmt.Errorf("max_segments: %d is not in 1..%d", o.MaxSegments, MaxSegments))
	}
	for _, f := range o.Footers {
		if _, err := regexp.Compile(f); err != nil {
			errs = append(errs, fmt.Errorf("footers: %q: %w", f, err))
		}
	}
	for _, l := range o.Languages {
		if !knownLanguage(l) {
			bad("languages", l)
		}
	}
	return errors.Join(errs...)
}

// SegmentsError: the text needs more segments than the cap allows and the
// policy is OverflowReject (SMTP 550 5.3.4).
type SegmentsError struct{ Needed, Max int }

func (e *SegmentsError) Error() string {
	return fmt.Sprintf("convert: text needs %d SMS, more than the limit of %d", e.Needed, e.Max)
}
