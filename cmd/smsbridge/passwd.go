package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/smsbridge/smsbridge/smtpd/users"
)

// runPasswd is `smsbridge passwd [--users FILE] NAME`, like htpasswd: it
// sets NAME's password in the users file, keeping its settings and every
// other line, or adds the user. The password is read twice from the
// terminal without echo, or once from stdin when that is not a terminal.
func runPasswd(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("users", "smsbridge-users", "the users file (config: smtp.users_file)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: smsbridge passwd [--users FILE] NAME")
		return 2
	}
	pw, err := readPassword(stdin, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "smsbridge passwd:", err)
		return 1
	}
	if err := users.SetPassword(*path, fs.Arg(0), pw); err != nil {
		fmt.Fprintln(stderr, "smsbridge passwd:", err)
		return 1
	}
	fmt.Fprintf(stdout, "password of %s set in %s\n", fs.Arg(0), *path)
	return 0
}

func readPassword(in *os.File, prompt io.Writer) (string, error) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("empty password on stdin")
		}
		return pw, nil
	}
	fmt.Fprint(prompt, "Password: ")
	a, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", err
	}
	fmt.Fprint(prompt, "Again: ")
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(prompt)
	if err != nil {
		return "", err
	}
	if string(a) != string(b) || len(a) == 0 {
		return "", errors.New("the passwords differ, or are empty")
	}
	return string(a), nil
}
