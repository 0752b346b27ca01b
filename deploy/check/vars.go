package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// secretVars are the variables that hold secrets: they belong in a
// Kubernetes Secret or the .env file, never in a ConfigMap or an image.
var secretVars = map[string]bool{
	"LLM_API_KEY":          true,
	"SLACK_BOT_TOKEN":      true,
	"SLACK_APP_TOKEN":      true,
	"SLACK_SIGNING_SECRET": true,
	"DISCORD_BOT_TOKEN":    true,
	"DATABASE_URL":         true, // may hold a password
}

// assignment is a line of .env.example that sets or shows a variable:
// KEY=value, or #KEY=default for one left at its default.
var assignment = regexp.MustCompile(`^#?([A-Z][A-Z0-9_]*)=(.*)$`)

// parleyVars returns the variables Parley reads, from .env.example (which
// documents every one), with the example or default value shown there.
func parleyVars(root string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(root, ".env.example"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := assignment.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			vars[m[1]] = m[2]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(vars) == 0 {
		return nil, fmt.Errorf(".env.example lists no variables")
	}
	return vars, nil
}

// listenPort returns the port of an HTTP_ADDR value such as ":8080".
func listenPort(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return ""
	}
	return addr[i+1:]
}
