package daemon

import (
	"net/http"

	"github.com/cancelnotify/cancelnotify/internal/redrive"
	"github.com/cancelnotify/cancelnotify/internal/support"
	"github.com/cancelnotify/cancelnotify/outbox"
)

// supportPage is the support page of the admin listener: its actions run
// with the daemon's ledger and River client, so they have the effects the
// CLI's have (callbacks, stopped tracking). Each channel's message text
// comes from that channel's templates.
func (d *Daemon) supportPage() (http.Handler, error) {
	body := func(c channel) string {
		if c.Body == "" {
			return outbox.DefaultBody
		}
		return c.Body
	}
	def := d.chans[0]
	more := map[string]support.ChannelTexts{}
	for _, c := range d.chans[1:] {
		more[c.Name] = support.ChannelTexts{Templates: c.api, Body: body(c)}
	}
	return support.New(support.Config{
		Pool:      d.pool,
		Operator:  &redrive.Operator{Pool: d.pool, Jobs: d.river, Ledger: d.ledger},
		Templates: def.api,
		Body:      body(def),
		Channels:  more,
		RiverUI:   "/riverui",
		Logger:    d.logger,
	})
}
