package turn

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/logging"
)

// pionLogs routes pion's messages to the server's slog.Logger. pion logs per
// packet at debug level and a client can make it log errors at will, so
// trace, debug and info go to slog's debug level, and warnings and errors
// go to warn, at most warnBurst a second (the others are counted and the
// count is logged with the next line let through).
type pionLogs struct {
	log *slog.Logger

	mu      sync.Mutex
	window  time.Time
	n       int
	dropped int
}

const warnBurst = 10

func newPionLogs(log *slog.Logger) *pionLogs { return &pionLogs{log: log} }

func (p *pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return &pionLogger{p: p, log: p.log.With("pion", scope)}
}

// allowWarn reports whether a warning may be logged now, and how many were
// dropped since the last one.
func (p *pionLogs) allowWarn() (ok bool, dropped int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := time.Now(); now.Sub(p.window) >= time.Second {
		p.window, p.n = now, 0
	}
	if p.n >= warnBurst {
		p.dropped++
		return false, 0
	}
	p.n++
	dropped, p.dropped = p.dropped, 0
	return true, dropped
}

type pionLogger struct {
	p   *pionLogs
	log *slog.Logger
}

func (l *pionLogger) debug(msg string) { l.log.Debug(msg) }

func (l *pionLogger) debugf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, args...))
	}
}

func (l *pionLogger) warn(msg string) {
	if ok, dropped := l.p.allowWarn(); ok {
		if dropped > 0 {
			l.log.Warn(msg, "dropped", dropped)
		} else {
			l.log.Warn(msg)
		}
	}
}

func (l *pionLogger) Trace(msg string)                  { l.debug(msg) }
func (l *pionLogger) Tracef(format string, args ...any) { l.debugf(format, args...) }
func (l *pionLogger) Debug(msg string)                  { l.debug(msg) }
func (l *pionLogger) Debugf(format string, args ...any) { l.debugf(format, args...) }
func (l *pionLogger) Info(msg string)                   { l.debug(msg) }
func (l *pionLogger) Infof(format string, args ...any)  { l.debugf(format, args...) }
func (l *pionLogger) Warn(msg string)                   { l.warn(msg) }
func (l *pionLogger) Warnf(format string, args ...any)  { l.warn(fmt.Sprintf(format, args...)) }
func (l *pionLogger) Error(msg string)                  { l.warn(msg) }
func (l *pionLogger) Errorf(format string, args ...any) { l.warn(fmt.Sprintf(format, args...)) }
