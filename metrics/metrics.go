// Package metrics exposes smsdrop's Prometheus metrics (all prefixed
// smsdrop_) and the /metrics and /healthz HTTP endpoints.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the counters and gauges the services update.
type Metrics struct {
	reg *prometheus.Registry
	// Files counts processed files by outcome: accepted, scheduled,
	// rejected, duplicate, recovered.
	Files *prometheus.CounterVec
	// FileDuration observes the time from pick-up to stored and moved.
	FileDuration prometheus.Histogram
	// Messages counts message status changes by the status reached.
	Messages *prometheus.CounterVec
	// PartsSent counts SMS parts accepted by the provider.
	PartsSent prometheus.Counter
	// SendLatency observes how long one Send call to the provider took.
	SendLatency prometheus.Histogram
	// Logins counts FTP login attempts by outcome.
	Logins *prometheus.CounterVec
	// Bans counts addresses banned for failed logins.
	Bans prometheus.Counter
}

// Gauges are read when /metrics is scraped.
type Gauges struct {
	QueueDepth func() float64 // messages waiting in sending batches
	StoreSize  func() float64 // bytes of the bbolt file
}

// New registers every metric in a new registry.
func New(g Gauges) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		Files: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsdrop_files_total",
			Help: "Drop files processed, by outcome."}, []string{"outcome"}),
		FileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "smsdrop_file_processing_seconds",
			Help: "Time from pick-up of a drop file to its batch stored and file moved.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsdrop_messages_total",
			Help: "Message status changes, by the status reached."}, []string{"status"}),
		PartsSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "smsdrop_parts_sent_total",
			Help: "SMS parts accepted by the provider."}),
		SendLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "smsdrop_send_latency_seconds",
			Help: "Duration of one hand-over call to the provider.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		Logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "smsdrop_ftp_logins_total",
			Help: "FTP login attempts, by outcome."}, []string{"outcome"}),
		Bans: prometheus.NewCounter(prometheus.CounterOpts{Name: "smsdrop_ftp_bans_total",
			Help: "Client addresses banned after too many failed logins."}),
	}
	reg.MustRegister(m.Files, m.FileDuration, m.Messages, m.PartsSent, m.SendLatency, m.Logins, m.Bans,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if g.QueueDepth != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "smsdrop_queue_depth",
			Help: "Messages waiting to be handed over in sending batches."}, g.QueueDepth))
	}
	if g.StoreSize != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "smsdrop_store_bytes",
			Help: "Size of the bbolt store file."}, g.StoreSize))
	}
	return m
}

// Handler serves /metrics and /healthz. health returns nil when the store
// and the sender are available; /healthz answers 503 with the error
// otherwise.
func (m *Metrics) Handler(health func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := health(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unavailable: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}

// Server is the HTTP endpoint.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen starts serving h on addr.
func Listen(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http listen %s: %w", addr, err)
	}
	s := &Server{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	return s, nil
}

// Addr is the address the endpoint listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the endpoint.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
