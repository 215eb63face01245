package wire

import (
	"errors"
	"net"
	"sync"
	"time"
)

// ErrWriterClosed: Write after Close.
var ErrWriterClosed = errors.New("smpp: writer closed")

// Writer sends PDUs on a connection from one goroutine, so that PDUs
// never interleave and those queued while a write is under way go out
// together in the next one: under load, many PDUs a syscall.
//
// A failed write closes the connection, so the reader sees it end; the
// error is returned by later Writes.
type Writer struct {
	conn    net.Conn
	timeout time.Duration

	mu      sync.Mutex
	buf     []byte // queued, not yet handed to the goroutine
	err     error
	closing bool
	kick    chan struct{}
	done    chan struct{}
}

// NewWriter starts the writing goroutine; Close stops it. Each write must
// finish within timeout.
func NewWriter(conn net.Conn, timeout time.Duration) *Writer {
	w := &Writer{conn: conn, timeout: timeout, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// Write queues p. A nil error means queued, not yet sent.
func (w *Writer) Write(p PDU) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.err != nil:
		return w.err
	case w.closing:
		return ErrWriterClosed
	}
	w.buf = p.AppendTo(w.buf)
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return nil
}

// Close sends what is queued (within the timeout), then stops the
// goroutine. It does not close the connection.
func (w *Writer) Close() {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	<-w.done
}

func (w *Writer) run() {
	defer close(w.done)
	var spare []byte
	for range w.kick {
		for {
			w.mu.Lock()
			b, closing := w.buf, w.closing
			if len(b) > 0 {
				w.buf = spare[:0] // b and spare never share an array
			}
			w.mu.Unlock()
			if len(b) == 0 {
				if closing {
					return
				}
				break
			}
			w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
			if _, err := w.conn.Write(b); err != nil {
				w.fail(err)
				return
			}
			spare = b
		}
	}
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	w.err, w.buf = err, nil
	w.mu.Unlock()
	w.conn.Close()
}
