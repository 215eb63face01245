package users

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestMain(m *testing.M) {
	hashCost = bcrypt.MinCost // DefaultCost costs seconds under -race
	os.Exit(m.Run())
}

func hash(t *testing.T, pw string) string {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestParse(t *testing.T) {
	h := hash(t, "pw")
	good := "# users\n\nalice:" + h + " source=ACME senders=a@x.test,@y.test,<> prefixes=+49,+41 max_segments=3 " +
		"messages_per_minute=10 messages_per_day=500 segments_per_hour=100 report=failures\nbob:" + h + "\n"
	db, err := Parse(strings.NewReader(good), "users")
	if err != nil {
		t.Fatal(err)
	}
	a, ok := db.Authenticate("alice", "pw")
	if !ok || a.Source != "ACME" || len(a.Senders) != 3 || len(a.Prefixes) != 2 || a.MaxSegments != 3 ||
		a.Limits.MessagesPerMinute != 10 || a.Limits.MessagesPerDay != 500 || a.Limits.SegmentsPerHour != 100 || a.Report != ReportFailures {
		t.Fatalf("alice %+v", a)
	}
	if _, ok := db.Authenticate("alice", "PW"); ok {
		t.Fatal("wrong password accepted")
	}
	if _, ok := db.Authenticate("carol", "pw"); ok {
		t.Fatal("unknown user accepted")
	}

	for _, tc := range []struct{ name, file, want string }{
		{"no hash", "alice\n", "users:1: want"},
		{"not bcrypt", "alice:secret\n", `users:1: user "alice": password is not a bcrypt hash`},
		{"unknown key on line 3", "# x\nbob:" + h + "\nalice:" + h + " colour=red\n", `users:3: user "alice": colour: unknown key`},
		{"duplicate user", "bob:" + h + "\nbob:" + h + "\n", `users:2: user "bob" defined twice`},
		{"key twice", "bob:" + h + " source=A source=B\n", "source given twice"},
		{"bad number", "bob:" + h + " messages_per_day=-1\n", "not a positive number"},
		{"bad prefix", "bob:" + h + " prefixes=49\n", `prefix "49"`},
		{"bad sender", "bob:" + h + " senders=x*y@z\n", `sender "x*y@z"`},
		{"long source", "bob:" + h + " source=ABCDEFGHIJKL\n", "source:"},
		{"bad report", "bob:" + h + " report=maybe\n", "want none, failures or all"},
		{"bad name", "b o:" + h + "\n", "want"},
		{"not key=value", "bob:" + h + " source\n", "not key=value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.file), "users")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSenderAllowed(t *testing.T) {
	p := []string{"a@x.test", "@y.test", "*@z.test", "<>"}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"a@x.test", true}, {"A@X.TEST", true}, {"b@x.test", false}, {"q@y.test", true}, {"q@Z.test", true},
		{"", true}, {"q@sub.y.test", false}, {"y.test@evil.test", false},
	} {
		if got := SenderAllowed(p, tc.addr); got != tc.want {
			t.Errorf("%q: %v", tc.addr, got)
		}
	}
	if !SenderAllowed(nil, "any@thing") || SenderAllowed([]string{"a@x.test"}, "") {
		t.Error("empty list or null sender")
	}
}

// TestSetPassword: like htpasswd, a new user is appended and an existing
// user's hash replaced with its settings and the other lines kept.
func TestSetPassword(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if err := SetPassword(path, "alice", "one"); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(path)
	os.WriteFile(path, append([]byte("# team\n"), append(old, []byte("bob:"+hash(t, "b")+" source=BOB\n")...)...), 0o600)
	if err := SetPassword(path, "bob", "two"); err != nil {
		t.Fatal(err)
	}
	if err := SetPassword(path, "bad name", "x"); err == nil {
		t.Fatal("bad name accepted")
	}
	db, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := db.Authenticate("alice", "one"); !ok {
		t.Error("alice")
	}
	if b, ok := db.Authenticate("bob", "two"); !ok || b.Source != "BOB" {
		t.Errorf("bob %+v", b)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# team\n") {
		t.Errorf("comment lost:\n%s", data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil || bcrypt.CompareHashAndPassword([]byte(h), []byte("correct horse")) != nil {
		t.Fatal(h, err)
	}
	if _, err := HashPassword(""); err == nil {
		t.Fatal("empty password")
	}
}
