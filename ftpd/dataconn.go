package ftpd

import (
	"errors"
	"net"
	"syscall"
	"time"

	ftpserver "github.com/fclairamb/ftpserverlib"
)

// WrapPassiveListener gives every passive data connection the idle
// timeout on its reads: the library keeps a session alive while a
// transfer is open and sets no deadline on data connections, so an upload
// that stopped sending held its connection slot, its temporary file and a
// 1 MiB buffer for good. Each read that gets data extends it.
func (d *mainDriver) WrapPassiveListener(l net.Listener) (net.Listener, error) {
	if d.s.cfg.IdleTimeout <= 0 {
		return l, nil
	}
	return idleListener{Listener: l, idle: d.s.cfg.IdleTimeout}, nil
}

type idleListener struct {
	net.Listener
	idle time.Duration
}

func (l idleListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &idleConn{Conn: c, idle: l.idle}, nil
}

// idleConn times out a read that waits longer than idle.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// SyscallConn lets os.File.WriteTo still reach the TCP connection beneath,
// for sendfile(2) on downloads.
func (c *idleConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

var _ ftpserver.MainDriverExtensionPassiveWrapper = (*mainDriver)(nil)
