package ratelimit

import (
	"errors"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Date(2026, 11, 20, 23, 59, 30, 0, time.UTC)
	l := New(func() time.Time { return now })
	claim := func(m, s int) Claim {
		return Claim{Key: "k", Who: "k", Limits: Limits{MessagesPerMinute: 3, SegmentsPerDay: 10}, Messages: m, Segments: s}
	}
	if _, err := l.Take(claim(2, 4)); err != nil {
		t.Fatal(err)
	}
	_, err := l.Take(claim(2, 2))
	var e *Exceeded
	if !errors.As(err, &e) || e.Window != Minute || e.Permanent() || !e.Reset.Equal(time.Date(2026, 11, 20, 23, 60, 0, 0, time.UTC)) {
		t.Fatalf("over the minute: %+v", err)
	}
	undo, err := l.Take(claim(1, 6))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Check(claim(0, 1)); !errors.As(err, &e) || e.Window != Day || !e.Permanent() {
		t.Fatalf("over the day: %v", err)
	}
	undo() // the mail was not queued
	if err := l.Check(claim(0, 6)); err != nil {
		t.Fatalf("after undo: %v", err)
	}
	if err := l.Check(claim(4, 0)); !errors.As(err, &e) || !e.TooLarge {
		t.Fatalf("too large alone: %v", err)
	}
	now = now.Add(time.Minute) // a new day
	if _, err := l.Take(claim(3, 10)); err != nil {
		t.Fatalf("new day: %v", err)
	}
	if err := l.Check(Claim{Key: "other", Limits: Limits{}, Messages: 100}); err != nil {
		t.Fatal("zero limits limit")
	}
}
