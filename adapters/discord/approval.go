package discord

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/parleyhq/parley/bots"
)

// Custom id prefixes of the approval buttons; the approval's id follows.
const (
	approvePrefix = "parley_approve:"
	denyPrefix    = "parley_deny:"
)

var _ bots.Approver = (*Adapter)(nil)

// decider is the engine's side of approvals; an engine without it (a test
// double) gets no approval clicks.
type decider interface {
	Decide(ctx context.Context, p bots.Platform, id, user string, roles []string, approve bool) (string, error)
}

// AskApproval posts prompt where dest's answer goes, with Approve and Deny
// buttons (message components); a click comes back as an interaction.
func (a *Adapter) AskApproval(ctx context.Context, dest bots.Destination, id, prompt string) (string, error) {
	channel, _, err := a.postTarget(ctx, dest)
	if err != nil {
		return "", err
	}
	data := &discordgo.MessageSend{Content: truncateRunes(prompt, 2000), AllowedMentions: noMentions(), Components: []discordgo.MessageComponent{
		discordgo.ActionsRow{Components: []discordgo.MessageComponent{
			discordgo.Button{Label: "Approve", Style: discordgo.SuccessButton, CustomID: approvePrefix + id},
			discordgo.Button{Label: "Deny", Style: discordgo.DangerButton, CustomID: denyPrefix + id},
		}},
	}}
	var m *discordgo.Message
	err = a.do(ctx, "POST", discordgo.EndpointChannelMessages(channel), 0, func(o []discordgo.RequestOption) error {
		var err error
		m, err = a.s.ChannelMessageSendComplex(channel, data, o...)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("discord: ask for approval in channel %s: %w", channel, err)
	}
	if m == nil || m.ID == "" {
		return "", fmt.Errorf("discord: ask for approval in channel %s: Discord returned no message id", channel)
	}
	a.cache.setPosted(m.ID, channel)
	return m.ID, nil
}

// SettleApproval replaces the buttons of message id with text.
func (a *Adapter) SettleApproval(ctx context.Context, dest bots.Destination, id, text string) error {
	channel := a.messageChannel(dest, id)
	text = truncateRunes(text, 2000)
	none := []discordgo.MessageComponent{}
	edit := &discordgo.MessageEdit{ID: id, Channel: channel, Content: &text, Components: &none, AllowedMentions: noMentions()}
	err := a.do(ctx, "PATCH", discordgo.EndpointChannelMessage(channel, id), 1, func(o []discordgo.RequestOption) error {
		_, err := a.s.ChannelMessageEditComplex(edit, o...)
		return err
	})
	if err != nil {
		return fmt.Errorf("discord: settle approval %s: %w", id, err)
	}
	return nil
}

// onComponent answers a click on an approval button: the engine decides,
// and the clicker alone reads the outcome.
func (a *Adapter) onComponent(ctx context.Context, i *discordgo.Interaction) {
	data, ok := i.Data.(discordgo.MessageComponentInteractionData)
	if !ok {
		return
	}
	var id string
	var approve bool
	switch {
	case strings.HasPrefix(data.CustomID, approvePrefix):
		id, approve = strings.TrimPrefix(data.CustomID, approvePrefix), true
	case strings.HasPrefix(data.CustomID, denyPrefix):
		id = strings.TrimPrefix(data.CustomID, denyPrefix)
	default:
		return
	}
	d, ok := a.engine.(decider)
	if !ok || id == "" {
		return
	}
	var roles []string
	if i.Member != nil {
		roles = memberRoles(i.Member)
	}
	msg, err := d.Decide(ctx, a, id, interactionUser(i).ID, roles, approve)
	if err != nil && !errors.Is(err, bots.ErrNoApproval) {
		a.log.Warn("discord approval", "err", err)
	}
	err = a.respond(ctx, i, map[string]any{
		"type": discordgo.InteractionResponseChannelMessageWithSource,
		"data": responseData{Content: msg, Flags: discordgo.MessageFlagsEphemeral, AllowedMentions: noMentions()},
	})
	if err != nil && ctx.Err() == nil {
		a.log.Warn("discord approval answer lost", "err", err)
	}
}

// truncateRunes cuts s to at most n runes.
func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
