// Command smsbridge is an email-to-SMS gateway: mail to
// <number>@<sms-domain> becomes an SMS over SMPP, and the delivery report
// comes back as a mail.
//
// Usage:
//
//	smsbridge [serve] [flags]   run the gateway (the default)
//	smsbridge convert [flags] FILE|-|--text STRING
//	                            show the SMS a mail or a text becomes
//	smsbridge queue list|show|retry|cancel
//	                            look at and act on the queue
//	smsbridge passwd [--users FILE] NAME
//	                            set a user's SMTP AUTH password
//	smsbridge check-config [FILE]
//	                            print the effective config or its errors
//	smsbridge version           print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
)

const usage = `usage: smsbridge [serve] [flags]     run the gateway (see smsbridge serve -h)
       smsbridge convert [flags] FILE|-|--text STRING
                                     show the SMS a mail or text becomes
       smsbridge queue list|show|retry|cancel
                                     look at and act on the queue (see smsbridge queue -h)
       smsbridge passwd [--users FILE] NAME
                                     set a user's SMTP AUTH password
       smsbridge check-config [FILE]  print the effective config, or every error
       smsbridge healthcheck [--admin-addr A] [--ready]
                                     exit 0 if the server is healthy (for Docker)
       smsbridge bench [flags]       load test: in-process, or --smtp a running server
       smsbridge version`

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
	case "convert":
		return runConvert(args, os.Stdin, os.Stdout, os.Stderr)
	case "version":
		fmt.Println(versionString())
		return 0
	case "healthcheck":
		return runHealthcheck(args, os.Stderr)
	case "passwd":
		return runPasswd(args, os.Stdin, os.Stdout, os.Stderr)
	case "queue":
		return runQueue(args, os.Stdout, os.Stderr)
	case "check-config":
		return runCheckConfig(args, os.Stdout, os.Stderr)
	case "bench":
		tuneGC() // in-process, the server measured is the one serve runs
		return runBench(args, os.Stdout, os.Stderr)
	case "help":
		fmt.Println(usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "smsbridge: unknown command %q\n%s\n", cmd, usage)
		return 2
	}
	cfg, err := parseServeFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "smsbridge: config:", err)
		return 2
	}
	log := newLogger(&cfg, os.Stderr)
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := newApp(cfg, log)
	if err != nil {
		log.Error("smsbridge: cannot start", "err", err)
		return 1
	}
	a.reloadConfig = func() (Config, error) { return parseServeFlags(args) }
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			a.reload()
		}
	}()
	if err := a.run(ctx); err != nil {
		log.Error("smsbridge: stopped with error", "err", err)
		return 1
	}
	return 0
}

// gcPercent is the GOGC the server runs with unless the environment sets
// one. Go's default (100) collects each time the heap doubles its live
// part; the gateway's live heap is small (tens of MB) and it allocates per
// mail, so collections came several times a second. 200 gave about a
// quarter more mails per second end to end for about 30 MB more peak RSS
// (BENCHMARKS.md).
const gcPercent = 200

// tuneGC applies gcPercent unless GOGC is set: the operator's word wins.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}
