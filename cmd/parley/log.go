package main

import (
	"io"
	"log/slog"

	"github.com/parleyhq/parley/cmd/parley/config"
)

// newLogger returns the logger cfg asks for, writing to w.
func newLogger(w io.Writer, cfg config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Level}
	if cfg.Format == config.FormatJSON {
		return slog.New(redacting{slog.NewJSONHandler(w, opts)})
	}
	return slog.New(redacting{slog.NewTextHandler(w, opts)})
}
