package media

import (
	"bytes"
	"encoding/binary"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// extTypes maps the extensions an answer's media links end in to the type
// a file of that name holds. Its keys are llm.MediaURLs' extensions.
var extTypes = map[string]string{
	".mp4":  "video/mp4",
	".webm": "video/webm",
	".mov":  "video/quicktime",
	".png":  "image/png",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".webp": "image/webp",
	".gif":  "image/gif",
}

// sniffLen is how much of a body the type sniffer looks at, as
// http.DetectContentType.
const sniffLen = 512

// family is the top-level type ("video", "image") a link's extension
// promises, or "" for a link without a known media extension, which may
// then hold any image or video.
func family(ext string) string {
	t, _, _ := strings.Cut(extTypes[strings.ToLower(ext)], "/")
	return t
}

// needsSniff reports whether a Content-Type says nothing of the content:
// missing, or a generic binary type. S3 serves binary/octet-stream when an
// upload set no type.
func needsSniff(contentType string) bool {
	if strings.TrimSpace(contentType) == "" {
		return true
	}
	t, _, _ := mime.ParseMediaType(contentType)
	return t == "application/octet-stream" || t == "binary/octet-stream"
}

// checkType returns the content type of a body fetched from a link whose
// path ends in ext: the server's Content-Type when it is of the family the
// extension promises, or, when the server sent none or a generic binary
// type, the type sniffed from head (the body's first bytes). Anything else
// is an error matching ErrType.
func checkType(ext, contentType string, head []byte) (string, error) {
	want := family(ext)
	fits := func(t string) bool {
		f, _, _ := strings.Cut(t, "/")
		if want == "" {
			return f == "video" || f == "image"
		}
		return f == want
	}
	if !needsSniff(contentType) {
		// A type with a malformed parameter still names its type.
		t, _, _ := mime.ParseMediaType(contentType)
		if t == "" {
			return "", wrongType("the server sent Content-Type %q, which does not parse", contentType)
		}
		if !fits(t) {
			return "", wrongType("the server sent %s for a %s link", t, describe(ext))
		}
		return t, nil
	}
	t := sniff(head)
	if !fits(t) {
		return "", wrongType("the content looks like %s, not a %s", t, describe(ext))
	}
	if t == "video/mp4" && strings.EqualFold(ext, ".mov") {
		// An ftyp box whose brand we do not know: the name decides.
		t = "video/quicktime"
	}
	return t, nil
}

func describe(ext string) string {
	if f := family(ext); f != "" {
		return strings.ToLower(ext) + " " + f
	}
	return "media"
}

// sniff returns the content type of a body that starts with head. On top
// of http.DetectContentType, which knows images, WebM and only the ftyp
// boxes whose brands start with "mp4", it takes any ftyp box as an
// ISO base media file: QuickTime ("qt  ") or MP4 (isom, M4V, avc1, ...).
func sniff(head []byte) string {
	if len(head) >= 12 && bytes.Equal(head[4:8], []byte("ftyp")) {
		if size := binary.BigEndian.Uint32(head[:4]); size >= 12 {
			if bytes.Equal(head[8:12], []byte("qt  ")) {
				return "video/quicktime"
			}
			return "video/mp4"
		}
	}
	// The EBML header starts Matroska and WebM alike.
	if bytes.HasPrefix(head, []byte("\x1A\x45\xDF\xA3")) {
		return "video/webm"
	}
	t, _, _ := mime.ParseMediaType(http.DetectContentType(head))
	return t
}

// maxName bounds a file name, in characters.
const maxName = 100

// fileName derives a file's name from a URL's escaped path: its last
// segment, unescaped, without path separators, control or reserved
// characters, at most maxName characters, keeping the extension; a name
// without a known media extension gets one from the content type.
func fileName(escapedPath, mimeType string) string {
	base := escapedPath[strings.LastIndexByte(escapedPath, '/')+1:]
	if s, err := url.PathUnescape(base); err == nil {
		base = s // an escaped slash stays in the name, as the '_' below
	}
	base = strings.Map(func(r rune) rune {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), strings.ContainsRune(`/\:*?"<>|`, r):
			return '_'
		}
		return r
	}, strings.ToValidUTF8(base, "_"))
	ext := path.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	if family(ext) == "" {
		stem, ext = base, typeExt(mimeType)
	}
	// No hidden names; a name for an empty one.
	stem = strings.Trim(stem, ". ")
	if stem == "" || stem == "_" {
		stem = "media"
	}
	if n := maxName - utf8.RuneCountInString(ext); utf8.RuneCountInString(stem) > n {
		stem = string([]rune(stem)[:n])
	}
	return stem + ext
}

// typeExt is the usual extension of a media type, "" if none is known.
func typeExt(t string) string {
	switch t {
	case "image/jpeg":
		return ".jpg"
	case "video/quicktime":
		return ".mov"
	}
	for ext, et := range extTypes {
		if et == t {
			return ext
		}
	}
	if exts, _ := mime.ExtensionsByType(t); len(exts) > 0 {
		return exts[0]
	}
	return ""
}
