package ftpd

import (
	"context"
	"log/slog"
)

// demoteHandler passes ftpserverlib's records on at debug level: the
// library reports every client hiccup (resets, idle timeouts, refused
// commands) at info or above, which would drown smsdrop's own logs. The
// original level is kept as the "lib_level" attribute.
type demoteHandler struct {
	h slog.Handler
}

func (d demoteHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return d.h.Enabled(ctx, slog.LevelDebug)
}

func (d demoteHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
	out.AddAttrs(slog.String("lib_level", r.Level.String()))
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	// A handler passes its inner handler's error on as is.
	return d.h.Handle(ctx, out)
}

func (d demoteHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return demoteHandler{h: d.h.WithAttrs(attrs)}
}

func (d demoteHandler) WithGroup(name string) slog.Handler {
	return demoteHandler{h: d.h.WithGroup(name)}
}
