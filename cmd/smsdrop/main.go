// Command smsdrop is an FTP drop-folder SMS gateway: legacy systems upload
// batch files in the ecoSMS SMTP/FTP syntax, smsdrop sends the messages and
// writes a report and a per-recipient CSV back into the FTP account.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	_ "time/tzdata" // time zones work on hosts without zoneinfo

	"golang.org/x/crypto/bcrypt"

	"smsdrop/config"
	"smsdrop/gateway"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `usage:
  smsdrop serve [-config FILE]
  smsdrop check [-country CC] [-international] [-charset gsm|unicode|auto] [-code CODE] [-v] FILE...
  smsdrop passwd   (reads a password on standard input, prints its bcrypt hash)
  smsdrop version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(args[1:], stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "passwd":
		return runPasswd(stdin, stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "smsdrop", versionString())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "smsdrop: unknown command %q\n%s", args[0], usage)
	return 2
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func runPasswd(stdin io.Reader, stdout, stderr io.Writer) int {
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(stderr, "smsdrop passwd: read password:", err)
		return 1
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		fmt.Fprintln(stderr, "smsdrop passwd: empty password; type one on standard input, e.g. echo 's3cret' | smsdrop passwd")
		return 2
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintln(stderr, "smsdrop passwd:", err)
		return 1
	}
	fmt.Fprintln(stdout, string(h))
	return 0
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func runServe(args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "TOML configuration `file` (default: embedded defaults)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "smsdrop serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var cfg *config.Config
	if *path == "" {
		cfg = config.Default()
	} else {
		var err error
		if cfg, err = config.Load(*path); err != nil {
			fmt.Fprintln(stderr, "smsdrop:", err)
			return 2
		}
	}
	log := newLogger(cfg.Log, stderr)
	if *path == "" {
		log.Warn("no -config given: running on embedded defaults (FTP on " + cfg.FTP.Listen +
			", data in " + cfg.DataDir + ", sender sim, account demo / password demo / code DEMO)")
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: log})
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	if err := g.Start(); err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	log.Info("smsdrop started", "version", versionString(), "ftp", g.FTPAddr(), "data_dir", cfg.DataDir, "sender", cfg.Sender.Driver)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
		log.Info("stopping: finishing what is in hand")
	case <-g.Failed():
		// Exit non-zero: the service manager (Restart=on-failure) starts
		// smsdrop again, and its start-up recovers what was in hand.
		log.Error("a service stopped on an error: stopping smsdrop so that it is restarted")
	}
	if err := g.Stop(); err != nil {
		log.Error("stopped with an error", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}
