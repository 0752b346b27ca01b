package llm

import (
	"slices"
	"testing"
)

func TestMediaURLs(t *testing.T) {
	tests := []struct {
		name, answer string
		want         []string
	}{
		{"none", "No media here, see https://example.com/docs.", nil},
		{"markdown video link", "Done: [video.mp4](https://cdn.example.com/v/abc.mp4)", []string{"https://cdn.example.com/v/abc.mp4"}},
		{"markdown image", "![cat](https://img.example.com/cat.PNG \"a cat\")", []string{"https://img.example.com/cat.PNG"}},
		{"bare with query", "Here: https://cdn.example.com/x.webm?sig=a%2Fb&exp=1.", []string{"https://cdn.example.com/x.webm?sig=a%2Fb&exp=1"}},
		{"fragment", "https://e.com/a.gif#t=1", []string{"https://e.com/a.gif#t=1"}},
		{"order and dedup", "https://e.com/2.jpg then [x](https://e.com/1.jpeg) and ![](https://e.com/2.jpg) again",
			[]string{"https://e.com/2.jpg", "https://e.com/1.jpeg"}},
		{"all kinds", "http://e.com/a.mov https://e.com/b.webp https://e.com/c.mp4",
			[]string{"http://e.com/a.mov", "https://e.com/b.webp", "https://e.com/c.mp4"}},
		{"angle brackets", "<https://e.com/v.mp4>", []string{"https://e.com/v.mp4"}},
		{"bold", "**https://e.com/v.mp4**", []string{"https://e.com/v.mp4"}},
		{"in a sentence", "The file (https://e.com/v.mp4), ready.", []string{"https://e.com/v.mp4"}},
		{"extension only in query", "https://e.com/view?file=a.mp4", nil},
		{"not media", "https://e.com/a.mp3 https://e.com/b.pdf https://e.com/c.mp4x", nil},
		{"extension in the host", "https://video.mp4.example.com/", nil},
		{"no scheme", "cdn.example.com/a.mp4", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MediaURLs(tt.answer); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
