package bots

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/parleyhq/parley/llm"
)

// failure turns an LLM error before any text into a short message for the
// person who asked. The detail goes to the log, not to the chat.
func (e *Engine) failure(ctx context.Context, err error, model string) string {
	var nf *llm.ModelNotFoundError
	var rl *llm.RateLimitError
	switch {
	case errors.As(err, &nf):
		s := nf.Suggestions
		if len(s) == 0 {
			s = slices.DeleteFunc(e.llm.SearchModels(ctx, model, 4), func(n string) bool { return n == model })
		}
		msg := fmt.Sprintf("⚠️ The model `%s` is not available.", model)
		if len(s) > 0 {
			msg += " Did you mean " + quoteList(s, 3) + "?"
		}
		return msg + " Choose one with `/model`."
	case errors.Is(err, llm.ErrModelNotFound):
		return fmt.Sprintf("⚠️ The model `%s` is not available. Choose one with `/model`.", model)
	case errors.As(err, &rl):
		if rl.RetryAfter > 0 {
			return fmt.Sprintf("⚠️ The model is busy (rate limited). Try again in %d seconds.", int(math.Ceil(rl.RetryAfter.Seconds())))
		}
		return "⚠️ The model is busy (rate limited). Try again in a minute."
	case errors.Is(err, llm.ErrUnauthorized):
		return "⚠️ The model's service refused Parley's credentials. An operator should check LLM_API_KEY."
	case errors.Is(err, llm.ErrContextLength):
		return "⚠️ This conversation is too long for the model. Start again with `/reset`."
	case errors.Is(err, llm.ErrTimeout):
		return "⚠️ The model did not answer in time. Try again, or choose another model with `/model`."
	case errors.Is(err, llm.ErrEndpointNotFound):
		return "⚠️ Parley's model endpoint is misconfigured. An operator should check LLM_BASE_URL."
	case errors.Is(err, llm.ErrUnreachable):
		return "⚠️ Parley cannot reach the model's service. Try again in a moment; if it lasts, an operator should check LLM_BASE_URL."
	case errors.Is(err, llm.ErrServer):
		return "⚠️ The model's service failed. Try again in a moment."
	default:
		return "⚠️ Parley could not reach the model. Try again in a moment."
	}
}

// shortReason names a mid-stream failure in a few words.
func shortReason(err error) string {
	switch {
	case errors.Is(err, llm.ErrTimeout):
		return "the model stopped sending"
	case errors.Is(err, llm.ErrStreamCut):
		return "the connection to the model broke"
	case errors.Is(err, llm.ErrRateLimited):
		return "the model is rate limited"
	case errors.Is(err, llm.ErrContextLength):
		return "the conversation is too long for the model"
	default:
		return "the model's service failed"
	}
}

func quoteList(names []string, n int) string {
	if len(names) > n {
		names = names[:n]
	}
	q := make([]string, len(names))
	for i, s := range names {
		q[i] = "`" + s + "`"
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
