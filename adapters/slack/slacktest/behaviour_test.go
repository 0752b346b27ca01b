package slacktest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/parleyhq/parley/adapters/slack/slacktest"
)

// The fake's own behaviour, driven by the real slack-go client: what
// Slack refuses, message states, users, files, response URLs.

func TestRefusalsAsSlacks(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{})
	ctx := context.Background()
	ts, err := post(api, "C1", "hello")
	if err != nil {
		t.Fatal(err)
	}
	theirs := srv.AddMessage("C1", "", "U1", "a person's words")
	stream := func() string {
		t.Helper()
		_, id, err := api.StartStreamContext(ctx, "C1", slackapi.MsgOptionTS(ts),
			slackapi.MsgOptionRecipientUserID("U1"), slackapi.MsgOptionRecipientTeamID("T0TEAM"),
			slackapi.MsgOptionMarkdownText("Hel"))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	sid := stream()
	update := func(channel, ts, text string) error {
		_, _, _, err := api.UpdateMessageContext(ctx, channel, ts, slackapi.MsgOptionText(text, false))
		return err
	}
	appendTo := func(id, md string) error {
		_, _, err := api.AppendStreamContext(ctx, "C1", id, slackapi.MsgOptionMarkdownText(md))
		return err
	}
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"post without text", func() error { _, err := post(api, "C1", ""); return err }, "no_text"},
		{"post without channel", func() error { _, err := post(api, "", "x"); return err }, "channel_not_found"},
		{"update of a person's message", func() error { return update("C1", theirs, "mine now") }, "cant_update_message"},
		{"update of an unknown message", func() error { return update("C1", "1.999999", "x") }, "message_not_found"},
		{"update to no text", func() error { return update("C1", ts, "") }, "no_text"},
		{"update of an open stream", func() error { return update("C1", sid, "x") }, "streaming_state_conflict"},
		{"stream without a recipient", func() error {
			_, _, err := api.StartStreamContext(ctx, "C1", slackapi.MsgOptionTS(ts), slackapi.MsgOptionMarkdownText("x"))
			return err
		}, "invalid_arguments"},
		{"stream outside a thread", func() error {
			_, _, err := api.StartStreamContext(ctx, "D1", slackapi.MsgOptionMarkdownText("x"))
			return err
		}, "invalid_arguments"},
		{"empty append", func() error { return appendTo(sid, "") }, "invalid_arguments"},
		{"append to an unknown message", func() error { return appendTo("1.999999", "x") }, "message_not_found"},
		{"status outside a thread", func() error {
			return api.SetAssistantThreadsStatusContext(ctx, slackapi.AssistantThreadsSetStatusParameters{ChannelID: "C1", Status: "is thinking…"})
		}, "invalid_arguments"},
		{"unknown user", func() error { _, err := api.GetUserInfoContext(ctx, ""); return err }, "user_not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := apiError(tc.call()); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	// None of the refused calls changed what the channel shows.
	if m, _ := srv.Message("C1", ts); m.Text != "hello" || m.Edits != 0 {
		t.Errorf("posted message %+v, want \"hello\" unedited", m)
	}
	if m, _ := srv.Message("C1", sid); m.Text != "Hel" || !m.Streaming || m.Recipient != "U1" {
		t.Errorf("stream %+v, want \"Hel\", open, to U1", m)
	}
	if m, _ := srv.Message("C1", theirs); m.Text != "a person's words" || m.User != "U1" {
		t.Errorf("the person's message %+v, want unchanged", m)
	}
	if st := srv.Statuses(); len(st) != 0 {
		t.Errorf("statuses %+v, want none", st)
	}

	// A wrong token is refused before anything else.
	bad := slackapi.New("xoxb-wrong", slackapi.OptionAPIURL(srv.APIURL),
		slackapi.OptionHTTPClient(&http.Client{Transport: slacktest.LoopbackTransport(), Timeout: 10 * time.Second}))
	if _, err := post(bad, "C1", "x"); apiError(err) != "invalid_auth" {
		t.Errorf("a wrong token: got %v, want invalid_auth", err)
	}
	if n := len(srv.BotMessages("C1", "")); n != 1 {
		t.Errorf("%d bot messages at the top of C1, want 1", n)
	}
}

func TestStreamStates(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{})
	ctx := context.Background()
	thread := srv.AddMessage("C1", "", "U1", "question")
	_, id, err := api.StartStreamContext(ctx, "C1", slackapi.MsgOptionTS(thread),
		slackapi.MsgOptionRecipientUserID("U1"), slackapi.MsgOptionRecipientTeamID("T0TEAM"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.AppendStreamContext(ctx, "C1", id, slackapi.MsgOptionMarkdownText("Hello")); err != nil {
		t.Fatal(err)
	}
	// Slack closes a stream left alone: appends are refused, updates
	// allowed.
	srv.ExpireStream("C1", id)
	if _, _, err := api.AppendStreamContext(ctx, "C1", id, slackapi.MsgOptionMarkdownText(" world")); apiError(err) != "message_not_in_streaming_state" {
		t.Errorf("append to an expired stream: got %v, want message_not_in_streaming_state", err)
	}
	if _, _, err := api.StopStreamContext(ctx, "C1", id); apiError(err) != "message_not_in_streaming_state" {
		t.Errorf("stop of an expired stream: got %v, want message_not_in_streaming_state", err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", id, slackapi.MsgOptionText("Hello world", false)); err != nil {
		t.Fatalf("update of an expired stream: %v", err)
	}
	m, _ := srv.Message("C1", id)
	if m.Text != "Hello world" || m.Streaming || !m.Streamed || m.Edits != 2 || strings.Join(m.Shown, "|") != "Hello|Hello world" {
		t.Errorf("message %+v, want \"Hello world\" after \"Hello\", two edits", m)
	}

	// Deleting a stream closes it.
	_, id2, err := api.StartStreamContext(ctx, "C1", slackapi.MsgOptionTS(thread),
		slackapi.MsgOptionRecipientUserID("U1"), slackapi.MsgOptionRecipientTeamID("T0TEAM"), slackapi.MsgOptionMarkdownText("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.DeleteMessageContext(ctx, "C1", id2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.DeleteMessageContext(ctx, "C1", id2); apiError(err) != "message_not_found" {
		t.Errorf("second delete: got %v, want message_not_found", err)
	}
	if _, _, err := api.AppendStreamContext(ctx, "C1", id2, slackapi.MsgOptionMarkdownText("y")); apiError(err) != "message_not_found" {
		t.Errorf("append to a deleted stream: got %v, want message_not_found", err)
	}
	if got := srv.BotMessages("C1", thread); len(got) != 1 || got[0].TS != id {
		t.Errorf("thread shows %+v, want only the first stream", got)
	}
	all := srv.Messages()
	if len(all) != 3 || all[0].User != "U1" || !all[2].Deleted {
		t.Errorf("messages %+v, want the question, the stream and the deleted one", all)
	}

	// A removed channel answers channel_not_found to every call on it.
	srv.RemoveChannel("C1")
	if _, _, _, err := api.UpdateMessageContext(ctx, "C1", id, slackapi.MsgOptionText("x", false)); apiError(err) != "channel_not_found" {
		t.Errorf("update in a removed channel: got %v, want channel_not_found", err)
	}
	if _, err := post(api, "C1", "x"); apiError(err) != "channel_not_found" {
		t.Errorf("post in a removed channel: got %v, want channel_not_found", err)
	}
	if _, err := post(api, "C2", "x"); err != nil {
		t.Errorf("post in another channel: %v", err)
	}
}

func TestWorkspaceRefusals(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{StreamError: "not_allowed", StatusError: "missing_scope"})
	ctx := context.Background()
	thread := srv.AddMessage("C1", "", "U1", "question")
	if _, _, err := api.StartStreamContext(ctx, "C1", slackapi.MsgOptionTS(thread),
		slackapi.MsgOptionRecipientUserID("U1"), slackapi.MsgOptionRecipientTeamID("T0TEAM")); apiError(err) != "not_allowed" {
		t.Errorf("startStream: got %v, want not_allowed", err)
	}
	if err := api.SetAssistantThreadsStatusContext(ctx, slackapi.AssistantThreadsSetStatusParameters{
		ChannelID: "C1", ThreadTS: thread, Status: "is thinking…"}); apiError(err) != "missing_scope" {
		t.Errorf("setStatus: got %v, want missing_scope", err)
	}
	if n := len(srv.BotMessages("C1", thread)); n != 0 || len(srv.Statuses()) != 0 {
		t.Errorf("%d messages and statuses %+v, want none", n, srv.Statuses())
	}
	// The refusals are the configured ones only: other methods work, and
	// a method Slack does not have is unknown.
	if _, err := post(api, "C1", "x"); err != nil {
		t.Error(err)
	}
	if err := api.AddPin("C1", slackapi.NewRefToMessage("C1", thread)); apiError(err) != "unknown_method" {
		t.Errorf("pins.add: got %v, want unknown_method", err)
	}
}

func TestUsers(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{})
	srv.AddUser(slacktest.User{ID: "UADMIN", Admin: true})
	srv.AddUser(slacktest.User{ID: "UGUEST", TeamID: "T0OTHER", Deleted: true})
	tests := []struct {
		id, team    string
		admin, gone bool
	}{
		{"UADMIN", "T0TEAM", true, false},
		{"UGUEST", "T0OTHER", false, true},
		{"UNOBODY", "T0TEAM", false, false}, // never added: a plain member
	}
	for _, tc := range tests {
		u, err := api.GetUserInfo(tc.id)
		if err != nil {
			t.Fatalf("users.info %s: %v", tc.id, err)
		}
		if u.ID != tc.id || u.TeamID != tc.team || u.IsAdmin != tc.admin || u.Deleted != tc.gone || u.IsOwner {
			t.Errorf("users.info %s: got %+v, want team %s, admin %v, deleted %v", tc.id, u, tc.team, tc.admin, tc.gone)
		}
	}
}

func TestFiles(t *testing.T) {
	srv, api, _ := newFake(t, slacktest.Config{MaxFileSize: 1000})
	ctx := context.Background()
	data := []byte("a small file's bytes")
	thread := srv.AddMessage("C1", "", "U1", "question")
	sum, err := api.UploadFileContext(ctx, slackapi.UploadFileParameters{
		Reader: bytes.NewReader(data), FileSize: len(data), Filename: "notes.txt", Title: "Notes",
		Channel: "C1", ThreadTimestamp: thread})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	up := srv.Uploads("C1", thread)
	if len(up) != 1 || up[0].ID != sum.ID || up[0].Title != "Notes" || !bytes.Equal(up[0].Data, data) ||
		!up[0].Uploaded || !up[0].Completed || up[0].MIME != "text/plain; charset=utf-8" {
		t.Fatalf("uploads %+v, want notes.txt shared in the thread with its bytes", up)
	}
	if got := srv.BotMessages("C1", thread); len(got) != 1 || len(got[0].Files) != 1 || got[0].Files[0] != sum.ID {
		t.Errorf("thread shows %+v, want one message sharing %s", got, sum.ID)
	}
	if len(srv.Uploads("C1", "")) != 0 {
		t.Error("the file shows at the top of the channel too")
	}

	// A file over the workspace's limit is refused before its bytes.
	big := bytes.Repeat([]byte("x"), 1001)
	if _, err := api.UploadFileContext(ctx, slackapi.UploadFileParameters{
		Reader: bytes.NewReader(big), FileSize: len(big), Filename: "big.bin", Channel: "C1"}); apiError(err) != "file_upload_size_restricted" {
		t.Errorf("a file over the limit: got %v, want file_upload_size_restricted", err)
	}
	if _, err := api.CompleteUploadExternalContext(ctx, slackapi.CompleteUploadExternalParameters{
		Files: []slackapi.FileSummary{{ID: sum.ID}}, Channel: "C1"}); apiError(err) != "file_not_found" {
		t.Errorf("completing a file twice: got %v, want file_not_found", err)
	}

	// A person's file is served to the bot token, and counted.
	obj := srv.AddFile("chart.png", "image/png", []byte("PNG bytes"))
	url, _ := obj["url_private_download"].(string)
	var got bytes.Buffer
	if err := api.GetFileContext(ctx, url, &got); err != nil {
		t.Fatalf("download: %v", err)
	}
	id, _ := obj["id"].(string)
	if f, _ := srv.File(id); got.String() != "PNG bytes" || f.Downloads != 1 {
		t.Errorf("downloaded %q (%d downloads), want the file's bytes once", got.String(), f.Downloads)
	}
	// Without files:read Slack redirects to its sign-in page, which
	// slack-go recognises.
	srv.SetLoginPage(true)
	got.Reset()
	if err := api.GetFileContext(ctx, url, &got); err == nil || !strings.Contains(err.Error(), "sign-in page") {
		t.Errorf("download with the sign-in page: got %v, want slack-go's sign-in error", err)
	}
	if f, _ := srv.File(id); f.Downloads != 1 {
		t.Errorf("%d downloads, want still 1", f.Downloads)
	}

	// The file reaches the bot in a file_share message.
	p := srv.UserFiles("C1", "", "U1", "<@U0BOT> look", obj)
	if len(p.Envelopes) != 2 {
		t.Errorf("a mention with a file: %d envelopes, want 2 (app_mention and message)", len(p.Envelopes))
	}
	if m, _ := srv.Message("C1", p.TS); len(m.Files) != 1 || m.Files[0] != id {
		t.Errorf("message %+v, want it to share %s", m, id)
	}
}

func TestResponseURLs(t *testing.T) {
	srv, _, _ := newFake(t, slacktest.Config{})
	url := srv.ResponseURL()
	if url == srv.ResponseURL() {
		t.Error("two response URLs are the same")
	}
	client := &http.Client{Transport: slacktest.LoopbackTransport(), Timeout: 10 * time.Second}
	resp, err := client.Post(url, "application/json", strings.NewReader(`{"text":"done","response_type":"ephemeral"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("response URL answered %s", resp.Status)
	}
	resp, err = client.Post(url, "application/json", strings.NewReader(`{not json`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("bad JSON: got %s, want 400", resp.Status)
	}
	got := srv.Responses()
	var v struct{ Text string }
	if len(got) != 1 || json.Unmarshal(got[0], &v) != nil || v.Text != "done" {
		t.Errorf("responses %s, want the one with text \"done\"", got)
	}
}
