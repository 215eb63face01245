// Package smsctest is an SMSC simulator speaking SMPP v3.4 over TCP, for
// tests and smsbridge's demo mode.
package smsctest

import (
	"log/slog"
	"time"
)

// Outcome decides the receipt for destinations starting with Prefix.
type Outcome struct {
	Prefix string // matched against destination_addr digits (no "+"); "" matches all
	Stat   string // DELIVRD, UNDELIV, EXPIRED, REJECTD…
	Err    string // 3 digits, e.g. "000", "001"
}

// Config configures a Server; zero values mean defaults.
type Config struct {
	SystemID     string // required system_id; "" accepts any
	Password     string
	ReceiptDelay time.Duration
	Outcomes     []Outcome // first match wins; DELIVRD/000 when none matches
	Log          *slog.Logger
}

// Message is a submit_sm the simulator accepted.
type Message struct {
	ID                 string
	Source, Dest       string
	ESMClass           byte
	DataCoding         byte
	RegisteredDelivery byte
	ShortMessage       []byte
	At                 time.Time
}

// Server is a running simulator.
type Server struct{}

func New(cfg Config) *Server            { panic("TODO") }
func (s *Server) Start(addr string) error { panic("TODO") }
func (s *Server) Addr() string           { panic("TODO") }
func (s *Server) Close() error           { panic("TODO") }
func (s *Server) Messages() []Message    { panic("TODO") }
