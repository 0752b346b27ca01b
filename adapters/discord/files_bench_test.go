package discord

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
)

// BenchmarkUploadUnlimited sends a 9 MiB file read from a temporary file (as the
// engine's media fetcher hands it over: an io.SectionReader) into a
// channel of the fake, and reports the heap's peak growth during the
// upload (peak-MiB) besides the bytes allocated (B/op). The fake runs in
// the same process but keeps only a hash of the file.
//
//	go test -run '^$' -bench Upload -benchtime 10x ./adapters/discord/
//
// "parley" is Upload; the others are what it avoids: discordgo's
// multipart builder reading the file, and reading the file first.
func BenchmarkUploadUnlimited(b *testing.B) {
	const size = 9 << 20
	fake := discordtest.New(b, discordtest.Options{ChannelLimit: 1 << 30, GlobalLimit: 1 << 30, UploadLimit: 16 << 20})
	a, err := newAdapter(Options{Token: fake.Token(), APIURL: fake.APIURL()}, newRecorder(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ch := fake.AddChannel("general")
	dest := bots.Destination{Channel: ch}
	path := filepath.Join(b.TempDir(), "clip.mp4")
	if err := os.WriteFile(path, randomBytes(size), 0o600); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	body := func() io.Reader { return io.NewSectionReader(f, 0, size) }
	viaDiscordgo := func(r io.Reader) error {
		endpoint := discordgo.EndpointChannelMessages(ch)
		return a.do(b.Context(), "POST", endpoint, 0, func(o []discordgo.RequestOption) error {
			_, err := a.s.ChannelMessageSendComplex(ch, &discordgo.MessageSend{AllowedMentions: noMentions(),
				Files: []*discordgo.File{{Name: "clip.mp4", ContentType: "video/mp4", Reader: r}}}, o...)
			return err
		})
	}

	for _, bc := range []struct {
		name string
		send func() error
	}{
		{"parley", func() error {
			_, err := a.Upload(b.Context(), dest, bots.File{Name: "clip.mp4", MIME: "video/mp4", Size: size, Body: body()})
			return err
		}},
		{"discordgo", func() error { return viaDiscordgo(body()) }},
		{"readall+discordgo", func() error {
			data, err := io.ReadAll(body())
			if err != nil {
				return err
			}
			return viaDiscordgo(bytes.NewReader(data))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(size)
			var peak uint64
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				b.StartTimer()
				stop := samplePeak()
				err := bc.send()
				peak = max(peak, stop())
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-MiB")
		})
	}
}

// samplePeak samples the heap's objects until stop is called, which
// returns the highest growth seen over the first sample.
func samplePeak() (stop func() uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	base := read()
	var (
		wg   sync.WaitGroup
		peak uint64
		done = make(chan struct{})
	)
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Microsecond)
		defer tick.Stop()
		for {
			if v := read(); v > base {
				peak = max(peak, v-base)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak
	}
}
