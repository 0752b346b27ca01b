package discord

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parleyhq/parley/adapters/discord/discordtest"
	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation/sqlite"
	"github.com/parleyhq/parley/llm"
)

// A mention sent while no Parley process was connected (a restart) is
// answered once the next one starts, once: Discord does not deliver it
// again, so the start reads the conversations it stored.
func TestCatchUpAfterRestart(t *testing.T) {
	fake := discordtest.New(t, discordtest.Options{})
	fl := newFakeLLM(t)
	fl.setAnswer(func(s *sse, req chatRequest) {
		s.send("answer to " + req.last())
		s.done()
	})
	path := filepath.Join(t.TempDir(), "parley.db")
	start := func() (stop func()) {
		db, err := sqlite.Open(context.Background(), path, sqlite.Options{Exclusive: true})
		if err != nil {
			t.Fatal(err)
		}
		client, _ := llm.New(llm.Config{BaseURL: fl.URL + "/v1", APIKey: "sk-test", DefaultModel: "gpt-a"})
		log := testLogger(t)
		eng := bots.New(bots.Config{DefaultModel: "gpt-a", Alone: true, Logger: log}, db, client)
		ctx, cancel := context.WithCancel(context.Background())
		engDone := make(chan error, 1)
		go func() { engDone <- eng.Run(ctx) }()
		<-eng.Started()
		a, err := newAdapter(Options{Token: fake.Token(), APIURL: fake.APIURL(), HTTPClient: &http.Client{Timeout: 10 * time.Second}}, eng, log)
		if err != nil {
			t.Fatal(err)
		}
		adDone := make(chan error, 1)
		go func() { adDone <- a.Run(ctx) }()
		fake.Await(t, wait, "the bot to connect", fake.Connected)
		return func() {
			cancel()
			if err := <-adDone; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
			<-engDone
			db.Close()
		}
	}
	ann, ch := fake.AddUser("ann"), fake.AddChannel("general")
	bot := "<@" + fake.BotID + ">"

	stop := start()
	q := fake.Post(ch, ann, bot+" one", "")
	fake.Await(t, wait, "the first answer", func() bool {
		ms := fake.BotMessages(q.ID)
		return len(ms) == 1 && ms[0].Content == "answer to one"
	})
	stop()
	fake.Await(t, wait, "the bot to disconnect", func() bool { return !fake.Connected() })

	// While no process is connected: a follow-up in the thread and a new
	// mention in the channel.
	fake.Post(q.ID, ann, "two", "")
	mention := fake.Post(ch, ann, bot+" three", "")

	restarted := time.Now()
	stop = start()
	defer stop()
	fake.Await(t, wait, "the missed messages answered", func() bool {
		th := fake.BotMessages(q.ID)
		ms := fake.BotMessages(mention.ID)
		return len(th) == 2 && th[1].Content == "answer to two" && len(ms) == 1 && ms[0].Content == "answer to three"
	})
	t.Logf("figure: Discord, messages sent while Parley was down answered %v after the restart", time.Since(restarted).Round(time.Millisecond))
	// Each once: nothing more comes.
	if n := len(fl.requests()); n != 3 {
		t.Errorf("the model was asked %d times, want 3", n)
	}
	for _, m := range fake.AllMessages() {
		if m.Author.ID == fake.BotID && strings.Contains(m.Content, "answer to") && m.ChannelID == ch {
			t.Errorf("an answer was posted in the channel itself: %q", m.Content)
		}
	}
}
