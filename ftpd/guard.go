package ftpd

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"smsdrop/clock"
)

// refusalTimeout bounds how long a refused connection may take to receive
// its "421" (and, with implicit TLS, to finish its handshake first).
const refusalTimeout = 10 * time.Second

// guard keeps the per-address state the library has no notion of: login
// failures, bans and connection counts.
type guard struct {
	clk      clock.Clock
	maxFail  int
	window   time.Duration
	banTime  time.Duration
	maxConn  int
	maxPerIP int

	mu        sync.Mutex
	conns     map[*trackedConn]struct{}
	perIP     map[netip.Addr]int
	failures  map[netip.Addr][]time.Time
	bans      map[netip.Addr]time.Time
	lastSweep time.Time
}

func newGuard(cfg Config, clk clock.Clock) *guard {
	return &guard{
		clk:      clk,
		maxFail:  cfg.MaxLoginFailures,
		window:   cfg.LoginFailureWindow,
		banTime:  cfg.BanTime,
		maxConn:  cfg.MaxConnections,
		maxPerIP: cfg.MaxConnectionsPerIP,
		conns:    make(map[*trackedConn]struct{}),
		perIP:    make(map[netip.Addr]int),
		failures: make(map[netip.Addr][]time.Time),
		bans:     make(map[netip.Addr]time.Time),
	}
}

func (g *guard) isBanned(ip netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.bannedLocked(ip, g.clk.Now())
}

func (g *guard) bannedLocked(ip netip.Addr, now time.Time) bool {
	until, ok := g.bans[ip]
	if !ok {
		return false
	}
	if !now.Before(until) {
		delete(g.bans, ip)
		return false
	}
	return true
}

// fail records a failed login from ip; when that makes more than maxFail
// failures within the window it bans ip and returns the end of the ban.
func (g *guard) fail(ip netip.Addr) (time.Time, bool) {
	if g.maxFail == 0 {
		return time.Time{}, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clk.Now()
	g.sweepLocked(now)
	if g.bannedLocked(ip, now) {
		return time.Time{}, false
	}
	recent := append(g.pruned(g.failures[ip], now), now)
	if len(recent) > g.maxFail {
		until := now.Add(g.banTime)
		g.bans[ip] = until
		delete(g.failures, ip)
		return until, true
	}
	g.failures[ip] = recent
	return time.Time{}, false
}

// pruned drops the failures that left the window.
func (g *guard) pruned(times []time.Time, now time.Time) []time.Time {
	keep := times[:0]
	for _, t := range times {
		if now.Sub(t) < g.window {
			keep = append(keep, t)
		}
	}
	return keep
}

// sweepLocked forgets stale failures and expired bans, at most once per
// window, so that a scan from many addresses does not grow the maps forever.
func (g *guard) sweepLocked(now time.Time) {
	if now.Sub(g.lastSweep) < g.window {
		return
	}
	g.lastSweep = now
	for ip, times := range g.failures {
		if keep := g.pruned(times, now); len(keep) == 0 {
			delete(g.failures, ip)
		} else {
			g.failures[ip] = keep
		}
	}
	for ip, until := range g.bans {
		if !now.Before(until) {
			delete(g.bans, ip)
		}
	}
}

// Reasons a connection is refused before the library sees it.
const (
	refusedBanned    = "too many failed logins from your address, try again later"
	refusedTooMany   = "too many connections, try again later"
	refusedTooManyIP = "too many connections from your address, try again later"
)

// admit counts a new connection, or says why it is refused.
func (g *guard) admit(c net.Conn) (*trackedConn, string) {
	ip := remoteIP(c.RemoteAddr())
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.bannedLocked(ip, g.clk.Now()):
		return nil, refusedBanned
	case g.maxConn > 0 && len(g.conns) >= g.maxConn:
		return nil, refusedTooMany
	case g.maxPerIP > 0 && g.perIP[ip] >= g.maxPerIP:
		return nil, refusedTooManyIP
	}
	tc := &trackedConn{Conn: c, g: g, ip: ip}
	g.conns[tc] = struct{}{}
	g.perIP[ip]++
	return tc, ""
}

func (g *guard) release(tc *trackedConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.conns[tc]; !ok {
		return
	}
	delete(g.conns, tc)
	if g.perIP[tc.ip] <= 1 {
		delete(g.perIP, tc.ip)
	} else {
		g.perIP[tc.ip]--
	}
}

// closeAll closes every admitted control connection.
func (g *guard) closeAll() {
	g.mu.Lock()
	conns := make([]*trackedConn, 0, len(g.conns))
	for tc := range g.conns {
		conns = append(conns, tc)
	}
	g.mu.Unlock()
	for _, tc := range conns {
		_ = tc.Close()
	}
}

// trackedConn is an admitted control connection; closing it frees its slot.
type trackedConn struct {
	net.Conn
	g    *guard
	ip   netip.Addr
	once sync.Once
}

func (tc *trackedConn) Close() error {
	err := tc.Conn.Close()
	tc.once.Do(func() { tc.g.release(tc) })
	if err != nil {
		return fmt.Errorf("close control connection: %w", err)
	}
	return nil
}

// guardListener refuses banned addresses and connections over the limits
// with a real "421" reply: the library's own refusal path (an error from
// ClientConnected) can only answer "500".
type guardListener struct {
	net.Listener
	s *Server
}

func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			// Unwrapped on purpose: the library recognises a closed listener
			// by this error's text.
			return nil, err
		}
		tc, reason := l.s.guard.admit(c)
		if reason != "" {
			l.s.refuse(c, reason)
			continue
		}
		if l.s.cfg.TLSImplicit {
			// The handshake runs on the library's first write, the greeting,
			// which has no deadline of its own; the library replaces this one
			// before it reads the first command.
			_ = tc.SetDeadline(time.Now().Add(refusalTimeout))
			return tls.Server(tc, l.s.tlsConfig), nil
		}
		return tc, nil
	}
}

// refuse answers "421 reason" and closes c, without blocking Accept.
func (s *Server) refuse(c net.Conn, reason string) {
	remote := c.RemoteAddr().String()
	if reason == refusedBanned {
		s.onLogin(OutcomeBanned)
	}
	s.log.Info("ftp connection refused", "remote", remote, "reason", reason)
	if !s.beginWork() {
		_ = c.Close()
		return
	}
	go func() {
		defer s.active.Done()
		conn := c
		if s.cfg.TLSImplicit {
			conn = tls.Server(c, s.tlsConfig)
		}
		_ = conn.SetDeadline(time.Now().Add(refusalTimeout))
		if _, err := fmt.Fprintf(conn, "421 %s\r\n", reason); err != nil {
			s.log.Debug("ftp refusal not delivered", "remote", remote, "err", err)
		}
		_ = conn.Close()
	}()
}
