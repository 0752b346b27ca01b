package slack

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/parleyhq/parley/bots"
)

// Slack's limits on select menus.
const (
	maxOptions      = 100 // options in one external select answer
	maxOptionText   = 75  // characters of an option's text
	maxOptionValue  = 150 // characters of an option's value
	maxSectionText  = 3000
	modelActionID   = "parley_model"
	modelBlockID    = "parley_model_block"
	suggestTimeout  = 2500 * time.Millisecond
	respondTimeout  = 10 * time.Second
	ephemeralAnswer = "ephemeral"
)

// CommandNames are the slash commands Parley answers, without the slash
// and the prefix: the app manifest declares them.
var CommandNames = []string{"model", "models", "reset", "system", "help"}

// answer is a command's answer: the body of the HTTP acknowledgement, the
// payload of the Socket Mode one, or a response_url post.
type answer struct {
	ResponseType    string           `json:"response_type,omitempty"`
	Text            string           `json:"text,omitempty"`
	Blocks          []slackapi.Block `json:"blocks,omitempty"`
	ReplaceOriginal bool             `json:"replace_original,omitempty"`
}

// options answers a block_suggestion. Slack wants the list even when empty.
type options struct {
	Options []*slackapi.OptionBlockObject `json:"options"`
}

// command runs a slash command and returns the answer to acknowledge it
// with. When the engine takes longer than Slack waits, it returns nil (an
// empty acknowledgement) and the answer goes to response_url when ready.
func (a *Adapter) command(ctx context.Context, sc slackapi.SlashCommand) *answer {
	name, ok := strings.CutPrefix(sc.Command, "/"+a.opts.CommandPrefix)
	if !ok || !isCommand(name) {
		return &answer{ResponseType: ephemeralAnswer, Text: fmt.Sprintf("Unknown command %s: try /%shelp.", sc.Command, a.opts.CommandPrefix)}
	}
	cmd := bots.Command{
		Workspace: sc.TeamID,
		Channel:   sc.ChannelID,
		User:      sc.UserID,
		DM:        isDMChannel(sc.ChannelID),
		Name:      name,
		Args:      strings.TrimSpace(sc.Text),
	}
	done := make(chan bots.CommandReply) // unbuffered: a send succeeds only while the caller waits
	gaveUp := make(chan struct{})
	responseURL := sc.ResponseURL
	if !a.background(func(ctx context.Context) {
		// The payload names the workspace the command was typed in, not
		// the caller's own (Slack Connect): users.info does.
		cmd.UserTeam = a.userTeam(ctx, cmd.Workspace, cmd.User)
		reply := a.eng.Command(ctx, a, cmd)
		select {
		case done <- reply:
		case <-gaveUp:
			if err := a.respond(ctx, responseURL, commandAnswer(reply)); err != nil {
				a.log.Warn("slack late command answer lost", "command", name, "err", err)
			}
		}
	}) {
		return &answer{ResponseType: ephemeralAnswer, Text: "Parley is starting or stopping: try again in a moment."}
	}
	t := time.NewTimer(a.ackWait)
	defer t.Stop()
	select {
	case reply := <-done:
		return commandAnswer(reply)
	case <-t.C:
	case <-ctx.Done():
	}
	close(gaveUp)
	return nil
}

func isCommand(name string) bool {
	for _, n := range CommandNames {
		if n == name {
			return true
		}
	}
	return false
}

// commandAnswer renders the engine's reply; with ChooseModel it carries the
// model picker, whose options Slack loads by block_suggestion.
func commandAnswer(r bots.CommandReply) *answer {
	text := toMrkdwn(r.Text)
	ans := &answer{ResponseType: "in_channel", Text: text}
	if r.Ephemeral {
		ans.ResponseType = ephemeralAnswer
	}
	if r.ChooseModel {
		section := truncate(text, maxSectionText)
		if section == "" {
			section = "Choose a model:"
		}
		sel := slackapi.NewOptionsSelectBlockElement(slackapi.OptTypeExternal,
			slackapi.NewTextBlockObject(slackapi.PlainTextType, "Choose a model", false, false), modelActionID)
		zero := 0
		sel.MinQueryLength = &zero // load the options as soon as the menu opens
		ans.Blocks = []slackapi.Block{
			slackapi.NewSectionBlock(slackapi.NewTextBlockObject(slackapi.MarkdownType, section, false, false), nil, nil),
			slackapi.NewActionBlock(modelBlockID, sel),
		}
	}
	return ans
}

// interaction answers an interactive payload: block_suggestion gets the
// model options at once; block_actions (a model chosen) is acknowledged
// empty and answered through response_url.
func (a *Adapter) interaction(ctx context.Context, ic *slackapi.InteractionCallback) any {
	switch ic.Type {
	case slackapi.InteractionTypeBlockSuggestion:
		out := options{Options: []*slackapi.OptionBlockObject{}}
		if ic.ActionID != modelActionID {
			return out
		}
		ctx, cancel := context.WithTimeout(ctx, suggestTimeout)
		defer cancel()
		for _, name := range a.eng.Models(ctx, ic.Value, maxOptions) {
			if utf8.RuneCountInString(name) > maxOptionValue || len(out.Options) == maxOptions {
				continue
			}
			out.Options = append(out.Options, slackapi.NewOptionBlockObject(name,
				slackapi.NewTextBlockObject(slackapi.PlainTextType, truncate(name, maxOptionText), false, false), nil))
		}
		return out
	case slackapi.InteractionTypeBlockActions:
		a.approvalClicks(ic)
		for _, act := range ic.ActionCallback.BlockActions {
			if act == nil || act.ActionID != modelActionID || act.SelectedOption.Value == "" {
				continue
			}
			channel := firstNonEmpty(ic.Channel.ID, ic.Container.ChannelID)
			cmd := bots.Command{
				Workspace: ic.Team.ID,
				Channel:   channel,
				Thread:    ic.Container.ThreadTs,
				User:      ic.User.ID,
				UserTeam:  ic.User.TeamID,
				DM:        isDMChannel(channel),
				Name:      "model",
				Args:      act.SelectedOption.Value,
			}
			responseURL := ic.ResponseURL
			a.background(func(ctx context.Context) {
				ans := commandAnswer(a.eng.Command(ctx, a, cmd))
				ans.Blocks = nil
				ans.ReplaceOriginal = true
				if err := a.respond(ctx, responseURL, ans); err != nil {
					a.log.Warn("slack model choice answer lost", "err", err)
				}
			})
		}
	}
	return nil
}

// respond posts ans to a response_url.
func (a *Adapter) respond(ctx context.Context, responseURL string, ans *answer) error {
	if err := a.checkResponseURL(responseURL); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, respondTimeout)
	defer cancel()
	msg := &slackapi.WebhookMessage{
		Text:            ans.Text,
		ResponseType:    ans.ResponseType,
		ReplaceOriginal: ans.ReplaceOriginal,
	}
	if len(ans.Blocks) > 0 {
		msg.Blocks = &slackapi.Blocks{BlockSet: ans.Blocks}
	}
	if err := slackapi.PostWebhookCustomHTTPContext(ctx, responseURL, a.client, msg); err != nil {
		return fmt.Errorf("slack: response_url %s: %w", hidePath(responseURL), hiddenURLErr{err: err, url: responseURL})
	}
	return nil
}

// hidePath returns a URL without its path, query and fragment: a
// response_url's path is its secret, whatever its host.
func hidePath(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(a URL)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// checkResponseURL accepts Slack's https hooks and, for tests and proxies,
// the Web API's own host.
func (a *Adapter) checkResponseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return errors.New("slack: response_url missing or malformed")
	}
	api, _ := url.Parse(a.opts.APIURL)
	if u.Scheme == "https" || (api != nil && u.Scheme == api.Scheme && strings.EqualFold(u.Host, api.Host)) {
		return nil
	}
	return fmt.Errorf("slack: response_url %s://%s is neither https nor the API host", u.Scheme, u.Host)
}

// truncate cuts s to at most n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
