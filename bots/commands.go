package bots

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm"
)

// commandNames are the engine's commands, as typed after a slash.
var commandNames = map[string]bool{"model": true, "models": true, "reset": true, "system": true, "help": true, "usage": true, "tools": true}

// parseCommand recognizes a command written in a message ("/model gpt-4o"),
// as people do in Slack threads, where slash commands cannot be used.
func parseCommand(text string) (name, args string, ok bool) {
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(text, "/") {
		return "", "", false
	}
	name, args, _ = strings.Cut(text[1:], " ")
	name = strings.ToLower(name)
	if !commandNames[name] {
		return "", "", false
	}
	return name, strings.TrimSpace(args), true
}

// helpText is Markdown, like every command answer: adapters convert it.
const helpText = "**Parley** answers when you mention it in a channel, in the thread of its answer, and in direct messages.\n" +
	"• `/model` shows the model in use; `/model NAME` sets it for this thread (or channel); `/model NAME me` sets it for you everywhere; `/model NAME workspace` for the whole workspace; `/model clear` removes the setting\n" +
	"• `/models [FILTER]` lists the models you can choose\n" +
	"• `/system [PROMPT]` shows or sets the system prompt here; `/system me PROMPT` sets one for you; `/system workspace PROMPT` for the workspace; `/system clear` removes it\n" +
	"• `/reset` forgets this conversation\n" +
	"Settings for a channel or the workspace, and forgetting a conversation other people are in, are for admins; your own settings, your threads and your DM with Parley are yours.\n" +
	"• `/usage` shows the tokens you used today and in the last 30 days\n" +
	"• `/tools` lists the tools the model may use here\n" +
	"• React with :octagonal_sign: to a reply being written to stop it"

// Command runs a command and returns its answer.
func (e *Engine) Command(ctx context.Context, p Platform, cmd Command) CommandReply {
	e.obs.Event(p.Name(), "command")
	if !e.cfg.Access.allowed(cmd.Workspace, cmd.UserTeam, cmd.Channel, cmd.User, cmd.Roles) {
		return CommandReply{Text: refusedText, Ephemeral: true}
	}
	switch strings.ToLower(cmd.Name) {
	case "help":
		return CommandReply{Text: helpText, Ephemeral: true}
	case "model":
		return e.modelCommand(ctx, p, cmd)
	case "models":
		return e.modelsCommand(ctx, cmd)
	case "reset":
		return e.resetCommand(ctx, p, cmd)
	case "system":
		return e.systemCommand(ctx, p, cmd)
	case "usage":
		return e.usageCommand(ctx, p, cmd)
	case "tools":
		return e.toolsCommand(ctx, p, cmd)
	default:
		return CommandReply{Text: fmt.Sprintf("Unknown command `%s`. Try `/help`.", cmd.Name), Ephemeral: true}
	}
}

// scopeFor is where a setting made by cmd applies: the user with "me",
// the workspace with "workspace", else the thread when in one, else the
// channel (or the DM).
func scopeFor(p Platform, cmd Command, word scopeWord) (conversation.Scope, string) {
	switch {
	case word == scopeMe:
		return conversation.Scope{Kind: conversation.ScopeUser, Platform: p.Name(), Workspace: cmd.Workspace, ID: cmd.User}, "for you"
	case word == scopeWorkspace:
		return conversation.Scope{Kind: conversation.ScopeWorkspace, Platform: p.Name(), Workspace: cmd.Workspace}, "for the workspace"
	case cmd.Thread != "":
		return conversation.Scope{Kind: conversation.ScopeThread, Platform: p.Name(), Workspace: cmd.Workspace, ID: cmd.Channel + "/" + cmd.Thread}, "in this thread"
	case cmd.DM:
		return conversation.Scope{Kind: conversation.ScopeChannel, Platform: p.Name(), Workspace: cmd.Workspace, ID: cmd.Channel}, "in this conversation"
	default:
		return conversation.Scope{Kind: conversation.ScopeChannel, Platform: p.Name(), Workspace: cmd.Workspace, ID: cmd.Channel}, "in this channel"
	}
}

func scopeName(k conversation.ScopeKind) string {
	switch k {
	case conversation.ScopeThread:
		return "set for this thread"
	case conversation.ScopeChannel:
		return "set for this channel"
	case conversation.ScopeUser:
		return "set for you"
	case conversation.ScopeWorkspace:
		return "set for the workspace"
	}
	return "the default"
}

// splitScopeWord takes the words "me" and "workspace" off args, wherever
// they are (a model name holds neither).
func splitScopeWord(args string) (rest string, word scopeWord) {
	var kept []string
	for _, w := range strings.Fields(args) {
		if sw, ok := parseScopeWord(w); ok {
			word = max(word, sw)
			continue
		}
		kept = append(kept, w)
	}
	return strings.Join(kept, " "), word
}

func (e *Engine) modelCommand(ctx context.Context, p Platform, cmd Command) CommandReply {
	args, word := splitScopeWord(cmd.Args)
	scopes := scopesFor(p.Name(), cmd.Workspace, cmd.Channel, cmd.Thread, cmd.User)
	if args == "" {
		model, from, ok, err := e.store.ResolveSetting(ctx, conversation.SettingModel, scopes...)
		if err != nil {
			return e.commandError("model", err)
		}
		where := "the default"
		if ok {
			where = scopeName(from.Kind)
		} else {
			model = e.cfg.DefaultModel
		}
		return CommandReply{Text: fmt.Sprintf("The model here is `%s` (%s). Choose another with `/model NAME`.", model, where), Ephemeral: true, ChooseModel: true}
	}
	scope, where := scopeFor(p, cmd, word)
	needed, err := e.adminOnly(ctx, p, cmd, scope)
	if err != nil {
		return e.commandError("model", err)
	}
	if r := e.refuseWrite(ctx, p, cmd, needed, "change the model "+where, "`/model NAME me` sets it for you alone; in a thread of your own, `/model NAME` sets it for that thread."); r != nil {
		return *r
	}
	if strings.EqualFold(args, "clear") || strings.EqualFold(args, "default") {
		if err := e.store.SetSetting(ctx, scope, conversation.SettingModel, ""); err != nil {
			return e.commandError("model", err)
		}
		return CommandReply{Text: "The model setting " + where + " was removed.", Ephemeral: true}
	}
	if err := e.llm.ValidateModel(ctx, args); err != nil {
		var nf *llm.ModelNotFoundError
		if errors.As(err, &nf) {
			msg := fmt.Sprintf("There is no model `%s`.", args)
			if len(nf.Suggestions) > 0 {
				msg += " Did you mean " + quoteList(nf.Suggestions, 5) + "?"
			}
			return CommandReply{Text: msg, Ephemeral: true}
		}
		return e.commandError("model", err)
	}
	if err := e.store.SetSetting(ctx, scope, conversation.SettingModel, args); err != nil {
		return e.commandError("model", err)
	}
	return CommandReply{Text: fmt.Sprintf("Parley now answers with `%s` %s.", args, where), Ephemeral: true}
}

func (e *Engine) modelsCommand(ctx context.Context, cmd Command) CommandReply {
	const most = 50
	names := e.llm.SearchModels(ctx, strings.TrimSpace(cmd.Args), most+1)
	if cmd.Args == "" {
		models, err := e.llm.Models(ctx)
		if err != nil {
			return e.commandError("models", err)
		}
		names = names[:0]
		for _, m := range models {
			names = append(names, m.ID)
		}
	}
	if len(names) == 0 {
		return CommandReply{Text: "No model matches.", Ephemeral: true}
	}
	var b strings.Builder
	shown := names
	if len(shown) > most {
		shown = shown[:most]
	}
	fmt.Fprintf(&b, "%d model(s)", len(names))
	if len(names) > most {
		fmt.Fprintf(&b, ", the first %d; narrow with `/models FILTER`", most)
	}
	b.WriteString(":\n")
	for _, n := range shown {
		b.WriteString("• `" + n + "`\n")
	}
	return CommandReply{Text: strings.TrimRight(b.String(), "\n"), Ephemeral: true}
}

func (e *Engine) resetCommand(ctx context.Context, p Platform, cmd Command) CommandReply {
	key := conversation.Key{Platform: p.Name(), Workspace: cmd.Workspace, Channel: cmd.Channel, Thread: cmd.Thread}
	conv, err := e.store.FindConversation(ctx, key)
	if errors.Is(err, conversation.ErrNotFound) {
		return CommandReply{Text: "There is no conversation to forget here.", Ephemeral: true}
	}
	if err != nil {
		return e.commandError("reset", err)
	}
	shared := false
	if !cmd.DM {
		if shared, err = e.othersIn(ctx, key, cmd.User); err != nil {
			return e.commandError("reset", err)
		}
	}
	if r := e.refuseWrite(ctx, p, cmd, shared, "forget a conversation other people are in", "Start a new thread to begin afresh."); r != nil {
		return *r
	}
	if err := e.store.Forget(ctx, conv.ID); err != nil {
		return e.commandError("reset", err)
	}
	return CommandReply{Text: "Done: Parley forgot this conversation. The next message starts afresh.", Ephemeral: true}
}

func (e *Engine) systemCommand(ctx context.Context, p Platform, cmd Command) CommandReply {
	args := strings.TrimSpace(cmd.Args)
	// A leading "me" or "workspace" says where the prompt applies.
	word := scopeHere
	if first, rest, _ := strings.Cut(args, " "); first != "" {
		if w, ok := parseScopeWord(first); ok {
			word, args = w, strings.TrimSpace(rest)
		}
	}
	scopes := scopesFor(p.Name(), cmd.Workspace, cmd.Channel, cmd.Thread, cmd.User)
	if args == "" {
		prompt, from, ok, err := e.store.ResolveSetting(ctx, conversation.SettingSystemPrompt, scopes...)
		if err != nil {
			return e.commandError("system", err)
		}
		where := "the default"
		if ok {
			where = scopeName(from.Kind)
		} else {
			prompt = e.cfg.SystemPrompt
		}
		if prompt == "" {
			return CommandReply{Text: "There is no system prompt here. Set one with `/system PROMPT`.", Ephemeral: true}
		}
		return CommandReply{Text: fmt.Sprintf("The system prompt here (%s):\n>%s", where, strings.ReplaceAll(prompt, "\n", "\n>")), Ephemeral: true}
	}
	scope, where := scopeFor(p, cmd, word)
	needed, err := e.adminOnly(ctx, p, cmd, scope)
	if err != nil {
		return e.commandError("system", err)
	}
	if r := e.refuseWrite(ctx, p, cmd, needed, "change the system prompt "+where, "`/system me PROMPT` sets one for you alone; in a thread of your own, `/system PROMPT` sets it for that thread."); r != nil {
		return *r
	}
	if strings.EqualFold(args, "clear") {
		if err := e.store.SetSetting(ctx, scope, conversation.SettingSystemPrompt, ""); err != nil {
			return e.commandError("system", err)
		}
		return CommandReply{Text: "The system prompt " + where + " was removed.", Ephemeral: true}
	}
	if err := e.store.SetSetting(ctx, scope, conversation.SettingSystemPrompt, args); err != nil {
		return e.commandError("system", err)
	}
	return CommandReply{Text: "The system prompt " + where + " is set.", Ephemeral: true}
}

func (e *Engine) commandError(name string, err error) CommandReply {
	e.log.Error("command failed", "command", name, "err", err)
	return CommandReply{Text: "⚠️ Parley could not do that just now. Try again in a moment.", Ephemeral: true}
}

func (e *Engine) usageCommand(ctx context.Context, p Platform, cmd Command) CommandReply {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	f := conversation.UsageFilter{Platform: p.Name(), Workspace: cmd.Workspace, User: cmd.User, Since: today}
	day, err := e.store.SumUsage(ctx, f)
	if err != nil {
		return e.commandError("usage", err)
	}
	f.Since = today.AddDate(0, 0, -29)
	month, err := e.store.SumUsage(ctx, f)
	if err != nil {
		return e.commandError("usage", err)
	}
	line := func(u conversation.Usage) string {
		return fmt.Sprintf("%d request(s), %d tokens in, %d tokens out", u.Requests, u.PromptTokens, u.CompletionTokens)
	}
	text := "Your use of Parley here:\n• today (UTC): " + line(day) + "\n• the last 30 days: " + line(month)
	if e.cfg.DailyTokens > 0 {
		left := max(e.cfg.DailyTokens-day.PromptTokens-day.CompletionTokens, 0)
		text += fmt.Sprintf("\nDaily budget: %d tokens, %d left today.", e.cfg.DailyTokens, left)
	}
	return CommandReply{Text: text, Ephemeral: true}
}
