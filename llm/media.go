package llm

import (
	"net/url"
	"path"
	"regexp"
	"strings"
)

// urlPattern finds http(s) URLs in text, bare or inside Markdown links and
// images: it stops at whitespace, quotes, angle brackets and the
// parentheses and brackets that close Markdown syntax.
var urlPattern = regexp.MustCompile(`https?://[^\s<>"'()\[\]{}` + "`" + `]+`)

// mediaExts are the extensions MediaURLs reports.
var mediaExts = map[string]bool{
	".mp4": true, ".webm": true, ".mov": true,
	".png": true, ".jpg": true, ".jpeg": true, ".webp": true, ".gif": true,
}

// MediaURLs returns the media links (video and image) in a finished answer,
// in order of appearance, without duplicates. A link counts when its path
// ends in .mp4, .webm, .mov, .png, .jpg, .jpeg, .webp or .gif (any case);
// a query string or fragment may follow.
func MediaURLs(answer string) []string {
	var out []string
	seen := map[string]bool{}
	for _, raw := range urlPattern.FindAllString(answer, -1) {
		// Sentence punctuation and Markdown emphasis after a bare URL.
		raw = strings.TrimRight(raw, ".,;:!?*_~")
		if seen[raw] {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			continue
		}
		if !mediaExts[strings.ToLower(path.Ext(u.Path))] {
			continue
		}
		seen[raw] = true
		out = append(out, raw)
	}
	return out
}
