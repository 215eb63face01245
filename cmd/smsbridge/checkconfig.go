package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

const checkConfigUsage = `usage: smsbridge check-config [FILE]

Prints the effective configuration (the defaults, then FILE, then the
environment), secrets masked; or every error with its line and key, and
exits 1. The server refuses to start on the same errors.`

// runCheckConfig is `smsbridge check-config [FILE]`: it prints the
// effective configuration (defaults, then FILE, then the environment), with
// secrets masked, or every error with its line and key. The server refuses
// to start on the same errors.
func runCheckConfig(args []string, stdout, stderr io.Writer) int {
	switch {
	case len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help"):
		fmt.Fprintln(stdout, checkConfigUsage)
		return 0
	case len(args) > 1 || len(args) == 1 && strings.HasPrefix(args[0], "-"):
		fmt.Fprintln(stderr, checkConfigUsage)
		return 2
	}
	var flags []string
	if len(args) == 1 {
		flags = []string{"--config", args[0]}
	}
	c, err := parseServeFlags(flags)
	if err != nil {
		for _, e := range unjoin(err) {
			fmt.Fprintln(stderr, e)
		}
		return 1
	}
	masked := c
	if masked.SMSC.Password != "" {
		masked.SMSC.Password = "********"
	}
	if masked.AdminToken != "" {
		masked.AdminToken = "********"
	}
	if masked.SmarthostPassword != "" {
		masked.SmarthostPassword = "********"
	}
	masked.Routes = slices.Clone(masked.Routes)
	for i := range masked.Routes {
		if masked.Routes[i].Password != "" {
			masked.Routes[i].Password = "********"
		}
	}
	fmt.Fprintln(stdout, "# effective configuration (secrets masked)")
	if err := toml.NewEncoder(stdout).Encode(masked); err != nil {
		fmt.Fprintln(stderr, "smsbridge check-config:", err)
		return 1
	}
	return 0
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// versionString is the module version and VCS commit the binary was built from.
func versionString() string {
	v, commit := version, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	if commit != "" {
		return fmt.Sprintf("smsbridge %s (commit %s)", v, commit)
	}
	return "smsbridge " + v
}
