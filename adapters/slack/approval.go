package slack

import (
	"context"
	"errors"
	"fmt"

	slackapi "github.com/slack-go/slack"

	"github.com/parleyhq/parley/bots"
)

// Action ids of the approval buttons; each button's value is the
// approval's id.
const (
	approveActionID = "parley_approve"
	denyActionID    = "parley_deny"
	approvalBlockID = "parley_approval"
)

var _ bots.Approver = (*Adapter)(nil)

// decider is the engine's side of approvals; an engine without it (a test
// double) gets no approval clicks.
type decider interface {
	Decide(ctx context.Context, p bots.Platform, id, user string, roles []string, approve bool) (string, error)
}

// AskApproval posts prompt in dest's thread with Approve and Deny buttons
// (chat.postMessage with blocks); a click comes back as block_actions.
func (a *Adapter) AskApproval(ctx context.Context, dest bots.Destination, id, prompt string) (string, error) {
	text, err := mrkdwnFor(prompt)
	if err != nil {
		return "", fmt.Errorf("slack: chat.postMessage: %w", err)
	}
	approve := slackapi.NewButtonBlockElement(approveActionID, id, slackapi.NewTextBlockObject(slackapi.PlainTextType, "Approve", false, false))
	approve.Style = slackapi.StylePrimary
	deny := slackapi.NewButtonBlockElement(denyActionID, id, slackapi.NewTextBlockObject(slackapi.PlainTextType, "Deny", false, false))
	deny.Style = slackapi.StyleDanger
	opts := []slackapi.MsgOption{
		slackapi.MsgOptionText(text, false),
		slackapi.MsgOptionBlocks(
			slackapi.NewSectionBlock(slackapi.NewTextBlockObject(slackapi.MarkdownType, truncate(text, maxSectionText), false, false), nil, nil),
			slackapi.NewActionBlock(approvalBlockID, approve, deny),
		),
	}
	if dest.Thread != "" {
		opts = append(opts, slackapi.MsgOptionTS(dest.Thread))
	}
	_, ts, err := a.api.PostMessageContext(ctx, dest.Channel, opts...)
	if err != nil {
		return "", wrap("chat.postMessage", err)
	}
	return ts, nil
}

// SettleApproval replaces the buttons of message id with text
// (chat.update).
func (a *Adapter) SettleApproval(ctx context.Context, dest bots.Destination, id, text string) error {
	mt, err := mrkdwnFor(text)
	if err != nil {
		return fmt.Errorf("slack: chat.update: %w", err)
	}
	_, _, _, err = a.api.UpdateMessageContext(ctx, dest.Channel, id, slackapi.MsgOptionText(mt, false),
		slackapi.MsgOptionBlocks(slackapi.NewSectionBlock(slackapi.NewTextBlockObject(slackapi.MarkdownType, truncate(mt, maxSectionText), false, false), nil, nil)))
	return wrap("chat.update", err)
}

// approvalClicks hands the clicks on approval buttons in ic to the
// engine, and tells the clicker the outcome (an ephemeral response).
func (a *Adapter) approvalClicks(ic *slackapi.InteractionCallback) {
	d, ok := a.eng.(decider)
	if !ok {
		return
	}
	for _, act := range ic.ActionCallback.BlockActions {
		if act == nil || (act.ActionID != approveActionID && act.ActionID != denyActionID) || act.Value == "" {
			continue
		}
		id, user, approve := act.Value, ic.User.ID, act.ActionID == approveActionID
		responseURL := ic.ResponseURL
		a.background(func(ctx context.Context) {
			msg, err := d.Decide(ctx, a, id, user, nil, approve)
			if err != nil && !errors.Is(err, bots.ErrNoApproval) {
				a.log.Warn("slack approval", "err", err)
			}
			if responseURL == "" {
				return
			}
			if err := a.respond(ctx, responseURL, &answer{ResponseType: ephemeralAnswer, Text: toMrkdwn(msg)}); err != nil {
				a.log.Debug("slack approval answer lost", "err", err)
			}
		})
	}
}
