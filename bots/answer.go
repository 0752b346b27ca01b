package bots

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parleyhq/parley/conversation"
	"github.com/parleyhq/parley/llm"
	"github.com/parleyhq/parley/tools"
)

// answer streams the model's answer to j into its reply and stores it.
func (e *Engine) answer(j *job) {
	ctx := j.ctx
	log := e.log.With("platform", j.p.Name(), "conversation", j.conv.ID)
	model, system := e.settingsOf(ctx, j)
	// The answer's record is stored while the model is asked: under a
	// burst the store's writes queue up, and the model's request need not
	// wait for them. The reply's first post waits for the record, which
	// is stored long before the model's first token as a rule; the record
	// and the first message id are stored together once both are known
	// (see Handle's posted).
	asst := j.asst
	streamCtx, stopStream := context.WithCancelCause(ctx)
	defer stopStream(nil)
	var storeErr error
	stored := make(chan struct{})
	if asst.ID != 0 {
		// Resumed: the answer's record exists, and so may its message.
		asst.Model, asst.Text, asst.Status = model, "", conversation.StatusStreaming
		close(stored)
	} else {
		j.reply.mu.Lock()
		j.reply.recorded = stored
		j.reply.mu.Unlock()
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer close(stored)
			a, _, err := e.store.Append(ctx, j.conv.ID, conversation.Message{
				Role: conversation.RoleAssistant, Model: model, Status: conversation.StatusStreaming, ReplyTo: j.user.ID,
			})
			if err != nil {
				storeErr = err
				stopStream(errNotSaved)
				return
			}
			asst = a
			e.mu.Lock()
			j.answerID = a.ID
			firstID := j.firstID
			e.mu.Unlock()
			if firstID != "" {
				e.checkpoint(j, a.ID, firstID, "")
			}
		}()
	}
	e.startFlush(j)
	// What the first post needs (Discord: its thread) is made while the
	// model thinks.
	if j.reply.beginPrepare() {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			j.reply.prepare(ctx)
		}()
	}
	progressDone := make(chan struct{})
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.progress(j, progressDone)
	}()

	started := time.Now()
	e.obs.QueueWait(j.p.Name(), started.Sub(j.queued))
	e.obs.Streams(1)
	text, usage, finish, rounds, streamErr := e.stream(streamCtx, j, model, system)
	modelTime := time.Since(started)
	close(progressDone)
	e.obs.Streams(-1)
	<-stored
	if storeErr != nil {
		if ctx.Err() != nil {
			e.finishStopped(j, text, context.Cause(ctx))
			return
		}
		log.Error("store answer", "err", storeErr)
		j.reply.set(withNotice(text, "⚠️ Parley could not save this conversation; please try again."), true)
		<-j.reply.finished
		return
	}

	asst.Text, asst.Tools = text, rounds
	if usage != nil {
		asst.PromptTokens, asst.CompletionTokens = usage.PromptTokens, usage.CompletionTokens
	}
	cause := context.Cause(ctx)
	if ctx.Err() != nil && silent(cause) {
		e.leave(j, asst, text, cause)
		return
	}
	var shown string
	switch {
	case ctx.Err() != nil && cause != nil:
		asst.Status = conversation.StatusPartial
		shown = withNotice(text, stopNotice(cause))
	case streamErr != nil && text == "":
		asst.Status = conversation.StatusFailed
		shown = e.failure(ctx, streamErr, model)
		log.Warn("answer failed", "model", model, "err", streamErr)
	case streamErr != nil:
		asst.Status = conversation.StatusPartial
		shown = withNotice(text, "⚠️ _The answer was cut off: "+shortReason(streamErr)+"._")
		log.Warn("answer cut off", "model", model, "err", streamErr)
	case strings.TrimSpace(text) == "":
		asst.Status = conversation.StatusFailed
		shown = "_The model returned an empty answer._"
	case finish == llm.FinishLength:
		// The model hit its output limit: the answer is cut, and says so.
		asst.Status = conversation.StatusPartial
		shown = withNotice(text, "⚠️ _The answer reached the model's length limit and stops here._")
		log.Info("answer cut by the model's length limit", "model", model)
	default:
		asst.Status = conversation.StatusComplete
		shown = text
		if j.resumed {
			shown = withNotice(text, resumedNotice)
		}
	}
	j.reply.set(shown, true)
	<-j.reply.finished
	e.obs.Delivered(j.p.Name(), time.Since(started)-modelTime)
	if ids := j.reply.ids(); len(ids) > 0 {
		asst.PlatformID = ids[0]
	}
	if asst.Status == conversation.StatusComplete {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.FinishTimeout)
		asst.Attachments = e.deliver(dctx, j, text)
		cancel()
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	// Usage first: once the answer is stored as done, the next question
	// of this person sees its tokens counted.
	e.recordUsage(sctx, j, model, asst)
	e.finalUpdate(j, asst)
	outcome := string(asst.Status)
	if ctx.Err() != nil && cause != nil {
		outcome = "stopped"
	}
	e.obs.Reply(j.p.Name(), outcome)
	e.obs.Answer(model, modelTime, asst.PromptTokens, asst.CompletionTokens)
	log.Info("reply finished", "model", model, "status", asst.Status, "chars", len(text),
		"prompt_tokens", asst.PromptTokens, "completion_tokens", asst.CompletionTokens,
		"duration", time.Since(started).Round(time.Millisecond))
}

// errNotSaved stops a stream whose answer could not be stored.
var errNotSaved = errors.New("bots: the answer could not be stored")

// stream asks the model and feeds its text to the reply. It returns the
// answer text, the usage when reported, the finish reason, the rounds of
// tool calls, and the error that ended it early.
func (e *Engine) stream(ctx context.Context, j *job, model, system string) (string, *llm.Usage, string, []conversation.ToolRound, error) {
	budget := e.cfg.ContextTokens
	offered := e.cfg.Tools.Offer(e.toolFilter(ctx, j))
	for attempt := 0; ; attempt++ {
		msgs, err := e.history(ctx, j, model, system, budget)
		if err != nil {
			return "", nil, "", nil, err
		}
		if len(offered) > 0 {
			ans, err := e.streamTools(ctx, j, model, msgs, offered)
			if errors.Is(err, llm.ErrContextLength) && attempt < 2 && ans.Text == "" && len(ans.Rounds) == 0 {
				budget /= 2
				continue
			}
			return ans.Text, ans.Usage, ans.Finish, ans.Rounds, err
		}
		asked := time.Now()
		s, err := e.llm.Stream(ctx, llm.Request{Model: model, Messages: msgs})
		if errors.Is(err, llm.ErrContextLength) && attempt < 2 {
			// The estimate was too generous for this model: halve the
			// budget and try again.
			budget /= 2
			continue
		}
		if err != nil {
			return "", nil, "", nil, err
		}
		defer s.Close()
		var text strings.Builder
		var usage *llm.Usage
		var finish string
		saved := time.Now()
		for {
			if time.Since(saved) >= checkpointEvery {
				// Keep what was shown, so that after a crash the reply
				// can be corrected with its text.
				saved = time.Now()
				e.mu.Lock()
				id, first := j.answerID, j.firstID
				e.mu.Unlock()
				e.checkpoint(j, id, first, text.String())
			}
			d, err := s.Recv()
			if err == io.EOF {
				return text.String(), usage, finish, nil, nil
			}
			if err != nil {
				return text.String(), usage, finish, nil, err
			}
			if d.Usage != nil {
				usage = d.Usage
			}
			if d.FinishReason != "" {
				finish = d.FinishReason
			}
			if d.Text != "" {
				if text.Len() == 0 {
					e.obs.FirstToken(model, time.Since(asked))
				}
				text.WriteString(d.Text)
				j.reply.set(text.String(), false)
			}
		}
	}
}

// recordUsage adds an answer's tokens to the asker's daily counters. Where
// the endpoint reported no usage, the tokens are estimated from the text.
func (e *Engine) recordUsage(ctx context.Context, j *job, model string, asst conversation.Message) {
	in, out := int64(asst.PromptTokens), int64(asst.CompletionTokens)
	if in == 0 && out == 0 {
		if asst.Text == "" {
			return
		}
		out = int64(llm.EstimateTokens([]llm.Message{{Role: llm.RoleAssistant, Content: asst.Text}}))
	}
	err := e.store.AddUsage(ctx, conversation.UsageKey{
		Platform: j.p.Name(), Workspace: j.in.Workspace, Channel: j.in.Channel, User: j.in.Author, Model: model,
		Day: time.Now().UTC(),
	}, conversation.Usage{Requests: 1, PromptTokens: in, CompletionTokens: out})
	if err != nil {
		e.log.Warn("record usage", "err", err)
	}
}

// resumedNotice ends an answer written again by the instance that took it
// over.
const resumedNotice = "🔁 _Resumed: Parley restarted while writing this answer, and wrote it again._"

// leave ends an answer whose work belongs to another instance now, without
// a word on the platform: its claim was lost (the new owner writes it), or
// it is handed over at shutdown (what it showed is saved, for the next
// owner to replace).
func (e *Engine) leave(j *job, asst conversation.Message, text string, cause error) {
	j.reply.abandon(cause)
	<-j.reply.finished
	if errors.Is(cause, errHandoff) {
		e.mu.Lock()
		id := j.firstID
		e.mu.Unlock()
		e.checkpoint(j, asst.ID, id, text)
		e.log.Info("answer handed over", "platform", j.p.Name(), "conversation", j.conv.ID)
		return
	}
	e.log.Info("answer left to the instance that took it over", "platform", j.p.Name(), "conversation", j.conv.ID)
}

// finalUpdate stores a finished answer. The answer is complete on the
// platform, so it must be in the store: the write is retried until it
// lands, the claim is lost (the new owner writes it), or the process
// stops. A claim renewed meanwhile keeps other instances off.
func (e *Engine) finalUpdate(j *job, asst conversation.Message) {
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(j.ctx), 10*time.Second)
		err := e.writeAnswer(ctx, j, asst)
		cancel()
		switch {
		case err == nil:
			if attempt > 1 {
				e.log.Info("answer stored after retries", "conversation", j.conv.ID, "attempts", attempt)
			}
			return
		case errors.Is(err, errClaimLost), errors.Is(err, conversation.ErrNotFound):
			e.log.Warn("answer not stored", "conversation", j.conv.ID, "err", err)
			return
		}
		e.log.Error("store answer, retrying", "conversation", j.conv.ID, "attempt", attempt, "in", wait, "err", err)
		stop := e.runCtx.Done()
		if e.runCtx.Err() != nil {
			if attempt >= 5 {
				e.log.Error("answer not stored: shutting down", "conversation", j.conv.ID)
				return
			}
			stop = nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// writeAnswer writes j's answer record, fenced by j's claim where it has
// one.
func (e *Engine) writeAnswer(ctx context.Context, j *job, m conversation.Message) error {
	token := int64(0)
	if j.hold != nil {
		token = j.hold.token.Load()
	}
	if token == 0 {
		return e.store.UpdateMessage(ctx, m)
	}
	err := e.store.UpdateAnswer(ctx, j.conv.ID, m, e.cfg.Owner, token)
	if errors.Is(err, conversation.ErrClaimLost) {
		e.lose(j)
		return errClaimLost
	}
	return err
}

// checkpointEvery is how often a streaming answer's text is saved.
const checkpointEvery = 3 * time.Second

// checkpoint saves a streaming answer's platform id and text so far.
func (e *Engine) checkpoint(j *job, answerID int64, platformID, text string) {
	if answerID == 0 {
		return
	}
	ctx := j.ctx
	if context.Cause(ctx) == errHandoff {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), shutdownFlush)
		defer cancel()
	}
	err := e.writeAnswer(ctx, j, conversation.Message{
		ID: answerID, Role: conversation.RoleAssistant, PlatformID: platformID, Text: text,
		Status: conversation.StatusStreaming, ReplyTo: j.user.ID,
	})
	if err != nil && ctx.Err() == nil && !errors.Is(err, errClaimLost) {
		e.log.Warn("save streaming answer", "conversation", j.conv.ID, "err", err)
	}
}

// history builds the request's messages: the system prompt, then the
// conversation up to the question being answered, in question order, within
// the token budget.
func (e *Engine) history(ctx context.Context, j *job, model, system string, budget int) ([]llm.Message, error) {
	stored, err := e.storedHistory(ctx, j)
	if err != nil {
		return nil, fmt.Errorf("load history: %w", err)
	}
	ordered := historyFor(stored, j.user.ID)
	msgs := make([]llm.Message, 0, len(ordered)+1)
	if system != "" {
		msgs = append(msgs, llm.Message{Role: llm.RoleSystem, Content: system})
	}
	// Messages with attachments get theirs after the budget is applied,
	// so that files of trimmed messages are not downloaded.
	withFiles := make(map[int]conversation.Message)
	for _, m := range ordered {
		content := m.Text
		if m.Role == conversation.RoleAssistant && len(m.Attachments) > 0 {
			content += "\n\n" + deliveredNote(m.Attachments)
		}
		if m.Role == conversation.RoleAssistant && len(m.Tools) > 0 {
			// The calls and results before the answer, with their ids.
			msgs = append(msgs, tools.History(content, m.Tools)...)
			continue
		}
		msg := llm.Message{Role: llm.Role(m.Role), Content: content}
		if m.Role == conversation.RoleUser && len(m.Attachments) > 0 {
			withFiles[len(msgs)] = m
			for _, a := range m.Attachments {
				if isImage(a) && e.visionModel(model) {
					msg.Images = append(msg.Images, llm.Image{}) // counted by the budget
				}
			}
		}
		msgs = append(msgs, msg)
	}
	kept, dropped := llm.Fit(msgs, budget)
	if dropped > 0 {
		e.log.Debug("history trimmed", "conversation", j.conv.ID, "dropped", dropped)
	}
	// Fit drops from the front and keeps the order: match kept messages
	// to their originals from the end.
	offset := len(msgs) - len(kept)
	for i := range kept {
		m, ok := withFiles[i+offset]
		if !ok || (i == 0 && system != "" && offset > 0) {
			continue
		}
		note, images := e.attachmentParts(ctx, j.p, model, m.Attachments)
		kept[i].Images = images
		if note != "" {
			kept[i].Content = strings.TrimSpace(kept[i].Content + "\n\n" + note)
		}
	}
	return kept, nil
}

// historyFor keeps what the model should see of a conversation for the
// question current, which comes last. The store already places each answer
// after the question it answers; this leaves out answers that failed or
// are still being written, answers whose question is not in view, and the
// questions that came after current: they wait for their own turn.
func historyFor(stored []conversation.Message, current int64) []conversation.Message {
	var out []conversation.Message
	var question []conversation.Message
	asked := make(map[int64]bool)
	for _, m := range stored {
		switch {
		case m.ID == current:
			question = append(question, m)
		case m.Role == conversation.RoleUser:
			if m.ID < current {
				asked[m.ID] = true
				out = append(out, m)
			}
		case m.Role == conversation.RoleAssistant:
			if m.Status == conversation.StatusFailed || m.Status == conversation.StatusStreaming || strings.TrimSpace(m.Text) == "" {
				continue
			}
			if m.ReplyTo == 0 || asked[m.ReplyTo] {
				out = append(out, m)
			}
		default:
			out = append(out, m)
		}
	}
	return append(out, question...)
}

// settings resolves the model and system prompt for j: thread, channel,
// user, workspace, then the configured default.
func (e *Engine) settings(ctx context.Context, j *job) (model, system string) {
	scopes := scopesFor(j.p.Name(), j.in.Workspace, j.in.Channel, j.conv.Key.Thread, j.in.Author)
	model = e.cfg.DefaultModel
	if v, _, ok, err := e.store.ResolveSetting(ctx, conversation.SettingModel, scopes...); err != nil {
		e.log.Warn("resolve model", "err", err)
	} else if ok {
		model = v
	}
	if j.in.Model != "" {
		model = j.in.Model
	}
	system = e.cfg.SystemPrompt
	if v, _, ok, err := e.store.ResolveSetting(ctx, conversation.SettingSystemPrompt, scopes...); err != nil {
		e.log.Warn("resolve system prompt", "err", err)
	} else if ok {
		system = v
	}
	return model, system
}

// scopesFor lists the setting scopes of a message, most specific first.
func scopesFor(platform, workspace, channel, thread, user string) []conversation.Scope {
	var s []conversation.Scope
	if thread != "" {
		s = append(s, conversation.Scope{Kind: conversation.ScopeThread, Platform: platform, Workspace: workspace, ID: channel + "/" + thread})
	}
	return append(s,
		conversation.Scope{Kind: conversation.ScopeChannel, Platform: platform, Workspace: workspace, ID: channel},
		conversation.Scope{Kind: conversation.ScopeUser, Platform: platform, Workspace: workspace, ID: user},
		conversation.Scope{Kind: conversation.ScopeWorkspace, Platform: platform, Workspace: workspace},
	)
}

// progressAfterPrepare is how long a reply whose prepare showed progress
// (a new thread) waits before it shows an indicator too.
const progressAfterPrepare = time.Second

// longWait is how long an answer runs before progress is shown again
// beside its text: a video model streams progress for minutes, and the
// platform's indicator (Slack's status, Discord's typing) would lapse.
const longWait = 20 * time.Second

// progress shows that the bot works: at once, then again as often as the
// platform's indicator needs until the first text is visible, and through
// a long answer until it ends. Where the platform refuses it, a
// placeholder message shows progress instead.
func (e *Engine) progress(j *job, done <-chan struct{}) {
	// Progress shows where the answer will be (Discord: in its new
	// thread), and the thread goes before any indicator. A new thread
	// shows progress itself: the indicator comes only if the first text
	// is late, so that under a burst the threads and first texts of other
	// replies get the calls first.
	made, err := j.reply.awaitPrepared(j.ctx)
	if err != nil {
		return
	}
	if made {
		t := time.NewTimer(progressAfterPrepare)
		select {
		case <-t.C:
		case <-done:
			t.Stop()
			return
		case <-j.ctx.Done():
			t.Stop()
			return
		}
	}
	every := j.reply.lim.ProgressEvery
	start := time.Now()
	for {
		visible := j.reply.isVisible()
		if !visible || time.Since(start) >= longWait {
			// Progress only uses budget that nothing a person reads
			// wants: the thread and the first text go first.
			err := j.reply.call(j.ctx, CallProgress, prioSpare, func() error {
				return j.p.Progress(j.ctx, j.dest, "is thinking…")
			})
			var rl *RateLimitError
			if err != nil && !errors.As(err, &rl) && j.ctx.Err() == nil {
				if !visible {
					j.reply.setPlaceholder("_Thinking…_")
				}
				return
			}
		}
		if every <= 0 {
			return
		}
		t := time.NewTimer(every)
		select {
		case <-t.C:
		case <-done:
			t.Stop()
			return
		case <-j.ctx.Done():
			t.Stop()
			return
		}
	}
}

// finishStopped ends a job that was stopped before or while answering.
func (e *Engine) finishStopped(j *job, text string, cause error) {
	if silent(cause) {
		j.reply.abandon(cause)
		return
	}
	r := j.reply
	r.mu.Lock()
	flushing := r.flushing
	r.mu.Unlock()
	if !flushing && text == "" && !errors.Is(cause, errShutdown) {
		return // nothing was shown: nothing to take back
	}
	r.set(withNotice(text, stopNotice(cause)), true)
	e.startFlush(j)
	<-r.finished
}

// finishFailed shows a failure notice as the whole reply.
func (e *Engine) finishFailed(j *job, notice string) {
	j.reply.set(notice, true)
	e.startFlush(j)
	<-j.reply.finished
}

func withNotice(text, notice string) string {
	if strings.TrimSpace(text) == "" {
		return notice
	}
	return text + "\n\n" + notice
}

func stopNotice(cause error) string {
	switch {
	case errors.Is(cause, errStopDeleted):
		return "⏹️ _Stopped: the question was deleted._"
	case errors.Is(cause, errStopReaction):
		return "⏹️ _Stopped._"
	case errors.Is(cause, errShutdown):
		return "⚠️ _Interrupted: Parley restarted. Ask again to get the whole answer._"
	case errors.Is(cause, errReplyGone):
		return "⏹️ _Stopped: the reply was deleted._"
	default:
		return "⏹️ _Stopped._"
	}
}
