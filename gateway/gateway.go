// Package gateway assembles smsdrop's services — store, sender, dispatcher,
// results writer, intake, watcher and FTP server — from a configuration, runs
// them, and stops them in the order that loses nothing.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"smsdrop/batch"
	"smsdrop/clock"
	"smsdrop/config"
	"smsdrop/dispatch"
	"smsdrop/ftpd"
	"smsdrop/intake"
	"smsdrop/metrics"
	"smsdrop/results"
	"smsdrop/sender"
	"smsdrop/state"
	"smsdrop/watch"
)

// Gateway is a running smsdrop.
type Gateway struct {
	cfg    *config.Config
	log    *slog.Logger
	clock  clock.Clock
	store  *state.Store
	sender sender.Sender
	disp   *dispatch.Dispatcher
	res    *results.Writer
	in     *intake.Intake
	watch  *watch.Watcher
	ftp    *ftpd.Server
	met    *metrics.Metrics
	// connect binds the provider at start-up when the driver can (SMPP).
	connect func(context.Context) error
	http    *metrics.Server

	// Three stages stopped in order: intake and watcher, then the
	// dispatcher and the sender, then the results writer.
	stops [3]context.CancelFunc
	wgs   [3]sync.WaitGroup
	errMu sync.Mutex
	err   error
	// failed is closed when a service stops on an error (Failed).
	failed   chan struct{}
	failOnce sync.Once
}

// Options are what the command line adds to the configuration.
type Options struct {
	Logger *slog.Logger
	Clock  clock.Clock // nil: the wall clock
	// Sender replaces the configured driver (tests).
	Sender sender.Sender
}

// AccountDir is the directory of account login under dataDir.
func AccountDir(dataDir, login string) string {
	return filepath.Join(dataDir, "accounts", login)
}

// commitLinger is how long at most a commit waits for other writes to
// share it while writes stream in (state.Store.SetCommitLinger): during a
// flood a file's report is up to 5 ms later, and the flood needs a sixth
// of the fsyncs. The wait ends early once every intake worker waits.
const commitLinger = 5 * time.Millisecond

// dispatchMinTick spaces the dispatcher's commits (see dispatch.Options).
// Each commit waits for two fsyncs and writes a few pages of each B-tree it
// touches: at the default 20 parts/s a commit per part, and one more for
// its outcome, made 80 fdatasyncs and wrote 2 MB a second for as long as
// sending lasted. A tick every minTickParts/rate seconds hands over that
// many parts at once (within the limiter's burst, a second's parts): at
// 20 parts/s one every 250 ms. Never under 10 ms (100 commits a second,
// against a commit per file in a flood of small files) nor over 250 ms
// (the most a send waits for the previous tick).
func dispatchMinTick(rate float64) time.Duration {
	const (
		minTickParts = 5
		floor        = 10 * time.Millisecond
		ceiling      = 250 * time.Millisecond
	)
	if rate <= 0 {
		return floor // unlimited: as fast as the disk takes the commits
	}
	return min(max(time.Duration(minTickParts*float64(time.Second)/rate), floor), ceiling)
}

// New builds every service; nothing runs until Start.
func New(cfg *config.Config, o Options) (*Gateway, error) {
	g := &Gateway{cfg: cfg, log: o.Logger, clock: o.Clock, failed: make(chan struct{})}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.clock == nil {
		g.clock = clock.Real{}
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data_dir %q: %w", cfg.DataDir, err)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data_dir: %w", err)
	}
	g.store, err = state.Open(filepath.Join(dataDir, "smsdrop.db"))
	if err != nil {
		return nil, err
	}
	// The intake's workers are the writers that stream in during a flood.
	g.store.SetCommitLinger(commitLinger, intake.DefaultWorkers)
	ok := false
	defer func() {
		if !ok {
			g.store.Close()
		}
	}()

	g.sender = o.Sender
	if g.sender == nil {
		switch cfg.Sender.Driver {
		case "sim", "":
			g.sender, err = sender.NewSim(sender.SimOptions{
				DeliveryDelay: cfg.Sender.Sim.DeliveryDelay,
				Outbox:        cfg.Sender.Sim.Outbox,
				Clock:         g.clock,
				Logger:        g.log.With("component", "sim"),
			})
		case "smpp":
			sm := cfg.Sender.SMPP
			var drv *sender.SMPP
			drv, err = sender.NewSMPP(sender.SMPPOptions{
				Addr: sm.Addr, SystemID: sm.SystemID, Password: sm.Password, SystemType: sm.SystemType,
				SourceAddr: sm.SourceAddr, Window: sm.Window, EnquireLink: sm.EnquireLink,
				Clock: g.clock, Logger: g.log.With("component", "smpp"),
			})
			if err == nil {
				g.sender = drv
				g.connect = drv.Connect
			}
		default:
			err = fmt.Errorf("sender driver %q is unknown: use sim or smpp", cfg.Sender.Driver)
		}
		if err != nil {
			return nil, err
		}
	}

	g.met = metrics.New(metrics.Gauges{
		QueueDepth: g.queueDepth,
		StoreSize:  func() float64 { return float64(g.store.Size()) },
	})

	var inAccts []intake.Account
	var resAccts []results.Account
	var ftpAccts []ftpd.Account
	watchDirs := map[string]string{}
	rates := map[string]float64{}
	senderIDs := map[string]string{}
	countries := map[string]string{}
	for i := range cfg.Accounts {
		a := &cfg.Accounts[i]
		dir := AccountDir(dataDir, a.Login)
		inAccts = append(inAccts, intake.Account{Login: a.Login, Dir: dir, Settings: a.BatchSettings(), DedupeWindow: a.DedupeWindow})
		resAccts = append(resAccts, results.Account{Login: a.Login, Dir: dir, Location: a.Location})
		ftpAccts = append(ftpAccts, ftpd.Account{Login: a.Login, PasswordHash: a.PasswordHash, Dir: dir,
			TLSRequired: a.TLSRequired, AllowNets: a.AllowNets, Quota: a.Quota, MaxFileSize: a.MaxFileSize})
		watchDirs[a.Login] = dir
		rates[strings.ToLower(a.Login)] = a.Rate
		senderIDs[strings.ToLower(a.Login)] = a.SenderID
		countries[strings.ToLower(a.Login)] = a.Country
	}

	g.res = results.New(results.Options{Store: g.store, Accounts: resAccts, Clock: g.clock, Logger: g.log.With("component", "results")})
	g.in, err = intake.New(intake.Options{
		Store: g.store, Accounts: inAccts, Clock: g.clock, Logger: g.log.With("component", "intake"),
		Validity: cfg.Sender.Validity,
		OnStored: func(b *state.Batch, took time.Duration) {
			g.res.Changed(b.ID)
			g.disp.Wake()
			g.met.Files.WithLabelValues(fileOutcome(b)).Inc()
			g.met.FileDuration.Observe(took.Seconds())
			if b.State == state.Duplicate || b.State == state.Rejected {
				return // its recipients are counted ko, but nothing changed for them
			}
			for i, st := range batch.Statuses {
				if b.Counts[i] > 0 {
					g.met.Messages.WithLabelValues(string(st)).Add(float64(b.Counts[i]))
				}
			}
		},
		OnRecovered: func(b *state.Batch) {
			g.res.Changed(b.ID)
			g.disp.Wake()
			g.met.Files.WithLabelValues("recovered").Inc()
		},
	})
	if err != nil {
		return nil, err
	}
	g.disp = dispatch.New(dispatch.Options{
		Store: g.store, Sender: g.sender, Clock: g.clock, Logger: g.log.With("component", "dispatch"),
		Rate: cfg.Sender.Rate, AccountRates: rates, SenderIDs: senderIDs, Countries: countries,
		ReceiptTimeout: cfg.Sender.ReceiptTimeout, OptoutKeywords: cfg.Processing.OptoutKeywords,
		MinTick:   dispatchMinTick(cfg.Sender.Rate),
		OnChange:  func(ids []uint64) { g.res.Changed(ids...) },
		OnFinal:   func(ids []uint64) { g.res.Final(ids...) },
		OnReplies: func(accts []string) { g.res.RepliesChanged(accts...) },
		OnStart:   g.in.Start,
		OnStatuses: func(m map[batch.Status]int) {
			for st, n := range m {
				g.met.Messages.WithLabelValues(string(st)).Add(float64(n))
			}
		},
		OnSent: func(parts int, took time.Duration) {
			g.met.PartsSent.Add(float64(parts))
			g.met.SendLatency.Observe(took.Seconds())
		},
	})
	g.watch, err = watch.New(watch.Options{
		Accounts: watchDirs, Settle: cfg.Processing.Settle, Rescan: cfg.Processing.Rescan,
		Clock: g.clock, Logger: g.log.With("component", "watch"),
		OnFile:   g.in.Submit,
		OnRemove: g.fileRemoved,
		OnMissed: g.filesGone,
	})
	if err != nil {
		return nil, err
	}
	g.ftp, err = ftpd.New(ftpd.Config{
		Listen: cfg.FTP.Listen, PublicHost: cfg.FTP.PublicHost,
		PassiveStart: cfg.FTP.PassiveStart, PassiveEnd: cfg.FTP.PassiveEnd,
		TLSCert: cfg.FTP.TLSCert, TLSKey: cfg.FTP.TLSKey, TLSImplicit: cfg.FTP.TLSImplicit,
		IdleTimeout: cfg.FTP.IdleTimeout, MaxConnections: cfg.FTP.MaxConnections,
		MaxConnectionsPerIP: cfg.FTP.MaxConnectionsPerIP, MaxLoginFailures: cfg.FTP.MaxLoginFailures,
		LoginFailureWindow: cfg.FTP.LoginFailureWindow, BanTime: cfg.FTP.BanTime,
		Accounts: ftpAccts,
		OnUpload: func(login, name string) {
			// Temporary names wait for their rename, as in the watcher.
			if !watch.Ignored(name) {
				g.in.Submit(login, name)
			}
		},
		LockInboxNames: g.in.LockNames,
		InboxBusy:      g.in.Busy,
		// Before the file takes its name: a client reading NAME.report
		// after its 226 must not find the previous file's results there,
		// nor this file's moved aside.
		BeforePublish: func(login, name string) {
			if !watch.Ignored(name) {
				// A name no batch has had is busy only while opened: a
				// stored batch waiting for its move has a name.
				g.res.SetAside(login, name, func() bool { return g.in.Opened(login, name) })
			}
		},
		OnDelete: g.fileRemoved,
		OnLogin:  func(outcome string) { g.met.Logins.WithLabelValues(outcome).Inc() },
		OnBan:    func(netip.Addr) { g.met.Bans.Inc() },
		Logger:   g.log.With("component", "ftpd"),
		Clock:    g.clock,
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return g, nil
}

func (g *Gateway) fileRemoved(login, rel string) {
	if id := g.in.FileRemoved(login, rel); id != 0 {
		g.log.Info("batch file deleted: cancelling", "account", login, "file", rel, "batch", id)
		g.disp.Cancel(id)
	}
}

// filesGone cancels the batches whose files were deleted while nothing
// watched (watch.Options.OnMissed).
func (g *Gateway) filesGone() {
	ids, err := g.in.FilesGone()
	if err != nil {
		g.log.Error("look for deleted batch files", "err", err)
		return
	}
	for _, id := range ids {
		g.log.Info("batch file deleted unseen: cancelling", "batch", id)
		g.disp.Cancel(id)
	}
}

// Start recovers from any crash, then starts every service and the FTP
// listener.
func (g *Gateway) Start() error {
	changed, err := g.store.Recover(g.clock.Now())
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		g.log.Warn("hand-overs in flight at the last stop marked no/UNCONFIRMED", "batches", changed)
	}
	cancels, err := g.in.Reconcile()
	if err != nil {
		return err
	}
	if len(cancels) > 0 {
		// Before the dispatcher starts, so that it hands over nothing of
		// a batch whose file the user deleted while smsdrop was down.
		for _, id := range cancels {
			g.log.Info("batch file deleted while stopped: cancelling", "batch", id)
		}
		if _, err := g.store.Commit(&state.Tick{Now: g.clock.Now(), Cancels: cancels}); err != nil {
			return fmt.Errorf("cancel batches whose file was deleted: %w", err)
		}
	}
	if l, ok := g.sender.(sender.IDLearner); ok {
		ids, err := g.store.AwaitedPartIDs(sender.MaxLearnedIDs)
		if err != nil {
			return err
		}
		l.LearnIDs(ids)
	}
	if err := g.res.Startup(); err != nil {
		return err
	}
	if g.connect != nil {
		// A provider that is down does not stop smsdrop from taking files:
		// the driver keeps trying to bind, /healthz says 503 meanwhile.
		cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		if err := g.connect(cctx); err != nil {
			g.log.Error("provider not reachable at start-up; retrying in the background", "err", err)
		}
		cancel()
	}
	var ctxs [3]context.Context
	for i := range ctxs {
		ctxs[i], g.stops[i] = context.WithCancel(context.Background())
	}
	g.goRun(&g.wgs[2], func() error { return g.res.Run(ctxs[2]) })
	dctx := ctxs[1]
	g.goRun(&g.wgs[1], func() error { return g.disp.Run(dctx) })
	g.goRun(&g.wgs[1], func() error {
		err := g.sender.Run(dctx, g.disp.HandleEvents)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	})
	g.goRun(&g.wgs[0], func() error { return g.in.Run(ctxs[0]) })
	g.goRun(&g.wgs[0], func() error { return g.watch.Run(ctxs[0]) })
	g.goRun(&g.wgs[0], func() error { return g.sweepLoop(ctxs[0]) })
	if err := g.ftp.Start(); err != nil {
		g.Stop()
		return err
	}
	if g.cfg.HTTP.Listen != "" {
		g.http, err = metrics.Listen(g.cfg.HTTP.Listen, g.met.Handler(g.Health), g.log.With("component", "http"))
		if err != nil {
			g.Stop()
			return err
		}
	}
	return nil
}

// HTTPAddr is the metrics endpoint's address, "" when off.
func (g *Gateway) HTTPAddr() string {
	if g.http == nil {
		return ""
	}
	return g.http.Addr()
}

// Failed is closed when one of the gateway's services (the intake, the
// watcher, the dispatcher, the sender, the results writer) has stopped on
// an error: the gateway no longer does all its work, and the command
// stops it, so that the service manager starts it again and its start-up
// recovers what was in hand.
func (g *Gateway) Failed() <-chan struct{} { return g.failed }

// Health reports whether the store and the sender are usable, and every
// service still runs.
func (g *Gateway) Health() error {
	select {
	case <-g.failed:
		g.errMu.Lock()
		defer g.errMu.Unlock()
		return fmt.Errorf("a service stopped: %w", g.err)
	default:
	}
	if err := g.store.Ping(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := g.disp.Healthy(); err != nil {
		return err
	}
	if h, ok := g.sender.(interface{ Healthy() error }); ok {
		if err := h.Healthy(); err != nil {
			return fmt.Errorf("sender: %w", err)
		}
	}
	return nil
}

func (g *Gateway) queueDepth() float64 {
	bs, err := g.store.ActiveBatches()
	if err != nil {
		return 0
	}
	n := 0
	for _, b := range bs {
		n += b.Count(batch.StatusWait)
	}
	return float64(n)
}

func fileOutcome(b *state.Batch) string {
	switch b.State {
	case state.Rejected, state.Duplicate, state.Scheduled:
		return string(b.State)
	}
	return "accepted"
}

func (g *Gateway) goRun(wg *sync.WaitGroup, fn func() error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
			g.errMu.Lock()
			if g.err == nil {
				g.err = err
			}
			g.errMu.Unlock()
			g.log.Error("service stopped", "err", err)
			g.failOnce.Do(func() { close(g.failed) })
		}
	}()
}

// FTPAddr is the FTP server's listen address.
func (g *Gateway) FTPAddr() string { return g.ftp.Addr() }

// Store gives tests and operations read access to the store.
func (g *Gateway) Store() *state.Store { return g.store }

// Stop stops accepting, finishes what is in hand (the file being processed,
// hand-overs awaiting their answer), flushes the result files and closes
// the store.
func (g *Gateway) Stop() error {
	if g.http != nil {
		_ = g.http.Close()
	}
	if err := g.ftp.Stop(); err != nil {
		g.log.Warn("stop ftp", "err", err)
	}
	// Intake and watcher first, so no new batch appears; then the
	// dispatcher stores the outcome of what is in flight; then the results
	// writer writes everything still pending.
	for i, stop := range g.stops {
		if stop != nil {
			stop()
			g.wgs[i].Wait()
		}
	}
	if err := g.sender.Close(); err != nil {
		g.log.Warn("close sender", "err", err)
	}
	if err := g.store.Close(); err != nil {
		return err
	}
	g.errMu.Lock()
	defer g.errMu.Unlock()
	return g.err
}

// Sweep applies retention now: records of batches finished more than
// retention ago, their files in archive/, rejected/ and results/, and reply
// files of days older than that.
func (g *Gateway) Sweep() error {
	cutoff := g.clock.Now().Add(-g.cfg.Processing.Retention)
	removed, err := g.store.Sweep(cutoff)
	for _, b := range removed {
		if ferr := g.in.Forget(b); ferr != nil {
			g.log.Warn("retention", "err", ferr)
		}
		if ferr := g.res.Forget(b); ferr != nil {
			g.log.Warn("retention", "err", ferr)
		}
	}
	if len(removed) > 0 {
		g.log.Info("retention sweep", "batches_removed", len(removed), "cutoff", cutoff)
	}
	if err != nil {
		return err
	}
	return g.res.SweepReplies(cutoff)
}

func (g *Gateway) sweepLoop(ctx context.Context) error {
	if g.cfg.Processing.Retention <= 0 {
		return nil
	}
	every := min(max(g.cfg.Processing.Retention/24, time.Minute), time.Hour)
	t := g.clock.NewTimer(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
			if err := g.Sweep(); err != nil {
				g.log.Error("retention sweep", "err", err)
			}
			t.Reset(every)
		}
	}
}
