package config

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"text/tabwriter"
)

// Var is one variable of the effective configuration, ready to print.
type Var struct {
	Name   string
	Value  string // secrets masked as "***"; the password of DATABASE_URL too
	Source Source
}

type field struct {
	name   string
	value  string
	secret bool
}

// fields lists the variables of r in declaration order.
func fields(r *env) []field {
	v := reflect.ValueOf(r).Elem()
	t := v.Type()
	secret := reflect.TypeFor[Secret]()
	out := make([]field, 0, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("env"), ",")
		out = append(out, field{
			name:   strings.TrimSpace(name),
			value:  v.Field(i).String(),
			secret: t.Field(i).Type == secret,
		})
	}
	return out
}

// Vars returns every variable with its effective value (defaults applied)
// and where the value came from.
func (c *Config) Vars() []Var { return slices.Clone(c.vars) }

// Write prints the effective configuration, one NAME=value line per
// variable with its source as a comment, then which platforms are on.
// Secrets are masked. Values are quoted as a .env file would read them.
func (c *Config) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, v := range c.Vars() {
		fmt.Fprintf(tw, "%s=%s\t# %s\n", v.Name, quote(v.Value), v.Source)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "# slack: %s\n# discord: %s\n# store: %s\n", c.slackStatus(), c.discordStatus(), c.Store.Driver)
	return err
}

func (c *Config) slackStatus() string {
	s := c.Slack
	switch {
	case !s.Enabled():
		return "off (SLACK_BOT_TOKEN not set)"
	case s.SocketMode():
		return "on, Socket Mode"
	case s.SigningSecret.IsSet():
		return "on, HTTP events at " + c.HTTP.Addr
	}
	return "incomplete (set SLACK_APP_TOKEN or SLACK_SIGNING_SECRET)"
}

func (c *Config) discordStatus() string {
	if !c.Discord.Enabled() {
		return "off (DISCORD_BOT_TOKEN not set)"
	}
	return fmt.Sprintf("on, shard %d of %d", c.Discord.ShardID, c.Discord.ShardCount)
}

// quote double-quotes a value when ParseDotenv would not read it back as
// is, escaping what ParseDotenv unescapes.
func quote(v string) string {
	if !strings.ContainsAny(v, " \t\r\n\"'#\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(v) + `"`
}
