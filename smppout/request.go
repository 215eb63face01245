package smppout

import (
	"context"
	"fmt"
	"time"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// maxGiven bounds the calls given up but kept to recognise late
// responses; past it they are forgotten (the response is then logged as
// unexpected).
const maxGiven = 10000

// request sends a request PDU and waits for its response. submit_sm takes
// a window slot, blocking while none is free, and is refused once the
// session drains. dest labels a submit_sm in the log.
func (s *session) request(ctx context.Context, id uint32, body []byte, dest string, tag any) (wire.PDU, error) {
	counted := id == wire.SubmitSM
	if counted {
		select {
		case s.window <- struct{}{}:
			defer func() { <-s.window }()
		case <-ctx.Done():
			return wire.PDU{}, ctx.Err()
		case <-s.done:
			return wire.PDU{}, ErrNotBound
		}
	}
	c, seq, err := s.register(id|wire.RespBit, counted, dest, tag)
	if err != nil {
		return wire.PDU{}, err
	}
	if counted {
		defer s.inflight.Done()
	}
	if err := s.write(wire.PDU{ID: id, Seq: seq, Body: body}); err != nil {
		s.unregister(seq)
		return wire.PDU{}, fmt.Errorf("%w (%v)", ErrSessionLost, err)
	}
	return s.await(ctx, c, seq)
}

// register reserves a sequence number for a request expecting respID.
func (s *session) register(respID uint32, counted bool, dest string, tag any) (*call, uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (counted && s.draining) {
		return nil, 0, ErrNotBound
	}
	seq := s.nextSeqLocked()
	c := &call{respID: respID, ch: make(chan wire.PDU, 1), dest: dest, tag: tag}
	s.pending[seq] = c
	if counted {
		s.inflight.Add()
	}
	return c, seq, nil
}

func (s *session) unregister(seq uint32) {
	s.mu.Lock()
	delete(s.pending, seq)
	s.mu.Unlock()
}

// giveUp stops waiting for seq. A submit_sm stays registered (up to
// maxGiven) so that a late submit_sm_resp is recognised and counted: it
// proves the SMSC accepted a message we reported in doubt.
func (s *session) giveUp(seq uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.pending[seq]
	if !ok {
		return
	}
	if c.respID != wire.SubmitSMResp || s.given >= maxGiven {
		delete(s.pending, seq)
		return
	}
	c.given = true
	s.given++
}

// await waits for the response, RespTimeout, ctx or the session's end.
// All but the response leave the request in doubt (ErrTimeout).
func (s *session) await(ctx context.Context, c *call, seq uint32) (wire.PDU, error) {
	t := time.NewTimer(s.cfg.RespTimeout)
	defer t.Stop()
	select {
	case p := <-c.ch:
		return p, nil
	case <-t.C:
		s.giveUp(seq)
		if p, ok := arrived(c); ok {
			return p, nil
		}
		s.log.Warn("smpp response timeout", "seq", seq, "to", c.dest)
		return wire.PDU{}, ErrTimeout
	case <-ctx.Done():
		s.giveUp(seq)
		if p, ok := arrived(c); ok {
			return p, nil
		}
		return wire.PDU{}, fmt.Errorf("%w: gave up waiting: %w", ErrTimeout, ctx.Err())
	case <-s.done:
		select {
		case p := <-c.ch: // the response won the race with the close
			return p, nil
		default:
			return wire.PDU{}, ErrSessionLost
		}
	}
}

// arrived returns a response that resolve delivered while the timer or ctx
// fired: select picks among ready cases at random, and a response we have
// must never turn into a resend.
func arrived(c *call) (wire.PDU, bool) {
	select {
	case p := <-c.ch:
		return p, true
	default:
		return wire.PDU{}, false
	}
}

// resolve hands a response to the request with the same sequence number
// and the matching response id; generic_nack (§4.3) answers any request.
func (s *session) resolve(p wire.PDU) {
	s.mu.Lock()
	c, ok := s.pending[p.Seq]
	ok = ok && (c.respID == p.ID || p.ID == wire.GenericNack)
	given := false
	if ok {
		delete(s.pending, p.Seq)
		given = c.given
		if given {
			s.given--
		} else {
			// Under the lock (ch is buffered, this never blocks): a
			// giveUp that comes after finds the call gone and the
			// response waiting in ch, never neither.
			c.ch <- p
		}
	}
	s.mu.Unlock()
	switch {
	case !ok:
		s.log.Warn("smpp unexpected response dropped", "seq", p.Seq,
			"command_id", fmt.Sprintf("0x%08X", p.ID), "status", p.Status)
	case given:
		s.late(p, c)
	}
}

// late records a response to a request given up. An ESME_ROK
// submit_sm_resp means the SMSC has the message: the log line (smsc_id,
// to) lets an operator reconcile it; its receipt will still come.
func (s *session) late(p wire.PDU, c *call) {
	s.stats.late.Add(1)
	id, _ := wire.ParseMessageID(p.Body)
	id = s.cfg.IDFormat.SubmitID(id)
	s.log.Warn("smpp late submit_sm_resp: the SMSC had the message we reported in doubt",
		"seq", p.Seq, "to", c.dest, "status", p.Status, "smsc_id", id)
	if p.Status == wire.StatusOK && id != "" && s.cfg.Late != nil {
		// The caller may still write the id down and not send the
		// segment again: the SMSC has it.
		s.handlers.Add() // shutdown waits for it, as for receipts
		go func() {
			defer s.handlers.Done()
			s.cfg.Late(c.tag, id)
		}()
	}
}
