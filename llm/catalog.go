package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

const (
	// catalogTimeout bounds one GET /models.
	catalogTimeout = 30 * time.Second
	// catalogRetry is how soon a failed listing is tried again, at most:
	// the first retry comes after catalogRetryMin, doubling from there.
	catalogRetry    = time.Minute
	catalogRetryMin = 5 * time.Second
	// maxSuggestions bounds the "did you mean" list.
	maxSuggestions = 5
)

// Model is one entry of the catalog.
type Model struct {
	ID      string
	OwnedBy string
}

// Models returns the allowed models, sorted by id, from the cache when
// fresh (Config.CatalogTTL). When the endpoint cannot list its models, it
// returns the literal names of Config.Models plus Config.DefaultModel; the
// error is only returned when that list is empty too.
func (c *Client) Models(ctx context.Context) ([]Model, error) {
	models, _, err := c.models(ctx)
	return slices.Clone(models), err
}

// models returns the catalog and whether it came from the endpoint
// (verified) or from the configuration (fallback). The slice is shared.
func (c *Client) models(ctx context.Context) ([]Model, bool, error) {
	cat := &c.catalog
	cat.mu.Lock()
	if cat.ok && c.cfg.Now().Before(cat.expires) {
		m, v, err := cat.models, cat.verified, cat.err
		cat.mu.Unlock()
		return m, v, err
	}
	cat.mu.Unlock()
	for {
		_, err, _ := cat.group.Do("models", func() (any, error) {
			cat.mu.Lock()
			fresh := cat.ok && c.cfg.Now().Before(cat.expires)
			cat.mu.Unlock()
			if fresh { // another caller refreshed it meanwhile
				return nil, nil
			}
			return nil, c.refresh(ctx)
		})
		if err != nil && ctx.Err() == nil && isContextErr(err) {
			continue // the caller that led the fetch gave up, not this one
		}
		if err != nil {
			return nil, false, fmt.Errorf("llm: list models: %w", err)
		}
		cat.mu.Lock()
		m, v, err := cat.models, cat.verified, cat.err
		cat.mu.Unlock()
		return m, v, err
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// refresh fetches GET {BaseURL}/models and updates the cache. It returns an
// error only when ctx ended; endpoint failures turn into the fallback list.
func (c *Client) refresh(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	// Read the body ourselves: openai-go refuses a list served without an
	// application/json content type, which some gateways do.
	var raw []byte
	err := c.oa.Get(fctx, "models", nil, &raw)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	var page struct {
		Data []struct {
			ID      string `json:"id"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	if err == nil {
		if jerr := json.Unmarshal(raw, &page); jerr != nil {
			err = fmt.Errorf("the model list is not JSON: %w", jerr)
		}
	}
	now := c.cfg.Now()
	cat := &c.catalog
	cat.mu.Lock()
	defer cat.mu.Unlock()
	cat.ok = true
	if err == nil {
		seen := make(map[string]bool, len(page.Data))
		models := make([]Model, 0, len(page.Data))
		for _, m := range page.Data {
			if m.ID == "" || seen[m.ID] || !c.allowed(m.ID) {
				continue
			}
			seen[m.ID] = true
			models = append(models, Model{ID: m.ID, OwnedBy: m.OwnedBy})
		}
		sort.Slice(models, func(i, j int) bool { return models[i].ID < models[j].ID })
		cat.models, cat.verified, cat.err = models, true, nil
		cat.expires = now.Add(c.cfg.CatalogTTL)
		if cat.health != nil {
			c.log.Info("llm: the endpoint lists its models again", "url", c.modelsURL(), "models", len(models))
		}
		cat.health, cat.healthAt, cat.failures = nil, now, 0
		return nil
	}
	msg := c.describe(err)
	cat.health, cat.healthAt = c.endpointError(err), now
	retry := catalogRetryMin << min(cat.failures, 8)
	cat.failures++
	cat.expires = now.Add(min(c.cfg.CatalogTTL, catalogRetry, retry))
	// Warn when the listing starts failing; the retries that follow,
	// seconds apart, only at debug level.
	warn := c.log.Warn
	if cat.failures > 1 {
		warn = c.log.Debug
	}
	if cat.verified {
		// Keep serving the last good list; try again soon.
		warn("llm: cannot list models; keeping the last list", "err", msg)
		return nil
	}
	cat.models, cat.err = c.fallback(), nil
	if len(cat.models) == 0 {
		cat.err = fmt.Errorf("llm: list models: %s; set the allowed models or a default model", msg)
	}
	warn("llm: cannot list models; using the configured names", "err", msg, "models", len(cat.models))
	return nil
}

// describe says what failed, for logs, without secrets.
func (c *Client) describe(err error) string {
	var ae *apiError
	if errors.As(err, &ae) {
		return fmt.Sprintf("HTTP %d: %s", ae.status, ae.message)
	}
	return c.redact(transportError(err))
}

// fallback is the catalog when the endpoint cannot list: the literal names
// in Config.Models plus Config.DefaultModel.
func (c *Client) fallback() []Model {
	var models []Model
	seen := map[string]bool{}
	add := func(name string) {
		name = strings.TrimSpace(name)
		if name == "" || strings.ContainsAny(name, `*?[\`) || seen[strings.ToLower(name)] {
			return
		}
		seen[strings.ToLower(name)] = true
		models = append(models, Model{ID: name})
	}
	for _, m := range c.cfg.Models {
		add(m)
	}
	add(c.cfg.DefaultModel)
	sort.Slice(models, func(i, j int) bool { return models[i].ID < models[j].ID })
	return models
}

// Run refreshes the catalog in the background until ctx ends, so that
// Models rarely waits for the endpoint. It returns nil when ctx ends.
func (c *Client) Run(ctx context.Context) error {
	for first := true; ; first = false {
		c.catalog.mu.Lock()
		fresh := c.catalog.ok && c.cfg.Now().Before(c.catalog.expires)
		c.catalog.mu.Unlock()
		if !first || !fresh { // Check may have just listed them
			_, _, _ = c.catalog.group.Do("models", func() (any, error) {
				return nil, c.refresh(ctx)
			})
		}
		c.catalog.mu.Lock()
		wait := c.catalog.expires.Sub(c.cfg.Now())
		c.catalog.mu.Unlock()
		// Refresh a little before expiry so callers keep hitting the cache.
		wait -= wait / 10
		if floor := min(time.Second, c.cfg.CatalogTTL); wait < floor {
			wait = floor // a clock gone backwards must not spin
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// SearchModels returns at most n allowed model names matching query
// (case-insensitive): exact, then prefix, then substring matches, each group
// in catalog order. An empty query matches every model; n <= 0 means no
// limit. It never fails: with no catalog it returns nil.
func (c *Client) SearchModels(ctx context.Context, query string, n int) []string {
	models, _, _ := c.models(ctx)
	q := strings.ToLower(strings.TrimSpace(query))
	var exact, prefix, sub []string
	for _, m := range models {
		id := strings.ToLower(m.ID)
		switch {
		case id == q:
			exact = append(exact, m.ID)
		case strings.HasPrefix(id, q):
			prefix = append(prefix, m.ID)
		case strings.Contains(id, q):
			sub = append(sub, m.ID)
		}
	}
	out := slices.Concat(exact, prefix, sub)
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// ValidateModel returns nil when name is an allowed model, or a
// *ModelNotFoundError with suggestions. Names are matched exactly (the API
// is case-sensitive); a case slip comes back as the first suggestion. When
// the catalog is the configured fallback, any name the Models patterns
// allow passes, since the endpoint could not say otherwise.
func (c *Client) ValidateModel(ctx context.Context, name string) error {
	name = strings.TrimSpace(name)
	if name == "" {
		return &ModelNotFoundError{Message: "no model name given"}
	}
	if !c.allowed(name) {
		return &ModelNotFoundError{Model: name, Suggestions: c.suggest(ctx, name), Message: "not among the models this bot allows"}
	}
	models, verified, err := c.models(ctx)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("llm: validate model %q: %w", name, ctx.Err())
	}
	if !verified {
		return nil
	}
	for _, m := range models {
		if m.ID == name {
			return nil
		}
	}
	return &ModelNotFoundError{Model: name, Suggestions: suggestFrom(models, name)}
}

// suggest returns the allowed names nearest to name, from the catalog.
func (c *Client) suggest(ctx context.Context, name string) []string {
	models, _, _ := c.models(ctx)
	return suggestFrom(models, name)
}

// suggestFrom ranks candidates for a mistyped name: the same name up to case
// and separators first, then names containing it (or contained in it), then
// names within a small edit distance; at most maxSuggestions.
func suggestFrom(models []Model, name string) []string {
	q := squash(name)
	if q == "" {
		return nil
	}
	type cand struct {
		id           string
		score, exact int // exact: the distance before squashing, for ties
	}
	var cands []cand
	for _, m := range models {
		if m.ID == strings.TrimSpace(name) {
			continue // never "did you mean" the very name refused
		}
		id := squash(m.ID)
		var score int
		switch {
		case id == q:
			score = 0
		case strings.Contains(id, q) || strings.Contains(q, id):
			score = 1000 + abs(len(id)-len(q))
		default:
			d := levenshtein(q, id)
			if d > max(2, len([]rune(q))/3) {
				continue
			}
			score = 2000 + d
		}
		cands = append(cands, cand{m.ID, score, levenshtein(strings.ToLower(name), strings.ToLower(m.ID))})
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].score != cands[j].score {
			return cands[i].score < cands[j].score
		}
		if cands[i].exact != cands[j].exact {
			return cands[i].exact < cands[j].exact
		}
		return cands[i].id < cands[j].id
	})
	var out []string
	for _, c := range cands {
		if len(out) == maxSuggestions {
			break
		}
		out = append(out, c.id)
	}
	return out
}

// squash lowers s and drops separators, so "GPT4o" meets "gpt-4o".
func squash(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', '.', ' ', ':':
			return -1
		}
		return r
	}, strings.ToLower(strings.TrimSpace(s)))
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// levenshtein is the edit distance between a and b, in runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
