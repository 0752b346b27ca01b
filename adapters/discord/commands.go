package discord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"

	"github.com/parleyhq/parley/bots"
)

// Slash commands. Answers that concern only the caller are ephemeral; /ask
// answers in public, like a mention.
//
// Discord wants an answer to an interaction within 3 s: commands are
// deferred at once, then the original response is edited with the engine's
// answer. Note that discordgo files every interaction-response edit under
// one local bucket (webhooks//), whatever the interaction, and holds that
// bucket's mutex during each request: concurrent command answers go out one
// at a time. The limiter keys them correctly, by interaction.

// autocompleteTimeout leaves the engine time to answer within Discord's 3 s.
const autocompleteTimeout = 2500 * time.Millisecond

// maxChoices is Discord's limit on autocomplete choices.
const maxChoices = 25

// ephemeral lists the commands whose answers only the caller sees.
var ephemeral = map[string]bool{"model": true, "models": true, "system": true, "help": true, "reset": true}

// commandArg names each command's argument option.
var commandArg = map[string]string{"model": "name", "models": "filter", "system": "prompt"}

func commands() []*discordgo.ApplicationCommand {
	str := discordgo.ApplicationCommandOptionString
	contexts := &[]discordgo.InteractionContextType{discordgo.InteractionContextGuild, discordgo.InteractionContextBotDM}
	return []*discordgo.ApplicationCommand{
		{
			Name: "model", Description: "Show or choose the model for this conversation", Contexts: contexts,
			Options: []*discordgo.ApplicationCommandOption{
				{Type: str, Name: "name", Description: "The model to use", Autocomplete: true},
			},
		},
		{
			Name: "models", Description: "List the available models", Contexts: contexts,
			Options: []*discordgo.ApplicationCommandOption{
				{Type: str, Name: "filter", Description: "Only models whose name contains this"},
			},
		},
		{Name: "reset", Description: "Forget this conversation's history", Contexts: contexts},
		{
			Name: "system", Description: "Show or set the system prompt", Contexts: contexts,
			Options: []*discordgo.ApplicationCommandOption{
				{Type: str, Name: "prompt", Description: "The new system prompt", MaxLength: 6000},
			},
		},
		{Name: "help", Description: "How to use Parley", Contexts: contexts},
		{
			Name: "ask", Description: "Ask a question; the answer streams like a mention's", Contexts: contexts,
			Options: []*discordgo.ApplicationCommandOption{
				{Type: str, Name: "prompt", Description: "Your question", Required: true, MaxLength: 6000},
				{Type: str, Name: "model", Description: "Answer with this model", Autocomplete: true},
			},
		},
	}
}

// registerCommands overwrites the application's commands, in the guild of
// Options.GuildID or globally.
func (a *Adapter) registerCommands(ctx context.Context) error {
	a.mu.Lock()
	app := a.appID
	a.mu.Unlock()
	if app == "" {
		return errors.New("discord: READY named no application")
	}
	endpoint := discordgo.EndpointApplicationGlobalCommands(app)
	if a.opts.GuildID != "" {
		endpoint = discordgo.EndpointApplicationGuildCommands(app, a.opts.GuildID)
	}
	err := a.do(ctx, "PUT", endpoint, 1, func(o []discordgo.RequestOption) error {
		_, err := a.s.ApplicationCommandBulkOverwrite(app, a.opts.GuildID, commands(), o...)
		return err
	})
	if err != nil {
		return fmt.Errorf("discord: register slash commands: %w", err)
	}
	return nil
}

// onInteraction answers a slash command or an autocomplete request.
func (a *Adapter) onInteraction(ctx context.Context, i *discordgo.Interaction) {
	if i.ID == "" || i.Token == "" {
		return
	}
	if i.Type == discordgo.InteractionMessageComponent {
		a.onComponent(ctx, i) // the approval buttons
		return
	}
	data, ok := i.Data.(discordgo.ApplicationCommandInteractionData)
	if !ok {
		return // modals: Parley sends none
	}
	if i.AppID == "" {
		a.mu.Lock()
		i.AppID = a.appID
		a.mu.Unlock()
	}
	var err error
	switch i.Type {
	case discordgo.InteractionApplicationCommandAutocomplete:
		err = a.autocomplete(ctx, i, data)
	case discordgo.InteractionApplicationCommand:
		if data.Name == "ask" {
			err = a.ask(ctx, i, data)
		} else {
			err = a.command(ctx, i, data)
		}
	default:
		return
	}
	if err != nil && ctx.Err() == nil {
		a.log.Error("answer a slash command", "command", data.Name, "err", err)
	}
}

// option returns the string value of a top-level option.
func option(data discordgo.ApplicationCommandInteractionData, name string) string {
	for _, o := range data.Options {
		if o != nil && o.Name == name {
			s, _ := o.Value.(string)
			return s
		}
	}
	return ""
}

// memberRoles returns a guild member's role ids; nil outside guilds.
func memberRoles(m *discordgo.Member) []string {
	if m == nil || len(m.Roles) == 0 {
		return nil
	}
	return slices.Clone(m.Roles)
}

func interactionUser(i *discordgo.Interaction) *discordgo.User {
	if i.Member != nil && i.Member.User != nil {
		return i.Member.User
	}
	if i.User != nil {
		return i.User
	}
	return &discordgo.User{}
}

// respond sends the interaction's initial response.
func (a *Adapter) respond(ctx context.Context, i *discordgo.Interaction, resp any) error {
	endpoint := discordgo.EndpointInteractionResponse(i.ID, i.Token)
	return a.do(ctx, "POST", endpoint, 0, func(o []discordgo.RequestOption) error {
		_, err := a.s.RequestWithBucketID("POST", endpoint, resp, endpoint, o...)
		return err
	})
}

type responseData struct {
	Content         string                            `json:"content,omitempty"`
	Flags           discordgo.MessageFlags            `json:"flags,omitempty"`
	AllowedMentions *discordgo.MessageAllowedMentions `json:"allowed_mentions,omitempty"`
}

type choice struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// autocomplete offers the models matching what the user typed.
func (a *Adapter) autocomplete(ctx context.Context, i *discordgo.Interaction, data discordgo.ApplicationCommandInteractionData) error {
	var typed string
	for _, o := range data.Options {
		if o != nil && o.Focused {
			typed, _ = o.Value.(string)
		}
	}
	mctx, cancel := context.WithTimeout(ctx, autocompleteTimeout)
	names := a.engine.Models(mctx, typed, maxChoices)
	cancel()
	choices := make([]choice, 0, len(names))
	for _, n := range names {
		// Discord refuses a choice longer than 100 characters.
		if n != "" && utf8.RuneCountInString(n) <= 100 && len(choices) < maxChoices {
			choices = append(choices, choice{Name: n, Value: n})
		}
	}
	return a.respond(ctx, i, map[string]any{
		"type": discordgo.InteractionApplicationCommandAutocompleteResult,
		"data": map[string]any{"choices": choices},
	})
}

// where returns the conversation channel and thread of an interaction.
func (a *Adapter) where(ctx context.Context, i *discordgo.Interaction) (channel, thread string) {
	if i.GuildID == "" {
		return i.ChannelID, ""
	}
	if ci, ok := a.channelInfo(ctx, i.ChannelID); ok && ci.thread && ci.parent != "" {
		return ci.parent, i.ChannelID
	}
	return i.ChannelID, ""
}

// command defers, runs the command in the engine and edits the answer in.
func (a *Adapter) command(ctx context.Context, i *discordgo.Interaction, data discordgo.ApplicationCommandInteractionData) error {
	eph := ephemeral[data.Name]
	var flags discordgo.MessageFlags
	if eph {
		flags = discordgo.MessageFlagsEphemeral
	}
	err := a.respond(ctx, i, map[string]any{
		"type": discordgo.InteractionResponseDeferredChannelMessageWithSource,
		"data": responseData{Flags: flags},
	})
	if err != nil {
		return fmt.Errorf("defer /%s: %w", data.Name, err)
	}
	channel, thread := a.where(ctx, i)
	reply := a.engine.Command(ctx, a, bots.Command{
		Workspace: i.GuildID,
		Channel:   channel,
		Thread:    thread,
		User:      interactionUser(i).ID,
		Roles:     memberRoles(i.Member),
		DM:        i.GuildID == "",
		Name:      data.Name,
		Args:      strings.TrimSpace(option(data, commandArg[data.Name])),
	})
	text := reply.Text
	if strings.TrimSpace(text) == "" {
		text = "Done."
	}
	parts := chunk(text, maxMessageChars)
	first := parts[0]
	endpoint := discordgo.EndpointWebhookMessage(i.AppID, i.Token, "@original")
	err = a.do(ctx, "PATCH", endpoint, 1, func(o []discordgo.RequestOption) error {
		_, err := a.s.InteractionResponseEdit(i, &discordgo.WebhookEdit{Content: &first, AllowedMentions: noMentions()}, o...)
		return err
	})
	if err != nil {
		return fmt.Errorf("answer /%s: %w", data.Name, err)
	}
	for _, p := range parts[1:] {
		params := &discordgo.WebhookParams{Content: p, Flags: flags, AllowedMentions: noMentions()}
		err := a.do(ctx, "POST", discordgo.EndpointWebhookToken(i.AppID, i.Token), 0, func(o []discordgo.RequestOption) error {
			_, err := a.s.FollowupMessageCreate(i, true, params, o...)
			return err
		})
		if err != nil {
			return fmt.Errorf("answer /%s: %w", data.Name, err)
		}
	}
	return nil
}

// ask answers /ask like a mention: the interaction's response shows the
// prompt in the channel, for everyone, and becomes the conversation's root;
// the engine then streams the answer into a thread started from it (or a
// reply to it), where follow-ups continue without a mention. The prompt is
// shown rather than hidden so that the thread reads like a conversation.
func (a *Adapter) ask(ctx context.Context, i *discordgo.Interaction, data discordgo.ApplicationCommandInteractionData) error {
	prompt := strings.TrimSpace(option(data, "prompt"))
	model := strings.TrimSpace(option(data, "model"))
	if prompt == "" {
		return a.respond(ctx, i, map[string]any{
			"type": discordgo.InteractionResponseChannelMessageWithSource,
			"data": responseData{Content: "Give /ask a prompt: `/ask prompt: your question`.", Flags: discordgo.MessageFlagsEphemeral},
		})
	}
	shown := truncate(prompt, maxMessageChars-120)
	if model != "" {
		shown += "\n-# model: " + truncate(model, 100)
	}
	err := a.respond(ctx, i, map[string]any{
		"type": discordgo.InteractionResponseChannelMessageWithSource,
		"data": responseData{Content: shown, AllowedMentions: noMentions()},
	})
	if err != nil {
		return fmt.Errorf("show /ask prompt: %w", err)
	}
	var m *discordgo.Message
	err = a.do(ctx, "GET", discordgo.EndpointWebhookMessage(i.AppID, i.Token, "@original"), 1, func(o []discordgo.RequestOption) error {
		var err error
		m, err = a.s.InteractionResponse(i, o...)
		return err
	})
	if err != nil || m == nil || m.ID == "" {
		return fmt.Errorf("read /ask response: %w", errors.Join(err, errors.New("no message")))
	}
	user := interactionUser(i)
	in := bots.Incoming{
		Workspace:  i.GuildID,
		MessageID:  m.ID,
		Author:     user.ID,
		AuthorName: user.GlobalName,
		DM:         i.GuildID == "",
		Mentioned:  true,
		Text:       prompt,
		Time:       m.Timestamp,
		Model:      model,
	}
	if in.AuthorName == "" {
		in.AuthorName = user.Username
	}
	if in.Time.IsZero() {
		in.Time = a.now()
	}
	in.Channel, in.Thread = a.where(ctx, i)
	if !in.DM && in.Thread == "" {
		in.Thread = m.ID
		a.cache.setThread(m.ID, threadMessage)
		a.cache.setPrompt(m.ID, prompt)
	}
	if err := a.engine.Handle(ctx, a, in); err != nil {
		return fmt.Errorf("handle /ask: %w", err)
	}
	return nil
}

// truncate cuts s to at most n characters, marking the cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

// chunk splits a command's answer into messages of at most n characters,
// at line ends where it can.
func chunk(s string, n int) []string {
	var parts []string
	for utf8.RuneCountInString(s) > n {
		r := []rune(s)
		cut := n
		if i := strings.LastIndex(string(r[:n]), "\n"); i > 0 {
			cut = utf8.RuneCountInString(string(r[:n])[:i])
		}
		parts = append(parts, strings.TrimRight(string(r[:cut]), "\n"))
		s = strings.TrimLeft(string(r[cut:]), "\n")
	}
	return append(parts, s)
}
