package daemon

import (
	"net/http"

	"github.com/cancelnotify/cancelnotify/internal/redrive"
	"github.com/cancelnotify/cancelnotify/internal/support"
	"github.com/cancelnotify/cancelnotify/outbox"
)

// supportPage is the support page of the admin listener: its actions run
// with the daemon's ledger and River client, so they have the effects the
// CLI's have (callbacks, stopped tracking).
func (d *Daemon) supportPage() (http.Handler, error) {
	body := d.chans[0].Body
	if body == "" {
		body = outbox.DefaultBody
	}
	return support.New(support.Config{
		Pool:      d.pool,
		Operator:  &redrive.Operator{Pool: d.pool, Jobs: d.river, Ledger: d.ledger},
		Templates: d.chans[0].api,
		Body:      body,
		RiverUI:   "/riverui",
		Logger:    d.logger,
	})
}
