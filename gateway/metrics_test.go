package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"

	"smsdrop/sender"
)

func curl(t *testing.T, url string) (string, string) {
	t.Helper()
	out, err := exec.Command("curl", "-sS", "-w", "\n%{http_code}", url).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", url, err)
	}
	i := strings.LastIndex(string(out), "\n")
	return string(out[:i]), string(out[i+1:])
}

func TestMetricsAndHealth(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.FTP.MaxLoginFailures = 2
	e := start(t, cfg)
	c := e.login("demo", "demo")
	if err := c.Stor("m.txt", strings.NewReader("U-DEMO\nT-x\n#-447123450001\n#-447123450013\n")); err != nil {
		t.Fatal(err)
	}
	// Rejected, with a recipient line: its report counts it ko, the
	// message metrics do not (nothing changed for it).
	if err := c.Stor("bad.txt", strings.NewReader("U-DEMO\nD-2017-13-45\nT-x\n#-447123450001\n")); err != nil {
		t.Fatal(err)
	}
	waitState(t, filepath.Join(e.dir("demo"), "results", "m.txt.report"), "done")
	waitState(t, filepath.Join(e.dir("demo"), "results", "bad.txt.report"), "rejected")
	// Two failures are tolerated; the third bans 127.0.0.1.
	for range 3 {
		bad, err := ftp.Dial(e.g.FTPAddr(), ftp.DialWithTimeout(5*time.Second))
		if err != nil {
			break
		}
		bad.Login("demo", "wrong")
		bad.Quit()
	}
	base := "http://" + e.g.HTTPAddr()
	body, code := curl(t, base+"/healthz")
	if code != "200" || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz = %s %q", code, body)
	}
	body, code = curl(t, base+"/metrics")
	if code != "200" {
		t.Fatalf("/metrics = %s", code)
	}
	for _, want := range []string{
		`smsdrop_files_total{outcome="accepted"} 1`,
		`smsdrop_files_total{outcome="rejected"} 1`,
		`smsdrop_messages_total{status="ok"} 1`,
		`smsdrop_messages_total{status="ko"} 1`,
		`smsdrop_parts_sent_total 2`,
		`smsdrop_ftp_logins_total{outcome="ok"} 1`,
		`smsdrop_ftp_logins_total{outcome="bad_password"} 3`,
		`smsdrop_ftp_bans_total 1`,
		`smsdrop_queue_depth 0`,
		`smsdrop_send_latency_seconds_count`,
		`smsdrop_file_processing_seconds_count 2`,
		`smsdrop_store_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestHealthzWhileProviderDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there: the SMSC is down
	cfg := testConfig(t)
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Sender.Driver = "smpp"
	cfg.Sender.SMPP.Addr, cfg.Sender.SMPP.SystemID = addr, "smsdrop"
	cfg.Sender.SMPP.Window, cfg.Sender.SMPP.EnquireLink = 10, 30*time.Second
	e := start(t, cfg)
	body, code := curl(t, fmt.Sprintf("http://%s/healthz", e.g.HTTPAddr()))
	if code != "503" || !strings.Contains(body, "sender") {
		t.Errorf("/healthz with the SMSC down = %s %q", code, body)
	}
	// Files are still taken while the provider is down.
	c := e.login("demo", "demo")
	if err := c.Stor("q.txt", strings.NewReader("U-DEMO\nT-x\n#-447123450001\n")); err != nil {
		t.Fatal(err)
	}
	waitState(t, filepath.Join(e.dir("demo"), "results", "q.txt.report"), "sending")
}

// stoppingSender is a provider driver whose event loop ends on an error.
type stoppingSender struct{}

func (stoppingSender) Send(_ context.Context, msgs []sender.Message) []sender.Result {
	return make([]sender.Result, len(msgs))
}
func (stoppingSender) Run(context.Context, sender.EventHandler) error {
	return errors.New("event loop ended")
}
func (stoppingSender) Close() error { return nil }

// A service that stops on an error makes /healthz answer 503 and closes
// Failed, on which the command stops smsdrop (exit 1) for its service
// manager to start it again. Before, the gateway went on taking files it
// no longer sent, and /healthz said ok.
func TestServiceStoppedIsReported(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTP.Listen = "127.0.0.1:0"
	g, err := New(cfg, Options{Sender: stoppingSender{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("Failed not closed after the sender's loop ended")
	}
	body, code := curl(t, fmt.Sprintf("http://%s/healthz", g.HTTPAddr()))
	if code != "503" || !strings.Contains(body, "event loop ended") {
		t.Errorf("/healthz with a service stopped = %s %q", code, body)
	}
	if err := g.Stop(); err == nil || !strings.Contains(err.Error(), "event loop ended") {
		t.Errorf("Stop = %v, want the service's error", err)
	}
}
