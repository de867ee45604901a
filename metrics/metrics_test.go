package metrics

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEndpoints(t *testing.T) {
	m := New(Gauges{QueueDepth: func() float64 { return 7 }, StoreSize: func() float64 { return 4096 }})
	m.Files.WithLabelValues("accepted").Add(2)
	m.Logins.WithLabelValues("ok").Inc()
	var health atomic.Pointer[error]
	srv, err := Listen("127.0.0.1:0", m.Handler(func() error {
		if e := health.Load(); e != nil {
			return *e
		}
		return nil
	}), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + srv.Addr()
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{`smsdrop_files_total{outcome="accepted"} 2`, `smsdrop_ftp_logins_total{outcome="ok"} 1`,
		"smsdrop_queue_depth 7", "smsdrop_store_bytes 4096", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz healthy: %d %q", code, body)
	}
	unbound := errors.New("sender: not bound")
	health.Store(&unbound)
	if code, body := get(t, base+"/healthz"); code != 503 || !strings.Contains(body, "not bound") {
		t.Errorf("/healthz unhealthy: %d %q", code, body)
	}
	if code, _ := get(t, base+"/other"); code != 404 {
		t.Errorf("/other: %d", code)
	}
}
