package admin

import (
	"crypto/subtle"
	"time"

	"github.com/smsbridge/smsbridge/store"
)

// RecordSummary is one line of a record list.
type RecordSummary struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	Created   time.Time `json:"created"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	MessageID string    `json:"message_id,omitempty"`
	Segments  int       `json:"segments"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
}

// RecordDetail is one record with its segments and history.
type RecordDetail struct {
	RecordSummary
	Rcpt        string          `json:"rcpt"`
	Subject     string          `json:"subject,omitempty"`
	Text        string          `json:"text"`
	DataCoding  byte            `json:"data_coding"`
	NextAttempt time.Time       `json:"next_attempt"`
	ReportDone  bool            `json:"report_done"`
	Parts       []SegmentDetail `json:"parts"`
	Events      []EventDetail   `json:"events"`
}

// SegmentDetail is one SMS of a record.
type SegmentDetail struct {
	SMSCID string `json:"smsc_id,omitempty"`
	State  string `json:"state"`
	Stat   string `json:"stat,omitempty"`
	Err    string `json:"err,omitempty"`
	Text   string `json:"text,omitempty"`
}

// EventDetail is one line of a record's history.
type EventDetail struct {
	At     time.Time `json:"at"`
	What   string    `json:"what"`
	Detail string    `json:"detail,omitempty"`
}

func summarize(r *store.Record) RecordSummary {
	return RecordSummary{ID: r.ID, State: string(r.State), Created: r.Created, From: r.From, To: r.To,
		MessageID: r.MessageID, Segments: len(r.Segments), Attempts: r.Attempts, LastError: r.LastError}
}

func detail(r *store.Record) RecordDetail {
	d := RecordDetail{RecordSummary: summarize(r), Rcpt: r.Rcpt, Subject: r.Subject, Text: r.Text,
		DataCoding: r.DataCoding, NextAttempt: r.NextAttempt, ReportDone: r.ReportDone,
		Parts: []SegmentDetail{}, Events: []EventDetail{}}
	for _, s := range r.Segments {
		state := s.State
		if state == "" {
			state = "pending"
		}
		d.Parts = append(d.Parts, SegmentDetail{SMSCID: s.SMSCID, State: state, Stat: s.Stat, Err: s.Err, Text: s.Text})
	}
	for _, e := range r.Events {
		d.Events = append(d.Events, EventDetail{At: e.At, What: e.What, Detail: e.Detail})
	}
	return d
}

func constantTimeEqual(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
