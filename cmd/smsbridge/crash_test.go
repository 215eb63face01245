package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/smsbridge/smsbridge/smppout/smsctest"
	"github.com/smsbridge/smsbridge/store"
)

var crashLong = flag.Bool("crash.long", false, "run the long crash test: 20+ kill -9 under load")

// TestCrashKill9 is RFC 5321 §6.1 under fire: the real binary takes mail
// from concurrent SMTP clients while it is killed with SIGKILL at random
// moments and restarted on the same data dir. Every mail that got a 250
// must reach the SMSC (the simulator, in this process, outlives the
// kills); duplicates are allowed (at least once) and counted.
func TestCrashKill9(t *testing.T) {
	kills, senders := 3, 4
	if *crashLong {
		kills, senders = 25, 8
	}
	stopUnderLoad(t, syscall.SIGKILL, kills, senders)
}

// TestSigtermUnderLoad: SIGTERM while mail flows is a clean stop (exit 0)
// that loses nothing: sessions in DATA finish, in-flight submits are
// written down, and the restarted server sends the rest.
func TestSigtermUnderLoad(t *testing.T) {
	stopUnderLoad(t, syscall.SIGTERM, 2, 4)
}

func stopUnderLoad(t *testing.T, sig syscall.Signal, kills, senders int) {
	if testing.Short() {
		t.Skip("builds and stops the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "smsbridge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sim := startSim(t, "127.0.0.1:0", smsctest.Config{SystemID: "crash", Password: "pw", ReceiptDelay: 5 * time.Millisecond})
	smtpAddr := freeAddr(t)
	conf := filepath.Join(dir, "smsbridge.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
smtp_addr = %q
admin_addr = ""
data_dir = %q
hostname = "crash.test"
[smsc]
addr = %q
system_id = "crash"
password = "pw"
reconnect_min = "20ms"
reconnect_max = "100ms"
resp_timeout = "2s"
[retry]
min = "20ms"
max = "200ms"
`, smtpAddr, filepath.Join(dir, "data"), sim.Addr())), 0o600)

	var logs strings.Builder
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--config", conf)
		cmd.Stderr = &syncWriter{w: &logs}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	var mu sync.Mutex
	accepted := map[string]bool{} // text → got 250
	ctx, stopSending := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				text := fmt.Sprintf("crash test mail %d-%d", s, n)
				if sendOne(smtpAddr, text) == nil {
					mu.Lock()
					accepted[text] = true
					mu.Unlock()
				} else {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}

	cmd := start()
	for range kills {
		time.Sleep(time.Duration(150+rand.IntN(450)) * time.Millisecond)
		cmd.Process.Signal(sig) // SIGKILL: no shutdown, no flush; SIGTERM: a clean stop
		err := cmd.Wait()
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("after SIGTERM the server exited with %v, want 0\n%s", err, logs.String())
		}
		cmd = start()
	}
	time.Sleep(300 * time.Millisecond)
	stopSending()
	wg.Wait()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	mu.Lock()
	defer mu.Unlock()
	if len(accepted) < 10 {
		t.Fatalf("only %d mails accepted: the test did not test much\n%s", len(accepted), logs.String())
	}
	// Every mail goes to one number, and order per destination is kept:
	// the queue drains one SMS at a time, so the wait is not a fixed time
	// but until nothing moves any more (lost means never).
	// Progress is accepted mails seen at the SMSC: duplicates do not
	// count, and a cap ends a wait that keeps moving without arriving.
	const stall, limit = 30 * time.Second, 10 * time.Minute
	lastSeen, lastMove, deadline := -1, time.Now(), time.Now().Add(limit)
	for {
		got := map[string]int{}
		msgs := sim.Messages()
		for _, m := range msgs {
			got[string(m.ShortMessage)]++
		}
		var lost []string
		for text := range accepted {
			if got[text] == 0 {
				lost = append(lost, text)
			}
		}
		if len(lost) == 0 {
			dups := 0
			for _, n := range got {
				dups += n - 1
			}
			t.Logf("%d × %v: %d mails accepted with 250, %d SMS at the SMSC, lost 0, duplicates %d",
				kills, sig, len(accepted), len(sim.Messages()), dups)
			return
		}
		if seen := len(accepted) - len(lost); seen != lastSeen {
			lastSeen, lastMove = seen, time.Now()
		}
		if time.Since(lastMove) > stall || time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%d of %d accepted mails never reached the SMSC (none arrived for %v, or %v passed), e.g. %q: %s\n%s", len(lost), len(accepted), stall, limit,
				lost[0], describeLost(filepath.Join(dir, "data"), lost[0]), tail(logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sendOne sends one mail whose body is text; nil only after a 250.
func sendOne(addr, text string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("crash.client"); err != nil {
		return err
	}
	if err := c.Mail("load@crash.test", nil); err != nil {
		return err
	}
	if err := c.Rcpt("+14155550123@sms.localhost", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Subject: load\r\nMessage-ID: <%s@crash.test>\r\n\r\n%s\r\n", strings.ReplaceAll(text, " ", "."), text)
	if err := w.Close(); err != nil {
		return err
	}
	c.Quit()
	return nil
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// describeLost tells what the store says of the record with text.
func describeLost(dataDir, text string) string {
	st, err := store.Open(filepath.Join(dataDir, "smsbridge.db"), store.Options{})
	if err != nil {
		return "store: " + err.Error()
	}
	defer st.Close()
	q := store.Query{Limit: 1000}
	for range 100 {
		recs, next, err := st.Query(q)
		if err != nil {
			return err.Error()
		}
		for _, r := range recs {
			if r.Text == text {
				return fmt.Sprintf("record %s state %s next %s attempts %d events %+v", r.ID, r.State,
					r.NextAttempt.Format(time.RFC3339Nano), r.Attempts, r.Events)
			}
		}
		if next == "" {
			break
		}
		q.Before = next
	}
	return "no record with that text"
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
