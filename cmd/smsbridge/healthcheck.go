package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runHealthcheck is `smsbridge healthcheck [--admin-addr A] [--ready]`: exit
// 0 when the server answers /healthz (or /readyz). It is the Docker
// HEALTHCHECK of an image that has no shell or curl.
func runHealthcheck(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin-addr", "127.0.0.1:8025", "admin listener")
	ready := fs.Bool("ready", false, "check /readyz (an SMSC bound) instead of /healthz")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + *addr + path)
	if err != nil {
		fmt.Fprintln(stderr, "smsbridge healthcheck:", err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "smsbridge healthcheck:", resp.Status)
		return 1
	}
	return 0
}
