package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/parleyhq/parley/bots"
)

// redacting is a slog.Handler that masks every token-shaped string
// (bots.Redact) in a record's message and attributes before h sees it:
// whatever a library or an error puts in a line, no token, response_url
// path or password reaches the logs.
type redacting struct{ h slog.Handler }

func (r redacting) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redacting) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, bots.Redact(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redacting) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = redactAttr(a)
	}
	return redacting{r.h.WithAttrs(red)}
}

func (r redacting) WithGroup(name string) slog.Handler { return redacting{r.h.WithGroup(name)} }

// redactAttr masks a's value: strings, errors and anything printed with
// fmt; groups attribute by attribute. Values that log themselves
// (slog.LogValuer, such as the masked config) are resolved first.
func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, bots.Redact(v.String()))
	case slog.KindGroup:
		as := v.Group()
		red := make([]slog.Attr, len(as))
		for i, g := range as {
			red[i] = redactAttr(g)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(red...)}
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, bots.Redact(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, bots.Redact(x.String()))
		default:
			if s := fmt.Sprint(x); bots.Redact(s) != s {
				return slog.String(a.Key, bots.Redact(s))
			}
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
