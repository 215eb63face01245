package store

import (
	"context"
	"testing"
)

func TestInboundPartsSurviveReopen(t *testing.T) {
	s, path := openTemp(t, Options{})
	ctx := context.Background()
	if err := s.AddInbound(ctx, &Inbound{Route: "r", From: "+4915112345678", To: "12345", Text: "STOP"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"r/a/1", "r/a/2", "r/a/2"} { // a part resent is kept once
		if err := s.AddMOPart(ctx, k, []byte("part "+k)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	parts, err := s.MOParts()
	if err != nil || len(parts) != 2 || string(parts["r/a/1"]) != "part r/a/1" {
		t.Fatalf("parts after reopen: %v %v", parts, err)
	}
	if err := s.CompleteInbound(ctx, &Inbound{Route: "r", Text: "joined", Parts: 2}, []string{"r/a/1", "r/a/2"}); err != nil {
		t.Fatal(err)
	}
	if parts, _ := s.MOParts(); len(parts) != 0 {
		t.Errorf("parts left after joining: %v", parts)
	}
	// Joining the same parts again (a part resent after the join) keeps one.
	if err := s.CompleteInbound(ctx, &Inbound{Route: "r", Text: "joined again", Parts: 2}, []string{"r/a/1", "r/a/2"}); err != nil {
		t.Fatal(err)
	}
	in, err := s.ListInbound(10)
	if err != nil || len(in) != 2 || in[0].Text != "joined" || in[1].Text != "STOP" || in[0].ID == "" {
		t.Fatalf("inbound %+v %v", in, err)
	}
}
