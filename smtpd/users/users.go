// Package users reads the file of SMTP AUTH users: their bcrypt password
// hashes and what each may do.
//
// The file has one user per line, like htpasswd, with optional settings:
//
//	# comments and blank lines are ignored
//	name:bcrypt-hash [key=value ...]
//
//	alice:$2a$10$N9qo8uLOickgx2ZMRZoMye… source=ACME senders=alerts@acme.example,@ops.acme.example
//	bob:$2a$10$… prefixes=+49,+41 max_segments=3 messages_per_minute=10 messages_per_day=500 report=failures
//
// Keys (each at most once per line; lists are comma-separated):
//
//	senders       envelope senders the user may use: "local@domain", "@domain"
//	              (or "*@domain"), "<>" for the null sender, "*" for any; default any
//	source        sender id shown on the phone: up to 11 letters, digits, ".", "-",
//	              "_" or "&"; "+" and up to 15 digits; or up to 20 digits (a
//	              national number, a short code); default the route's
//	prefixes      destination prefixes the user may send to ("+49", "+4915");
//	              default any (the server's allow and deny lists still apply)
//	max_segments  segment cap for the user's mails (at most the server's)
//	messages_per_minute, messages_per_hour, messages_per_day,
//	segments_per_minute, segments_per_hour, segments_per_day
//	              rate limits and daily quotas; default the server's user limits
//	report        delivery reports the user gets: "none", "failures", "all";
//	              default the server's policy
//
// Errors name the file and line. `smsbridge passwd` writes lines with
// SetPassword.
package users

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/smsbridge/smsbridge/smppout"
	"github.com/smsbridge/smsbridge/smtpd/ratelimit"
)

// Report is a user's delivery report policy.
type Report string

const (
	ReportDefault  Report = ""
	ReportNone     Report = "none"
	ReportFailures Report = "failures"
	ReportAll      Report = "all"
)

// User is one line of the file.
type User struct {
	Name        string
	Hash        []byte   // bcrypt
	Senders     []string // allowed envelope sender patterns; empty: any
	Source      string   // sender id for the user's SMS; "" for the route's
	Prefixes    []string // allowed E.164 destination prefixes; empty: any
	MaxSegments int      // 0: the server's cap
	Limits      ratelimit.Limits
	Report      Report
}

// DB is a parsed users file. It is read-only and safe for concurrent use.
type DB struct {
	users map[string]*User
	cost  int // of the dearest hash, for the decoy compare

	decoyOnce sync.Once
	decoy     []byte
}

// Load reads the users file at path.
func Load(path string) (*DB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads a users file; name is used in error messages.
func Parse(r io.Reader, name string) (*DB, error) {
	db := &DB{users: make(map[string]*User), cost: bcrypt.MinCost}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		u, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("users: %s:%d: %w", name, n, err)
		}
		if _, dup := db.users[u.Name]; dup {
			return nil, fmt.Errorf("users: %s:%d: user %q defined twice", name, n, u.Name)
		}
		db.users[u.Name] = u
		if c, _ := bcrypt.Cost(u.Hash); c > db.cost {
			db.cost = c
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("users: %s: %w", name, err)
	}
	return db, nil
}

// Len is the number of users.
func (db *DB) Len() int { return len(db.users) }

// Authenticate returns the user if name exists and password is right. An
// unknown name costs a bcrypt compare too, so that timing does not tell
// which names exist.
func (db *DB) Authenticate(name, password string) (*User, bool) {
	u := db.users[name]
	if u == nil {
		db.decoyOnce.Do(func() {
			db.decoy, _ = bcrypt.GenerateFromPassword([]byte("no such user"), db.cost)
		})
		bcrypt.CompareHashAndPassword(db.decoy, []byte(password))
		return nil, false
	}
	if bcrypt.CompareHashAndPassword(u.Hash, []byte(password)) != nil {
		return nil, false
	}
	return u, true
}

// hashCost is bcrypt's work factor for new hashes (tests lower it).
var hashCost = bcrypt.DefaultCost

// HashPassword returns the bcrypt hash of pw for a users file.
func HashPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("users: empty password")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), hashCost)
	if err != nil {
		return "", fmt.Errorf("users: %w", err)
	}
	return string(h), nil
}

// SetPassword sets name's password in the users file at path, as htpasswd
// does: it replaces the hash on the user's line and keeps its settings and
// every other line, or appends "name:hash" for a new user. It creates the
// file (mode 0600) if needed and replaces it atomically; the result must
// parse, so a broken file is reported rather than made worse.
func SetPassword(path, name, pw string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	hash, err := HashPassword(pw)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("users: %w", err)
	}
	var out bytes.Buffer
	found := false
	for _, line := range strings.SplitAfter(string(old), "\n") {
		if line == "" {
			continue
		}
		t := strings.TrimSpace(line)
		if n, rest, ok := strings.Cut(t, ":"); ok && n == name && t[0] != '#' {
			_, settings, _ := strings.Cut(rest, " ")
			line = name + ":" + hash
			if settings = strings.TrimSpace(settings); settings != "" {
				line += " " + settings
			}
			line += "\n"
			found = true
		}
		if !strings.HasSuffix(line, "\n") {
			line += "\n"
		}
		out.WriteString(line)
	}
	if !found {
		out.WriteString(name + ":" + hash + "\n")
	}
	if _, err := Parse(bytes.NewReader(out.Bytes()), path); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".users-*")
	if err != nil {
		return fmt.Errorf("users: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("users: %w", err)
	}
	if _, err := tmp.Write(out.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("users: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("users: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	return nil
}

func checkName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("user name %q: 1 to 64 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@+-", r)) {
			return fmt.Errorf("user name %q: only letters, digits and . _ @ + -", name)
		}
	}
	return nil
}

func parseLine(line string) (*User, error) {
	fields := strings.Fields(line)
	name, hash, ok := strings.Cut(fields[0], ":")
	if !ok {
		return nil, errors.New(`want "name:bcrypt-hash [key=value ...]"`)
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil || !strings.HasPrefix(hash, "$2") {
		return nil, fmt.Errorf("user %q: password is not a bcrypt hash (make one with smsbridge passwd)", name)
	}
	u := &User{Name: name, Hash: []byte(hash)}
	seen := map[string]bool{}
	for _, f := range fields[1:] {
		key, val, ok := strings.Cut(f, "=")
		if !ok || val == "" {
			return nil, fmt.Errorf("user %q: %q is not key=value", name, f)
		}
		if seen[key] {
			return nil, fmt.Errorf("user %q: %s given twice", name, key)
		}
		seen[key] = true
		if err := u.set(key, val); err != nil {
			return nil, fmt.Errorf("user %q: %s: %w", name, key, err)
		}
	}
	return u, nil
}

func (u *User) set(key, val string) error {
	l := &u.Limits
	ints := map[string]*int{
		"max_segments":        &u.MaxSegments,
		"messages_per_minute": &l.MessagesPerMinute,
		"messages_per_hour":   &l.MessagesPerHour,
		"messages_per_day":    &l.MessagesPerDay,
		"segments_per_minute": &l.SegmentsPerMinute,
		"segments_per_hour":   &l.SegmentsPerHour,
		"segments_per_day":    &l.SegmentsPerDay,
	}
	if p := ints[key]; p != nil {
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a positive number", val)
		}
		if key == "max_segments" && n > 255 {
			return fmt.Errorf("%d is over 255", n)
		}
		*p = n
		return nil
	}
	switch key {
	case "senders":
		for _, p := range strings.Split(val, ",") {
			if err := CheckSenderPattern(p); err != nil {
				return err
			}
			u.Senders = append(u.Senders, p)
		}
	case "source":
		if val == "" || !smppout.ValidSource(val) {
			return fmt.Errorf("%q: want up to 11 letters, digits, . - _ &; + and up to 15 digits; or up to 20 digits", val)
		}
		u.Source = val
	case "prefixes":
		for _, p := range strings.Split(val, ",") {
			if err := CheckPrefix(p); err != nil {
				return err
			}
			u.Prefixes = append(u.Prefixes, p)
		}
	case "report":
		switch r := Report(val); r {
		case ReportNone, ReportFailures, ReportAll:
			u.Report = r
		default:
			return fmt.Errorf("%q: want none, failures or all", val)
		}
	default:
		return fmt.Errorf("unknown key")
	}
	return nil
}

// CheckPrefix accepts an E.164 prefix: "+" and 1 to 15 digits.
func CheckPrefix(p string) error {
	d, ok := strings.CutPrefix(p, "+")
	if !ok || d == "" || len(d) > 15 || strings.Trim(d, "0123456789") != "" {
		return fmt.Errorf("prefix %q: want + and 1 to 15 digits", p)
	}
	return nil
}

// HasPrefix reports whether the E.164 number starts with one of prefixes.
func HasPrefix(number string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(number, p) {
			return true
		}
	}
	return false
}

// CheckSenderPattern accepts the sender patterns of SenderAllowed.
func CheckSenderPattern(p string) error {
	switch {
	case p == "*" || p == "<>":
		return nil
	case strings.Count(p, "@") != 1 || strings.ContainsAny(p, " \t<>\""):
		return fmt.Errorf("sender %q: want local@domain, @domain, *@domain, <> or *", p)
	}
	local, domain, _ := strings.Cut(p, "@")
	if domain == "" || strings.Contains(local, "*") && local != "*" {
		return fmt.Errorf("sender %q: want local@domain, @domain, *@domain, <> or *", p)
	}
	return nil
}

// SenderAllowed reports whether the envelope sender addr ("" for <>)
// matches one of patterns (see CheckSenderPattern); an empty list allows
// any sender. Addresses compare case-insensitively.
func SenderAllowed(patterns []string, addr string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		switch {
		case p == "*":
			return true
		case p == "<>":
			if addr == "" {
				return true
			}
		case addr == "":
		case strings.HasPrefix(p, "@") || strings.HasPrefix(p, "*@"):
			domain := p[strings.IndexByte(p, '@')+1:]
			at := strings.LastIndexByte(addr, '@')
			if at >= 0 && strings.EqualFold(addr[at+1:], domain) {
				return true
			}
		default:
			if strings.EqualFold(addr, p) {
				return true
			}
		}
	}
	return false
}
