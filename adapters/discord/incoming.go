package discord

import (
	"context"
	"errors"
	"mime"
	"path"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/parleyhq/parley/bots"
	"github.com/parleyhq/parley/conversation"
)

// onMessage passes one message to the engine.
func (a *Adapter) onMessage(ctx context.Context, m *discordgo.Message) {
	if m == nil || m.Author == nil || m.ID == "" || m.ChannelID == "" || m.Author.ID == "" {
		a.log.Debug("malformed message skipped")
		return
	}
	a.cache.seen(m.ChannelID, m.GuildID, m.ID)
	if m.Author.ID == a.bot() {
		return // our own answers; the engine stored them as it posted them
	}
	in := a.incoming(ctx, m)
	if in.Mentioned && !in.AuthorIsBot && !in.DM {
		a.cache.setPrompt(m.ID, in.Text)
	}
	if err := a.engine.Handle(ctx, a, in); err != nil && ctx.Err() == nil {
		a.log.Error("handle message", "channel", in.Channel, "message", in.MessageID, "err", err)
		// Discord delivers a message once: say it was not kept, rather
		// than stay silent.
		if n, ok := a.engine.(notStored); ok && errors.Is(err, bots.ErrNotStored) {
			n.NotStored(a, in)
		}
	}
}

// notStored is the engine's way of telling a person their message could
// not be stored.
type notStored interface {
	NotStored(p bots.Platform, in bots.Incoming)
}

// incoming maps a Discord message onto the engine's Incoming.
//
// In a guild text channel the conversation is keyed by the message's id:
// a thread started from a message has that message's id, and in reply mode
// the mention itself roots the conversation. Inside a thread, Channel is the
// parent and Thread the thread. DMs have no Thread.
func (a *Adapter) incoming(ctx context.Context, m *discordgo.Message) bots.Incoming {
	bot := a.bot()
	in := bots.Incoming{
		Workspace:  m.GuildID,
		Channel:    m.ChannelID,
		MessageID:  m.ID,
		Author:     m.Author.ID,
		AuthorName: displayName(m),
		AuthorIsBot: m.Author.Bot || m.Author.System || m.WebhookID != "" ||
			(m.Type != discordgo.MessageTypeDefault && m.Type != discordgo.MessageTypeReply),
		Roles: memberRoles(m.Member),
		Text:  stripMention(m.Content, bot),
		Time:  m.Timestamp,
	}
	if m.GuildID == "" {
		in.DM = true
	} else if ci, ok := a.channelInfo(ctx, m.ChannelID); ok && ci.thread && ci.parent != "" {
		in.Channel = ci.parent
		in.Thread = m.ChannelID
	} else {
		in.Thread = m.ID
		a.cache.setThread(m.ID, threadMessage)
	}
	if ref := m.MessageReference; ref != nil && m.Type == discordgo.MessageTypeReply &&
		ref.Type == discordgo.MessageReferenceTypeDefault && ref.MessageID != "" {
		in.ReplyTo = ref.MessageID
	}
	in.Mentioned = mentioned(m, bot)
	for _, f := range m.Attachments {
		if f == nil {
			continue
		}
		ct := f.ContentType
		if ct == "" {
			// Discord omits the type of files it does not recognise.
			ct, _, _ = strings.Cut(mime.TypeByExtension(strings.ToLower(path.Ext(f.Filename))), ";")
		}
		in.Attachments = append(in.Attachments, conversation.Attachment{
			Name: f.Filename, MIME: ct, Size: int64(f.Size), URL: f.URL, PlatformID: f.ID,
		})
	}
	return in
}

// mentioned reports whether m mentions the bot. A reply to the bot's
// message lists the bot in mentions when the reply pings (Discord's
// default), though nobody typed a mention: that implicit ping is not a
// mention, so the reply continues the conversation it replies to (see
// ReplyTo) instead of starting a new one.
func mentioned(m *discordgo.Message, bot string) bool {
	if bot == "" {
		return false
	}
	listed := false
	for _, u := range m.Mentions {
		if u != nil && u.ID == bot {
			listed = true
		}
	}
	if !listed {
		return false
	}
	typed := strings.Contains(m.Content, "<@"+bot+">") || strings.Contains(m.Content, "<@!"+bot+">")
	replyToBot := m.ReferencedMessage != nil && m.ReferencedMessage.Author != nil && m.ReferencedMessage.Author.ID == bot
	return typed || !replyToBot
}

func displayName(m *discordgo.Message) string {
	switch {
	case m.Member != nil && m.Member.Nick != "":
		return m.Member.Nick
	case m.Author.GlobalName != "":
		return m.Author.GlobalName
	}
	return m.Author.Username
}

// stripMention removes the bot's mentions (<@id> and the older <@!id>).
func stripMention(text, bot string) string {
	if bot == "" {
		return strings.TrimSpace(text)
	}
	for _, tag := range []string{"<@" + bot + ">", "<@!" + bot + ">"} {
		text = strings.ReplaceAll(text, tag+" ", "")
		text = strings.ReplaceAll(text, tag, "")
	}
	return strings.TrimSpace(text)
}

// channelInfo returns what is known of a channel, asking Discord when the
// gateway has not said. ok is false when it cannot be known.
func (a *Adapter) channelInfo(ctx context.Context, id string) (chanInfo, bool) {
	if ci, ok := a.cache.channel(id); ok {
		return ci, true
	}
	var c *discordgo.Channel
	err := a.do(ctx, "GET", discordgo.EndpointChannel(id), 1, func(o []discordgo.RequestOption) error {
		var err error
		c, err = a.s.Channel(id, o...)
		return err
	})
	if err != nil || c == nil {
		if ctx.Err() == nil {
			a.log.Warn("look up channel", "channel", id, "err", err)
		}
		return chanInfo{}, false
	}
	ci := chanInfo{guild: c.GuildID, parent: c.ParentID, thread: c.IsThread()}
	a.cache.setChannel(id, ci)
	return ci, true
}

// conversationChannel is the channel the engine knows a message by: a
// thread's parent, else the channel itself.
func (a *Adapter) conversationChannel(ctx context.Context, guild, channel string) string {
	if guild == "" {
		return channel
	}
	if ci, ok := a.channelInfo(ctx, channel); ok && ci.thread && ci.parent != "" {
		return ci.parent
	}
	return channel
}

func (a *Adapter) onDelete(ctx context.Context, guild, channel, id string) {
	a.engine.Deleted(a, guild, a.conversationChannel(ctx, guild, channel), id)
}

func (a *Adapter) onReaction(ctx context.Context, r discordgo.MessageReaction) {
	if r.UserID == "" || r.MessageID == "" || r.UserID == a.bot() {
		return
	}
	emoji := r.Emoji.Name
	if emoji == "" {
		return
	}
	a.engine.Reacted(a, r.GuildID, a.conversationChannel(ctx, r.GuildID, r.ChannelID), r.MessageID, r.UserID, emoji)
}
