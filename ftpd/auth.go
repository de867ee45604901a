package ftpd

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"

	ftpserver "github.com/fclairamb/ftpserverlib"
)

// mainDriver is the library's entry point; it is a separate type so that
// the library's callbacks do not become part of Server's API.
type mainDriver struct {
	s *Server
}

var (
	_ ftpserver.MainDriver                      = (*mainDriver)(nil)
	_ ftpserver.MainDriverExtensionUserVerifier = (*mainDriver)(nil)
)

// errLogin is the one answer to a wrong login, whatever went wrong, so that
// the reply does not tell which logins exist.
var errLogin = errors.New("login incorrect")

// errNoTLS makes the library leave AUTH TLS out of FEAT and refuse it.
var errNoTLS = errors.New("TLS is not configured")

func (d *mainDriver) GetSettings() (*ftpserver.Settings, error) {
	return d.s.settings, nil
}

func (d *mainDriver) ClientConnected(cc ftpserver.ClientContext) (string, error) {
	if !d.s.admitClient(cc.ID()) {
		return "server shutting down", errors.New("server shutting down")
	}
	d.s.log.Debug("ftp client connected", "client", cc.ID(), "remote", cc.RemoteAddr().String())
	return "smsdrop ready", nil
}

func (d *mainDriver) ClientDisconnected(cc ftpserver.ClientContext) {
	d.s.releaseClient(cc.ID())
	d.s.log.Debug("ftp client disconnected", "client", cc.ID(), "remote", cc.RemoteAddr().String())
}

func (d *mainDriver) GetTLSConfig() (*tls.Config, error) {
	if d.s.tlsConfig == nil {
		return nil, errNoTLS
	}
	return d.s.tlsConfig, nil
}

// PreAuthUser refuses a TLS-only account on a clear connection at USER, so
// the client never gets to send its password in clear. The refusal tells
// that the login exists, so it counts as a failed login: bans bound how
// many logins an address can probe that way.
func (d *mainDriver) PreAuthUser(cc ftpserver.ClientContext, user string) error {
	acct := d.s.accounts[user]
	if acct == nil || !acct.TLSRequired || cc.HasTLSForControl() {
		return nil
	}
	d.s.loginFailed(remoteIP(cc.RemoteAddr()), cc.RemoteAddr().String(), user, OutcomeTLSRequired)
	return errors.New("TLS required for this account (use AUTH TLS)")
}

func (d *mainDriver) AuthUser(cc ftpserver.ClientContext, user, pass string) (ftpserver.ClientDriver, error) {
	s := d.s
	ip := remoteIP(cc.RemoteAddr())
	remote := cc.RemoteAddr().String()
	if s.guard.isBanned(ip) {
		// The connection was opened before the ban.
		s.onLogin(OutcomeBanned)
		s.log.Warn("ftp login refused: address banned", "login", user, "remote", remote)
		return nil, errLogin
	}
	acct := s.accounts[user]
	if acct == nil {
		_ = s.compareHash(s.dummyHash, []byte(pass))
		s.loginFailed(ip, remote, user, OutcomeUnknownUser)
		return nil, errLogin
	}
	if !acct.checkPassword(pass, s.compareHash) {
		s.loginFailed(ip, remote, user, OutcomeBadPassword)
		return nil, errLogin
	}
	if s.guard.isBanned(ip) {
		// Banned while this password was checked: wrong guesses sent at
		// once on parallel connections, this one among them, must not
		// let the right one in after the ban (found by review).
		s.onLogin(OutcomeBanned)
		s.log.Warn("ftp login refused: address banned while its password was checked", "login", user, "remote", remote)
		return nil, errLogin
	}
	// The address and TLS checks come after the password so that they
	// reveal nothing to someone who does not know it. A refused address
	// gets the same reply as a wrong password, and counts towards a ban:
	// its own reply told such an address which password was right, as
	// often as it liked. The log says why.
	if !acct.allows(ip) {
		s.loginFailed(ip, remote, user, OutcomeIPNotAllowed)
		return nil, errLogin
	}
	if acct.TLSRequired {
		if !cc.HasTLSForControl() {
			s.onLogin(OutcomeTLSRequired)
			s.log.Warn("ftp login refused: TLS required", "login", user, "remote", remote)
			return nil, errors.New("TLS required for this account")
		}
		// Files must not travel in clear either: the library then refuses
		// data connections without PROT P.
		if err := cc.SetTLSRequirement(ftpserver.MandatoryEncryption); err != nil {
			return nil, fmt.Errorf("require TLS on transfers: %w", err)
		}
	}
	s.onLogin(OutcomeOK)
	s.log.Info("ftp login", "login", user, "remote", remote, "tls", cc.HasTLSForControl())
	return newClientDriver(s, acct, cc.ID()), nil
}

// loginFailed records a failed login and bans the address when it has
// failed too often.
func (s *Server) loginFailed(ip netip.Addr, remote, user, outcome string) {
	s.onLogin(outcome)
	s.log.Warn("ftp login failed", "login", user, "remote", remote, "reason", outcome)
	if until, banned := s.guard.fail(ip); banned {
		s.log.Warn("ftp address banned", "ip", ip.String(), "until", until, "failures", s.cfg.MaxLoginFailures+1)
		if s.cfg.OnBan != nil {
			s.cfg.OnBan(ip)
		}
	}
}

// checkPassword says whether pass is the account's password.
//
// bcrypt takes tens of milliseconds of CPU by design, and a system that
// opens one FTP session per file (a cron job's `curl -T`) pays it for every
// file. So the last password that passed is remembered, as a SHA-256 digest
// salted with the stored hash, and the same password is accepted again
// without bcrypt; anything else, a wrong password always, goes through
// bcrypt. A new hash (a changed password) no longer matches the digest.
// Only memory holds the digest (SFTPGo's password caching does the same).
func (a *account) checkPassword(pass string, compare func(hash, pw []byte) error) bool {
	h := sha256.New()
	h.Write([]byte(a.PasswordHash))
	h.Write([]byte{0})
	h.Write([]byte(pass))
	var d [sha256.Size]byte
	h.Sum(d[:0])
	a.mu.Lock()
	known := a.passed && subtle.ConstantTimeCompare(d[:], a.passedDigest[:]) == 1
	a.mu.Unlock()
	if known {
		return true
	}
	if compare([]byte(a.PasswordHash), []byte(pass)) != nil {
		return false
	}
	a.mu.Lock()
	a.passed, a.passedDigest = true, d
	a.mu.Unlock()
	return true
}
