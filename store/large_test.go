package store

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var large = flag.Bool("store.large", false, "run the size tests (1,000,000 records, a minute or more, ~2 GB of disk)")

const largeChildEnv = "STORE_LARGE_CHILD"

// TestLargeQueue fills a store with 1,000,000 queued records, then measures,
// in a fresh process so that nothing of the filling counts, the time to
// Open it and the memory after Open, Recover and Due(now, 100).
func TestLargeQueue(t *testing.T) {
	if path := os.Getenv(largeChildEnv); path != "" {
		largeChild(t, path)
		return
	}
	if !*large {
		t.Skip("size test: run with -store.large")
	}
	const total, perAdd, writers = 1_000_000, 1000, 4
	path := filepath.Join(t.TempDir(), "large.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for base := w * perAdd; base < total; base += writers * perAdd {
				recs := make([]*Record, perAdd)
				for i := range recs {
					recs[i] = benchRecord(base+i, 2)
				}
				if err := s.Add(context.Background(), recs); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	fill := time.Since(start)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	t.Logf("filled %d records in %v (%.0f records/s), file %d MB", total, fill.Round(time.Millisecond),
		total/fill.Seconds(), fi.Size()>>20)

	cmd := exec.Command(os.Args[0], "-test.run=^TestLargeQueue$", "-test.v")
	cmd.Env = append(os.Environ(), largeChildEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var open, due time.Duration
	var rss, hwm int64
	found := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if _, err := fmt.Sscanf(strings.TrimSpace(sc.Text()), "LARGE open=%d due=%d rss=%d hwm=%d", &open, &due, &rss, &hwm); err == nil {
			found = true
		}
	}
	if !found {
		t.Fatalf("child said:\n%s", out)
	}
	t.Logf("Open %v; Recover + Due(now, 100) %v; RSS %d MB (peak %d MB)", open, due, rss>>20, hwm>>20)
	if open > 5*time.Second {
		t.Errorf("Open took %v, target 5 s", open)
	}
	if hwm > 256<<20 {
		t.Errorf("peak RSS %d MB, target 256 MB", hwm>>20)
	}
}

func largeChild(t *testing.T, path string) {
	start := time.Now()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	open := time.Since(start)
	start = time.Now()
	if _, err := s.Recover(time.Now()); err != nil {
		t.Fatal(err)
	}
	recs, _, err := s.Due(time.Now(), 100)
	if err != nil || len(recs) != 100 {
		t.Fatalf("Due: %d records, %v", len(recs), err)
	}
	counts, err := s.Counts()
	if err != nil || counts[Queued] != 1_000_000 {
		t.Fatalf("Counts = %v, %v", counts, err)
	}
	due := time.Since(start)
	rss, hwm := procStatus("VmRSS:"), procStatus("VmHWM:")
	s.Close()
	fmt.Printf("LARGE open=%d due=%d rss=%d hwm=%d\n", open, due, rss, hwm)
}

// procStatus reads a size in kB from /proc/self/status, in bytes.
func procStatus(field string) int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n << 10
		}
	}
	return -1
}
