package tools

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// ServerConfig is one server of the config file: a stdio server (Command,
// Args, Env) or a streamable HTTP server (URL, Headers).
type ServerConfig struct {
	Name    string
	Command string
	Args    []string
	// Env is the whole environment of a stdio server: it inherits nothing
	// from Parley (write "PATH": "${PATH}" to pass the path on).
	Env     map[string]string
	URL     string
	Headers map[string]string
	// Approval marks a server whose calls need a person's approval
	// ("approval": true).
	Approval bool
}

// Stdio reports whether the server is started as a command.
func (c ServerConfig) Stdio() bool { return c.Command != "" }

// secrets returns the values a log or error must never show: the env
// values, the header values, and the URL's query and user info.
func (c ServerConfig) secrets() []string {
	var out []string
	for _, v := range c.Env {
		if len(v) >= 4 {
			out = append(out, v)
		}
	}
	for _, v := range c.Headers {
		if len(v) >= 4 {
			out = append(out, v)
			if _, tok, ok := strings.Cut(v, " "); ok && len(tok) >= 4 {
				out = append(out, tok)
			}
		}
	}
	if u, err := url.Parse(c.URL); err == nil {
		if u.RawQuery != "" {
			out = append(out, u.RawQuery)
		}
		if u.User != nil {
			out = append(out, u.User.String())
		}
	}
	// Longest first, so that a value inside another is not left half shown.
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// redact hides the server's secrets in s.
func (c ServerConfig) redact(s string) string {
	for _, v := range c.secrets() {
		s = strings.ReplaceAll(s, v, "***")
	}
	return s
}

// fileConfig is the file's shape, as desktop MCP clients write it.
type fileConfig struct {
	MCPServers map[string]map[string]json.RawMessage `json:"mcpServers"`
}

// keys a server entry may have. "type", "disabled" and the approval lists
// of other clients are understood too, so that a config copied from a
// desktop client works.
var knownKeys = []string{"command", "args", "env", "url", "headers", "type", "disabled", "approval", "autoApprove", "alwaysAllow", "description"}

var serverName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// LoadConfig reads the MCP config file at path:
//
//	{"mcpServers": {"name": {"command": "...", "args": [...], "env": {...}},
//	                "other": {"url": "https://...", "headers": {...}}}}
//
// ${VAR} (and ${VAR:-default}) in commands, arguments, env values, URLs and
// header values is replaced from lookup (os.LookupEnv when nil). An error
// names the file, the server and the key, never a value. Servers with
// "disabled": true are left out.
func LoadConfig(path string, lookup func(string) (string, bool)) ([]ServerConfig, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return parseConfig(path, b, lookup)
}

func parseConfig(path string, b []byte, lookup func(string) (string, bool)) ([]ServerConfig, error) {
	var f fileConfig
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&f); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))
			return nil, fmt.Errorf("%s: line %d: not valid JSON: %s", path, line, se.Error())
		}
		return nil, fmt.Errorf("%s: want {\"mcpServers\": {\"name\": {...}}}: %s", path, typeError(err))
	}
	if f.MCPServers == nil {
		return nil, fmt.Errorf("%s: no \"mcpServers\" object; want {\"mcpServers\": {\"name\": {\"command\": ...} or {\"url\": ...}}}", path)
	}
	names := make([]string, 0, len(f.MCPServers))
	for n := range f.MCPServers {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []ServerConfig
	var errs []error
	for _, name := range names {
		c, skip, err := parseServer(name, f.MCPServers[name], lookup)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: server %q: %w", path, name, err))
			continue
		}
		if !skip {
			out = append(out, c)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Model names must be unique: two servers that differ only in
	// characters the model cannot see would collide.
	seen := map[string]string{}
	for _, c := range out {
		safe := ModelName(c.Name, "")
		if other, ok := seen[safe]; ok {
			return nil, fmt.Errorf("%s: servers %q and %q have the same model-safe name %q; rename one", path, other, c.Name, strings.TrimSuffix(safe, "__"))
		}
		seen[safe] = c.Name
	}
	return out, nil
}

func typeError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s is a JSON %s, want an object", te.Field, te.Value)
	}
	return err.Error()
}

func parseServer(name string, raw map[string]json.RawMessage, lookup func(string) (string, bool)) (ServerConfig, bool, error) {
	c := ServerConfig{Name: name}
	if !serverName.MatchString(name) {
		return c, false, errors.New("the name must be 1 to 63 letters, digits, '_', '-' or '.', starting with a letter or digit")
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(knownKeys, k) {
			return c, false, fmt.Errorf("%s: unknown key; a server has command, args, env (stdio) or url, headers (HTTP), and optionally approval or disabled", k)
		}
	}
	str := func(key string, dst *string) error {
		v, ok := raw[key]
		if !ok {
			return nil
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return fmt.Errorf("%s: want a string", key)
		}
		s, err := expand(*dst, lookup)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		*dst = s
		return nil
	}
	dict := func(key string) (map[string]string, error) {
		v, ok := raw[key]
		if !ok {
			return nil, nil
		}
		var m map[string]string
		if err := json.Unmarshal(v, &m); err != nil {
			return nil, fmt.Errorf("%s: want an object of strings", key)
		}
		for k, s := range m {
			e, err := expand(s, lookup)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", key, k, err)
			}
			m[k] = e
		}
		return m, nil
	}
	boolean := func(key string) (bool, error) {
		v, ok := raw[key]
		if !ok {
			return false, nil
		}
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return false, fmt.Errorf("%s: want true or false", key)
		}
		return b, nil
	}
	disabled, err := boolean("disabled")
	if err != nil {
		return c, false, err
	}
	if c.Approval, err = boolean("approval"); err != nil {
		return c, false, err
	}
	var typ string
	if err := str("type", &typ); err != nil {
		return c, false, err
	}
	if err := str("command", &c.Command); err != nil {
		return c, false, err
	}
	if err := str("url", &c.URL); err != nil {
		return c, false, err
	}
	if v, ok := raw["args"]; ok {
		if err := json.Unmarshal(v, &c.Args); err != nil {
			return c, false, errors.New("args: want an array of strings")
		}
		for i, a := range c.Args {
			if c.Args[i], err = expand(a, lookup); err != nil {
				return c, false, fmt.Errorf("args[%d]: %w", i, err)
			}
		}
	}
	if c.Env, err = dict("env"); err != nil {
		return c, false, err
	}
	if c.Headers, err = dict("headers"); err != nil {
		return c, false, err
	}
	switch {
	case c.Command != "" && c.URL != "":
		return c, false, errors.New("command, url: give one, not both (command starts a stdio server, url reaches an HTTP one)")
	case c.Command == "" && c.URL == "":
		return c, false, errors.New("command, url: give one: command for a stdio server, url for a streamable HTTP server")
	case c.Command != "" && len(c.Headers) > 0:
		return c, false, errors.New("headers: only for an HTTP server (url)")
	case c.URL != "" && (len(c.Args) > 0 || len(c.Env) > 0):
		return c, false, errors.New("args, env: only for a stdio server (command)")
	}
	switch typ {
	case "", "stdio", "http", "streamable-http", "streamableHttp":
	case "sse":
		return c, false, errors.New("type: the old SSE transport is not supported; use the server's streamable HTTP endpoint")
	default:
		return c, false, fmt.Errorf("type: want stdio or http")
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, false, errors.New("url: not an http(s) URL")
		}
	}
	return c, disabled, nil
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expand replaces ${VAR} and ${VAR:-default}; an unset VAR without a
// default is an error naming it.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := varRef.FindStringSubmatch(ref)
		if v, ok := lookup(m[1]); ok && (v != "" || m[2] == "") {
			return v
		}
		if m[2] != "" {
			return m[3]
		}
		missing = append(missing, m[1])
		return ""
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("${%s} is not set in the environment", strings.Join(missing, "}, ${"))
	}
	return out, nil
}
