package bots

import (
	"context"
	"time"

	"github.com/parleyhq/parley/llm"
	"github.com/parleyhq/parley/tools"
)

// streamTools answers with tools offered: the tool loop runs the rounds,
// and the reply shows the answer's text, or the tools' status line while
// there is no text yet.
func (e *Engine) streamTools(ctx context.Context, j *job, model string, msgs []llm.Message, offered []tools.Tool) (tools.Answer, error) {
	out := &toolOutput{e: e, j: j, model: model, asked: time.Now(), saved: time.Now()}
	return e.cfg.Tools.Answer(ctx, e.llm, llm.Request{Model: model, Messages: msgs}, offered, out)
}

// toolOutput shows a tool loop's answer in j's reply.
type toolOutput struct {
	e            *Engine
	j            *job
	model        string
	asked, saved time.Time
	texted       bool
}

// Text is called from the loop's goroutine only.
func (o *toolOutput) Text(text string) {
	if !o.texted {
		o.texted = true
		o.e.obs.FirstToken(o.model, time.Since(o.asked))
	}
	o.j.reply.set(text, false)
	if time.Since(o.saved) >= checkpointEvery {
		o.saved = time.Now()
		o.e.mu.Lock()
		id, first := o.j.answerID, o.j.firstID
		o.e.mu.Unlock()
		o.e.checkpoint(o.j, id, first, text)
	}
}

// Status shows line in place of the answer until its text comes: the
// reply's text only grows, and its final text is the model's answer alone.
func (o *toolOutput) Status(line string) {
	o.j.reply.setPlaceholder(line)
}
