package bots_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsFlowOneWay holds the layout's rule: cmd/parley → adapters →
// bots → llm, conversation. The engine and what it builds on import no
// adapter and no command; llm and conversation import not even bots.
func TestImportsFlowOneWay(t *testing.T) {
	const mod = "github.com/parleyhq/parley/"
	forbidden := map[string][]string{
		"bots":         {"adapters/", "cmd/"},
		"llm":          {"adapters/", "cmd/", "bots", "conversation", "tools"},
		"conversation": {"adapters/", "cmd/", "bots", "llm", "tools"},
		"tools":        {"adapters/", "cmd/", "bots"},
	}
	root := filepath.Join("..")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel := filepath.ToSlash(must(filepath.Rel(root, path)))
		top, _, _ := strings.Cut(rel, "/")
		rules, ok := forbidden[top]
		if !ok {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, mod) {
				continue
			}
			inner := strings.TrimPrefix(p, mod)
			for _, bad := range rules {
				if inner == bad || strings.HasPrefix(inner, bad) && (strings.HasSuffix(bad, "/") || strings.HasPrefix(inner, bad+"/")) {
					t.Errorf("%s imports %s: imports flow cmd → adapters → bots → llm, conversation", rel, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("checked %d files: the walk did not find the packages", checked)
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
