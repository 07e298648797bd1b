package config

import (
	"io"
	"log/slog"
)

// Log flag names and their allowed values.
const (
	FlagLogFormat = "log-format"
	FlagLogLevel  = "log-level"
)

// NewLogger returns the structured logger selected by --log-format
// ("text" or "json") and --log-level ("debug", "info", "warn", "error"),
// writing to w (stderr: stdout carries only command output).
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	switch level {
	case "debug":
		lv = slog.LevelDebug
	case "", "info":
		lv = slog.LevelInfo
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, errorf(FlagLogLevel, ErrBadValue, "%s; allowed: debug, info, warn, error", quote(level))
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, errorf(FlagLogFormat, ErrBadValue, "%s; allowed: text, json", quote(format))
}
