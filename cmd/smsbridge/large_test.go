package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/convert"
	"github.com/smsbridge/smsbridge/smppout/smsctest"
	"github.com/smsbridge/smsbridge/store"
)

var restartLarge = flag.Int("restart.large", 0, "run TestRestartLargeQueue with this many queued records (issue 9: 1000000; minutes and ~2 GB of disk)")

// TestRestartLargeQueue is a restart with a big backlog: the data dir holds
// N queued records (written through the store, as a server that accepted
// them and died would leave them), then the real binary starts on it with
// an SMSC that answers. It measures the time until the server answers SMTP
// (a mail gets 250), until /readyz, and until the first submit_sm, then the
// RSS of the server while it works the backlog off (VmHWM: the peak).
// Targets (issue 9): serving within 5 s, RSS at most 256 MB.
func TestRestartLargeQueue(t *testing.T) {
	n := *restartLarge
	if n <= 0 {
		t.Skip("size test: run with -restart.large 1000000")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "smsbridge")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dataDir := filepath.Join(dir, "data")
	fillQueue(t, dataDir, n)

	sim := startSim(t, "127.0.0.1:0", smsctest.Config{SystemID: "large", Password: "pw", ReceiptDelay: 10 * time.Millisecond})
	smtpAddr, adminAddr := freeAddr(t), freeAddr(t)
	conf := filepath.Join(dir, "smsbridge.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
smtp_addr = %q
admin_addr = %q
data_dir = %q
hostname = "large.test"
[smsc]
addr = %q
system_id = "large"
password = "pw"
`, smtpAddr, adminAddr, dataDir, sim.Addr())), 0o600)

	var logs syncWriter
	var logText strings.Builder
	logs.w = &logText
	cmd := exec.Command(bin, "serve", "--config", conf)
	cmd.Stderr = &logs
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	var smtpAt, readyAt, submitAt time.Duration
	deadline := start.Add(60 * time.Second)
	for (smtpAt == 0 || readyAt == 0 || submitAt == 0) && time.Now().Before(deadline) {
		if smtpAt == 0 && sendOne(smtpAddr, "restart probe") == nil {
			smtpAt = time.Since(start)
		}
		if readyAt == 0 {
			if resp, err := http.Get("http://" + adminAddr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					readyAt = time.Since(start)
				}
			}
		}
		if submitAt == 0 && sim.Accepted() > 0 {
			submitAt = time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if smtpAt == 0 || readyAt == 0 || submitAt == 0 {
		t.Fatalf("not serving after 60 s (SMTP %v, ready %v, first submit %v)\n%s", smtpAt, readyAt, submitAt, tail(logText.String(), 3000))
	}
	t.Logf("%d queued: SMTP 250 after %v, /readyz after %v, first submit_sm after %v",
		n, smtpAt.Round(time.Millisecond), readyAt.Round(time.Millisecond), submitAt.Round(time.Millisecond))

	// Work the backlog off for a while, sampling the server's memory.
	var rss, hwm int64
	for i := 0; i < 30; i++ {
		time.Sleep(time.Second)
		rss, hwm = pidStatus(cmd.Process.Pid, "VmRSS:"), pidStatus(cmd.Process.Pid, "VmHWM:")
		if i%5 == 4 {
			t.Logf("t=%2ds: %d submitted (%.0f/s since start), RSS %d MB (anon %d MB, file %d MB), peak %d MB",
				i+1, sim.Accepted(), float64(sim.Accepted())/time.Since(start).Seconds(), rss>>20,
				pidStatus(cmd.Process.Pid, "RssAnon:")>>20, pidStatus(cmd.Process.Pid, "RssFile:")>>20, hwm>>20)
		}
	}
	if smtpAt > 5*time.Second || readyAt > 5*time.Second {
		t.Errorf("serving after %v (SMTP) / %v (ready), target 5 s", smtpAt, readyAt)
	}
	if hwm > 256<<20 {
		t.Errorf("peak RSS %d MB, target 256 MB", hwm>>20)
	}
}

// fillQueue writes n queued records into the store of dataDir, as smtpd
// makes them (one 1-SMS GSM text each, a different number each).
func fillQueue(t *testing.T, dataDir string, n int) {
	os.MkdirAll(dataDir, 0o700)
	st, err := store.Open(filepath.Join(dataDir, "smsbridge.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	text := "Backlog mail: the disk array on db-3 is degraded, replace drive 4."
	enc, err := convert.Encode(text, convert.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	const perAdd, writers = 1000, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for base := w * perAdd; base < n; base += writers * perAdd {
				recs := make([]*store.Record, 0, perAdd)
				for i := base; i < min(base+perAdd, n); i++ {
					num := "+4915" + strconv.Itoa(100000000 + i)[1:]
					recs = append(recs, &store.Record{
						From: "alerts@example.org", Rcpt: num + "@sms.localhost", To: num,
						MessageID: "<" + strconv.Itoa(i) + ".large@example.org>", Text: text,
						DataCoding: enc.Coding.DataCoding(), Concat: string(enc.Concat),
						Segments: []store.Segment{{Payload: enc.Segments[0].Payload, Text: text}},
					})
				}
				if err := st.Add(context.Background(), recs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dataDir, "smsbridge.db"))
	t.Logf("filled %d queued records in %v, file %d MB", n, time.Since(start).Round(time.Millisecond), fi.Size()>>20)
}

// pidStatus reads a size in kB from /proc/PID/status, in bytes.
func pidStatus(pid int, field string) int64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v << 10
		}
	}
	return -1
}
