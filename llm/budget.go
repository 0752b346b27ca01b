package llm

import "unicode/utf8"

// Token estimate. Models behind one gateway use different tokenizers, so an
// exact count for one of them would still be a guess for the others; an
// offline BPE table (tiktoken-go-loader) would add megabytes for that guess.
// The estimate errs on the high side instead:
//   - ASCII text: 1 token per 4 bytes (English averages 4 to 4.5),
//   - CJK, kana and Hangul: 1 token per character,
//   - other non-ASCII letters (accents, Cyrillic, Greek, ...): 1 per 2,
//   - 4 tokens per message for the role and framing, 3 for the reply priming,
//   - 765 tokens per image (OpenAI's "high detail" cost of a 1024x1024
//     image; low detail is 85, large images cost more).
const (
	tokensPerMessage = 4
	tokensPerReply   = 3
	tokensPerImage   = 765
)

// EstimateTokens estimates the prompt tokens of a message list; see the
// rules above. It is meant for budgets, not for billing.
func EstimateTokens(msgs []Message) int {
	if len(msgs) == 0 {
		return 0
	}
	n := tokensPerReply
	for i := range msgs {
		n += messageTokens(&msgs[i])
	}
	return n
}

func messageTokens(m *Message) int {
	n := tokensPerMessage + textTokens(m.Content) + tokensPerImage*len(m.Images)
	for i := range m.ToolCalls {
		n += tokensPerMessage + textTokens(m.ToolCalls[i].Name) + textTokens(m.ToolCalls[i].Arguments)
	}
	return n
}

func textTokens(s string) int {
	var ascii, wide, other int
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			ascii++
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if isWide(r) {
			wide++
		} else {
			other++
		}
	}
	return (ascii+3)/4 + wide + (other+1)/2
}

// isWide reports CJK ideographs, kana, Hangul and fullwidth forms, which
// tokenizers split about one per character.
func isWide(r rune) bool {
	return (r >= 0x2E80 && r <= 0x9FFF) || // CJK radicals .. unified ideographs, kana
		(r >= 0xAC00 && r <= 0xD7AF) || // Hangul syllables
		(r >= 0xF900 && r <= 0xFAFF) || // CJK compatibility ideographs
		(r >= 0xFF00 && r <= 0xFFEF) || // fullwidth forms
		(r >= 0x20000 && r <= 0x3FFFF) // CJK extensions
}

// Fit trims msgs to budget tokens (by EstimateTokens), keeping the leading
// system message and the last message, dropping the oldest turns first. It
// returns the kept messages and how many were dropped. After dropping it
// also drops assistant messages that would open the history, so that what
// is kept starts with a user turn (tool results go with the assistant turn
// that called them). When the system message and the last
// message alone exceed the budget they are returned anyway: the endpoint
// decides. budget <= 0 means no budget. msgs is not modified.
//
// After ErrContextLength, send again with Shrink(msgs), which is Fit with
// half the estimate: the estimate and the endpoint disagree, and halving
// converges in a few tries.
func Fit(msgs []Message, budget int) (kept []Message, dropped int) {
	total := EstimateTokens(msgs)
	if budget <= 0 || total <= budget || len(msgs) <= 2 {
		return msgs, 0
	}
	head := 0
	if msgs[0].Role == RoleSystem {
		head = 1
	}
	last := len(msgs) - 1
	i := head
	for i < last && total > budget {
		total -= messageTokens(&msgs[i])
		i++
		// A tool result belongs to the assistant turn that called it:
		// neither may open the history.
		for i < last && (msgs[i].Role == RoleAssistant || msgs[i].Role == RoleTool) {
			total -= messageTokens(&msgs[i])
			i++
		}
	}
	kept = make([]Message, 0, head+len(msgs)-i)
	kept = append(kept, msgs[:head]...)
	kept = append(kept, msgs[i:]...)
	return kept, i - head
}

// Shrink is Fit with half of the current estimate: what to do after
// ErrContextLength. dropped == 0 means nothing is left to drop (only the
// system message and the last message remain); give up then.
func Shrink(msgs []Message) (kept []Message, dropped int) {
	return Fit(msgs, EstimateTokens(msgs)/2)
}
