package media

import (
	"errors"
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckType(t *testing.T) {
	tests := []struct {
		name, ext, contentType string
		head                   []byte
		want                   string // "" for ErrType
	}{
		{"declared video", ".mp4", "video/mp4", nil, "video/mp4"},
		{"declared, any case of extension", ".MP4", "video/mp4", nil, "video/mp4"},
		{"declared other video", ".mov", "video/mp4", nil, "video/mp4"},
		{"declared image", ".webp", "image/webp", nil, "image/webp"},
		{"declared html", ".mp4", "text/html", htmlBody, ""},
		{"declared image for a video", ".webm", "image/png", pngBody, ""},
		{"declared video for an image", ".gif", "video/mp4", mp4Body, ""},
		{"declared text, ftyp inside", ".mp4", "text/plain", mp4Body, ""},
		{"sniffed mp4", ".mp4", "application/octet-stream", mp4Body, "video/mp4"},
		{"sniffed quicktime", ".mov", "", movBody, "video/quicktime"},
		{"sniffed mp4 brand for a .mov", ".mov", "", mp4Body, "video/quicktime"},
		{"sniffed webm", ".webm", "", webmBody, "video/webm"},
		{"sniffed png", ".png", "application/octet-stream", pngBody, "image/png"},
		{"sniffed gif", ".gif", "", []byte("GIF89a\x01\x00\x01\x00"), "image/gif"},
		{"sniffed jpeg", ".jpg", "", []byte("\xFF\xD8\xFF\xE0\x00\x10JFIF"), "image/jpeg"},
		{"sniffed html", ".mp4", "application/octet-stream", htmlBody, ""},
		{"sniffed text", ".png", "", []byte("error: not found"), ""},
		{"too short to sniff", ".mp4", "", []byte("\x00\x00"), ""},
		{"unknown extension, video", ".bin", "video/mp4", nil, "video/mp4"},
		{"unknown extension, sniffed image", "", "", pngBody, "image/png"},
		{"unknown extension, json", "", "application/json", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkType(tt.ext, tt.contentType, tt.head)
			if tt.want == "" {
				if !errors.Is(err, ErrType) {
					t.Errorf("got %q, %v, want ErrType", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v, want %q", got, err, tt.want)
			}
		})
	}
}

func TestFileName(t *testing.T) {
	tests := []struct {
		name, path, mime, want string
	}{
		{"plain", "/files/abc/video.mp4", "video/mp4", "video.mp4"},
		{"extension case kept", "/IMG_0001.JPG", "image/jpeg", "IMG_0001.JPG"},
		{"escaped", "/a/sunset%20at%20sea.png", "image/png", "sunset at sea.png"},
		{"escaped slash", "/a/..%2F..%2Fetc%2Fpasswd.png", "image/png", "_.._etc_passwd.png"},
		{"backslash", `/a/..\..\x.png`, "image/png", "_.._x.png"},
		{"control characters", "/a/b%0Ac%00d.gif", "image/gif", "b_c_d.gif"},
		{"reserved characters", `/a/a:b*c%3F%22d%3C%3E%7C.webp`, "image/webp", "a_b_c__d___.webp"},
		{"invalid UTF-8", "/a/%FF%FE.png", "image/png", "media.png"},
		{"no extension", "/download", "video/mp4", "download.mp4"},
		{"other extension", "/a/clip.bin", "video/quicktime", "clip.bin.mov"},
		{"empty path", "", "image/jpeg", "media.jpg"},
		{"directory", "/a/", "image/png", "media.png"},
		{"hidden", "/a/.png", "image/png", "media.png"},
		{"long", "/" + strings.Repeat("a", 300) + ".jpeg", "image/jpeg", strings.Repeat("a", 95) + ".jpeg"},
		{"long multibyte", "/" + strings.Repeat("視", 120) + ".mp4", "video/mp4", strings.Repeat("視", 96) + ".mp4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fileName(tt.path, tt.mime); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// FuzzFileName checks that any URL path gives a name a platform and a file
// system take: no separators or control characters, valid UTF-8, at most
// maxName characters, ending in the content type's extension.
func FuzzFileName(f *testing.F) {
	for _, s := range []string{"/a/video.mp4", "/..%2F..%2Fx.png", "/%FF.gif", "", "/" + strings.Repeat("ab", 80)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := fileName(p, "video/mp4")
		switch {
		case !utf8.ValidString(got), utf8.RuneCountInString(got) > maxName,
			strings.ContainsAny(got, "/\\\x00\n\r"), strings.HasPrefix(got, "."):
			t.Errorf("fileName(%q) = %q", p, got)
		case !strings.HasSuffix(strings.ToLower(got), ".mp4") && family(path.Ext(got)) == "":
			t.Errorf("fileName(%q) = %q: no media extension", p, got)
		}
	})
}
