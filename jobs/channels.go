package jobs

import (
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/cancelnotify/cancelnotify/internal/ledger"
)

// Channel is one 1MSG channel as the workers use it: a notification goes
// out, is reconciled and is polled through the channel its row names.
type Channel struct {
	Name      string  // notification.channel; ledger.DefaultChannel for the ONEMSG_* variables
	API       API     // 1MSG client with the channel's id and token
	Namespace string  // the template's namespace
	Language  string  // the channel's default language, for the language fallback; "" = no fallback
	Limiter   Limiter // the channel's send rate; nil = unlimited
}

// channelSet finds a channel by name.
type channelSet map[string]*Channel

func newChannelSet(chs []Channel) (channelSet, error) {
	set := channelSet{}
	for i := range chs {
		c := chs[i]
		if c.Name == "" {
			c.Name = ledger.DefaultChannel
		}
		if c.API == nil {
			return nil, fmt.Errorf("jobs: channel %q has no API", c.Name)
		}
		if _, dup := set[c.Name]; dup {
			return nil, fmt.Errorf("jobs: channel %q is configured twice", c.Name)
		}
		if c.Limiter == nil {
			c.Limiter = unlimited{}
		}
		set[c.Name] = &c
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("jobs: Config.Channels is empty")
	}
	return set, nil
}

// get returns the channel named name ("" is the default channel: jobs
// enqueued before channels existed).
func (s channelSet) get(name string) (*Channel, error) {
	if name == "" {
		name = ledger.DefaultChannel
	}
	c, ok := s[name]
	if !ok {
		return nil, &UnknownChannelError{Name: name}
	}
	return c, nil
}

// UnknownChannelError is a notification whose channel is no longer
// configured (removed from CANCELNOTIFY_CHANNELS_FILE while it waited).
type UnknownChannelError struct{ Name string }

func (e *UnknownChannelError) Error() string {
	return fmt.Sprintf("channel %q is not configured: add it back to CANCELNOTIFY_CHANNELS_FILE and restart; the message waits", e.Name)
}

// unknownChannelWait is how long a job for an unconfigured channel waits
// before it looks again.
const unknownChannelWait = time.Minute

func snoozeUnknownChannel() error { return river.JobSnooze(jitter(unknownChannelWait)) }
