package smppout

import (
	"context"
	"fmt"
	"time"

	"github.com/smsbridge/smsbridge/smppout/internal/wire"
)

// request sends a request PDU and waits for its response. counted
// requests (submit_sm) take a window slot, blocking while none is free,
// and are refused once the session drains.
func (s *session) request(ctx context.Context, id uint32, body []byte, counted bool) (wire.PDU, error) {
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
	c, seq, err := s.register(id|wire.RespBit, counted)
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
func (s *session) register(respID uint32, counted bool) (*call, uint32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (counted && s.draining) {
		return nil, 0, ErrNotBound
	}
	seq := s.nextSeqLocked()
	c := &call{respID: respID, ch: make(chan wire.PDU, 1)}
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

// await waits for the response, RespTimeout, ctx or the session's end.
func (s *session) await(ctx context.Context, c *call, seq uint32) (wire.PDU, error) {
	t := time.NewTimer(s.cfg.RespTimeout)
	defer t.Stop()
	select {
	case p := <-c.ch:
		return p, nil
	case <-t.C:
		s.unregister(seq)
		s.log.Warn("smpp response timeout", "seq", seq)
		return wire.PDU{}, ErrTimeout
	case <-ctx.Done():
		s.unregister(seq)
		return wire.PDU{}, ctx.Err()
	case <-s.done:
		select {
		case p := <-c.ch: // the response won the race with the close
			return p, nil
		default:
			return wire.PDU{}, ErrSessionLost
		}
	}
}

// resolve hands a response to the request with the same sequence number
// and the matching response id; generic_nack (§4.3) answers any request.
func (s *session) resolve(p wire.PDU) {
	s.mu.Lock()
	c, ok := s.pending[p.Seq]
	ok = ok && (c.respID == p.ID || p.ID == wire.GenericNack)
	if ok {
		delete(s.pending, p.Seq)
	}
	s.mu.Unlock()
	if !ok {
		s.log.Warn("smpp unexpected or late response dropped", "seq", p.Seq,
			"command_id", fmt.Sprintf("0x%08X", p.ID), "status", p.Status)
		return
	}
	c.ch <- p
}
