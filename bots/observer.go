package bots

import "time"

// Observer receives the engine's measurements; cmd/parley exports them as
// Prometheus metrics. Methods must be cheap and safe for concurrent use.
type Observer interface {
	// Event counts an incoming event: kind is "message", "command",
	// "reaction" or "delete".
	Event(platform, kind string)
	// Reply counts a finished reply by outcome: "complete", "partial",
	// "failed", "stopped".
	Reply(platform, outcome string)
	// FirstToken is the model's time from request to first text.
	FirstToken(model string, d time.Duration)
	// Answer is a finished answer's model time (from the request to the
	// end of the model's stream) and token counts.
	Answer(model string, d time.Duration, promptTokens, completionTokens int)
	// Delivered is the time from the end of the model's stream until the
	// reply was shown whole (the final edits, waiting for budgets).
	Delivered(platform string, d time.Duration)
	// Call counts a platform call: op is a Call's name ("post", "edit",
	// "delete", "progress", "upload", "start", "append", "stop"); limited
	// is true for a 429.
	Call(platform, op string, limited bool)
	// Wait is how long a call of kind op waited for its budgets.
	Wait(platform, op string, d time.Duration)
	// Delivery counts how a reply was delivered: "native" (a native
	// stream), "update" (a post and edits), and "continuation" when the
	// rest of an answer went into a new message rather than wait.
	Delivery(platform, kind string)
	// Streams adds delta to the number of live streams.
	Streams(delta int)
	// QueueWait is how long a message waited for its turn.
	QueueWait(platform string, d time.Duration)
}

// nopObserver is the Observer when none is configured.
type nopObserver struct{}

func (nopObserver) Event(string, string)                   {}
func (nopObserver) Reply(string, string)                   {}
func (nopObserver) FirstToken(string, time.Duration)       {}
func (nopObserver) Answer(string, time.Duration, int, int) {}
func (nopObserver) Delivered(string, time.Duration)        {}
func (nopObserver) Call(string, string, bool)              {}
func (nopObserver) Wait(string, string, time.Duration)     {}
func (nopObserver) Delivery(string, string)                {}
func (nopObserver) Streams(int)                            {}
func (nopObserver) QueueWait(string, time.Duration)        {}
